//! Adopting existing guests (`--adopt`, O-ADOPT): the cases issue 10 names, each checked on
//! the plan's changes, on its addresses and against the validator.

#[path = "../benches/fleet/mod.rs"]
mod fleet;

use pciplan::{adopt, validate, ChangeKind, Plan, PlanError, Request, Rule};

/// A libvirt-addressed guest: every device behind its own root port at 00:02.x, an e1000
/// on a pcie-pci-bridge behind the last port, a VGA at 00:01.0; policy and per-device
/// hotplug as given.
fn libvirt_guest(policy: &str, net: &str, disk: &str, nic: &str) -> Request {
    let text = format!(
        r#"{{"name":"g","policy":{policy},"devices":[
          {{"id":"video0","model":"VGA","hotplug":"any","address":{{"bus":"pcie.0","slot":1}}}},
          {{"id":"net0","model":"virtio-net-pci","hotplug":"{net}","address":{{"bus":"pci.1","slot":0}}}},
          {{"id":"disk0","model":"virtio-blk-pci","hotplug":"{disk}","address":{{"bus":"pci.2","slot":0}}}},
          {{"id":"disk1","model":"virtio-blk-pci","address":{{"bus":"pci.3","slot":0}}}},
          {{"id":"rng0","model":"virtio-rng-pci","address":{{"bus":"pci.4","slot":0}}}},
          {{"id":"nic1","model":"e1000","hotplug":"{nic}","address":{{"bus":"pci.6","slot":1}}}}],
         "controllers":[
          {{"id":"pci.1","model":"pcie-root-port","chassis":1,"port":16,"address":{{"bus":"pcie.0","slot":2,"function":0}}}},
          {{"id":"pci.2","model":"pcie-root-port","chassis":2,"port":17,"address":{{"bus":"pcie.0","slot":2,"function":1}}}},
          {{"id":"pci.3","model":"pcie-root-port","chassis":3,"port":18,"address":{{"bus":"pcie.0","slot":2,"function":2}}}},
          {{"id":"pci.4","model":"pcie-root-port","chassis":4,"port":19,"address":{{"bus":"pcie.0","slot":2,"function":3}}}},
          {{"id":"pci.5","model":"pcie-root-port","chassis":5,"port":20,"address":{{"bus":"pcie.0","slot":2,"function":4}}}},
          {{"id":"pci.6","model":"pcie-pci-bridge","address":{{"bus":"pci.5","slot":0}}}}]}}"#
    );
    Request::from_json(&text).expect("the guest parses")
}

fn adopted(req: &Request) -> Plan {
    let plan = adopt(req).unwrap_or_else(|e| panic!("adopts: {e}"));
    let bad = validate(&plan, req, pciplan::Catalog::q35());
    // The validator sees the plan against the request's pins; moved devices differ from
    // their old pins by design, so only non-pin rules must hold.
    let bad: Vec<_> = bad.into_iter().filter(|v| v.rule != Rule::Pin).collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(plan.optimal);
    plan
}

fn kinds(plan: &Plan) -> Vec<(String, ChangeKind)> {
    plan.changes
        .as_ref()
        .expect("an adopted plan lists its changes")
        .iter()
        .map(|c| (c.id.clone(), c.change))
        .collect()
}

fn device<'p>(plan: &'p Plan, id: &str) -> &'p pciplan::PlacedDevice {
    plan.devices.iter().find(|d| d.id == id).expect("device")
}

