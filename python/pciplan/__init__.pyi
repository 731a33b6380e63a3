"""Type stubs of pciplan (the native functions are in pciplan._native)."""

from typing import Any, Dict, Iterable, Iterator, List, Literal, Mapping, Optional, Union, overload

__version__: str

Request = Union[Dict[str, Any], str, bytes]
"""A request: a dict, or JSON text (docs/formats.md "Request")."""

class Error(Exception):
    """Base class of every error pciplan raises on purpose."""

class InvalidInput(Error, ValueError):
    """Malformed or contradictory input."""

    field: Optional[str]
    violations: List[Dict[str, Any]]
    def __init__(
        self,
        message: str,
        field: Optional[str] = ...,
        violations: Optional[List[Dict[str, Any]]] = ...,
    ) -> None: ...

class Infeasible(Error):
    """No layout meets the policy; ``causes`` says why (rule, message, devices, need, have,
    hints)."""

    causes: List[Dict[str, Any]]
    rule: Optional[str]
    def __init__(self, message: str, causes: Optional[List[Dict[str, Any]]] = ...) -> None: ...

class BatchIterator(Iterator[Dict[str, Any]]):
    """Results of `batch`, one dict per request, in order."""

    def __iter__(self) -> "BatchIterator": ...
    def __next__(self) -> Dict[str, Any]: ...

def plan(request: Request, *, adopt: bool = ...) -> Dict[str, Any]:
    """Plans one guest; returns the `--format json` plan."""

def plan_xml(
    xml: Union[str, bytes],
    *,
    default_hotplug: Optional[str] = ...,
    hotplug: Optional[Mapping[str, str]] = ...,
    hotplug_off: Optional[str] = ...,
    spare_ports: Optional[int] = ...,
    adopt: bool = ...,
) -> str:
    """Plans a libvirt domain XML; returns the planned domain (`--format libvirt`)."""

@overload
def batch(
    requests: Iterable[Request],
    *,
    adopt: bool = ...,
    chunk: int = ...,
    as_json: Literal[False] = ...,
) -> BatchIterator:
    """Plans a fleet; one result dict per request (a `pciplan batch` output line), in
    order."""

@overload
def batch(
    requests: Iterable[Request], *, adopt: bool = ..., chunk: int = ..., as_json: Literal[True]
) -> Iterator[str]:
    """Plans a fleet; one result line per request (the str `pciplan batch` writes, newline
    included), in order."""
