//! The held-out fleet: libvirt q35 domains for the acceptance run (`tests/acceptance.rs`,
//! `benches/acceptance.rs`), generated from a seed by code that shares nothing with the
//! benchmark fleets the planner was tuned on (`benches/fleet`).
//!
//! A fleet looks like an operator's: a few flavors (machine shapes) with a skewed
//! popularity, each guest a flavor under its own name, MAC addresses and disk images; some
//! guests grew an extra disk or NIC since they were created, and a few are one-offs. The
//! hotplug policy is in each domain's `pciplan:policy` metadata, per flavor, with some
//! per-device overrides by alias. No `<address>` anywhere: the domains are what an admin
//! hands to `virsh define` and lets libvirt place.
//!
//! Any seed gives a valid fleet (`PCIPLAN_HELDOUT_SEED` picks one), so a reviewer can draw a
//! fleet nobody has seen.
#![allow(dead_code)]

use std::fmt::Write;

use pciplan::libvirt::Domain;
use pciplan::{Catalog, Request};

use super::oracle::oracle_min_within;

/// Search steps the oracle gets for one request of the fleet.
pub const ORACLE_BUDGET: u64 = 5_000_000;

/// One guest of the acceptance fleet: its domain XML, as read, and its request named after
/// the guest.
pub struct Guest {
    pub name: String,
    pub xml: String,
    pub domain: Domain<'static>,
    pub request: Request,
}

/// The acceptance fleet (`tests/acceptance.rs`, `benches/acceptance.rs`): `guests` domains
/// from `seed` whose every shape the oracle settles as placeable within a fifth of its budget
/// (a shape it cannot settle, in practice an infeasible one whose proof is the whole search,
/// is drawn again), each read into its request.
pub fn acceptance(seed: u64, guests: usize) -> Vec<Guest> {
    let cat = Catalog::q35();
    let runs = |xml: &str| {
        Domain::parse(xml).is_ok_and(|d| {
            oracle_min_within(&d.request, cat, Some(ORACLE_BUDGET / 5)).is_ok_and(|m| m.is_some())
        })
    };
    fleet(seed, guests, runs)
        .into_iter()
        .map(|(name, xml)| {
            let domain = Domain::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
            let mut request = domain.request.clone();
            request.name = Some(name.clone().into());
            Guest {
                name,
                xml,
                domain,
                request,
            }
        })
        .collect()
}

/// The guests' requests as JSON Lines.
pub fn jsonl(guests: &[Guest]) -> String {
    guests
        .iter()
        .map(|g| serde_json::to_string(&g.request).expect("serialises") + "\n")
        .collect()
}

/// The seed of the acceptance run: `PCIPLAN_HELDOUT_SEED`, or a fixed default.
pub fn seed() -> u64 {
    std::env::var("PCIPLAN_HELDOUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1125)
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    /// One of `items` by weight.
    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|i| i.1).sum();
        let mut x = self.below(total);
        for &(v, w) in items {
            if x < w {
                return v;
            }
            x -= w;
        }
        items[0].0
    }
}

