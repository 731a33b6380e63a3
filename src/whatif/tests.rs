use super::*;

fn req(text: &str) -> Request {
    Request::from_json(text).unwrap()
}

#[test]
fn glob_matches() {
    assert!(glob("e1000*", "e1000e") && glob("e1000*", "e1000") && !glob("e1000*", "igb"));
    assert!(glob("*net*", "virtio-net-pci") && glob("*", "") && !glob("a*b", "ac"));
}

#[test]
fn max_hotplug_on_disks_fill_root_ports_then_an_expander() {
    let r = req(r#"{"devices":[]}"#);
    let m = max_devices(&r, Catalog::q35(), "virtio-blk-pci", Some(Hotplug::On)).unwrap();
    assert!(m.max > 200, "{m}");
    // The answer is exact: one more does not fit.
    let more = with_devices(&r, "virtio-blk-pci", Some(Hotplug::On), m.max + 1);
    assert!(matches!(
        plan_with(&more, Catalog::q35()),
        Err(PlanError::Infeasible(_))
    ));
    assert_eq!(m.steps.len() as u32, m.max);
    assert_eq!(m.steps[0].usage.cost, 1);
    assert_eq!(
        m.steps.iter().map(|s| s.step_cost).sum::<u32>(),
        m.steps.last().unwrap().usage.cost
    );
}

/// pc (PC-ROOT, PC-MIX): `off` virtio disks fill `pci.0` with root hotplug off; `on`
/// e1000s go behind bridges, as many as SeaBIOS's bridge I/O windows allow. Each answer
/// is exact (one more does not fit) and its steps are the plans' costs.
#[test]
fn max_on_pc_is_exact() {
    let cat = Catalog::pc();
    let r = req(r#"{"machine":"pc","devices":[{"id":"vga","model":"VGA","hotplug":"any"}]}"#);
    let off = max_devices(&r, cat, "virtio-blk-pci", Some(Hotplug::Off)).unwrap();
    // pci.0 slots 2..31, one taken by the VGA.
    assert_eq!(
        (off.max, off.steps.last().unwrap().usage.cost),
        (29, 0),
        "{off}"
    );
    assert_eq!(off.root_bus, "pci.0");
    assert!(off.to_string().contains("pci.0"));
    let on = max_devices(&r, cat, "e1000", Some(Hotplug::On)).unwrap();
    assert!(on.max > 29, "{on}");
    for m in [&off, &on] {
        let more = with_devices(&r, &m.model, Some(m.hotplug), m.max + 1);
        assert!(
            matches!(plan_with(&more, cat), Err(PlanError::Infeasible(_))),
            "{m}"
        );
        let last = with_devices(&r, &m.model, Some(m.hotplug), m.max);
        assert_eq!(
            plan_with(&last, cat).unwrap().cost,
            m.steps.last().unwrap().usage.cost
        );
        assert_eq!(m.steps.len() as u32, m.max);
    }
    // With root hotplug forced off by an off device, on devices need bridges from the
    // first one.
    let mixed =
        req(r#"{"machine":"pc","devices":[{"id":"n","model":"virtio-net-pci","hotplug":"off"}]}"#);
    let m = max_devices(&mixed, cat, "e1000", Some(Hotplug::On)).unwrap();
    assert_eq!(m.steps[0].usage.cost, 1, "{m}");
}

#[test]
fn max_is_zero_when_full() {
    let devs: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"id":"n{i}","model":"e1000","hotplug":"off"}}"#))
        .collect();
    let r = req(&format!(r#"{{"devices":[{}]}}"#, devs.join(",")));
    let m = max_devices(&r, Catalog::q35(), "e1000", Some(Hotplug::Off)).unwrap();
    assert_eq!((m.max, m.steps.len()), (0, 0));
}

#[test]
fn sweep_spare_ports() {
    let s = Sweep::parse("spare_ports=0..3").unwrap();
    let mut study = SweepStudy::new(s);
    study.add(
        &[req(
            r#"{"devices":[{"id":"a","model":"virtio-net-pci","hotplug":"off"}]}"#,
        )],
        None,
    );
    let costs: Vec<u64> = study.rows.iter().map(|r| r.cost).collect();
    assert_eq!(costs, [0, 1, 2, 3]);
    assert!(Sweep::parse("colour=1..2").is_err());
    assert!(Sweep::parse("hotplug_off=integrated,sideways").is_err());
    assert!(Sweep::parse("firmware=bios,uefi").is_ok());
    assert!(Sweep::parse("firmware=bios,coreboot").is_err());
}

/// pc -> q35: a libvirt-like pc guest (everything on pci.0, root hotplug on) planned
/// afresh on q35. Its hot-pluggable `any` NIC becomes integrated (hot-pluggability
/// lost), its `on` devices take root ports, a conventional NIC a bridge; a NUMA node
/// fails on pc with PC-NUMA; bios fails on virt with R-IO.
#[test]
fn machine_sweep_moves_guests_between_machines() {
    let pc = req(
        r#"{"machine":"pc-i440fx-7.2","root_hotplug":true,"policy":{"default_hotplug":"any"},
        "devices":[
          {"id":"vga","model":"VGA","address":{"bus":"pci.0","slot":2}},
          {"id":"net0","model":"virtio-net-pci","address":{"bus":"pci.0","slot":3}},
          {"id":"disk0","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"pci.0","slot":4}},
          {"id":"nic1","model":"e1000","hotplug":"on","address":{"bus":"br1","slot":1}}],
        "controllers":[{"id":"br1","model":"pci-bridge","address":{"bus":"pci.0","slot":5}}]}"#,
    );
    let numa =
        req(r#"{"machine":"q35","devices":[{"id":"g","model":"virtio-net-pci","numa_node":0}]}"#);
    let sweep = Sweep::parse("machine=pc,q35,virt").unwrap();
    let mut study = SweepStudy::new(sweep);
    study.add(&[pc, numa], None);
    let [on_pc, on_q35, on_virt] = &study.rows[..] else {
        panic!("three rows")
    };
    // On pc the guest keeps its pins: no controller added, everything hot-pluggable.
    assert_eq!((on_pc.planned, on_pc.failed, on_pc.cost), (1, 1, 0));
    assert_eq!(on_pc.failed_by_rule.get("PC-NUMA"), Some(&1), "{on_pc:?}");
    assert_eq!(on_pc.bus_numbers, 1);
    // On q35 both plan: two root ports (disk0, nic1's bridge) and the bridge; the NUMA
    // guest's expander.
    assert_eq!((on_q35.planned, on_q35.failed), (2, 0), "{on_q35:?}");
    assert_eq!(
        on_q35.controllers.get("pcie-pci-bridge"),
        Some(&1),
        "{on_q35:?}"
    );
    // net0 was hot-pluggable on pc's pci.0 (root hotplug on) and is integrated on q35;
    // VGA is fixed on both (its model cannot be hot-plugged).
    assert_eq!(
        (on_q35.hotplug_lost, on_q35.hotplug_gained),
        (1, 0),
        "{on_q35:?}"
    );
    assert_eq!(on_q35.hotplug_by_model.get("virtio-net-pci"), Some(&1));
    assert_eq!(
        on_q35.controllers.get("pcie-root-port"),
        Some(&3),
        "{on_q35:?}"
    );
    // virt has no bios (and no VGA): both guests fail, each with its rule.
    assert_eq!(on_virt.failed, 2, "{on_virt:?}");
    assert!(Sweep::parse("machine=q35,sparc").is_err());
    assert!(Sweep::parse("machine=pc-i440fx-9.0,pc-q35-9.0").is_ok());
}

#[test]
fn policy_delta_finds_guests_that_break() {
    let change = PolicyChange::from_json(
        r#"{"devices":[{"match":{"model":["e1000*"]},"set":{"hotplug":"off"}}]}"#,
    )
    .unwrap();
    let fits = req(r#"{"name":"ok","devices":[{"id":"n","model":"e1000"}]}"#);
    let devs: Vec<String> = (0..31)
        .map(|i| format!(r#"{{"id":"n{i}","model":"e1000"}}"#))
        .collect();
    let breaks = req(&format!(
        r#"{{"name":"big","devices":[{}]}}"#,
        devs.join(",")
    ));
    let mut d = PolicyDelta::default();
    let rows = d.add(&[(1, fits), (2, breaks)], &change, None);
    assert_eq!(rows.len(), 2);
    assert_eq!(d.became_infeasible.len(), 1);
    assert_eq!(d.became_infeasible[0].name.as_deref(), Some("big"));
    assert_eq!(d.by_model.get("pcie-pci-bridge"), Some(&-1));
    assert_eq!((d.cheaper, d.cost_before, d.cost_after), (1, 2, 0));
    assert!(PolicyChange::from_json(r#"{"devices":[{"set":{"hotplg":"off"}}]}"#).is_err());
}
