//! Helpers shared by the integration tests (`mod common;` in a test file; tests/README.md
//! says which helper is where).
#![allow(dead_code)]

pub mod adoption;
pub mod cli;
pub mod corpus;
pub mod guest;
pub mod libvirt;
pub mod qemu;

/// A test's prerequisite (QEMU, a corpus) is missing: with `require_var=1` (CI sets it) the
/// test fails, saying `why`; otherwise it is told to skip, and the skip is said on standard
/// error, so that a run without QEMU or the corpora never passes silently.
pub fn missing(require_var: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    if std::env::var(require_var).as_deref() == Ok("1") {
        panic!("{test}: {why}, and {require_var}=1 requires it");
    }
    eprintln!("skipping {test}: {why}");
}
