//! The native module of the `pciplan` Python package (`pciplan._native`): plan one guest
//! from a request or a libvirt domain, or a fleet through the library's batch machinery.
//! `pciplan/__init__.py` re-exports it; the docstrings users read are the doc comments of
//! the functions below.

mod convert;
mod depy;
mod errors;
mod fleet;
mod plandict;
mod pyser;

use pciplan::libvirt::{Domain, Overrides, ReadOptions};
use pciplan::{Catalog, Hotplug, OffStrategy, Plan, PlanError, PolicyPatch, Request};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString};

/// Planning allocates many short strings per guest; mimalloc plans about 30% faster than
/// the system allocator (README, "Speed"), as in the command line. Only the Rust side of
/// the module allocates with it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Plans (or with `adopt`, adopts) one request.
fn plan_request(req: &Request, adopt: bool) -> Result<Plan, PlanError> {
    let cat = Catalog::for_machine(&req.machine)?;
    if adopt {
        pciplan::adopt_with(req, cat)
    } else {
        pciplan::plan_with(req, cat)
    }
}

/// The request a `plan` argument holds: a dict read directly when it can be (see
/// [`depy`]), else its JSON text parsed as the command line parses it.
fn request_arg(obj: &Bound<'_, PyAny>) -> PyResult<Result<Request, PlanError>> {
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        if let Ok(req) = depy::read_request(d) {
            return Ok(req.check_shape().map(|()| req).map_err(PlanError::from));
        }
    }
    let text = convert::request_text_or_raise(obj)?;
    let text: &str = &text;
    Ok(obj
        .py()
        .detach(|| Request::from_json(text))
        .map_err(PlanError::from))
}

/// plan(request, *, adopt=False) -> dict
///
/// Plans one guest. `request` is a dict or a JSON string as in docs/formats.md "Request";
/// the result is the plan `pciplan plan --format json` prints, as a dict: every controller
/// to add or keep, every device's bus, slot, function and whether it stays hot-pluggable,
/// the cost and whether it is proven optimal.
///
/// Raises `InvalidInput` (bad request, pinned addresses that break a rule), `Infeasible`
/// (no layout meets the policy; `causes` says which rule, which devices and what would make
/// it fit) or `TypeError` (not a dict, str or bytes). The GIL is released while planning.
///
/// `adopt=True` adopts an existing guest: the addresses it has are preferences, not pins;
/// the plan changes as few devices as the guest can see, then adds as few controllers,
/// then flips as few ports (O-ADOPT), and carries `guest_visible_changes` and `changes`.
///
/// A placement service:
///
/// >>> import pciplan
/// >>> p = pciplan.plan({"name": "web-01", "devices": [
/// ...     {"id": "net0", "model": "virtio-net-pci", "hotplug": "off"},
/// ...     {"id": "disk0", "model": "virtio-blk-pci"}]})
/// >>> [(d["id"], d["bus"], d["hotpluggable"]) for d in p["devices"]]
/// [('net0', 'pcie.0', False), ('disk0', 'rp1', True)]
/// >>> [(c["id"], c["model"]) for c in p["controllers"]]
/// [('rp1', 'pcie-root-port')]
#[pyfunction]
#[pyo3(signature = (request, *, adopt = false))]
fn plan<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyAny>,
    adopt: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let planned = match request_arg(request)? {
        Ok(req) => py.detach(|| plan_request(&req, adopt)),
        Err(e) => Err(e),
    };
    match planned {
        Ok(plan) => convert::plan_to_python(py, &plan),
        Err(e) => Err(errors::plan_error(py, &e)),
    }
}

/// Text from a str or UTF-8 bytes argument.
fn text_arg(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return String::from_utf8(b.as_bytes().to_vec()).map_err(|e| {
            errors::invalid(
                obj.py(),
                &format!("invalid input: {what}: not UTF-8 ({e})"),
                Some(what),
            )
        });
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a str or bytes"
    )))
}

