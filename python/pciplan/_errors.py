"""The exceptions pciplan raises (the native module builds them from the library's errors)."""

from typing import Any, Dict, List, Optional


class Error(Exception):
    """Base class of every error pciplan raises on purpose."""


class InvalidInput(Error, ValueError):
    """Malformed or contradictory input (the command line's exit status 2).

    ``field`` says where: a JSON path such as ``devices[3].model``, a device id or an XML
    element. ``violations`` lists the rules pinned addresses break, as dicts with
    ``device``, ``address``, ``rule`` and ``message`` (empty for other input errors).
    """

    def __init__(
        self,
        message: str,
        field: Optional[str] = None,
        violations: Optional[List[Dict[str, Any]]] = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.violations = list(violations or [])

    def __reduce__(self):  # keeps the data across pickling (Dask, multiprocessing)
        return (type(self), (str(self), self.field, self.violations))


class Infeasible(Error):
    """The request is well formed but no layout meets its policy (exit status 1).

    ``causes`` is a list of dicts, most important first, each with ``rule`` (a rule id such
    as ``R-ROOT``), ``message``, ``devices`` (ids), ``need``, ``have`` and ``hints`` (what
    would make it fit). ``rule`` is the first cause's rule.
    """

    def __init__(self, message: str, causes: Optional[List[Dict[str, Any]]] = None) -> None:
        super().__init__(message)
        self.causes = list(causes or [])
        self.rule = self.causes[0]["rule"] if self.causes else None

    def __reduce__(self):
        return (type(self), (str(self), self.causes))