#[test]
fn disk_and_nic_off_flip_their_ports_and_change_nothing_the_guest_sees() {
    for strategy in ["auto", "port"] {
        let req = libvirt_guest(
            &format!(r#"{{"hotplug_off":"{strategy}"}}"#),
            "off",
            "off",
            "on",
        );
        let plan = adopted(&req);
        assert_eq!(plan.guest_visible_changes, Some(0), "{strategy}");
        assert_eq!(plan.cost, 0, "{strategy}: no controller added");
        assert_eq!(
            kinds(&plan),
            [
                ("pci.1".to_string(), ChangeKind::PortHotplug),
                ("pci.2".to_string(), ChangeKind::PortHotplug)
            ],
            "{strategy}"
        );
        for (i, d) in plan.devices.iter().enumerate() {
            let old = req.devices[i].address.as_ref().expect("pinned");
            assert_eq!(&d.address(), old, "{strategy}: {} stays", d.id);
        }
        assert!(!device(&plan, "net0").hotpluggable && !device(&plan, "disk0").hotpluggable);
        assert!(device(&plan, "disk1").hotpluggable);
    }
}

#[test]
fn integrated_moves_exactly_the_two_devices_to_the_root_bus() {
    let req = libvirt_guest(r#"{"hotplug_off":"integrated"}"#, "off", "off", "on");
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(2));
    assert_eq!(plan.cost, 0);
    assert_eq!(
        kinds(&plan),
        [
            ("net0".to_string(), ChangeKind::Moved),
            ("disk0".to_string(), ChangeKind::Moved)
        ]
    );
    for id in ["net0", "disk0"] {
        assert_eq!(device(&plan, id).bus, "pcie.0");
    }
    // Every other device keeps its address, and no bus was added anywhere: bus numbers hold.
    for (i, d) in plan.devices.iter().enumerate() {
        if d.id != "net0" && d.id != "disk0" {
            assert_eq!(
                Some(&d.address()),
                req.devices[i].address.as_ref(),
                "{}",
                d.id
            );
        }
    }
    assert!(plan.controllers.iter().all(|c| !c.added));
    let net = &plan.changes.as_ref().unwrap()[0];
    let linux = net.linux_name.as_ref().expect("a NIC says its Linux name");
    assert_eq!(linux.from, "enp1s0");
    assert!(linux.to.starts_with("enp0s"), "{linux:?}");
}

#[test]
fn a_conventional_nic_on_a_bridge_must_move_and_says_why() {
    let req = libvirt_guest(r#"{"hotplug_off":"auto"}"#, "on", "on", "off");
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(1));
    let c = &plan.changes.as_ref().unwrap()[0];
    assert_eq!((c.id.as_str(), c.change), ("nic1", ChangeKind::Moved));
    let why = c.why.as_deref().expect("a reason");
    assert!(why.contains("R-BRIDGE") && why.contains("D-OFF"), "{why}");
    let nic = device(&plan, "nic1");
    assert_eq!(nic.bus, "pcie.0");
    assert!(!nic.hotpluggable);
}

#[test]
fn a_multifunction_port_with_an_off_and_an_on_device_moves_one() {
    let req = Request::from_json(
        r#"{"policy":{"hotplug_off":"auto"},"devices":[
          {"id":"a","model":"virtio-net-pci","hotplug":"off","address":{"bus":"p1","slot":0,"function":0}},
          {"id":"b","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"p1","slot":0,"function":1}},
          {"id":"c","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"p2","slot":0}}],
         "controllers":[
          {"id":"p1","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":2,"function":0}},
          {"id":"p2","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":2,"function":1}}]}"#,
    )
    .unwrap();
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(1));
    let moved: Vec<_> = kinds(&plan)
        .into_iter()
        .filter(|k| k.1 == ChangeKind::Moved)
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    // Moving a (function 0) would take b along (R-FUNC): b moves, the port flips for a.
    assert_eq!(moved[0].0, "b");
    assert!(!device(&plan, "a").hotpluggable && device(&plan, "b").hotpluggable);
    assert_eq!(device(&plan, "c").bus, "p2");
}

#[test]
fn on_devices_leave_the_root_bus_and_off_ports_flip_back() {
    let req = Request::from_json(
        r#"{"devices":[
          {"id":"a","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"pcie.0","slot":4}},
          {"id":"b","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"p1","slot":0}},
          {"id":"c","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"p2","slot":0}}],
         "controllers":[
          {"id":"p1","model":"pcie-root-port","chassis":1,"hotplug":false,"address":{"bus":"pcie.0","slot":2,"function":0}},
          {"id":"p2","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":2,"function":1}}]}"#,
    )
    .unwrap();
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(1));
    assert_eq!(
        kinds(&plan),
        [
            ("a".to_string(), ChangeKind::Moved),
            ("p1".to_string(), ChangeKind::PortHotplug),
            ("rp1".to_string(), ChangeKind::Added)
        ]
    );
    assert!(plan.devices.iter().all(|d| d.hotpluggable));
    // The new port comes after the existing ones (00:02.2): nothing is renumbered.
    let rp = plan.controllers.iter().find(|c| c.added).unwrap();
    assert_eq!((rp.bus.as_str(), rp.slot, rp.function), ("pcie.0", 2, 2));
}

