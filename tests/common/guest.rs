//! A real Linux guest's own view of a plan: Debian's kernel and `busybox-static`, fetched with
//! `apt-get download` at test time, booted under TCG with the plan's `-device` lines and a
//! tiny initramfs whose `/init` prints the hotplug slots the kernel registered
//! (`/sys/bus/pci/slots/*/address`) and every PCI device's sysfs path, then powers off.
//!
//! ```ignore
//! let kernel = guest::kernel(guest::Arch::X86_64)?;          // cached under target/tmp
//! let view = guest::boot(&kernel, &["-machine", "pc"], &plan_args)?;
//! let d = view.device(&[(3, 0), (1, 0)]).unwrap();          // 00:03.0 -> 01:01.0
//! assert!(view.slot_at(&d.position()).is_some());           // a hotplug slot there
//! ```
//!
//! The packages are Debian's (`linux-image-amd64` / `linux-image-arm64` resolve to the
//! versioned `linux-image-6.1.0-N-ARCH` package, which is the one downloaded), kept per package
//! name in `target/tmp/guest-kernel/` so that a run pays the download once; only `boot/` of the
//! kernel package is unpacked (the modules are not needed: the PCI hotplug drivers are built in,
//! `CONFIG_HOTPLUG_PCI_ACPI=y`, `CONFIG_HOTPLUG_PCI_PCIE=y`, `CONFIG_HOTPLUG_PCI_SHPC=y`). The
//! initramfs is a `newc` cpio written here. Only `std` is used, plus `apt-get`, `apt-cache`,
//! `dpkg-deb` and `tar`, which every Debian machine has.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one boot may take: alone on the machine, the guest is done in 5-10 s under TCG
/// (SeaBIOS on x86, 14 s with AAVMF on aarch64), 50-65 s with five boots at once on a busy
/// 2-core machine; a hang ends here.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// Guest RAM in MiB (Debian's kernel and a 2 MiB initramfs fit with room to spare).
pub const MEMORY_MIB: u32 = 256;

const BEGIN: &str = "PCIPLAN-GUEST-BEGIN";
const END: &str = "PCIPLAN-GUEST-END";

/// The guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `qemu-system-x86_64` (`q35`, `pc`), serial console `ttyS0`.
    X86_64,
    /// `qemu-system-aarch64 -machine virt -cpu cortex-a57`, console `ttyAMA0`.
    Aarch64,
}

impl Arch {
    /// Debian's architecture name.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The QEMU binary.
    pub fn qemu(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// `apt`'s name for a package of this architecture (`:arm64` when foreign here).
    fn apt_name(self, pkg: &str) -> String {
        if self.debian() == native_arch() {
            pkg.to_string()
        } else {
            format!("{pkg}:{}", self.debian())
        }
    }
}

fn native_arch() -> &'static str {
    static A: OnceLock<String> = OnceLock::new();
    A.get_or_init(|| {
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    })
}

/// A kernel and the initramfs that prints the guest's view.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub arch: Arch,
    /// The Debian package the kernel came from (`linux-image-6.1.0-57-amd64`).
    pub package: String,
    pub vmlinuz: PathBuf,
    pub initramfs: PathBuf,
}

/// The cache: `target/tmp/guest-kernel`.
fn cache_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-kernel")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned kernel package the metapackage `linux-image-ARCH` depends on.
fn kernel_package(arch: Arch) -> Result<String, String> {
    let meta = arch.apt_name(&format!("linux-image-{}", arch.debian()));
    let deps = run(Command::new("apt-cache").args(["depends", &meta]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|p| p.split(':').next().unwrap_or(p).trim())
        .find(|p| p.starts_with("linux-image-") && p.ends_with(arch.debian()))
        .map(str::to_string)
        .ok_or_else(|| format!("`apt-cache depends {meta}` names no kernel package:\n{deps}"))
}

/// The kernel for `arch`, downloaded and unpacked on first use (then taken from the cache),
/// with a fresh initramfs. Fails with what is missing: apt without the architecture
/// (`dpkg --add-architecture arm64 && apt-get update`, as `.ci/run` does), no network.
pub fn kernel(arch: Arch) -> Result<Kernel, String> {
    static CACHE: Mutex<Vec<(Arch, Result<Kernel, String>)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, k)) = cache.iter().find(|(a, _)| *a == arch) {
        return k.clone();
    }
    let k = fetch(arch);
    cache.push((arch, k.clone()));
    k
}

