//! Output formats: QEMU `-device` lines, JSON, a readable tree, Graphviz.

mod dot;
pub(crate) mod json;
mod qemu;
mod tree;

pub use dot::dot;
pub use qemu::qemu;
pub use tree::tree;

use crate::plan::Plan;

/// The plan as pretty JSON (`--format json`), with a trailing newline.
pub fn json(plan: &Plan) -> String {
    let mut s = String::new();
    json_into(plan, &mut s);
    s
}

/// Appends the plan as pretty JSON with a trailing newline to `out`: what [`json`] returns,
/// without a new buffer for each plan when `out` is reused.
///
/// ```
/// let req = pciplan::Request::from_json(r#"{"devices":[{"id":"n","model":"e1000"}]}"#).unwrap();
/// let plan = pciplan::plan(&req).unwrap();
/// let mut out = String::from("[plan]\n");
/// pciplan::emit::json_into(&plan, &mut out);
/// assert_eq!(out, format!("[plan]\n{}", pciplan::emit::json(&plan)));
/// ```
pub fn json_into(plan: &Plan, out: &mut String) {
    out.reserve(json::size_hint(plan, true));
    json::plan(&mut json::Writer::<true>::new(out), plan);
    out.push('\n');
}