#[test]
fn new_ports_go_where_they_renumber_nothing() {
    // Ports at the top of pcie.0 hold devices; slots below are free. A new device needs a
    // port: a free function of the last port slot renumbers nothing, a lower slot would
    // renumber both existing devices.
    let req = Request::from_json(
        r#"{"devices":[
          {"id":"a","model":"virtio-blk-pci","address":{"bus":"p1","slot":0}},
          {"id":"b","model":"virtio-net-pci","address":{"bus":"p2","slot":0}},
          {"id":"new","model":"virtio-blk-pci"}],
         "controllers":[
          {"id":"p1","model":"pcie-root-port","chassis":1,"address":{"bus":"pcie.0","slot":29}},
          {"id":"p2","model":"pcie-root-port","chassis":2,"address":{"bus":"pcie.0","slot":30}}]}"#,
    )
    .unwrap();
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(0));
    let rp = plan.controllers.iter().find(|c| c.added).unwrap();
    assert_eq!((rp.slot, rp.function), (30, 1));
    // A plain plan of the same guest takes the first free function (00:1d.1), before p2:
    // b's bus would be renumbered.
    let plain = pciplan::plan(&req).expect("plans");
    let rp = plain.controllers.iter().find(|c| c.added).unwrap();
    assert!((rp.slot, rp.function) < (30, 0), "{rp:?}");
}

#[test]
fn no_change_beats_fewer_controllers() {
    // Slots 29 and 30 hold 16 root ports with a device each, 4..28 integrated endpoints,
    // and an `any` disk sits on the port at slot 2. A new hot-pluggable device needs a
    // port: a new one at slot 1 or 3 comes before the 16 ports and would renumber all their
    // devices; moving the `any` disk to pcie.0 would free its port at one change. An
    // expander takes its own bus numbers (from its bus_nr) and renumbers nothing: two
    // controllers and no change is the least the guest sees (O-ADOPT).
    let mut devices = Vec::new();
    let mut ctrls = vec![
        r#"{"id":"q","model":"pcie-root-port","chassis":9,"address":{"bus":"pcie.0","slot":2}}"#
            .to_string(),
    ];
    for s in 4..=28 {
        devices.push(format!(
            r#"{{"id":"i{s}","model":"virtio-rng-pci","hotplug":"any","address":{{"bus":"pcie.0","slot":{s}}}}}"#
        ));
    }
    devices.push(
        r#"{"id":"x","model":"virtio-blk-pci","hotplug":"any","address":{"bus":"q","slot":0}}"#
            .into(),
    );
    for slot in [29, 30] {
        for f in 0..8 {
            let id = format!("p{slot}_{f}");
            ctrls.push(format!(
                r#"{{"id":"{id}","model":"pcie-root-port","chassis":{},"address":{{"bus":"pcie.0","slot":{slot},"function":{f}}}}}"#,
                slot * 8 + f - 200
            ));
            devices.push(format!(
                r#"{{"id":"d{slot}_{f}","model":"virtio-net-pci","address":{{"bus":"{id}","slot":0}}}}"#
            ));
        }
    }
    devices.push(r#"{"id":"new","model":"virtio-blk-pci"}"#.into());
    let text = format!(
        r#"{{"devices":[{}],"controllers":[{}]}}"#,
        devices.join(","),
        ctrls.join(",")
    );
    let req = Request::from_json(&text).unwrap();
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(0), "{:?}", plan.changes);
    assert_eq!(plan.cost, 2);
    assert_eq!(plan.added("pxb-pcie"), 1);
    assert_eq!(device(&plan, "x").bus, "q");
    // The plain planner adds one root port before the 16 and renumbers them all.
    let plain = pciplan::plan(&req).expect("plans");
    assert_eq!((plain.cost, plain.added("pxb-pcie")), (1, 0));
}

#[test]
fn a_guest_that_meets_its_policy_is_left_as_it_is() {
    let req = libvirt_guest(r#"{"hotplug_off":"auto"}"#, "on", "on", "on");
    let plan = adopted(&req);
    assert_eq!(plan.guest_visible_changes, Some(0));
    assert_eq!(plan.changes.as_deref(), Some(&[][..]));
    assert_eq!(plan.cost, 0);
    // Without --adopt the same guest plans the same.
    let plain = pciplan::plan(&req).expect("plans");
    assert_eq!(plain.devices, plan.devices);
    assert_eq!(plain.controllers, plan.controllers);
}

#[test]
fn a_domain_that_meets_its_policy_comes_back_byte_for_byte() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web-01.xml"))
        .expect("example");
    let dom = pciplan::libvirt::Domain::parse(&text).expect("reads");
    let planned = dom.write(&dom.plan().expect("plans")).expect("writes");
    let again = pciplan::libvirt::Domain::parse(&planned).expect("reads");
    let plan = again.adopt().expect("adopts");
    assert_eq!(plan.guest_visible_changes, Some(0));
    assert_eq!(again.write(&plan).expect("writes"), planned);
}

