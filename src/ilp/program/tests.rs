use super::*;
use crate::ilp::model::tests::{class, model};

const PORT: [bool; 4] = [false, false, true, false];

fn rules(p: &Program) -> Vec<Rule> {
    p.rows.iter().map(|(r, _)| *r).collect()
}

#[test]
fn a_small_guest_has_few_variables_and_rows() {
    let m = model(vec![class(5, PORT, false, false)]);
    let (p, vars) = Program::new(&m, None);
    // One placement variable and the root ports; no slack, no expanders or switches,
    // and region 0 has no expander ports of its own.
    assert_eq!(vars.len(), 2);
    assert!(p.global.expanders.is_none() && p.slack.slots.is_none());
    assert_eq!(rules(&p), [Rule::Hotplug, Rule::RootPort]);
}

#[test]
fn every_family_appears_when_budgets_bind() {
    let mut m = model(vec![class(300, PORT, false, false)]);
    m.regions[0].free_on = 2;
    m.root_bus_room = 100;
    let (p, _) = Program::new(&m, None);
    let r = rules(&p);
    for want in [
        Rule::Hotplug,
        Rule::HotplugPort,
        Rule::RootPort,
        Rule::RootPortPack,
        Rule::Pxb,
        Rule::Switch,
        Rule::IntSlot,
        Rule::Root,
        Rule::BusNr,
    ] {
        assert!(r.contains(&want), "{want} missing from {r:?}");
    }
    assert!(!r.contains(&Rule::Io));
}

#[test]
fn numa_regions_get_expander_ports() {
    let mut m = model(vec![Class {
        region: 1,
        ..class(3, PORT, false, false)
    }]);
    m.regions.push(Region {
        new_pxb: true,
        ..Region::default()
    });
    let (p, _) = Program::new(&m, None);
    assert!(p.regions[1].ports.is_some() && p.regions[1].expanders.is_some());
    assert!(p.regions[0].ports.is_none());
    assert!(rules(&p).contains(&Rule::Numa));
}

use crate::ilp::model::Region;