/// A keyword argument that must be a str, parsed by `parse`.
fn word_arg<T>(
    name: &str,
    want: &str,
    obj: Option<&Bound<'_, PyAny>>,
    parse: fn(&str) -> Option<T>,
) -> PyResult<Option<T>> {
    let Some(obj) = obj else { return Ok(None) };
    let s = obj
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be a str: {want}")))?;
    let s = s.to_cow()?;
    parse(&s).map(Some).ok_or_else(|| {
        errors::invalid(
            obj.py(),
            &format!("invalid input: {name}: '{s}': expected {want}"),
            Some(name),
        )
    })
}

/// `spare_ports`: a non-negative int.
fn count_arg(name: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u32>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!("{name} must be an int")));
    }
    obj.extract::<u32>().map(Some).map_err(|_| {
        errors::invalid(
            obj.py(),
            &format!("invalid input: {name}: {obj} is not a count of ports"),
            Some(name),
        )
    })
}

/// `hotplug`: a mapping of aliases to "on"/"off"/"any", in its order.
fn hotplug_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Hotplug)>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    let items = obj.call_method0("items").map_err(|_| {
        PyTypeError::new_err("hotplug must be a mapping of alias to 'on', 'off' or 'any'")
    })?;
    let mut out = Vec::new();
    for pair in items.try_iter()? {
        let (alias, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
        let alias = alias
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("hotplug: aliases must be str"))?
            .to_cow()?
            .into_owned();
        let h = word_arg("hotplug", "on, off or any", Some(&value), Hotplug::parse)?;
        if alias.is_empty() {
            return Err(errors::invalid(
                obj.py(),
                "invalid input: hotplug: empty alias",
                Some("hotplug"),
            ));
        }
        if let Some(h) = h {
            out.push((alias, h));
        }
    }
    Ok(out)
}

/// What can fail planning a domain: reading it, planning it, writing it back.
enum XmlError {
    Read(pciplan::InputError),
    Plan(PlanError),
}

