//! Any bytes as a JSON request: parsing and planning never panic; every plan validates.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(req) = pciplan::Request::from_json(text) else { return };
    if let Ok(plan) = pciplan::plan(&req) {
        let cat = pciplan::Catalog::q35();
        assert!(pciplan::validate(&plan, &req, cat).is_empty());
        let _ = pciplan::emit::qemu(&plan, cat);
        let _ = pciplan::emit::tree(&plan, cat);
    }
});
