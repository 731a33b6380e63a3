//! Adoption (`--adopt`, O-ADOPT) of `pc` (i440fx) domains whose every address libvirt chose,
//! through the command line and a real libvirt 9.0 (`virsh define` + `dumpxml --inactive`; no
//! guest is started).
//!
//! Each domain is written without a policy, without addresses and without PCI controllers.
//! libvirt defines it and chooses every address (and adds a `pci-bridge` of its own when
//! `pci.0` is full); its `dumpxml` is the existing guest. That is adopted under new policies
//! with `pciplan plan - --adopt --format libvirt` (and `--format json` for the changes), the
//! result defined again and dumped, and then:
//! - libvirt kept every address of the adopted XML and added no PCI controller; the plan's
//!   cost is the bridges it added;
//! - the policy holds in what libvirt returns (`pciplan check` finds nothing) and the
//!   `pci-root` carries `<target hotplug='off'/>` exactly when the plan turned root hotplug
//!   off (PC-ROOT-HP);
//! - every device the plan does not report `moved` keeps the address libvirt gave it (NICs
//!   reported `renamed`, G-FLIP, included);
//! - the guest-visible changes are the number the policy needs, derived per case from where
//!   libvirt put each device ([`expected`]): none while no hot-pluggable device becomes `off`
//!   (root hotplug stays on and every slot of `pc` is then hot-pluggable); otherwise root
//!   hotplug goes off (PC-MIX), every `on` device on `pci.0` moves behind a bridge, every
//!   `off` device on libvirt's bridge moves to `pci.0` (PC-BRIDGE), every other NIC on
//!   `pci.0` is renamed, and so is every NIC staying on libvirt's first bridge at slot 2 and
//!   up whose `pci.0` slot holds no bridge, and when `pci.0` has no room for the devices coming back one more
//!   device leaves it for each missing slot (a NIC there at no extra change);
//! - adopting libvirt's domain with no new policy gives back byte for byte what libvirt wrote;
//! - every device `off` is refused naming PC-ROOT where they outnumber `pci.0`'s free slots
//!   (libvirt's bridges are kept).
//!
//! Observed with libvirt 9.0: the video at 00:02.0, then NICs, disks and the other devices on
//! `pci.0` in libvirt's order; a `pci-bridge` only once `pci.0` is full (00:02.0 without a
//! video; a second one at 00:03.0, not chained); `pci.0` used even when the `pci-root` has
//! `hotplug='off'`. Every adopted domain came back from libvirt with the addresses pciplan
//! wrote. A Linux guest also renames a NIC staying on the first bridge at a slot whose number
//! `pci.0` registers while root hotplug is on (the kernel then names the bridge's slot `N-2`;
//! `tests/README.md`, "What the guest showed"): counted by the adoption and here.
//!
//! Without libvirt the test skips and says so, unless `PCIPLAN_REQUIRE_LIBVIRT=1` (CI), where
//! it fails.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::cli::run;
use common::libvirt as lv;
use pciplan::libvirt::Domain;
use pciplan::{Address, ChangeKind, Hotplug, Plan};

/// A pc domain without a policy, addresses or PCI controllers.
fn domain(name: &str, machine: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n  <os>\n    <type arch='x86_64' machine='{machine}'>hvm</type>\n  </os>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n{devices}  </devices>\n</domain>\n"
    )
}

fn nic(alias: &str, model: &str) -> String {
    format!("    <interface type='user'>\n      <model type='{model}'/>\n      <alias name='{alias}'/>\n    </interface>\n")
}

/// A disk on `bus` (`virtio`, `scsi`, `sata`, `ide`); `model` is the `<disk model>` (virtio).
fn disk(alias: &str, dev: &str, bus: &str, model: Option<&str>) -> String {
    let model = model.map_or(String::new(), |m| format!(" model='{m}'"));
    format!("    <disk type='file' device='disk'{model}>\n      <source file='/var/tmp/pciplan-{dev}.img'/>\n      <target dev='{dev}' bus='{bus}'/>\n      <alias name='{alias}'/>\n    </disk>\n")
}

fn vd(i: usize) -> String {
    if i < 26 {
        format!("vd{}", (b'a' + i as u8) as char)
    } else {
        format!(
            "vd{}{}",
            (b'a' + (i / 26 - 1) as u8) as char,
            (b'a' + (i % 26) as u8) as char
        )
    }
}

