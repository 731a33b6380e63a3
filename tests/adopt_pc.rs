//! `--adopt` on `pc` (i440fx): the cases of issue 12 (O-ADOPT, G-ID, G-FLIP, PC-MIX).

use pciplan::{adopt, ChangeKind, PlanError, Request};

fn req(json: &str) -> Request {
    Request::from_json(json).expect("parses")
}

/// An all-on guest whose NICs and disks become `off`: root hotplug off, every NIC left on
/// pci.0 renamed, the `on` devices behind one new bridge.
#[test]
fn all_on_guest_turns_root_hotplug_off() {
    let p = adopt(&req(
        r#"{"machine":"pc","policy":{"default_hotplug":"on"},"devices":[
      {"id":"vga","model":"VGA","hotplug":"any","address":{"bus":"pci.0","slot":2}},
      {"id":"net0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pci.0","slot":3}},
      {"id":"disk0","model":"virtio-blk-pci","hotplug":"off","address":{"bus":"pci.0","slot":4}},
      {"id":"disk1","model":"virtio-blk-pci","address":{"bus":"pci.0","slot":5}},
      {"id":"nic1","model":"e1000","address":{"bus":"pci.0","slot":6}},
      {"id":"net2","model":"virtio-net-pci","hotplug":"any","address":{"bus":"pci.0","slot":8}}]}"#,
    ))
    .expect("adopts");
    assert_eq!((p.root_hotplug, p.cost, p.optimal), (Some(false), 1, true));
    let c = p.changes.as_ref().expect("changes");
    let kind = |id: &str| c.iter().find(|x| x.id == id).map(|x| x.change);
    assert_eq!(kind("net0"), Some(ChangeKind::Renamed));
    assert_eq!(kind("net2"), Some(ChangeKind::Renamed));
    assert_eq!(kind("disk1"), Some(ChangeKind::Moved));
    assert_eq!(kind("nic1"), Some(ChangeKind::Moved));
    assert_eq!(kind("disk0"), None);
    assert_eq!(kind("pci.0"), Some(ChangeKind::PortHotplug));
    assert_eq!(p.guest_visible_changes, Some(4));
    let r = c.iter().find(|x| x.id == "net0").unwrap();
    let l = r.linux_name.as_ref().unwrap();
    assert_eq!((l.from.as_str(), l.to.as_str()), ("ens3", "enp0s3"));
}

/// A guest that already meets its policy changes nothing.
#[test]
fn a_guest_meeting_its_policy_changes_nothing() {
    let p = adopt(&req(r#"{"machine":"pc","root_hotplug":false,"devices":[
      {"id":"net0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pci.0","slot":3}},
      {"id":"disk1","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"br","slot":1}}],
      "controllers":[{"id":"br","model":"pci-bridge","chassis":1,"address":{"bus":"pci.0","slot":4}}]}"#))
    .expect("adopts");
    assert_eq!(
        (p.guest_visible_changes, p.cost, p.optimal),
        (Some(0), 0, true)
    );
    assert!(p.changes.as_ref().unwrap().is_empty());
}

/// An `off` device on a bridge slot moves to pci.0 (bridge slots are always hot-pluggable).
#[test]
fn an_off_device_on_a_bridge_moves_to_the_root_bus() {
    let p = adopt(&req(r#"{"machine":"pc","root_hotplug":false,"devices":[
      {"id":"disk1","model":"virtio-blk-pci","hotplug":"off","address":{"bus":"br","slot":1}}],
      "controllers":[{"id":"br","model":"pci-bridge","chassis":1,"address":{"bus":"pci.0","slot":4}}]}"#))
    .expect("adopts");
    let c = &p.changes.as_ref().unwrap()[0];
    assert_eq!(
        (c.change, c.to.as_deref()),
        (ChangeKind::Moved, Some("pci.0:02.0"))
    );
    assert!(c.why.as_deref().unwrap().contains("PC-BRIDGE"));
    assert_eq!((p.guest_visible_changes, p.optimal), (Some(1), true));
}

/// A new bridge goes after the existing one, so the devices behind it keep their bus number.
#[test]
fn a_new_bridge_renumbers_nothing_when_it_can() {
    let p = adopt(&req(r#"{"machine":"pc","devices":[
      {"id":"net0","model":"virtio-net-pci","hotplug":"off","address":{"bus":"pci.0","slot":2}},
      {"id":"disk1","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"pci.0","slot":3}},
      {"id":"disk2","model":"virtio-blk-pci","hotplug":"on","address":{"bus":"br","slot":1}}],
      "controllers":[{"id":"br","model":"pci-bridge","chassis":1,"address":{"bus":"pci.0","slot":5}}]}"#))
    .expect("adopts");
    let c = p.changes.as_ref().unwrap();
    assert!(
        c.iter().all(|x| x.change != ChangeKind::Renumbered),
        "{c:?}"
    );
    assert_eq!((p.guest_visible_changes, p.optimal), (Some(2), true));
}

/// No layout: an error, as a plain plan gives it.
#[test]
fn an_impossible_policy_is_infeasible() {
    let mut devs = Vec::new();
    for i in 0..31 {
        devs.push(format!(
            r#"{{"id":"d{i}","model":"virtio-blk-pci","hotplug":"off"}}"#
        ));
    }
    let r = req(&format!(
        r#"{{"machine":"pc","devices":[{}]}}"#,
        devs.join(",")
    ));
    assert!(matches!(adopt(&r), Err(PlanError::Infeasible(_))));
}
