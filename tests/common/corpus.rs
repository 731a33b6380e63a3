//! Third-party corpora: libvirt's own q35 test data (`libvirt-q35/`) and real-world domains
//! (`realworld/`). They are not ours to redistribute, so they stay outside the repository and
//! the tests find them through `PCIPLAN_CORPUS_DIR`, a directory holding both (`.ci/run` sets
//! it). Without it a corpus test skips and says so on standard error; with
//! `PCIPLAN_REQUIRE_CORPUS=1` (CI) a missing corpus fails the test instead.

use std::path::PathBuf;

/// The variable naming the directory that holds the corpora.
pub const VAR: &str = "PCIPLAN_CORPUS_DIR";

/// The corpus `name` (`libvirt-q35`, `realworld`), or `None` after saying why the test skips.
///
/// # Panics
/// When the corpus is missing and `PCIPLAN_REQUIRE_CORPUS=1` ([`super::missing`]).
pub fn dir(name: &str) -> Option<PathBuf> {
    let why = match std::env::var_os(VAR) {
        None => format!("{VAR} is not set"),
        Some(root) => {
            let d = PathBuf::from(root).join(name);
            if d.is_dir() {
                return Some(d);
            }
            format!("{} is not a directory", d.display())
        }
    };
    super::missing(
        "PCIPLAN_REQUIRE_CORPUS",
        &format!("corpus {name} not found ({why}; tests/README.md, \"Corpora\")"),
    );
    None
}