/// The domains: (tag, XML). Their devices carry `ua-` aliases so the command line can name
/// them.
fn cases() -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    let mut add = |tag: &'static str, machine: &str, devices: String| {
        v.push((tag, domain(tag, machine, &devices)))
    };
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<String>();
    // 1. Small: virtio NIC and disk, an e1000, graphics (libvirt adds a cirrus video).
    add(
        "small",
        "pc",
        nic("ua-net0", "virtio")
            + &disk("ua-disk0", "vda", "virtio", None)
            + &nic("ua-nic1", "e1000")
            + "    <graphics type='vnc'/>\n",
    );
    // 2. Transitional virtio everywhere, and an rtl8139.
    add(
        "transitional",
        "pc",
        nic("ua-net0", "virtio-transitional")
            + &disk("ua-disk0", "vda", "virtio", Some("virtio-transitional"))
            + &nic("ua-nic1", "rtl8139")
            + "    <rng model='virtio-transitional'>\n      <backend model='random'>/dev/urandom</backend>\n      <alias name='ua-rng0'/>\n    </rng>\n"
            + "    <memballoon model='virtio-transitional'>\n      <alias name='ua-balloon'/>\n    </memballoon>\n",
    );
    // 3. Conventional NICs only (a NIC without a model is an rtl8139), no balloon.
    add(
        "nics",
        "pc",
        nic("ua-e0", "e1000")
            + &nic("ua-e1", "e1000")
            + &nic("ua-r0", "rtl8139")
            + "    <interface type='user'>\n      <alias name='ua-r1'/>\n    </interface>\n"
            + &nic("ua-v0", "virtio")
            + &nic("ua-v1", "virtio")
            + "    <memballoon model='none'/>\n",
    );
    // 4. Storage: virtio disks, a virtio-scsi and an lsilogic controller, a SATA disk (AHCI is
    //    an ordinary device on pc), an IDE cdrom (the PIIX3's).
    add(
        "storage",
        "pc",
        many(4, &|i| disk(&format!("ua-disk{i}"), &vd(i), "virtio", None))
            + "    <controller type='scsi' index='0' model='virtio-scsi'>\n      <alias name='ua-scsi0'/>\n    </controller>\n"
            + "    <controller type='scsi' index='1' model='lsilogic'>\n      <alias name='ua-scsi1'/>\n    </controller>\n"
            + &disk("ua-sda", "sda", "scsi", None)
            + &disk("ua-sata", "sdb", "sata", None)
            + "    <disk type='file' device='cdrom'>\n      <target dev='hdc' bus='ide'/>\n      <readonly/>\n    </disk>\n"
            + &nic("ua-net0", "virtio"),
    );
    // 5. A desktop: qxl video, ich6 and ac97 sound, a qemu-xhci with a tablet, a watchdog.
    add(
        "desktop",
        "pc-i440fx-7.2",
        nic("ua-net0", "e1000")
            + &disk("ua-disk0", "vda", "virtio", None)
            + "    <controller type='usb' index='0' model='qemu-xhci'>\n      <alias name='ua-usb'/>\n    </controller>\n"
            + "    <input type='tablet' bus='usb'/>\n"
            + "    <sound model='ich6'>\n      <alias name='ua-snd0'/>\n    </sound>\n"
            + "    <sound model='ac97'>\n      <alias name='ua-snd1'/>\n    </sound>\n"
            + "    <watchdog model='i6300esb' action='reset'>\n      <alias name='ua-wd'/>\n    </watchdog>\n"
            + "    <graphics type='spice'/>\n"
            + "    <video>\n      <model type='qxl'/>\n    </video>\n",
    );
    // 6. Other virtio devices: serial with a channel, rng, input, 9p, vsock; VGA.
    add(
        "virtio-misc",
        "pc",
        nic("ua-net0", "virtio")
            + &disk("ua-disk0", "vda", "virtio", None)
            + "    <controller type='virtio-serial' index='0'>\n      <alias name='ua-serial'/>\n    </controller>\n"
            + "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n"
            + "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n      <alias name='ua-rng0'/>\n    </rng>\n"
            + "    <input type='tablet' bus='virtio'>\n      <alias name='ua-tablet'/>\n    </input>\n"
            + "    <filesystem type='mount' accessmode='mapped'>\n      <source dir='/var/tmp'/>\n      <target dir='share'/>\n      <alias name='ua-fs0'/>\n    </filesystem>\n"
            + "    <vsock model='virtio'>\n      <cid auto='yes'/>\n      <alias name='ua-vsock'/>\n    </vsock>\n"
            + "    <video>\n      <model type='vga'/>\n    </video>\n",
    );
    // 7. More NICs than pci.0 holds: libvirt adds a pci-bridge (at 00:02.0) and puts the last
    //    NICs, the disk and the balloon on it.
    add(
        "crowded-nics",
        "pc",
        many(34, &|i| nic(&format!("ua-n{i}"), "virtio"))
            + &disk("ua-disk0", "vda", "virtio", None),
    );
    // 8. Conventional NICs and virtio disks past pci.0's slots: disks on libvirt's bridge.
    let model = |i: usize| if i % 2 == 0 { "e1000" } else { "rtl8139" };
    add(
        "crowded-mixed",
        "pc",
        many(16, &|i| nic(&format!("ua-n{i}"), model(i)))
            + &many(16, &|i| disk(&format!("ua-d{i}"), &vd(i), "virtio", None)),
    );
    // 9. Older models: a PIIX3 USB without a model, es1370 sound, ne2k_pci and pcnet NICs,
    //    a cirrus video of a <graphics>.
    add(
        "legacy",
        "pc-i440fx-7.2",
        "    <controller type='usb' index='0'/>\n".to_string()
            + &nic("ua-ne", "ne2k_pci")
            + &nic("ua-pcnet", "pcnet")
            + &disk("ua-hda", "hda", "ide", None)
            + "    <sound model='es1370'>\n      <alias name='ua-snd'/>\n    </sound>\n"
            + "    <graphics type='vnc'/>\n",
    );
    // 10. One NIC and nothing else PCI (no balloon, no USB).
    add(
        "one-nic",
        "pc",
        nic("ua-net0", "e1000")
            + "    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n",
    );
    // 11. Shared memory and a PCI serial next to a virtio NIC and disks.
    add(
        "shmem-serial",
        "pc",
        nic("ua-net0", "virtio")
            + &disk("ua-disk0", "vda", "virtio", None)
            + &disk("ua-disk1", "vdb", "virtio", None)
            + "    <shmem name='sh0'>\n      <model type='ivshmem-plain'/>\n      <size unit='M'>4</size>\n      <alias name='ua-shmem'/>\n    </shmem>\n"
            + "    <serial type='pty'>\n      <target type='pci-serial'/>\n      <alias name='ua-pciser'/>\n    </serial>\n",
    );
    // 12. Many virtio disks and two NICs, still all on pci.0.
    add(
        "many-disks",
        "pc",
        nic("ua-net0", "virtio")
            + &nic("ua-net1", "e1000")
            + &many(24, &|i| disk(&format!("ua-d{i}"), &vd(i), "virtio", None)),
    );
    // 13. The small domain with root hotplug already off (its only PCI controller, the
    //     pci-root): libvirt still puts every device on pci.0, none hot-pluggable there.
    add(
        "root-off",
        "pc",
        "    <controller type='pci' index='0' model='pci-root'>\n      <target hotplug='off'/>\n    </controller>\n".to_string()
            + &nic("ua-net0", "virtio")
            + &disk("ua-disk0", "vda", "virtio", None)
            + &nic("ua-nic1", "e1000")
            + "    <graphics type='vnc'/>\n",
    );
    // 14. 70 NICs (every third an e1000, with an I/O BAR) and a disk: libvirt adds two
    //     pci-bridges, at 00:02.0 and 00:03.0.
    let model = |i: usize| if i % 3 == 0 { "e1000" } else { "virtio" };
    add(
        "two-bridges",
        "pc",
        many(70, &|i| nic(&format!("ua-n{i}"), model(i)))
            + &disk("ua-disk0", "vda", "virtio", None),
    );
    v
}

