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
    let mut s = String::with_capacity(json::size_hint(plan));
    json::plan(&mut json::Writer::new(&mut s, true), plan);
    s.push('\n');
    s
}