/// One device of a flavor.
#[derive(Debug, Clone, PartialEq)]
enum Dev {
    Nic(&'static str),
    VirtioDisk,
    ScsiDisk,
    Cdrom,
    Rng,
    Watchdog,
    Sound,
    Video(&'static str),
    Tablet,
    Vsock,
    Agent,
    /// `<controller type='usb' model='...'>` (`none` removes the implicit one).
    Usb(&'static str),
    NoBalloon,
}

/// A machine shape: policy and devices, each device with an optional hotplug override.
#[derive(Debug, Clone)]
struct Flavor {
    default_hotplug: &'static str,
    hotplug_off: &'static str,
    spare_ports: u32,
    devices: Vec<(Dev, Option<&'static str>)>,
}

fn hotplug(rng: &mut Rng) -> &'static str {
    rng.weighted(&[("on", 45), ("off", 35), ("any", 20)])
}

fn flavor(rng: &mut Rng) -> Flavor {
    let mut devices = Vec::new();
    let over = |rng: &mut Rng| rng.percent(30).then(|| hotplug(rng));
    for _ in 0..1 + rng.below(4) {
        let m = rng.weighted(&[
            ("virtio", 70),
            ("e1000e", 15),
            ("e1000", 10),
            ("rtl8139", 5),
        ]);
        let o = over(rng);
        devices.push((Dev::Nic(m), o));
    }
    for _ in 0..1 + rng.below(5) {
        let o = over(rng);
        devices.push((Dev::VirtioDisk, o));
    }
    if rng.percent(25) {
        for _ in 0..1 + rng.below(3) {
            devices.push((Dev::ScsiDisk, None));
        }
    }
    if rng.percent(30) {
        devices.push((Dev::Cdrom, None));
    }
    for (dev, p) in [
        (Dev::Rng, 40),
        (Dev::Watchdog, 15),
        (Dev::Sound, 10),
        (Dev::Tablet, 20),
        (Dev::Vsock, 10),
        (Dev::Agent, 35),
        (Dev::NoBalloon, 25),
    ] {
        if rng.percent(p) {
            // The agent channel's virtio-serial and the balloon carry no alias to name.
            let o = if matches!(dev, Dev::NoBalloon | Dev::Agent) {
                None
            } else {
                over(rng)
            };
            devices.push((dev, o));
        }
    }
    if rng.percent(35) {
        let v = rng.weighted(&[("virtio", 40), ("qxl", 30), ("vga", 20), ("bochs", 10)]);
        devices.push((Dev::Video(v), None));
    }
    if rng.percent(30) {
        let u = rng.weighted(&[("qemu-xhci", 60), ("none", 40)]);
        devices.push((Dev::Usb(u), None));
    }
    Flavor {
        default_hotplug: hotplug(rng),
        hotplug_off: rng.weighted(&[("integrated", 60), ("auto", 25), ("port", 15)]),
        spare_ports: rng.weighted(&[(0, 60), (1, 25), (2, 10), (4, 5)]),
        devices,
    }
}

fn mac(rng: &mut Rng) -> String {
    let b = rng.next().to_le_bytes();
    format!("52:54:00:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The domain XML of a guest of flavor `f`.
fn domain(name: &str, f: &Flavor, rng: &mut Rng) -> String {
    let mut policy = String::new();
    let mut devs = String::new();
    let (mut vd, mut sd, mut nic) = (0u8, 0u8, 0usize);
    let scsi = f.devices.iter().any(|d| d.0 == Dev::ScsiDisk);
    let mut idx = 0usize;
    for (dev, over) in &f.devices {
        idx += 1;
        let alias = format!("ua-d{idx}");
        if let Some(h) = over {
            let _ = writeln!(
                policy,
                "      <pciplan:device alias='{alias}' hotplug='{h}'/>"
            );
        }
        let a = format!("      <alias name='{alias}'/>\n");
        let image = |dev: &str| format!("/var/lib/libvirt/images/{name}-{dev}.qcow2");
        match dev {
            Dev::Nic(m) => {
                nic += 1;
                let _ = write!(devs, "    <interface type='user'>\n      <mac address='{}'/>\n      <model type='{m}'/>\n{a}    </interface>\n", mac(rng));
            }
            Dev::VirtioDisk => {
                let t = format!("vd{}", (b'a' + vd) as char);
                vd += 1;
                let _ = write!(devs, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='{t}' bus='virtio'/>\n{a}    </disk>\n", image(&t));
            }
            Dev::ScsiDisk => {
                let t = format!("sd{}", (b'a' + sd) as char);
                sd += 1;
                let _ = write!(devs, "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='{}'/>\n      <target dev='{t}' bus='scsi'/>\n    </disk>\n", image(&t));
            }
            Dev::Cdrom => {
                let _ = write!(devs, "    <disk type='file' device='cdrom'>\n      <driver name='qemu' type='raw'/>\n      <target dev='sdz' bus='sata'/>\n      <readonly/>\n    </disk>\n");
            }
            Dev::Rng => {
                let _ = write!(devs, "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n{a}    </rng>\n");
            }
            Dev::Watchdog => {
                let _ = write!(
                    devs,
                    "    <watchdog model='i6300esb' action='reset'>\n{a}    </watchdog>\n"
                );
            }
            Dev::Sound => {
                let _ = write!(devs, "    <sound model='ich9'>\n{a}    </sound>\n");
            }
            Dev::Video(m) => {
                let _ = write!(
                    devs,
                    "    <video>\n      <model type='{m}' primary='yes'/>\n    </video>\n"
                );
            }
            Dev::Tablet => {
                let _ = write!(
                    devs,
                    "    <input type='tablet' bus='virtio'>\n{a}    </input>\n"
                );
            }
            Dev::Vsock => {
                let _ = write!(
                    devs,
                    "    <vsock model='virtio'>\n      <cid auto='yes'/>\n{a}    </vsock>\n"
                );
            }
            Dev::Agent => {
                let _ = write!(devs, "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n");
            }
            Dev::Usb(m) => {
                let _ = writeln!(devs, "    <controller type='usb' index='0' model='{m}'/>");
            }
            Dev::NoBalloon => {
                let _ = writeln!(devs, "    <memballoon model='none'/>");
            }
        }
    }
    if scsi {
        let _ = writeln!(
            devs,
            "    <controller type='scsi' index='0' model='virtio-scsi'/>"
        );
    }
    let _ = nic;
    let spare = if f.spare_ports > 0 {
        format!(" spare-ports='{}'", f.spare_ports)
    } else {
        String::new()
    };
    let open = format!(
        "<pciplan:policy xmlns:pciplan='urn:pciplan:policy:1' default-hotplug='{}' hotplug-off='{}'{spare}",
        f.default_hotplug, f.hotplug_off
    );
    let policy = if policy.is_empty() {
        format!("    {open}/>\n")
    } else {
        format!("    {open}>\n{policy}    </pciplan:policy>\n")
    };
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <metadata>\n{policy}  </metadata>\n  <memory unit='KiB'>{}</memory>\n  <vcpu placement='static'>{}</vcpu>\n  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n  </os>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n{devs}  </devices>\n</domain>\n",
        (1 + rng.below(16)) * 524_288,
        1 + rng.below(8)
    )
}

/// `guests` domains from `seed`: `(name, xml)`, names `ho-SEED-N`.
///
/// `runs` says whether a domain can be placed at all (the acceptance run asks the oracle):
/// an operator's machines run, so every shape in the fleet (flavors, their grown variants,
/// one-offs) is drawn again until it does.
pub fn fleet(seed: u64, guests: usize, runs: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut rng = Rng(seed);
    let draw = |rng: &mut Rng, make: &dyn Fn(&mut Rng) -> Flavor| loop {
        let f = make(rng);
        if runs(&domain("probe", &f, &mut Rng(seed))) {
            return f;
        }
    };
    // Each flavor with its two grown variants: one more virtio disk, one more virtio NIC
    // (attached after creation, so at the end).
    let mut flavors: Vec<[Flavor; 3]> = Vec::new();
    while flavors.len() < 12 {
        let base = draw(&mut rng, &flavor);
        let grow = |d: Dev| {
            let mut f = base.clone();
            f.devices.push((d, None));
            f
        };
        let (disk, nic) = (grow(Dev::VirtioDisk), grow(Dev::Nic("virtio")));
        if runs(&domain("probe", &disk, &mut Rng(seed)))
            && runs(&domain("probe", &nic, &mut Rng(seed)))
        {
            flavors.push([base, disk, nic]);
        }
    }
    // Popularity falls off with the flavor's rank (1, 1/2, 1/3, ...).
    let weights: Vec<(usize, u64)> = (0..flavors.len())
        .map(|i| (i, 840 / (i as u64 + 1)))
        .collect();
    (0..guests)
        .map(|i| {
            let name = format!("ho-{seed:x}-{i}");
            let fl = &flavors[rng.weighted(&weights)];
            let f = match rng.below(100) {
                // Grown since it was created.
                0..=3 => fl[1].clone(),
                4..=7 => fl[2].clone(),
                // A one-off.
                8 => draw(&mut rng, &flavor),
                _ => fl[0].clone(),
            };
            let xml = domain(&name, &f, &mut rng);
            (name, xml)
        })
        .collect()
}