/// Where libvirt put a device of the existing guest.
#[derive(Debug, Clone)]
struct Existing {
    id: String,
    address: Address,
    /// On `pci.0` (else on a `pci-bridge` libvirt added).
    on_root: bool,
    nic: bool,
    /// QEMU can hot-unplug the model at all.
    pluggable: bool,
}

/// The existing guest read back: its devices and the free `pci.0` slots and bridge slots.
struct Guest {
    devices: Vec<Existing>,
    root_free: usize,
    bridge_free: usize,
    /// The `pci-bridge` the firmware numbers 1 (the lowest on `pci.0`), and the `pci.0`
    /// slots holding bridges (G-FLIP: there `pci.0` registers no hotplug slot).
    first_bridge: Option<pciplan::Text>,
    root_bridges: Vec<u8>,
    /// Root hotplug as libvirt's XML has it (PC-ROOT-HP).
    root_on: bool,
}

fn existing(dump: &str) -> Guest {
    let dom = Domain::parse(dump).expect("libvirt's XML reads");
    let cat = dom.catalog();
    let req = &dom.request;
    let mut devices = Vec::new();
    for d in &req.devices {
        let a = d.address.clone().expect("libvirt addressed every device");
        let m = cat.device(&d.model).expect("a catalog model");
        devices.push(Existing {
            id: d.id.to_string(),
            on_root: a.bus == "pci.0",
            address: a,
            nic: m.nic,
            pluggable: m.hotpluggable,
        });
    }
    let used = |bus: &str| {
        let mut slots: Vec<u8> = req
            .devices
            .iter()
            .filter_map(|d| d.address.as_ref())
            .filter(|a| a.bus == bus)
            .map(|a| a.slot)
            .chain(
                req.controllers
                    .iter()
                    .map(|c| &c.address)
                    .filter(|a| a.bus == bus)
                    .map(|a| a.slot),
            )
            .collect();
        slots.sort();
        slots.dedup();
        slots.len()
    };
    // pci.0: slots 2..31 take endpoints (PC-ROOT); a bridge: 1..31 (PC-BRIDGE).
    let root_free = 30 - used("pci.0");
    let bridge_free = req
        .controllers
        .iter()
        .filter(|c| c.model == "pci-bridge")
        .map(|c| 31 - used(&c.id))
        .sum();
    let mut on_root: Vec<(u8, pciplan::Text)> = req
        .controllers
        .iter()
        .filter(|c| c.model == "pci-bridge" && c.address.bus == "pci.0")
        .map(|c| (c.address.slot, c.id.clone()))
        .collect();
    on_root.sort();
    Guest {
        devices,
        root_free,
        bridge_free,
        first_bridge: on_root.first().map(|(_, id)| id.clone()),
        root_bridges: on_root.iter().map(|(s, _)| *s).collect(),
        root_on: !root_off(dump),
    }
}