#[test]
fn adoption_is_refused_only_when_no_layout_fits() {
    // A conventional device hotplug-off under hotplug_off=port fits nowhere (D-OFF).
    let req = libvirt_guest(r#"{"hotplug_off":"port"}"#, "on", "on", "off");
    match adopt(&req) {
        Err(PlanError::Infeasible(x)) => assert_eq!(x.rule(), Rule::Off, "{x}"),
        other => panic!("expected D-OFF, got {other:?}"),
    }
    // A genuine address error stays an error (two devices on one address).
    let mut bad = libvirt_guest(r#"{"hotplug_off":"auto"}"#, "off", "on", "on");
    bad.devices[2].address = bad.devices[1].address.clone();
    assert!(matches!(adopt(&bad), Err(PlanError::Pins(_))));
}

#[test]
fn adoption_is_deterministic_and_idempotent() {
    let req = libvirt_guest(r#"{"hotplug_off":"integrated"}"#, "off", "off", "off");
    let a = adopted(&req);
    assert_eq!(adopted(&req), a);
    // Adopting the adopted guest again changes nothing more.
    let prev = pciplan::Previous::from(&a);
    let mut again = req.clone();
    for d in again.devices.iter_mut() {
        d.address = None;
    }
    again.controllers.clear();
    let again = again.pinned_to(&prev).expect("pins");
    let b = adopted(&again);
    assert_eq!(b.guest_visible_changes, Some(0));
    assert_eq!(b.changes.as_deref(), Some(&[][..]));
}

/// The (changes, controllers, flips) an adoption reached.
fn score(p: &Plan) -> (u32, u32, usize) {
    let flips = p
        .changes
        .iter()
        .flatten()
        .filter(|c| c.change == ChangeKind::PortHotplug)
        .count();
    (p.guest_visible_changes.unwrap_or(u32::MAX), p.cost, flips)
}

/// The natural decision's shortcut (proven by an argument, docs/ilp.md) and the adoption
/// program (soft pins) reach the same lexicographic minimum on 400 distinct existing guests
/// of the synthetic fleet (libvirt-addressed, 2..32 devices, with NUMA, groups, pins and
/// conventional devices), and each plan passes the validator.
#[test]
fn the_shortcut_and_the_program_agree_on_a_fleet() {
    let cat = pciplan::Catalog::q35();
    let (mut both, mut refused) = (0, 0);
    for line in fleet::existing(seed(), 400) {
        let req = Request::from_json(&line).expect("parses");
        match (
            pciplan::adopt_with(&req, cat),
            pciplan::adopt_by_program(&req, cat),
        ) {
            (Ok(a), Ok(b)) => {
                assert_eq!(score(&a), score(&b), "{line}");
                assert!(a.optimal && b.optimal);
                both += 1;
            }
            (Err(PlanError::Infeasible(_)), Err(PlanError::Infeasible(_))) => refused += 1,
            (a, b) => panic!("{line}\nshortcut: {a:?}\nprogram: {b:?}"),
        }
    }
    assert!(both > 300, "{both} adopted, {refused} refused");
}

/// The fleet's seed: `PCIPLAN_ADOPT_SEED` draws another fleet.
fn seed() -> u64 {
    std::env::var("PCIPLAN_ADOPT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(77)
}

/// A group with one member addressed and one not is refused as a plain plan refuses it
/// (D-GROUP), not an internal error.
#[test]
fn a_partly_addressed_group_is_refused() {
    let req = Request::from_json(
        r#"{"devices":[{"id":"a","model":"virtio-net-pci","group":"g","hotplug":"any","address":{"bus":"pcie.0","slot":5}},
          {"id":"b","model":"virtio-net-pci","group":"g","hotplug":"any"}]}"#,
    )
    .unwrap();
    match adopt(&req) {
        Err(PlanError::Invalid(e)) => {
            let e = e.to_string();
            assert!(e.contains("'b'") && e.contains("[D-GROUP]"), "{e}");
        }
        other => panic!("expected D-GROUP, got {other:?}"),
    }
}
