//! Structured requests built from bytes (so the fuzzer reaches the solver, not just the
//! parser): the validator is the oracle for every plan, and re-planning a plan adds nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

const MODELS: &[&str] = &["virtio-net-pci", "virtio-blk-pci", "e1000", "e1000e", "rtl8139", "nvme", "qemu-xhci", "pci-ohci", "ich9-intel-hda", "virtio-gpu-pci"];
const CONTROLLERS: &[&str] = &["pcie-root-port", "pcie-pci-bridge", "pxb-pcie", "x3130-upstream", "xio3130-downstream"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let hp = ["on", "off", "any"];
    let (default_hotplug, spare, off, pack) = (hp[(data[0] % 3) as usize], data[1] % 4, ["integrated", "port", "auto"][(data[2] % 3) as usize], data[3] & 1 == 1);
    let policy = serde_json::json!({"default_hotplug": default_hotplug, "spare_ports": spare, "hotplug_off": off, "pack_integrated": pack});
    let mut devices = Vec::new();
    let mut controllers = Vec::new();
    for (i, chunk) in data[4..].chunks(4).enumerate().take(300) {
        let b = |k: usize| chunk.get(k).copied().unwrap_or(0);
        if b(0) % 16 == 15 {
            // An existing controller somewhere.
            let parent = if b(1) % 3 == 0 || controllers.is_empty() { "pcie.0".to_string() } else { format!("c{}", b(1) as usize % controllers.len()) };
            let (id, model, slot, function, chassis) = (format!("c{}", controllers.len()), CONTROLLERS[b(2) as usize % CONTROLLERS.len()], b(3) % 32, (b(3) >> 5) % 8, 100 + (controllers.len() as u32 % 150));
            let mut c = serde_json::json!({"id": id, "model": model, "address": {"bus": parent, "slot": slot, "function": function}});
            if model.contains("port") || model.contains("downstream") {
                c["chassis"] = serde_json::json!(chassis);
            }
            controllers.push(c);
            continue;
        }
        let (id, model, h) = (format!("d{i}"), MODELS[b(0) as usize % MODELS.len()], hp[(b(1) % 3) as usize]);
        let mut d = serde_json::json!({"id": id, "model": model, "hotplug": h});
        if b(2) % 7 == 0 {
            d["group"] = serde_json::json!(format!("g{}", b(3) % 4));
        }
        if b(2) % 11 == 1 {
            d["numa_node"] = serde_json::json!(b(3) % 3);
        }
        if b(2) % 13 == 2 {
            d["address"] = serde_json::json!({"bus": "pcie.0", "slot": b(3) % 32, "function": 0});
        }
        devices.push(d);
    }
    let text = serde_json::json!({"policy": policy, "devices": devices, "controllers": controllers}).to_string();
    let Ok(req) = pciplan::Request::from_json(&text) else { return };
    let Ok(plan) = pciplan::plan(&req) else { return };
    let cat = pciplan::Catalog::q35();
    assert!(pciplan::validate(&plan, &req, cat).is_empty(), "{text}");
    let again = pciplan::plan(&req.pinned_to(&(&plan).into()).expect("pins from own plan")).expect("re-plan of own plan");
    assert_eq!(again.cost, 0, "{text}");
});
