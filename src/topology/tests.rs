use super::fixtures::{ctrl, dev, plan, request};
use super::*;

fn q35() -> &'static Catalog {
    Catalog::q35()
}

/// The id of each node in `nodes`.
fn ids<'a>(t: &Topology<'a>, nodes: impl IntoIterator<Item = NodeIndex>) -> Vec<&'a str> {
    nodes.into_iter().map(|n| t.g[n].id(q35())).collect()
}

/// rp1 (pcie.0 1.0) holds a bridge with two NICs; rp2 (1.1) a switch with two
/// downstream ports; an expander (2.0) a root port; one integrated NIC (3.0).
fn sample() -> Plan {
    plan(
        vec![
            ctrl("up", "x3130-upstream", "rp2", 0, 0),
            ctrl("rp1", "pcie-root-port", "pcie.0", 1, 0),
            ctrl("rp2", "pcie-root-port", "pcie.0", 1, 1),
            ctrl("br", "pcie-pci-bridge", "rp1", 0, 0),
            ctrl("dp2", "xio3130-downstream", "up", 2, 0),
            ctrl("dp1", "xio3130-downstream", "up", 1, 0),
            ctrl("x", "pxb-pcie", "pcie.0", 2, 0),
            ctrl("xrp", "pcie-root-port", "x", 0, 0),
        ],
        vec![
            dev("old2", "e1000", "br", 2, 0),
            dev("old1", "rtl8139", "br", 1, 0),
            dev("int", "virtio-net-pci", "pcie.0", 3, 0),
            dev("fast", "virtio-net-pci", "dp1", 0, 0),
        ],
    )
}

#[test]
fn nodes_are_the_root_then_controllers_then_devices() {
    let p = sample();
    let t = Topology::build(&p, q35());
    assert_eq!(t.g.node_count(), 1 + 8 + 4);
    assert!(matches!(t.g[t.root], Node::Root));
    let up = t.ids["up"];
    assert_eq!((t.ctrl_index(up), t.dev_index(up)), (Some(0), None));
    let int = t.ids["int"];
    assert_eq!((t.ctrl_index(int), t.dev_index(int)), (None, Some(2)));
    assert_eq!(t.ids["pcie.0"], t.root);
    assert!(t.dangling.is_empty());
}

#[test]
fn children_come_in_address_order() {
    let p = sample();
    let t = Topology::build(&p, q35());
    assert_eq!(
        ids(&t, t.kids(t.root).iter().map(|k| k.2)),
        ["rp1", "rp2", "x", "int"]
    );
    let up = t.ids["up"];
    let kids: Vec<(u8, u8)> = t.children(up).iter().map(|k| (k.0, k.1)).collect();
    assert_eq!(kids, [(1, 0), (2, 0)]);
    assert_eq!(
        ids(&t, t.kids(t.ids["br"]).iter().map(|k| k.2)),
        ["old1", "old2"]
    );
    assert_eq!(t.parent(t.ids["fast"]), Some(t.ids["dp1"]));
}

#[test]
fn descendants_are_depth_first_in_address_order() {
    let p = sample();
    let t = Topology::build(&p, q35());
    assert_eq!(
        ids(&t, t.descendants(t.root)),
        ["rp1", "br", "old1", "old2", "rp2", "up", "dp1", "fast", "dp2", "x", "xrp", "int"]
    );
    assert_eq!(
        ids(&t, t.ancestors(t.ids["fast"])),
        ["dp1", "up", "rp2", "pcie.0"]
    );
}

#[test]
fn dangling_buses_and_loops_are_not_rooted() {
    let p = plan(
        vec![
            ctrl("a", "pci-bridge", "b", 1, 0),
            ctrl("b", "pci-bridge", "a", 1, 0),
        ],
        vec![
            dev("lost", "e1000", "nowhere", 1, 0),
            dev("onloop", "e1000", "a", 2, 0),
            dev("ondev", "e1000", "lost", 1, 0),
        ],
    );
    let t = Topology::build(&p, q35());
    let dangling: Vec<(&str, &str)> = t
        .dangling
        .iter()
        .map(|&(n, bus)| (t.g[n].id(q35()), bus))
        .collect();
    // A device is no bus: what names one dangles too.
    assert_eq!(dangling, [("lost", "nowhere"), ("ondev", "lost")]);
    assert!(t.g.node_indices().all(|n| n == t.root || !t.rooted(n)));
    // Ancestors stop on the loop.
    assert_eq!(ids(&t, t.ancestors(t.ids["onloop"])), ["a", "b"]);
    assert_eq!(t.expander_of(t.ids["onloop"]), None);
}