fn fetch(arch: Arch) -> Result<Kernel, String> {
    let package = kernel_package(arch)?;
    let dir = cache_root().join(&package);
    let vmlinuz = dir.join("vmlinuz");
    let busybox = dir.join("busybox");
    if !(vmlinuz.exists() && busybox.exists()) {
        let tmp = cache_root().join(format!("{package}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        run(Command::new("apt-get")
            .current_dir(&tmp)
            .args(["download", "-q"])
            .arg(arch.apt_name(&package))
            .arg(arch.apt_name("busybox-static")))
        .map_err(|e| {
            format!(
                "{e}\n(for {}: `dpkg --add-architecture {} && apt-get update`, as .ci/run does)",
                arch.debian(),
                arch.debian()
            )
        })?;
        let deb = |prefix: &str| -> Result<PathBuf, String> {
            std::fs::read_dir(&tmp)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.starts_with(prefix) && n.ends_with(".deb")
                })
                .ok_or_else(|| format!("apt-get download left no {prefix}*.deb"))
        };
        // The kernel package holds 400 MB of modules the guest does not need: only boot/.
        let kdeb = deb(&format!("{package}_"))?;
        run(Command::new("sh").current_dir(&tmp).arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xf - --wildcards './boot/*'",
            kdeb.display()
        )))?;
        run(Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb("busybox-static_")?)
            .arg(tmp.join("bb")))?;
        let image = std::fs::read_dir(tmp.join("boot"))
            .map_err(|e| format!("{package}: no boot/: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("vmlinuz-")
            })
            .ok_or_else(|| format!("{package} has no boot/vmlinuz-*"))?;
        let config = std::fs::read_dir(tmp.join("boot"))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("config-")
            });
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(c) = config {
            std::fs::rename(c, dir.join("config")).map_err(|e| e.to_string())?;
        }
        std::fs::rename(tmp.join("bb/bin/busybox"), &busybox)
            .map_err(|e| format!("busybox-static: {e}"))?;
        std::fs::rename(image, &vmlinuz).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let initramfs = dir.join("initramfs.cpio");
    let bb = std::fs::read(&busybox).map_err(|e| format!("{}: {e}", busybox.display()))?;
    let part = dir.join(format!("initramfs.cpio.{}", std::process::id()));
    std::fs::write(&part, initramfs_cpio(&bb)).map_err(|e| e.to_string())?;
    std::fs::rename(&part, &initramfs).map_err(|e| e.to_string())?;
    Ok(Kernel {
        arch,
        package,
        vmlinuz,
        initramfs,
    })
}

/// The guest's `/init`: mounts proc and sysfs, prints between markers one `slot NAME
/// ADDRESS` line per registered hotplug slot and one `dev SYSFS-PATH VENDOR DEVICE SECONDARY`
/// line per PCI device (the resolved path shows the chain of devfns from the root bus;
/// SECONDARY is a bridge's secondary bus number, `-` for an endpoint), powers off.
pub const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
echo PCIPLAN-GUEST-BEGIN
for s in /sys/bus/pci/slots/*; do
  [ -e "$s/address" ] && echo "slot ${s##*/} $($B cat "$s/address")"
