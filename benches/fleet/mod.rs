//! Synthetic fleets for the batch benchmarks and tests, generated at run time from a seed
//! (nothing big is committed). Shared by `benches/` and `tests/batch_*.rs` through
//! `#[path]`.
#![allow(dead_code)]

/// A small deterministic generator (xorshift64*), so fleets are the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// Models a guest may have several of, whatever their hotplug requirement (a balloon is added
// at most once, below; a virtio-gpu cannot be hot-unplugged, so it is not drawn here).
const PCIE: [&str; 10] = [
    "virtio-net-pci",
    "virtio-blk-pci",
    "virtio-scsi-pci",
    "virtio-serial-pci",
    "virtio-rng-pci",
    "e1000e",
    "igb",
    "nvme",
    "qemu-xhci",
    "vhost-vsock-pci",
];
const PCI: [&str; 6] = [
    "e1000",
    "rtl8139",
    "ich9-intel-hda",
    "lsi53c895a",
    "i6300esb",
    "virtio-net-pci-transitional",
];
const HP: [&str; 4] = ["", "on", "off", "any"];

/// One guest with `n` devices: a mix of PCIe and conventional devices, hotplug
/// requirements, sometimes a GPU group, a NUMA device, a pinned VGA or an existing root
/// port. `ids` picks device id style: 0 = `net0`-style, 1 = suffixed with the guest number,
/// 2 = planner-looking names (`rp1`, `br2`) to test that they survive the shape cache.
pub fn guest(rng: &mut Rng, name: &str, n: usize, ids: u8) -> String {
    let mut devs = Vec::new();
    let mut ctrls = Vec::new();
    let id = |i: usize, base: &str| match ids {
        1 => format!("{base}{i}-{name}"),
        2 if i % 3 == 0 => format!("{}{}", ["rp", "br", "pxb", "dp"][i % 4], i / 3 + 1),
        _ => format!("{base}{i}"),
    };
    let mut i = 0;
    if rng.chance(20) {
        devs.push(format!(r#"{{"id":"{}","model":"VGA","hotplug":"off","address":{{"bus":"pcie.0","slot":1,"function":0}}}}"#, id(i, "vga")));
        i += 1;
    }
    if rng.chance(10) {
        let cid = if ids == 2 {
            "rp1".to_string()
        } else {
            format!("port-{name}")
        };
        ctrls.push(format!(r#"{{"id":"{cid}","model":"pcie-root-port","chassis":200,"port":16,"hotplug":{},"address":{{"bus":"pcie.0","slot":2,"function":0}}}}"#, rng.chance(50)));
    }
    let group = rng.chance(15) && n >= 3;
    if rng.chance(30) && i + 3 < n {
        devs.push(format!(
            r#"{{"id":"{}","model":"virtio-balloon-pci","hotplug":"any"}}"#,
            id(i, "balloon")
        ));
        i += 1;
    }
    if rng.chance(30) && i + 3 < n {
        devs.push(format!(
            r#"{{"id":"{}","model":"virtio-balloon-pci","hotplug":"any"}}"#,
            id(i, "balloon")
        ));
        i += 1;
    }
    while i < n {
        let (model, base) = if rng.chance(15) {
            (*rng.pick(&PCI), "nic")
        } else {
            (*rng.pick(&PCIE), "dev")
        };
        let hp = *rng.pick(&HP);
        let mut d = format!(r#"{{"id":"{}","model":"{model}""#, id(i, base));
        if !hp.is_empty() {
            d.push_str(&format!(r#","hotplug":"{hp}""#));
        }
        if group && i + 2 == n {
            d = format!(
                r#"{{"id":"{}","model":"vfio-pci","group":"gpu-{name}""#,
                id(i, "gpu")
            );
            devs.push(d + "}");
            devs.push(format!(
                r#"{{"id":"{}","model":"vfio-pci","group":"gpu-{name}"}}"#,
                id(i + 1, "aud")
            ));
            break;
        }
        if rng.chance(3) && hp != "off" {
            d.push_str(r#","numa_node":1"#);
        }
        devs.push(d + "}");
        i += 1;
    }
    let policy = format!(
        r#"{{"default_hotplug":"{}","spare_ports":{},"hotplug_off":"{}","pack_integrated":{}}}"#,
        rng.pick(&["on", "on", "any", "off"]),
        rng.below(4),
        rng.pick(&["integrated", "integrated", "auto", "auto", "port"]),
        rng.chance(20)
    );
    let ctrls = if ctrls.is_empty() {
        String::new()
    } else {
        format!(r#","controllers":[{}]"#, ctrls.join(","))
    };
    format!(
        r#"{{"name":"{name}","policy":{policy},"devices":[{}]{ctrls}}}"#,
        devs.join(",")
    )
}

/// A mixed fleet: every guest different (2..40 devices), with ~2% infeasible guests (too
/// many hotplug-off conventional devices) and ~1% invalid lines.
pub fn mixed(seed: u64, guests: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..guests)
        .map(|g| {
            let name = format!("vm-{g}");
            match rng.below(100) {
                0 => "{not json".to_string(),
                1 | 2 => {
                    let devs: Vec<String> = (0..32)
                        .map(|i| format!(r#"{{"id":"n{i}","model":"e1000","hotplug":"off"}}"#))
                        .collect();
                    format!(r#"{{"name":"{name}","devices":[{}]}}"#, devs.join(","))
                }
                _ => {
                    let n = 2 + rng.below(39) as usize;
                    let ids = rng.below(3) as u8;
                    guest(&mut rng, &name, n, ids)
                }
            }
        })
        .collect()
}

/// A template-heavy fleet: `templates` distinct shapes (4..24 devices), guests named
/// apart and, for a third of the templates, with their own device ids.
pub fn templated(seed: u64, guests: usize, templates: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let seeds: Vec<(u64, usize, u8)> = (0..templates)
        .map(|_| (rng.next(), 4 + rng.below(21) as usize, rng.below(3) as u8))
        .collect();
    (0..guests)
        .map(|g| {
            let (s, n, ids) = seeds[rng.below(templates as u64) as usize];
            guest(&mut Rng::new(s), &format!("vm-{g}"), n, ids)
        })
        .collect()
}

/// One guest of exactly `n` devices for the single-guest benchmarks (hot-pluggable NICs and
/// disks, some hotplug-off, a few conventional devices).
pub fn sized(n: usize) -> String {
    sized_on(n, "q35")
}

/// [`sized`] on another machine (`q35`, `pc` or `virt`; `virt` gets the UEFI firmware it
/// needs): the same devices and policy, so that machines compare at equal size.
pub fn sized_on(n: usize, machine: &str) -> String {
    let devs: Vec<String> = (0..n)
        .map(|i| {
            let (model, hp) = match i % 8 {
                0 => ("virtio-net-pci", "off"),
                1..=3 => ("virtio-blk-pci", "on"),
                4 => ("e1000", "on"),
                5 => ("nvme", "any"),
                6 => ("virtio-net-pci", "on"),
                _ => ("virtio-scsi-pci", "any"),
            };
            format!(r#"{{"id":"d{i}","model":"{model}","hotplug":"{hp}"}}"#)
        })
        .collect();
    let head = match machine {
        "q35" => String::new(),
        "virt" => r#""machine":"virt","firmware":"uefi","#.to_string(),
        m => format!(r#""machine":"{m}","#),
    };
    format!(
        r#"{{"name":"g{n}",{head}"policy":{{"spare_ports":2,"hotplug_off":"auto"}},"devices":[{}]}}"#,
        devs.join(",")
    )
}

/// An existing guest as libvirt would have left it, carrying a new policy to adopt: the
/// `guest` is planned with every device hot-pluggable (libvirt's layout: each PCIe device
/// behind its own root port, conventional ones on a pcie-pci-bridge), every device and
/// controller is pinned where that plan put it, and the guest's own hotplug requirements and
/// policy come back as the new policy. `None` when the guest cannot be planned at all.
pub fn existing_of(guest: &str) -> Option<String> {
    existing_with(guest, true)
}

/// An existing guest as libvirt left it (see [`existing_of`]) with libvirt's own policy
/// (every device hot-pluggable that can be), for `whatif --policy CHANGE --adopt` to change.
pub fn defined_of(guest: &str) -> Option<String> {
    existing_with(guest, false)
}

fn existing_with(guest: &str, new_policy: bool) -> Option<String> {
    let wanted = pciplan::Request::from_json(guest).ok()?;
    let mut old = wanted.clone();
    old.policy = pciplan::Policy::default();
    let cat = pciplan::Catalog::q35();
    for d in old.devices.iter_mut() {
        // libvirt keeps everything hot-pluggable that QEMU can unplug at all.
        let never = cat.device(&d.model).is_some_and(|m| !m.hotpluggable);
        d.hotplug = (never || d.address.is_some()).then_some(pciplan::Hotplug::Any);
    }
    let plan = pciplan::plan(&old).ok()?;
    let base = if new_policy { &wanted } else { &old };
    let pinned = base.pinned_to(&pciplan::Previous::from(&plan)).ok()?;
    serde_json::to_string(&pinned).ok()
}

/// A fleet of distinct existing guests to adopt (see [`existing_of`]): the mixed fleet's
/// guests that plan, as libvirt left them, with their new policy.
pub fn existing(seed: u64, guests: usize) -> Vec<String> {
    existing_fleet(seed, guests, existing_of)
}

/// The same guests with libvirt's policy (see [`defined_of`]).
pub fn defined(seed: u64, guests: usize) -> Vec<String> {
    existing_fleet(seed, guests, defined_of)
}

fn existing_fleet(seed: u64, guests: usize, of: fn(&str) -> Option<String>) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(guests);
    let mut g = 0;
    while out.len() < guests {
        let n = 2 + rng.below(31) as usize;
        let ids = rng.below(2) as u8;
        let text = guest(&mut rng, &format!("vm-{g}"), n, ids);
        g += 1;
        if let Some(e) = of(&text) {
            out.push(e);
        }
    }
    out
}