/// What a policy must change on libvirt's layout: the guest-visible changes by kind, the
/// bridges added, root hotplug afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Expect {
    moved: usize,
    renamed: usize,
    bridges: u32,
    root_on: bool,
}

/// The least a plan with root hotplug `h` changes, by reasoning from where libvirt put each
/// device (see the module's documentation); `None` when `h` cannot meet the policy (PC-MIX).
fn with_root_hotplug(g: &Guest, hp: &BTreeMap<pciplan::Text, Hotplug>, h: bool) -> Option<Expect> {
    let req = |d: &Existing| hp[d.id.as_str()];
    let off = |d: &Existing| d.pluggable && req(d) == Hotplug::Off;
    if h && g.devices.iter().any(off) {
        return None;
    }
    let count = |f: &dyn Fn(&Existing) -> bool| g.devices.iter().filter(|d| f(d)).count();
    // Off devices leave libvirt's bridges for pci.0; on devices leave pci.0 once it is not
    // hot-pluggable; the NICs that stay on pci.0 are renamed when the switch changes.
    let to_root = count(&|d| !d.on_root && off(d));
    let from_root = count(&|d| d.on_root && req(d) == Hotplug::On && !h);
    let stay = |d: &Existing| d.on_root && d.nic && (h || req(d) != Hotplug::On);
    // So are the NICs staying on the first bridge at a slot whose number pci.0 registers
    // while root hotplug is on (2 and up, no bridge in that pci.0 slot).
    let stay_bridged = |d: &Existing| {
        !d.on_root
            && d.nic
            && !off(d)
            && Some(d.address.bus.as_str()) == g.first_bridge.as_deref()
            && d.address.slot >= 2
            && !g.root_bridges.contains(&d.address.slot)
    };
    let renamed = if h == g.root_on {
        0
    } else {
        count(&stay) + count(&stay_bridged)
    };
    // Devices coming back to pci.0 beyond its room push `any` ones out, NICs first: a NIC
    // that leaves is moved instead of renamed, one change either way.
    let short = to_root.saturating_sub(g.root_free + from_root);
    let any_nics = count(&|d| d.on_root && d.nic && req(d) == Hotplug::Any);
    let to_bridges = from_root + short;
    let room = g.bridge_free + to_root;
    Some(Expect {
        moved: to_root + from_root + short,
        renamed: renamed - short.min(renamed).min(any_nics),
        bridges: to_bridges.saturating_sub(room).div_ceil(31) as u32,
        root_on: h,
    })
}