done
for d in /sys/bus/pci/devices/*; do
  echo "dev $($B readlink -f "$d") $($B cat "$d/vendor") $($B cat "$d/device") $($B cat "$d/secondary_bus_number" 2>/dev/null || echo -)"
done
echo PCIPLAN-GUEST-END
$B poweroff -f
echo o > /proc/sysrq-trigger
"#;

/// A `newc` cpio archive with `/init`, `/bin/busybox` and the mount points.
pub fn initramfs_cpio(busybox: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1u32;
    let mut entry = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
        let header = format!(
            "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        ino += 1;
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for d in ["bin", "proc", "sys", "dev"] {
        entry(&mut out, d, 0o040755, &[]);
    }
    entry(&mut out, "bin/busybox", 0o100755, busybox);
    entry(&mut out, "init", 0o100755, INIT.as_bytes());
    entry(&mut out, "TRAILER!!!", 0, &[]);
    out
}

/// A PCI device as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDevice {
    /// Its name, `0000:01:03.0`.
    pub bdf: String,
    /// (slot, function) of every bridge or port above it and its own, from the root bus.
    pub path: Vec<(u8, u8)>,
    pub vendor: u16,
    pub device: u16,
    /// A bridge's or port's secondary bus number (sysfs `secondary_bus_number`).
    pub secondary: Option<u8>,
}

impl GuestDevice {
    /// `domain:bus:slot`, as a hotplug slot's `address` names the position.
    pub fn position(&self) -> String {
        self.bdf
            .rsplit_once('.')
            .map_or(&*self.bdf, |(p, _)| p)
            .to_string()
    }
}

/// What the guest printed.
#[derive(Debug, Clone, Default)]
pub struct GuestView {
    /// (name, address) of every registered hotplug slot, e.g. `("3", "0000:00:03")`.
    pub slots: Vec<(String, String)>,
    pub devices: Vec<GuestDevice>,
    /// Seconds from QEMU's start to its exit.
    pub seconds: f64,
}

impl GuestView {
    /// The device at `path` from the root bus 0.
    pub fn device(&self, path: &[(u8, u8)]) -> Option<&GuestDevice> {
        self.devices
            .iter()
            .find(|d| d.path == path && d.bdf.starts_with("0000:"))
    }

    /// The name of the hotplug slot registered at `position` (`0000:01:03`).
    pub fn slot_at(&self, position: &str) -> Option<&str> {
        self.slots
            .iter()
            .find(|(_, a)| a == position)
            .map(|(n, _)| n.as_str())
    }

    /// The name systemd's `net_id` gives a NIC here (function 0 only): `ensN` when a
    /// hotplug slot whose name is a positive number N sits at its position (systemd skips
    /// names that are not numbers, such as the kernel's `4-2` for a second slot named 4, and
    /// slot numbers <= 0), else the path name `enpBsS`.
    pub fn nic_name(&self, d: &GuestDevice) -> String {
        if let Some(n) = self
            .slot_at(&d.position())
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
        {
            return format!("ens{n}");
        }
        let (bus, slot) = d
            .bdf
            .split(':')
            .skip(1)
            .collect::<Vec<_>>()
            .split_first()
            .map(|(b, r)| {
                (
                    u8::from_str_radix(b, 16).unwrap_or(0),
                    u8::from_str_radix(r[0].split('.').next().unwrap_or("0"), 16).unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        format!("enp{bus}s{slot}")
    }
}

/// Parses the console between the markers.
pub fn parse_view(console: &str) -> Result<GuestView, String> {
    let start = console
        .find(BEGIN)
        .ok_or_else(|| "the guest printed no view (no begin marker)".to_string())?;
    let end = console[start..]
        .find(END)
        .ok_or_else(|| "the guest's view is cut short (no end marker)".to_string())?;
    let mut view = GuestView::default();
    for line in console[start + BEGIN.len()..start + end].lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["slot", name, address] => view.slots.push((name.to_string(), address.to_string())),
            ["dev", sysfs, vendor, device, secondary] => {
                let hex = |s: &str| u16::from_str_radix(s.trim_start_matches("0x"), 16).ok();
                let parts: Vec<&str> = sysfs.split('/').collect();
                let root = parts
                    .iter()
                    .position(|p| p.starts_with("pci") && p.contains(':'))
                    .ok_or_else(|| format!("not a PCI path: {line}"))?;
                let mut path = Vec::new();
                for p in &parts[root + 1..] {
                    let (_, devfn) = p.rsplit_once(':').ok_or_else(|| format!("bad {p}"))?;
                    let (s, func) = devfn.split_once('.').ok_or_else(|| format!("bad {p}"))?;
                    path.push((
                        u8::from_str_radix(s, 16).map_err(|e| format!("{p}: {e}"))?,
                        func.parse().map_err(|e| format!("{p}: {e}"))?,
                    ));
                }
                view.devices.push(GuestDevice {
                    bdf: parts.last().unwrap().to_string(),
                    path,
                    vendor: hex(vendor).ok_or_else(|| format!("bad vendor: {line}"))?,
                    device: hex(device).ok_or_else(|| format!("bad device: {line}"))?,
                    secondary: secondary.parse().ok(),
                });
            }
            // Kernel messages may land between the lines; they are not ours.
            _ => {}
        }
    }
    Ok(view)
}

static BOOTS: AtomicUsize = AtomicUsize::new(0);

/// The UEFI firmware of `arch` (Debian's `ovmf`, `qemu-efi-aarch64`): code and the template
/// of its variable store.
pub fn uefi_files(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => (super::qemu::OVMF_CODE, super::qemu::OVMF_VARS),
        Arch::Aarch64 => (
            "/usr/share/AAVMF/AAVMF_CODE.fd",
            "/usr/share/AAVMF/AAVMF_VARS.fd",
        ),
    }
}

/// Boots `kernel` with `machine` (e.g. `["-machine", "pc"]`) and the plan's QEMU arguments
/// `plan_args` (what [`super::qemu::QemuPlan`] and `device_args` make of `--format qemu`),
/// waits for the guest to power off (at most [`BOOT_TIMEOUT`]) and returns its view. The
/// firmware is the plan's: SeaBIOS (QEMU's default on x86), or with `uefi` the UEFI firmware
/// of [`uefi_files`] as libvirt starts it (code read-only, a private copy of the variable
/// store), which loads `-kernel` itself and hands the kernel ACPI tables. The console goes
/// to a file in a directory of its own, removed afterwards.
pub fn boot(
    kernel: &Kernel,
    machine: &[&str],
    plan_args: &[String],
    uefi: bool,
) -> Result<GuestView, String> {
    let n = BOOTS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("pciplan-guest-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let console = dir.join("console.log");
    let mut args: Vec<String> = machine.iter().map(|s| s.to_string()).collect();
    if uefi {
        let (code, vars) = uefi_files(kernel.arch);
        let copy = dir.join("vars.fd");
        std::fs::copy(vars, &copy).map_err(|e| format!("{vars}: {e}"))?;
        args.extend([
            "-drive".to_string(),
            format!("if=pflash,format=raw,readonly=on,file={code}"),
            "-drive".to_string(),
            format!("if=pflash,format=raw,file={}", copy.display()),
        ]);
    }
    args.extend(
        [
            "-accel",
            "tcg",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-m",
            &MEMORY_MIB.to_string(),
            "-kernel",
            &kernel.vmlinuz.to_string_lossy(),
            "-initrd",
            &kernel.initramfs.to_string_lossy(),
            "-append",
            &format!(
                "console={} quiet panic=-1 rdinit=/init",
                kernel.arch.console()
            ),
            "-serial",
            &format!("file:{}", console.display()),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(plan_args.iter().cloned());
    let cmdline = format!("{} {}", kernel.arch.qemu(), args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(kernel.arch.qemu())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", kernel.arch.qemu()))?;
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stderr = stderr_thread.join().unwrap_or_default();
    let text = std::fs::read(&console)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let tail = |t: &str| {
        t.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };
    let fail = |why: String| {
        format!(
            "{why}\ncommand: {cmdline}\nQEMU stderr: {}\nconsole (last lines):\n{}",
            stderr.trim(),
            tail(&text)
        )
    };
    match status {
        None => Err(fail(format!("no power-off within {BOOT_TIMEOUT:?}"))),
        Some(st) if !st.success() => Err(fail(format!("QEMU exited with {st}"))),
        Some(_) => parse_view(&text)
            .map(|mut v| {
                v.seconds = seconds;
                v
            })
            .map_err(fail),
    }
}
