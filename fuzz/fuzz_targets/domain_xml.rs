//! Any bytes as a libvirt domain XML: reading, checking, planning and writing never panic;
//! every plan validates, and the written XML reads back to the same request addresses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(domain) = pciplan::libvirt::Domain::parse(text) else { return };
    let _ = domain.check();
    let Ok(plan) = domain.plan() else { return };
    assert!(pciplan::validate(&plan, &domain.request, pciplan::Catalog::q35()).is_empty());
    if let Ok(xml) = domain.write(&plan) {
        let again = pciplan::libvirt::Domain::parse(&xml).expect("planned XML reads back");
        let replanned = again.plan().expect("planned XML plans again");
        assert_eq!(replanned.cost, 0, "re-planning the planned XML added controllers");
    }
});