/// The better root hotplug value (O-ADOPT: changes, then bridges, then the switch kept).
fn expected(g: &Guest, hp: &BTreeMap<pciplan::Text, Hotplug>) -> Expect {
    [g.root_on, !g.root_on]
        .into_iter()
        .filter_map(|h| with_root_hotplug(g, hp, h))
        .min_by_key(|e| (e.moved + e.renamed, e.bridges, e.root_on != g.root_on))
        .expect("a policy libvirt's layout can meet")
}

fn root_off(xml: &str) -> bool {
    let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("controller") && n.attribute("model") == Some("pci-root"))
        .any(|n| {
            n.children()
                .any(|t| t.has_tag_name("target") && t.attribute("hotplug") == Some("off"))
        })
}

fn addresses(xml: &str) -> BTreeMap<pciplan::Text, Address> {
    Domain::parse(xml)
        .expect("reads")
        .request
        .devices
        .iter()
        .filter_map(|d| Some((d.id.clone(), d.address.clone()?)))
        .collect()
}

/// One policy on libvirt's `dump`: the plan and libvirt's XML of it checked as the module
/// says. `Ok` is a line for the report, `Err` what went wrong.
fn adopt_policy(tag: &str, dump: &str, g: &Guest, flags: &[String]) -> Result<String, String> {
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut json_args = vec!["plan", "-", "--adopt", "--format", "json"];
    json_args.extend(&args);
    let (code, json, err) = run(&json_args, Some(dump)).parts();
    if code == 1 && flags == ["--default-hotplug", "off"] {
        // Every device off needs pci.0 for all of them, beside libvirt's bridges (kept).
        let bridges = lv::pci_controllers(dump);
        let need = g.devices.iter().filter(|d| d.pluggable).count();
        return if need > 30 - bridges && err.contains("[PC-ROOT]") {
            Ok(format!(
                "{tag} {}: infeasible, {need} devices for {} pci.0 slots (PC-ROOT)",
                flags.join(" "),
                30 - bridges
            ))
        } else {
            Err(format!("{tag} {flags:?}: infeasible: {err}"))
        };
    }
    if code != 0 {
        return Err(format!("{tag} {flags:?}: exit {code}: {err}"));
    }
    let plan: Plan = serde_json::from_str(&json).map_err(|e| format!("{tag}: {e}"))?;
    let mut xml_args = vec!["plan", "-", "--adopt", "--format", "libvirt"];
    xml_args.extend(&args);
    let (code, written, err) = run(&xml_args, Some(dump)).parts();
    if code != 0 {
        return Err(format!(
            "{tag} {flags:?}: libvirt format: exit {code}: {err}"
        ));
    }
    let hp: BTreeMap<pciplan::Text, Hotplug> = plan
        .devices
        .iter()
        .map(|d| (d.id.clone(), d.hotplug))
        .collect();
    let changes = plan.changes.clone().unwrap_or_default();
    let of = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    let visible = plan.guest_visible_changes.unwrap_or(u32::MAX) as usize;
    let want = expected(g, &hp);
    let off = !want.root_on;
    let have = Expect {
        moved: of(ChangeKind::Moved),
        renamed: of(ChangeKind::Renamed),
        bridges: plan.cost,
        root_on: plan.root_hotplug != Some(false),
    };
    let mut bad = Vec::new();
    if !plan.optimal {
        bad.push("not proven optimal".to_string());
    }
    if have != want || of(ChangeKind::Renumbered) != 0 || visible != want.moved + want.renamed {
        bad.push(format!(
            "{visible} guest-visible changes ({} renumbered), {have:?}; the policy needs {want:?}",
            of(ChangeKind::Renumbered)
        ));
    }
    if root_off(&written) != off {
        bad.push("pci-root's hotplug='off' not as the plan says".into());
    }
    // libvirt defines the adopted domain as written.
    let again =
        lv::define_dump(&written, tag).map_err(|e| format!("{tag} {flags:?}: define: {e}"))?;
    if lv::pci_addresses(&again) != lv::pci_addresses(&written) {
        bad.push("libvirt changed addresses".into());
    }
    if lv::pci_controllers(&again) != lv::pci_controllers(&written)
        || lv::pci_controllers(&written) != lv::pci_controllers(dump) + plan.cost as usize
    {
        bad.push(format!(
            "PCI controllers: libvirt's {}, adopted {}, returned {}, plan cost {}",
            lv::pci_controllers(dump),
            lv::pci_controllers(&written),
            lv::pci_controllers(&again),
            plan.cost
        ));
    }
    if root_off(&again) != off {
        bad.push("libvirt did not keep the pci-root's hotplug setting".into());
    }
    let (code, out, err) = run(&["check", "-"], Some(&again)).parts();
    if code != 0 {
        bad.push(format!("check of libvirt's XML: exit {code}: {out}{err}"));
    }
    // Devices not reported moved keep libvirt's address (renamed NICs too).
    let after = addresses(&again);
    for d in &g.devices {
        let moved = changes
            .iter()
            .any(|c| c.id == d.id && c.change == ChangeKind::Moved);
        let kept = after.get(d.id.as_str()) == Some(&d.address);
        if kept == moved {
            bad.push(format!(
                "{} at {}, now {:?}; reported moved: {moved}",
                d.id,
                d.address,
                after.get(d.id.as_str())
            ));
        }
    }
    if bad.is_empty() {
        Ok(format!(
            "{tag} {}: {visible} visible ({} moved, {} renamed), {} bridge(s) added, root hotplug {}",
            flags.join(" "),
            of(ChangeKind::Moved),
            of(ChangeKind::Renamed),
            plan.cost,
            if off { "off" } else { "on" }
        ))
    } else {
        Err(format!("{tag} {flags:?}:\n  {}", bad.join("\n  ")))
    }
}