#[test]
fn a_name_used_twice_keeps_its_first_node() {
    let p = plan(
        vec![ctrl("twin", "pcie-root-port", "pcie.0", 1, 0)],
        vec![dev("twin", "virtio-net-pci", "pcie.0", 2, 0)],
    );
    let t = Topology::build(&p, q35());
    assert_eq!(t.ctrl_index(t.ids["twin"]), Some(0));
}

#[test]
fn hotplug_of_buses_and_devices() {
    let mut p = sample();
    p.controllers[2].hotplug = Some(false); // rp2
    let t = Topology::build(&p, q35());
    let bus = |id: &str| t.bus_hotpluggable(t.ids[id]);
    assert_eq!(
        [
            bus("pcie.0"),
            bus("rp1"),
            bus("rp2"),
            bus("br"),
            bus("x"),
            bus("up"),
            bus("dp1")
        ],
        [false, true, false, true, false, false, true]
    );
    let devs = |id: &str| t.device_hotpluggable(t.ids[id]);
    assert_eq!(
        [devs("old1"), devs("int"), devs("fast"), devs("rp1")],
        [true, false, true, false]
    );
}

#[test]
fn bus_types_expanders_and_bus_numbers() {
    let p = sample();
    let t = Topology::build(&p, q35());
    let ty = |id: &str| t.bus_type(t.ids[id]);
    assert_eq!(
        [
            ty("pcie.0"),
            ty("rp1"),
            ty("up"),
            ty("br"),
            ty("x"),
            ty("int")
        ],
        [
            Some("pcie-root"),
            Some("port"),
            Some("switch"),
            Some("conventional"),
            Some("pxb"),
            None
        ]
    );
    assert_eq!(t.expander_of(t.ids["xrp"]), Some(t.ids["x"]));
    assert_eq!(t.expander_of(t.ids["fast"]), None);
    let numbered = t.g.node_indices().filter(|&n| t.uses_bus_number(n)).count();
    assert_eq!(numbered, 8); // every controller here takes a bus number
}

#[test]
fn io_windows_of_ports_bridges_and_switches() {
    let mut p = sample();
    p.devices.push(dev("io1", "e1000e", "dp1", 0, 0));
    p.devices.push(dev("io2", "e1000e", "dp2", 0, 0));
    let t = Topology::build(&p, q35());
    let io = |id: &str| t.io_windows(t.ids[id]);
    // The bridge has devices with I/O BARs: one window, and its port passes it on.
    assert_eq!((io("br"), io("rp1")), (1, 1));
    // Each downstream port with an I/O device takes one; the switch sums them.
    assert_eq!((io("dp1"), io("dp2"), io("up"), io("rp2")), (1, 1, 2, 2));
    assert_eq!((io("x"), io("xrp"), io("int")), (0, 0, 0));
    assert_eq!(t.total_io_windows(), 3);
}

#[test]
fn the_pinned_plan_holds_what_the_request_pins() {
    let req = request(
        r#"{"devices":[
            {"id":"free","model":"virtio-net-pci"},
            {"id":"pin","model":"e1000","hotplug":"off","address":{"bus":"br","slot":1,"function":0}}],
           "controllers":[
            {"id":"rp","model":"pcie-root-port","address":{"bus":"pcie.0","slot":4,"function":0}},
            {"id":"off","model":"pcie-root-port","hotplug":false,"chassis":7,"address":{"bus":"pcie.0","slot":5,"function":0}},
            {"id":"br","model":"pcie-pci-bridge","address":{"bus":"rp","slot":0,"function":0}}]}"#,
    );
    let p = pinned_plan(&req, q35());
    let ctrls: Vec<(&str, Option<bool>, Option<u8>, bool)> = p
        .controllers
        .iter()
        .map(|c| (c.id.as_str(), c.hotplug, c.chassis, c.added))
        .collect();
    // Ports default to hotplug on; a bridge has no such property.
    assert_eq!(
        ctrls,
        [
            ("rp", Some(true), None, false),
            ("off", Some(false), Some(7), false),
            ("br", None, None, false)
        ]
    );
    assert_eq!(p.controllers[2].driver, "pcie-pci-bridge");
    assert_eq!(p.devices.len(), 1);
    let d = &p.devices[0];
    assert_eq!((d.id.as_str(), d.bus.as_str(), d.slot), ("pin", "br", 1));
    assert_eq!(
        (d.kind, d.hotplug),
        (crate::catalog::BusKind::Pci, crate::request::Hotplug::Off)
    );
    assert_eq!((p.cost, p.optimal), (0, false));
}
