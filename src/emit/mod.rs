//! Output formats: QEMU `-device` lines, JSON, a readable tree, Graphviz.

mod dot;
mod qemu;
mod tree;

pub use dot::dot;
pub use qemu::qemu;
pub use tree::tree;

use crate::plan::Plan;

/// The plan as pretty JSON (`--format json`), with a trailing newline.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}