/// The policies tried on a domain, chosen from where libvirt put its devices.
fn policies(g: &Guest) -> Vec<Vec<String>> {
    let hp = |id: &str, h: &str| vec!["--hotplug".to_string(), format!("{id}={h}")];
    let named = |d: &&Existing| d.id.starts_with("ua-") && d.pluggable;
    let root_nic = g.devices.iter().filter(named).find(|d| d.on_root && d.nic);
    let root_other = g.devices.iter().filter(named).find(|d| d.on_root && !d.nic);
    let bridged = g.devices.iter().rev().filter(named).find(|d| !d.on_root);
    let on = || vec!["--default-hotplug".to_string(), "on".to_string()];
    let mut v = vec![
        // The guest already meets it: libvirt leaves root hotplug on.
        on(),
        vec!["--default-hotplug".to_string(), "off".to_string()],
    ];
    if let Some(d) = root_nic.or(root_other) {
        v.push(hp(&d.id, "on"));
        v.push(hp(&d.id, "off"));
        v.push([on(), hp(&d.id, "off")].concat());
    }
    if let (Some(a), Some(b)) = (root_nic, root_other) {
        v.push([hp(&a.id, "on"), hp(&b.id, "off")].concat());
        v.push([hp(&b.id, "on"), hp(&a.id, "off")].concat());
    }
    if let Some(d) = bridged {
        v.push(hp(&d.id, "off"));
        v.push([on(), hp(&d.id, "off")].concat());
    }
    v
}

#[test]
fn libvirt_addressed_pc_domains_adopt_new_policies() {
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let start = Instant::now();
    let (mut report, mut failures) = (Vec::new(), Vec::new());
    let mut domains = 0;
    for (tag, xml) in cases() {
        let dump = lv::define_dump(&xml, tag).unwrap_or_else(|e| panic!("{tag}: define: {e}"));
        let g = existing(&dump);
        assert!(!g.devices.is_empty(), "{tag}: libvirt gave no PCI device");
        domains += 1;
        report.push(format!(
            "{tag}: {} devices, {} on pci.0, {} PCI controller(s) libvirt added",
            g.devices.len(),
            g.devices.iter().filter(|d| d.on_root).count(),
            lv::pci_controllers(&dump)
        ));
        // No new policy: libvirt's domain comes back byte for byte.
        let (code, out, err) = run(
            &["plan", "-", "--adopt", "--format", "libvirt"],
            Some(&dump),
        )
        .parts();
        if code != 0 || out != dump {
            failures.push(format!("{tag}: adopted as it is: exit {code}, {err}"));
        }
        for flags in policies(&g) {
            match adopt_policy(tag, &dump, &g, &flags) {
                Ok(line) => report.push(format!("  {line}")),
                Err(e) => failures.push(e),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    let refused = report.iter().filter(|l| l.contains(": infeasible")).count();
    eprintln!(
        "{domains} domains, {} adoptions defined in libvirt, {refused} refused (PC-ROOT) in {:.1} s",
        report.len() - domains - refused,
        start.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(domains >= 10);
}
