//! virt-manager's users: `virt-install --print-xml --dry-run` (Debian package `virtinst`,
//! which `.ci/run` installs) for a handful of OS profiles, piped through `pciplan plan -
//! --format libvirt` with a policy and into `virsh define`: libvirt defines it with no
//! address moved and no controller added, and `pciplan check` on what libvirt stored finds
//! the policy (kept in the domain's metadata) met. Skips without virt-install or libvirt,
//! unless `PCIPLAN_REQUIRE_LIBVIRT=1`.

mod common;

use std::process::Command;

use common::cli::run;
use common::libvirt as lv;

/// OS profiles as a virt-manager user creates them: (name, virt-install arguments).
const PROFILES: [(&str, &[&str]); 5] = [
    (
        "win10-two-nics",
        &[
            "--osinfo",
            "win10",
            "--disk",
            "size=40",
            "--network",
            "network=default",
            "--network",
            "network=default,model=e1000e",
            "--graphics",
            "vnc",
        ],
    ),
    (
        "fedora-disks-nics",
        &[
            "--osinfo",
            "fedora37",
            "--disk",
            "size=20",
            "--disk",
            "size=10",
            "--network",
            "network=default",
            "--network",
            "network=default",
            "--network",
            "network=default,model=virtio",
            "--graphics",
            "spice",
        ],
    ),
    (
        "debian-headless",
        &[
            "--osinfo",
            "debian11",
            "--disk",
            "size=10",
            "--network",
            "network=default",
            "--graphics",
            "none",
        ],
    ),
    (
        "ubuntu-scsi-sound-agent",
        &[
            "--osinfo",
            "ubuntu22.04",
            "--disk",
            "size=10,bus=scsi",
            "--controller",
            "scsi,model=virtio-scsi",
            "--network",
            "network=default",
            "--sound",
            "ich9",
            "--channel",
            "unix,target.type=virtio,name=org.qemu.guest_agent.0",
            "--rng",
            "/dev/urandom",
        ],
    ),
    (
        "rhel-uefi-virtiofs",
        &[
            "--osinfo",
            "rhel9.0",
            "--boot",
            "uefi",
            "--disk",
            "size=20",
            "--network",
            "network=default",
            "--filesystem",
            "/srv,share,driver.type=virtiofs",
            "--memorybacking",
            "access.mode=shared",
        ],
    ),
];

/// The policy the pipeline asks for: nothing the guest can unplug unless named.
const POLICY: [&str; 4] = ["--default-hotplug", "off", "--hotplug-off-strategy", "auto"];

/// `virt-install --print-xml --dry-run` for a profile, or why not.
fn virt_install(name: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("virt-install")
        .args([
            "--connect",
            lv::URI,
            "--print-xml",
            "--dry-run",
            "--noautoconsole",
        ])
        .args([
            "--name",
            name,
            "--memory",
            "2048",
            "--vcpus",
            "2",
            "--machine",
            "q35",
        ])
        .args(args)
        .output()
        .map_err(|e| format!("virt-install: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn virt_install_output_planned_defines_clean_with_the_policy_met() {
    if Command::new("virt-install")
        .arg("--version")
        .output()
        .is_err()
    {
        common::missing(
            "PCIPLAN_REQUIRE_LIBVIRT",
            "virt-install is not installed (Debian package virtinst)",
        );
        return;
    }
    if let Err(e) = lv::ensure() {
        eprintln!("skipping: no libvirt: {e}");
        return;
    }
    let mut failures = Vec::new();
    for (name, args) in PROFILES {
        let xml = match virt_install(name, args) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{name}: virt-install: {e}"));
                continue;
            }
        };
        let mut a = vec!["plan", "-", "--format", "libvirt"];
        a.extend(POLICY);
        let planned = run(&a, Some(&xml));
        if planned.code != 0 {
            failures.push(format!("{name}: plan: {}", planned.stderr));
            continue;
        }
        let dump = match lv::define_dump(&planned.stdout, name) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: define: {e}"));
                continue;
            }
        };
        if lv::pci_addresses(&planned.stdout) != lv::pci_addresses(&dump)
            || lv::pci_controllers(&planned.stdout) != lv::pci_controllers(&dump)
        {
            failures.push(format!(
                "{name}: libvirt moved an address or added a controller"
            ));
            continue;
        }
        if !dump.contains("default-hotplug=\"off\"") && !dump.contains("default-hotplug='off'") {
            failures.push(format!("{name}: the policy is not in the stored domain"));
            continue;
        }
        let check = run(&["check", "-"], Some(&dump));
        if check.code != 0 {
            failures.push(format!(
                "{name}: policy not met: {}{}",
                check.stdout, check.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