/// Plans a domain XML to the planned domain XML (`--format libvirt`).
fn plan_domain(xml: &str, overrides: Overrides, adopt: bool) -> Result<String, XmlError> {
    let opts = ReadOptions {
        overrides,
        ..ReadOptions::default()
    };
    let dom = Domain::parse_with(xml, &opts).map_err(XmlError::Read)?;
    let plan = if adopt { dom.adopt() } else { dom.plan() };
    let plan = plan.map_err(XmlError::Plan)?;
    let mut out = dom.write(&plan).map_err(XmlError::Read)?;
    // As the command line prints it.
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// plan_xml(xml, *, default_hotplug=None, hotplug=None, hotplug_off=None, spare_ports=None, adopt=False) -> str
///
/// Plans a libvirt domain: the same domain comes back with an `<address type='pci'>` on
/// every PCI device and the controllers it needs, as `pciplan plan DOMAIN.xml --format
/// libvirt` prints it, which `virsh define` accepts unchanged. The policy comes from the
/// domain's `<pciplan:policy>` metadata; each keyword given wins over it:
/// `default_hotplug` ("on", "off", "any"), `hotplug` (a dict of libvirt aliases, e.g.
/// `{"ua-net0": "off"}`, to "on"/"off"/"any"), `hotplug_off` ("integrated", "port",
/// "auto") and `spare_ports` (an int).
///
/// Raises `InvalidInput`, `Infeasible` or `TypeError` as `plan` does. `adopt=True` adopts
/// the domain as `pciplan plan DOMAIN.xml --adopt` does: its addresses are preferences.
#[pyfunction]
#[pyo3(signature = (xml, *, default_hotplug = None, hotplug = None, hotplug_off = None, spare_ports = None, adopt = false))]
fn plan_xml(
    py: Python<'_>,
    xml: &Bound<'_, PyAny>,
    default_hotplug: Option<&Bound<'_, PyAny>>,
    hotplug: Option<&Bound<'_, PyAny>>,
    hotplug_off: Option<&Bound<'_, PyAny>>,
    spare_ports: Option<&Bound<'_, PyAny>>,
    adopt: bool,
) -> PyResult<String> {
    let xml = text_arg("xml", xml)?;
    let overrides = Overrides {
        policy: PolicyPatch {
            default_hotplug: word_arg(
                "default_hotplug",
                "on, off or any",
                default_hotplug,
                Hotplug::parse,
            )?,
            spare_ports: count_arg("spare_ports", spare_ports)?,
            hotplug_off: word_arg(
                "hotplug_off",
                "integrated, port or auto",
                hotplug_off,
                OffStrategy::parse,
            )?,
            pack_integrated: None,
        },
        hotplug: hotplug_arg(hotplug)?,
    };
    match py.detach(|| plan_domain(&xml, overrides, adopt)) {
        Ok(out) => Ok(out),
        Err(XmlError::Read(e)) => Err(errors::input_error(py, &e)),
        Err(XmlError::Plan(e)) => Err(errors::plan_error(py, &e)),
    }
}

/// batch(requests, *, adopt=False, chunk=512, as_json=False) -> Iterator[dict]
///
/// Plans a fleet. `requests` is any iterable of requests (dicts or JSON strings: a list, a
/// generator, an open JSON Lines file, `df.to_dict("records")`); the result is an iterator
/// of dicts, one per request and in the same order, each exactly the object of one output
/// line of `pciplan batch`: `{"line", "name", "ok", "cost", "optimal", "plan"}`, or
/// `{"line", "name", "ok": False, "error": {"kind", "rule", "message", "causes"}}`. A bad or
/// infeasible request gives an error result and never stops the batch; a request that is
/// not a dict, str or bytes gives an `invalid` result too.
///
/// Requests are pulled `chunk` at a time and planned on every core (the library's shape
/// cache answers repeated requests; a dict is handed over as the request read from it,
/// without JSON text) while the previous chunk's results are handed out, so memory stays
/// flat over any number of requests. An exception raised by the
/// iterable itself comes after the results of the requests before it.
///
/// `adopt=True` adopts every request (`pciplan batch --adopt`): existing addresses are
/// preferences, and each plan lists its `changes`.
///
/// `as_json=True` hands out each result as its output line instead: the str `pciplan
/// batch` writes for it, newline included, rendered on the planning threads. A caller that
/// stores or forwards the results (a JSON Lines file, a queue, `pandas.read_json(...,
/// lines=True)`) skips making about fifty Python objects per guest on its own thread,
/// the most of its work: this runs at about the command line's rate.
///
/// A what-if study: controllers the fleet needs for each number of spare ports.
///
/// >>> import json, pciplan
/// >>> fleet = [json.loads(line) for line in open("fleet.jsonl")]  # doctest: +SKIP
/// >>> for spare in range(4):  # doctest: +SKIP
/// ...     variant = ({**r, "policy": {**r.get("policy", {}), "spare_ports": spare}}
/// ...                for r in fleet)
/// ...     print(spare, sum(o["cost"] for o in pciplan.batch(variant) if o["ok"]))
///
/// The plans of a fleet, to a file:
///
/// >>> with open("plans.jsonl", "w") as out:  # doctest: +SKIP
/// ...     out.writelines(pciplan.batch(open("fleet.jsonl"), as_json=True))
#[pyfunction]
#[pyo3(signature = (requests, *, adopt = false, chunk = fleet::CHUNK, as_json = false))]
fn batch(
    requests: &Bound<'_, PyAny>,
    adopt: bool,
    chunk: usize,
    as_json: bool,
) -> PyResult<fleet::BatchIter> {
    let source = fleet::iterate(requests)?;
    fleet::BatchIter::start(source, chunk, adopt, as_json)
}

/// pciplan plans the PCI/PCIe topology of QEMU guests with an integer program.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan_xml, m)?)?;
    m.add_function(wrap_pyfunction!(batch, m)?)?;
    m.add_class::<fleet::BatchIter>()?;
    m.add("__version__", pciplan::VERSION)?;
    Ok(())
}
