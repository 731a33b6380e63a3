//! Test harness that starts the real QEMU (`qemu-system-x86_64`, q35, TCG) with the
//! `-device` lines of a plan and inspects the guest over QMP.
//!
//! Typical use:
//!
//! ```ignore
//! let mut vm = Qemu::start("-device pcie-root-port,id=rp1,chassis=1,addr=0x2\n\
//!                           -device virtio-net-pci,id=net0,bus=rp1")?;
//! let tree = vm.qtree()?;                       // placement, no firmware needed
//! assert_eq!(tree["net0"].bus, "rp1");
//! assert!(!vm.unplug_refused("net0"));          // behind a hotplug-capable port
//! let fw = vm.run_firmware(DEFAULT_FIRMWARE_TIMEOUT)?;   // let SeaBIOS number the buses
//! assert!(fw.pci.device("rp1").unwrap().bridge.as_ref().unwrap().secondary > 0);
//! ```
//!
//! The plan text is the "qemu args" format: one `-device DRIVER,prop=value,...` per line,
//! carrying only placement properties. Backends (block nodes, fsdevs, memory backends,
//! chardevs, ...) are added by the harness, see [`backend_for`]. Guests get NUMA nodes when
//! a line uses `numa_node=N`, and `maxmem` when a memory device (virtio-pmem/virtio-mem) is
//! present, see [`memory_args`].
//!
//! Every guest gets its own temporary directory (process id + counter) holding the QMP
//! socket and the SeaBIOS debug log, so tests can run in parallel. The QEMU process is
//! killed and the directory removed when the [`Qemu`] value is dropped.
//!
//! Only `std` and `serde_json` are used.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The QEMU binary the harness runs (looked up in `PATH`).
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// The aarch64 QEMU (Debian package `qemu-system-arm`), for `virt` guests
/// ([`Qemu::start_virt`]).
pub const QEMU_AARCH64: &str = "qemu-system-aarch64";

/// AAVMF (UEFI for aarch64 `virt`, Debian package `qemu-efi-aarch64`): code and the
/// variable-store template, as [`OVMF_CODE`] and [`OVMF_VARS`].
pub const AAVMF_CODE: &str = "/usr/share/AAVMF/AAVMF_CODE.fd";
/// See [`AAVMF_CODE`]; every guest gets its own copy.
pub const AAVMF_VARS: &str = "/usr/share/AAVMF/AAVMF_VARS.fd";

/// Guest RAM in MiB when the plan needs nothing special (`-m 128`).
pub const BASE_MEMORY_MIB: u64 = 128;

/// How long [`Qemu::start`] waits for the QMP socket and greeting.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one QMP command may take before the harness gives up on QEMU.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A good timeout for [`Qemu::run_firmware`]. SeaBIOS needs 10-300 ms to number the buses
/// and assign the windows; when it fails, its log says so and `run_firmware` returns at
/// once, so the timeout only bounds unknown hangs (and leaves room for a loaded machine).
pub const DEFAULT_FIRMWARE_TIMEOUT: Duration = Duration::from_secs(10);

/// OVMF (UEFI for x86_64, Debian package `ovmf`): the code and the variable-store template.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// See [`OVMF_CODE`]; every guest gets its own copy (OVMF writes to it).
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF under TCG takes 5-15 s to enumerate PCI on a loaded 2-core machine.
pub const UEFI_FIRMWARE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long the PCI tree must stay unchanged, once every bridge is numbered, before
/// [`Qemu::run_uefi_firmware`] takes OVMF's resource assignment as final although some
/// memory BARs are unassigned (it programs them within ~2 s of numbering the buses when
/// they fit, even on a loaded machine).
pub const UEFI_QUIET: Duration = Duration::from_secs(15);

/// True when OVMF's files are installed.
pub fn ovmf_available() -> bool {
    std::path::Path::new(OVMF_CODE).exists() && std::path::Path::new(OVMF_VARS).exists()
}

/// The QMP error class the harness uses for its own transport failures (QEMU died, socket
/// closed, timeout) so that [`Qemu::execute`] can return one error type.
pub const TRANSPORT_ERROR_CLASS: &str = "HarnessTransport";

/// Device drivers (keys of `models/q35.json` "devices") verified to start under this
/// harness with several instances in one guest, both on `pcie.0` and directly behind a
/// `pcie-root-port`, with the backends of [`backend_for`]; SeaBIOS also initialises them
/// (checked by `tests/qemu_harness.rs`).
///
/// Not listed because they cannot run here: `vfio-pci` (host device), `vhost-*` (host
/// kernel / vhost-user daemons), `virtio-input-host-pci` (host evdev), and `igb` /
/// `virtio-sound-pci`, which do not exist in QEMU 7.2. Drivers that start only once per
/// guest are in [`SINGLE_INSTANCE_MODELS`].
pub const TESTABLE_MODELS: &[&str] = &[
    "virtio-net-pci",
    "virtio-net-pci-non-transitional",
    "virtio-net-pci-transitional",
    "virtio-blk-pci",
    "virtio-blk-pci-non-transitional",
    "virtio-blk-pci-transitional",
    "virtio-scsi-pci",
    "virtio-scsi-pci-non-transitional",
    "virtio-scsi-pci-transitional",
    "virtio-serial-pci",
    "virtio-serial-pci-non-transitional",
    "virtio-serial-pci-transitional",
    "virtio-rng-pci",
    "virtio-rng-pci-non-transitional",
    "virtio-rng-pci-transitional",
    "virtio-9p-pci",
    "virtio-9p-pci-non-transitional",
    "virtio-9p-pci-transitional",
    "virtio-keyboard-pci",
    "virtio-mouse-pci",
    "virtio-tablet-pci",
    "virtio-gpu-pci",
    "virtio-vga",
    "virtio-crypto-pci",
    "virtio-pmem-pci",
    "virtio-mem-pci",
    "e1000e",
    "nvme",
    "qemu-xhci",
    "nec-usb-xhci",
    "bochs-display",
    "ivshmem-doorbell",
    "ivshmem-plain",
    "e1000",
    "e1000-82544gc",
    "e1000-82545em",
    "rtl8139",
    "ne2k_pci",
    "pcnet",
    "vmxnet3",
    "i82559er",
    "i6300esb",
    "ich9-intel-hda",
    "intel-hda",
    "AC97",
    "ES1370",
    "VGA",
    "qxl",
    "cirrus-vga",
    "lsi53c895a",
    "megasas",
    "megasas-gen2",
    "mptsas1068",
    "am53c974",
    "dc390",
    "pvscsi",
    "ich9-ahci",
    "piix3-usb-uhci",
    "piix4-usb-uhci",
    "ich9-usb-ehci1",
    "ich9-usb-uhci1",
    "ich9-usb-uhci2",
    "ich9-usb-uhci3",
    "usb-ehci",
    "pci-ohci",
    "pci-serial",
    "pci-serial-2x",
    "pci-serial-4x",
    "pci-testdev",
];

/// Device drivers that start under this harness but only once per guest (QEMU 7.2):
/// a second instance fails with
/// * virtio-balloon-*: `Only one balloon device is supported`
/// * `virtio-iommu-pci`: `QEMU does not support multiple vIOMMUs for x86 yet.`
///   (and it must sit on `pcie.0`, see [`ROOT_BUS_ONLY_MODELS`])
/// * `qxl-vga`: `primary qxl-vga device must be console 0 (first display device on the
///   command line)` (any number of secondary `qxl` may follow it)
/// * `vmware-svga`: QEMU aborts with `RAMBlock "vmsvga.fifo" already registered, abort!`
///
/// Note that `VGA`, `cirrus-vga` and `virtio-vga` are *not* limited in QEMU 7.2 (SeaBIOS
/// uses the first one as primary VGA); they are in [`TESTABLE_MODELS`].
pub const SINGLE_INSTANCE_MODELS: &[&str] = &[
    "virtio-balloon-pci",
    "virtio-balloon-pci-non-transitional",
    "virtio-balloon-pci-transitional",
    "virtio-iommu-pci",
    "qxl-vga",
    "vmware-svga",
];

/// Device drivers of `models/q35.json` that cannot run under this harness, with the
/// reason (QEMU 7.2's message where it has one).
pub const UNRUNNABLE_MODELS: &[(&str, &str)] = &[
    ("vfio-pci", "needs a host device: `No provided host device`"),
    (
        "vhost-user-fs-pci",
        "needs a virtiofsd daemon: `missing chardev`",
    ),
    (
        "vhost-user-blk-pci",
        "needs a vhost-user daemon: `chardev is mandatory`",
    ),
    (
        "vhost-vsock-pci",
        "needs /dev/vhost-vsock: `guest-cid property must be greater than 2`",
    ),
    ("vhost-vsock-pci-non-transitional", "needs /dev/vhost-vsock"),
    (
        "vhost-scsi-pci",
        "needs a host vhost-scsi target: `vhost-scsi: missing wwpn`",
    ),
    (
        "virtio-input-host-pci",
        "needs a host evdev: `evdev property is required`",
    ),
    (
        "igb",
        "not in QEMU 7.2: `'igb' is not a valid device model name`",
    ),
    (
        "virtio-sound-pci",
        "not in QEMU 7.2: `'virtio-sound-pci' is not a valid device model name`",
    ),
];

/// Drivers that QEMU 7.2 accepts only on the root bus `pcie.0`
/// (`virtio-iommu-pci must be plugged on the root bus`).
pub const ROOT_BUS_ONLY_MODELS: &[&str] = &["virtio-iommu-pci"];

/// Drivers of [`backend_for`] that are memory devices: they need `-m ...,maxmem=...`.
pub const MEMORY_DEVICE_MODELS: &[&str] = &["virtio-pmem-pci", "virtio-mem-pci"];

/// Size in MiB of the RAM backend the harness gives each memory device.
pub const MEMORY_DEVICE_MIB: u64 = 16;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// An error answer of a QMP command (`{"error": {"class": ..., "desc": ...}}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    /// QMP error class, e.g. `GenericError`, `DeviceNotFound`; [`TRANSPORT_ERROR_CLASS`]
    /// when the harness could not talk to QEMU at all.
    pub class: String,
    /// Human-readable message, e.g. `Bus 'pcie.0' does not support hotplugging`.
    pub desc: String,
}

impl QmpError {
    fn transport(desc: impl Into<String>) -> Self {
        QmpError {
            class: TRANSPORT_ERROR_CLASS.to_string(),
            desc: desc.into(),
        }
    }

    /// True when the harness failed to talk to QEMU (not an answer of QEMU).
    pub fn is_transport(&self) -> bool {
        self.class == TRANSPORT_ERROR_CLASS
    }
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for QmpError {}

/// Everything that can go wrong in the harness. `to_string()` always includes QEMU's own
/// message where there is one, so tests can match on it.
#[derive(Debug, Clone)]
pub enum Error {
    /// The plan text is malformed (a line that is not a QEMU option, empty `-device`).
    Plan(String),
    /// QEMU could not be spawned (binary missing, temp dir not writable).
    Spawn(String),
    /// QEMU exited before its QMP greeting, i.e. it rejected the command line or a device
    /// could not be realized. `stderr` is QEMU's complete stderr, e.g. `qemu-system-x86_64:
    /// -device ...: PCI: slot 3 function 0 not available for virtio-net-pci, in use by ...`.
    Exited {
        /// Exit status as printed by std (`exit status: 1`).
        status: String,
        /// QEMU's stderr.
        stderr: String,
    },
    /// QEMU did not open its QMP socket or send its greeting within [`START_TIMEOUT`].
    Timeout(String),
    /// A QMP command failed (including transport failures, see [`QmpError::is_transport`]).
    Qmp(QmpError),
    /// A QMP answer did not have the expected shape.
    Parse(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Plan(m) => write!(f, "bad plan: {m}"),
            Error::Spawn(m) => write!(f, "cannot start {QEMU_BINARY}: {m}"),
            Error::Exited { status, stderr } => {
                write!(
                    f,
                    "QEMU exited ({status}) before the QMP greeting: {}",
                    stderr.trim_end()
                )
            }
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Qmp(e) => write!(f, "QMP: {e}"),
            Error::Parse(m) => write!(f, "unexpected QMP answer: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<QmpError> for Error {
    fn from(e: QmpError) -> Self {
        Error::Qmp(e)
    }
}

// ---------------------------------------------------------------------------------------
// Plan text
// ---------------------------------------------------------------------------------------

/// One `-device` line of a plan, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLine {
    /// The driver (first element of the option value), e.g. `pcie-root-port`.
    pub driver: String,
    /// The `id=` property, if any.
    pub id: Option<String>,
    /// All `key=value` properties after the driver, in order (including `id`). A bare
    /// flag `key` is stored as `(key, "on")`.
    pub props: Vec<(String, String)>,
    /// The option value exactly as written (everything after `-device`).
    pub value: String,
}

impl DeviceLine {
    /// Parses the value of a `-device` option (`DRIVER,prop=value,...`).
    pub fn parse(value: &str) -> Result<DeviceLine, Error> {
        let value = value.trim();
        let mut parts = value.split(',');
        let first = parts.next().unwrap_or("").trim();
        let mut driver = String::new();
        let mut props = Vec::new();
        if let Some(d) = first.strip_prefix("driver=") {
            driver = d.to_string();
        } else if first.contains('=') {
            props.push(split_prop(first));
        } else {
            driver = first.to_string();
        }
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = split_prop(p);
            if k == "driver" {
                driver = v;
            } else {
                props.push((k, v));
            }
        }
        if driver.is_empty() {
            return Err(Error::Plan(format!("-device without a driver: {value:?}")));
        }
        let id = props
            .iter()
            .find(|(k, _)| k == "id")
            .map(|(_, v)| v.clone());
        Ok(DeviceLine {
            driver,
            id,
            props,
            value: value.to_string(),
        })
    }

    /// The value of property `key` (last occurrence wins, as in QEMU).
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The requested `(slot, function)` from `addr=`, if given and well-formed.
    pub fn addr(&self) -> Option<(u8, u8)> {
        self.prop("addr").and_then(parse_pci_addr)
    }
}

fn split_prop(p: &str) -> (String, String) {
    match p.split_once('=') {
        Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
        None => (p.to_string(), "on".to_string()),
    }
}

/// A plan in "qemu args" format, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QemuPlan {
    /// The `-device` lines in order.
    pub devices: Vec<DeviceLine>,
    /// Any other option lines (e.g. `-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off`),
    /// already split into arguments; passed to QEMU before the devices.
    pub other_args: Vec<String>,
}

impl QemuPlan {
    /// Parses plan text: one QEMU option per line (normally `-device ...`). Empty lines,
    /// lines starting with `#`, and a trailing shell continuation `\` are ignored.
    pub fn parse(text: &str) -> Result<QemuPlan, Error> {
        let mut plan = QemuPlan::default();
        for raw in text.lines() {
            let mut line = raw.trim();
            if let Some(l) = line.strip_suffix('\\') {
                line = l.trim_end();
            }
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (opt, rest) = match line.find(char::is_whitespace) {
                Some(i) => (&line[..i], line[i..].trim()),
                None => (line, ""),
            };
            let (opt, rest) = match opt.split_once('=') {
                // `-device=virtio-net-pci,...`
                Some((o, r)) if rest.is_empty() => (o, r),
                _ => (opt, rest),
            };
            match opt {
                "-device" | "--device" => plan.devices.push(DeviceLine::parse(rest)?),
                o if o.starts_with('-') => {
                    plan.other_args.push(o.to_string());
                    if !rest.is_empty() {
                        plan.other_args.push(rest.to_string());
                    }
                }
                _ => return Err(Error::Plan(format!("not a QEMU option line: {raw:?}"))),
            }
        }
        Ok(plan)
    }

    /// The device line with `id`.
    pub fn device(&self, id: &str) -> Option<&DeviceLine> {
        self.devices.iter().find(|d| d.id.as_deref() == Some(id))
    }

    /// Number of NUMA nodes the guest needs: 1 + the largest `numa_node=` of any line,
    /// 0 when no line has one.
    pub fn numa_nodes(&self) -> u32 {
        self.devices
            .iter()
            .filter_map(|d| d.prop("numa_node"))
            .filter_map(parse_int)
            .map(|n| n as u32 + 1)
            .max()
            .unwrap_or(0)
    }

    /// Number of memory devices (virtio-pmem / virtio-mem) in the plan.
    pub fn memory_devices(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| MEMORY_DEVICE_MODELS.contains(&d.driver.as_str()))
            .count()
    }
}

/// Parses an integer the way QEMU's integer properties accept it (`16`, `0x10`).
pub fn parse_int(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses a PCI address property value into `(slot, function)`. QEMU reads `addr=` as
/// **hexadecimal** `SLOT[.FUNCTION]` with an optional `0x` on each part: `0x2.0x1`, `2.1`,
/// `1f.2`, and `10` is slot 0x10. The qtree format `02.0` parses too.
pub fn parse_pci_addr(s: &str) -> Option<(u8, u8)> {
    fn hex(p: &str) -> Option<u32> {
        let p = p.trim();
        let p = p
            .strip_prefix("0x")
            .or_else(|| p.strip_prefix("0X"))
            .unwrap_or(p);
        if p.is_empty() {
            return None;
        }
        u32::from_str_radix(p, 16).ok()
    }
    let (slot, func) = match s.split_once('.') {
        Some((s, f)) => (hex(s)?, hex(f)?),
        None => (hex(s)?, 0),
    };
    (slot < 32 && func < 8).then_some((slot as u8, func as u8))
}

// ---------------------------------------------------------------------------------------
// Backends and command line
// ---------------------------------------------------------------------------------------

/// The backend a device driver needs to start, for a device with id `id`:
/// `(props to append to its -device value, extra QEMU arguments)`, or `None` when the
/// driver needs no backend (or is one the harness cannot run, see [`TESTABLE_MODELS`]).
///
/// | driver | appended | extra arguments |
/// |---|---|---|
/// | `virtio-blk-pci*` | `,drive=drv-ID` | `-blockdev driver=null-co,node-name=drv-ID` |
/// | `nvme` | `,drive=drv-ID,serial=nvme-ID` | same `-blockdev` |
/// | `virtio-9p-pci*` | `,fsdev=fs-ID,mount_tag=ID` | `-fsdev local,...,readonly=on` on a shared temp dir |
/// | `ivshmem-plain` | `,memdev=shm-ID` | `-object memory-backend-ram,...,size=1M,share=on` |
/// | `ivshmem-doorbell` | `,chardev=chr-ID` | `-chardev socket,...` to an in-process ivshmem server (Linux) |
/// | `virtio-crypto-pci` | `,cryptodev=crypto-ID` | `-object cryptodev-backend-builtin,id=crypto-ID` |
/// | `virtio-pmem-pci`, `virtio-mem-pci` | `,memdev=mem-ID` | `-object memory-backend-ram,...,size=16M` (plus `maxmem`, see [`memory_args`]) |
/// | `AC97`, `ES1370` | `,audiodev=audio-ID` | `-audiodev none,id=audio-ID` |
///
/// NICs run without `netdev` (QEMU only warns `nic ID has no peer`), `virtio-rng-pci`
/// uses QEMU's built-in RNG, serial ports run without chardev.
///
/// Side effects: the first 9p device creates the shared directory
/// `$TMPDIR/pciplan-qemu-9p`; the first `ivshmem-doorbell` starts the ivshmem server
/// thread of this process.
pub fn backend_for(driver: &str, id: &str) -> Option<(String, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match driver {
        "virtio-blk-pci" | "virtio-blk-pci-transitional" | "virtio-blk-pci-non-transitional" => {
            Some((
                format!(",drive=drv-{id}"),
                s(&["-blockdev", &format!("driver=null-co,node-name=drv-{id}")]),
            ))
        }
        "nvme" => Some((
            // NVMe serials are at most 20 bytes; QEMU pads/truncates silently.
            format!(",drive=drv-{id},serial=nvme-{id}"),
            s(&["-blockdev", &format!("driver=null-co,node-name=drv-{id}")]),
        )),
        "virtio-9p-pci" | "virtio-9p-pci-transitional" | "virtio-9p-pci-non-transitional" => {
            let dir = ninep_share_dir()?;
            // mount tags are limited to 31 bytes.
            let tag: String = id.chars().take(31).collect();
            Some((
                format!(",fsdev=fs-{id},mount_tag={tag}"),
                s(&[
                    "-fsdev",
                    &format!(
                        "local,id=fs-{id},path={},security_model=none,readonly=on",
                        dir.display()
                    ),
                ]),
            ))
        }
        "ivshmem-plain" => Some((
            format!(",memdev=shm-{id}"),
            s(&[
                "-object",
                &format!("memory-backend-ram,id=shm-{id},size=1M,share=on"),
            ]),
        )),
        "ivshmem-doorbell" => {
            let name = ivshmem::server_name()?;
            Some((
                format!(",chardev=chr-{id}"),
                s(&[
                    "-chardev",
                    &format!("socket,id=chr-{id},path={name},abstract=on"),
                ]),
            ))
        }
        "virtio-crypto-pci" => Some((
            format!(",cryptodev=crypto-{id}"),
            s(&[
                "-object",
                &format!("cryptodev-backend-builtin,id=crypto-{id}"),
            ]),
        )),
        "virtio-pmem-pci" | "virtio-mem-pci" => Some((
            format!(",memdev=mem-{id}"),
            s(&[
                "-object",
                &format!("memory-backend-ram,id=mem-{id},size={MEMORY_DEVICE_MIB}M"),
            ]),
        )),
        "AC97" | "ES1370" => Some((
            format!(",audiodev=audio-{id}"),
            s(&["-audiodev", &format!("none,id=audio-{id}")]),
        )),
        _ => None,
    }
}

/// The directory shared (read-only) by all virtio-9p devices: `$TMPDIR/pciplan-qemu-9p`.
fn ninep_share_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join("pciplan-qemu-9p");
        std::fs::create_dir_all(&d).ok().map(|_| d)
    })
    .clone()
}

/// Fixed arguments of every guest (without QMP socket and firmware log):
/// `-machine q35 -accel tcg -nodefaults -S -display none`.
pub fn base_args() -> Vec<String> {
    [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-nodefaults",
        "-S",
        "-display",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Fixed arguments of every aarch64 `virt` guest:
/// `-machine virt -cpu cortex-a57 -accel tcg -nodefaults -S -display none`.
pub fn virt_base_args() -> Vec<String> {
    let mut args = base_args();
    args[1] = "virt".into();
    args.splice(2..2, ["-cpu".to_string(), "cortex-a57".to_string()]);
    args
}

/// Whether `qemu-system-aarch64` runs here (as [`qemu_or_skip`], with the same
/// `PCIPLAN_REQUIRE_QEMU=1` rule: CI never passes without it).
pub fn qemu_aarch64_or_skip() -> bool {
    static RUNS: OnceLock<bool> = OnceLock::new();
    binary_runs(&RUNS, QEMU_AARCH64, "qemu-system-arm")
}

/// True when AAVMF's files are installed.
pub fn aavmf_available() -> bool {
    std::path::Path::new(AAVMF_CODE).exists() && std::path::Path::new(AAVMF_VARS).exists()
}

/// Memory, CPU and NUMA arguments for a plan.
///
/// * default: `-m 128`;
/// * with memory devices: `-m SIZE,maxmem=SIZE+32M*count` (QEMU refuses them otherwise:
///   `memory devices (e.g. for memory hotplug) are not enabled, please specify the maxmem
///   option`);
/// * with `numa_node=N` on some line (QEMU: `Illegal numa node N` without nodes): K = N+1
///   nodes, each backed by its own `memory-backend-ram` (QEMU 7.2 refuses nodes without
///   memory: `total memory for NUMA nodes (0x0) should equal RAM size`), node size
///   `max(16, ceil(128/K) rounded up to 16)` MiB, `-m K*size`, `-smp min(K, 4)` with CPU i
///   on node i.
pub fn memory_args(plan: &QemuPlan) -> Vec<String> {
    let nodes = plan.numa_nodes() as u64;
    let node_mib = if nodes == 0 {
        0
    } else {
        let per = BASE_MEMORY_MIB.div_ceil(nodes);
        per.div_ceil(16).max(1) * 16
    };
    let ram = if nodes == 0 {
        BASE_MEMORY_MIB
    } else {
        node_mib * nodes
    };
    let mems = plan.memory_devices() as u64;
    let mut args = vec!["-m".to_string()];
    if mems > 0 {
        args.push(format!(
            "{ram}M,maxmem={}M",
            ram + 2 * MEMORY_DEVICE_MIB * mems
        ));
    } else if nodes == 0 {
        args.push(ram.to_string());
    } else {
        args.push(format!("{ram}M"));
    }
    if nodes > 0 {
        let cpus = nodes.min(4);
        args.push("-smp".into());
        args.push(cpus.to_string());
        for n in 0..nodes {
            args.push("-object".into());
            args.push(format!(
                "memory-backend-ram,id=pciplan-numa-mem{n},size={node_mib}M"
            ));
            args.push("-numa".into());
            let cpu = if n < cpus {
                format!(",cpus={n}")
            } else {
                String::new()
            };
            args.push(format!("node,nodeid={n},memdev=pciplan-numa-mem{n}{cpu}"));
        }
    }
    args
}

/// Backend arguments and the `-device` arguments for every device line of the plan. A
/// line that already names its backend (e.g. has `drive=`) is passed as written.
pub fn device_args(plan: &QemuPlan) -> Vec<String> {
    let mut args = Vec::new();
    for (i, d) in plan.devices.iter().enumerate() {
        let name = d.id.clone().unwrap_or_else(|| format!("pciplan-anon{i}"));
        let mut value = d.value.clone();
        if let Some((props, extra)) = backend_for(&d.driver, &name) {
            let first_key = props
                .trim_start_matches(',')
                .split(['=', ','])
                .next()
                .unwrap_or("")
                .to_string();
            if d.prop(&first_key).is_none() {
                value.push_str(&props);
                args.extend(extra);
            }
        }
        args.push("-device".to_string());
        args.push(value);
    }
    args
}

/// The complete guest arguments for a plan (everything except the QMP socket and the
/// firmware log): [`base_args`] + [`memory_args`] + the plan's other options + [`device_args`].
pub fn guest_args(plan: &QemuPlan) -> Vec<String> {
    let mut args = base_args();
    args.extend(memory_args(plan));
    args.extend(plan.other_args.iter().cloned());
    args.extend(device_args(plan));
    args
}

/// Whether QEMU runs here (`qemu-system-x86_64 --version`). A test that needs it returns
/// early when this is false; without QEMU that is said on standard error, and with
/// `PCIPLAN_REQUIRE_QEMU=1` (CI) it is a failure instead, so CI never passes without QEMU.
pub fn qemu_or_skip() -> bool {
    static RUNS: OnceLock<bool> = OnceLock::new();
    binary_runs(&RUNS, QEMU_BINARY, "qemu-system-x86")
}

/// Whether `binary --version` succeeds (asked once, kept in `runs`); when not, says so
/// naming the Debian `package` through [`super::missing`] (a failure under
/// `PCIPLAN_REQUIRE_QEMU=1`).
fn binary_runs(runs: &OnceLock<bool>, binary: &str, package: &str) -> bool {
    let runs = *runs.get_or_init(|| {
        Command::new(binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !runs {
        super::missing(
            "PCIPLAN_REQUIRE_QEMU",
            &format!("{binary} does not run (install {package})"),
        );
    }
    runs
}

// ---------------------------------------------------------------------------------------
// The running guest
// ---------------------------------------------------------------------------------------

static GUEST_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running QEMU guest (paused with `-S`) and its QMP connection. Killed on drop.
pub struct Qemu {
    binary: &'static str,
    child: Child,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    dir: PathBuf,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    args: Vec<String>,
    plan: QemuPlan,
    events: Vec<Value>,
    greeting: Value,
}

impl Qemu {
    /// Starts a guest for plan text in "qemu args" format (see [`QemuPlan::parse`]).
    ///
    /// Returns [`Error::Exited`] with QEMU's stderr when QEMU rejects the configuration,
    /// e.g. `PCI: slot 3 function 0 not available for virtio-net-pci, in use by ...`.
    pub fn start(plan: &str) -> Result<Qemu, Error> {
        Qemu::start_plan(&QemuPlan::parse(plan)?, &[])
    }

    /// Like [`Qemu::start`] with extra QEMU arguments appended to the command line
    /// (e.g. `["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]`).
    pub fn start_with_args(plan: &str, extra: &[&str]) -> Result<Qemu, Error> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Qemu::start_plan(&QemuPlan::parse(plan)?, &extra)
    }

    /// Like [`Qemu::start`], booting OVMF (UEFI) instead of SeaBIOS: its code read-only
    /// and a private copy of its variable store, as libvirt does for `<os firmware='efi'>`.
    pub fn start_uefi(plan: &str) -> Result<Qemu, Error> {
        Qemu::start_uefi_with_args(plan, &[])
    }

    /// [`Qemu::start_uefi`] with extra QEMU arguments, as [`Qemu::start_with_args`].
    pub fn start_uefi_with_args(plan: &str, more: &[&str]) -> Result<Qemu, Error> {
        let n = GUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let vars = std::env::temp_dir().join(format!("pciplan-ovmf-{}-{n}.fd", std::process::id()));
        std::fs::copy(OVMF_VARS, &vars)
            .map_err(|e| Error::Spawn(format!("cannot copy {OVMF_VARS}: {e}")))?;
        let mut extra = vec![
            "-drive".to_string(),
            format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
            "-drive".to_string(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        ];
        extra.extend(more.iter().map(|s| s.to_string()));
        let vm = Qemu::start_plan(&QemuPlan::parse(plan)?, &extra);
        // QEMU keeps the file open; the name is not needed any more.
        let _ = std::fs::remove_file(&vars);
        vm
    }

    /// Starts a guest for an already parsed plan plus `extra` arguments.
    pub fn start_plan(plan: &QemuPlan, extra: &[String]) -> Result<Qemu, Error> {
        Qemu::spawn(QEMU_BINARY, guest_args(plan), plan, extra)
    }

    /// Starts an aarch64 `virt` guest (`qemu-system-aarch64`, [`virt_base_args`], paused,
    /// no firmware) for an already parsed plan plus `extra` arguments; memory and NUMA as
    /// [`memory_args`] says. No firmware log (there is no `isa-debugcon` on `virt`).
    pub fn start_virt(plan: &QemuPlan, extra: &[String]) -> Result<Qemu, Error> {
        let mut args = virt_base_args();
        args.extend(memory_args(plan));
        args.extend(plan.other_args.iter().cloned());
        args.extend(device_args(plan));
        Qemu::spawn(QEMU_AARCH64, args, plan, extra)
    }

    /// [`Qemu::start_virt`] booting AAVMF (its code read-only, a private copy of its
    /// variable store), for [`Qemu::run_uefi_firmware`].
    pub fn start_virt_uefi(plan: &QemuPlan, extra: &[String]) -> Result<Qemu, Error> {
        let n = GUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let vars =
            std::env::temp_dir().join(format!("pciplan-aavmf-{}-{n}.fd", std::process::id()));
        std::fs::copy(AAVMF_VARS, &vars)
            .map_err(|e| Error::Spawn(format!("cannot copy {AAVMF_VARS}: {e}")))?;
        let mut more = vec![
            "-drive".to_string(),
            format!("if=pflash,format=raw,readonly=on,file={AAVMF_CODE}"),
            "-drive".to_string(),
            format!("if=pflash,format=raw,file={}", vars.display()),
        ];
        more.extend(extra.iter().cloned());
        let vm = Qemu::start_virt(plan, &more);
        let _ = std::fs::remove_file(&vars);
        vm
    }

    /// Runs `binary` with `args` + `extra` (+ the SeaBIOS log on x86_64) and a QMP socket.
    fn spawn(
        binary: &'static str,
        mut args: Vec<String>,
        plan: &QemuPlan,
        extra: &[String],
    ) -> Result<Qemu, Error> {
        let n = GUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pciplan-qemu-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Spawn(format!("cannot create {}: {e}", dir.display())))?;
        let sock = dir.join("qmp.sock");
        let fwlog = dir.join("firmware.log");

        args.extend(extra.iter().cloned());
        if binary == QEMU_BINARY {
            // SeaBIOS prints its debug log to I/O port 0x402; an ISA device, no PCI impact.
            args.extend([
                "-chardev".to_string(),
                format!("file,id=pciplan-fwlog,path={}", fwlog.display()),
                "-device".to_string(),
                "isa-debugcon,iobase=0x402,chardev=pciplan-fwlog".to_string(),
            ]);
        }
        args.extend([
            "-qmp".to_string(),
            format!("unix:{},server=on,wait=off", sock.display()),
        ]);

        // Through `sh` only to switch off core dumps (a second vmware-svga makes QEMU
        // abort); `exec` keeps the pid, so the child is QEMU itself.
        let mut child = match Command::new("sh")
            .arg("-c")
            .arg("ulimit -c 0 2>/dev/null; exec \"$0\" \"$@\"")
            .arg(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(Error::Spawn(e.to_string()));
            }
        };
        // Drain stderr continuously so QEMU never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = child.stderr.take().map(|mut pipe| {
            let buf = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    match pipe.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => buf
                            .lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&chunk[..k])),
                    }
                }
            })
        });

        // A guard so that every early return kills QEMU and cleans up.
        let mut pending = PendingChild {
            child: Some(child),
            dir: dir.clone(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let stream = loop {
            let child = pending.child.as_mut().unwrap();
            if let Ok(Some(status)) = child.try_wait() {
                if let Some(t) = stderr_thread {
                    let _ = t.join();
                }
                let stderr = stderr.lock().unwrap().clone();
                return Err(Error::Exited {
                    status: status.to_string(),
                    stderr,
                });
            }
            if sock.exists() {
                if let Ok(s) = UnixStream::connect(&sock) {
                    break s;
                }
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "no QMP socket after {START_TIMEOUT:?}; stderr: {}",
                    stderr.lock().unwrap()
                )));
            }
            thread::sleep(Duration::from_millis(2));
        };
        let _ = stream.set_read_timeout(Some(COMMAND_TIMEOUT));
        let writer = stream
            .try_clone()
            .map_err(|e| Error::Spawn(format!("cannot clone the QMP socket: {e}")))?;
        let mut reader = BufReader::new(stream);

        // QEMU creates the socket while parsing options, before it realizes the devices:
        // an early error shows up as EOF instead of the greeting.
        let mut line = String::new();
        let greeting = match reader.read_line(&mut line) {
            Ok(k) if k > 0 => serde_json::from_str::<Value>(&line).ok(),
            _ => None,
        };
        let greeting = match greeting {
            Some(g) if g.get("QMP").is_some() => g,
            _ => {
                let child = pending.child.as_mut().unwrap();
                let status = wait_timeout(child, Duration::from_secs(5));
                if let Some(t) = stderr_thread {
                    if status.is_some() {
                        let _ = t.join();
                    }
                }
                let stderr = stderr.lock().unwrap().clone();
                return match status {
                    Some(status) => Err(Error::Exited { status, stderr }),
                    None => Err(Error::Timeout(format!(
                        "no QMP greeting (got {line:?}); stderr: {stderr}"
                    ))),
                };
            }
        };

        let mut vm = Qemu {
            binary,
            child: pending.child.take().unwrap(),
            reader,
            writer,
            dir,
            stderr,
            stderr_thread,
            args,
            plan: plan.clone(),
            events: Vec::new(),
            greeting,
        };
        // The greeting comes from the monitor thread as soon as QEMU accepted the
        // connection, possibly before the devices were realized; commands run only once
        // the main loop runs. So a device error surfaces here as a closed connection.
        if let Err(e) = vm.execute("qmp_capabilities", Value::Null) {
            if e.is_transport() {
                if let Some(status) = wait_timeout(&mut vm.child, Duration::from_secs(5)) {
                    if let Some(t) = vm.stderr_thread.take() {
                        let _ = t.join();
                    }
                    return Err(Error::Exited {
                        status,
                        stderr: vm.stderr(),
                    });
                }
            }
            return Err(e.into());
        }
        Ok(vm)
    }

    /// The full QEMU command line (without the binary name).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The command line as one shell-like string, for failure messages.
    pub fn command_line(&self) -> String {
        let mut s = self.binary.to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// The plan the guest was started from.
    pub fn plan(&self) -> &QemuPlan {
        &self.plan
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The QMP greeting (`{"QMP": {"version": ...}}`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// What QEMU printed on stderr so far (warnings such as `nic net0 has no peer`).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Asynchronous QMP events received so far (skipped by [`Qemu::execute`]), e.g.
    /// `RESUME`, `STOP`, `DEVICE_DELETED`.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Runs a QMP command and returns its `return` value. `args` is the `arguments`
    /// object, or `Value::Null` for none. Events arriving meanwhile are stored in
    /// [`Qemu::events`].
    pub fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": cmd });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        if let Err(e) = self
            .writer
            .write_all(text.as_bytes())
            .and_then(|_| self.writer.flush())
        {
            return Err(self.transport_error(format!("cannot send {cmd}: {e}")));
        }
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(self.transport_error(format!("QMP closed during {cmd}"))),
                Err(e) => {
                    return Err(self.transport_error(format!("reading the answer to {cmd}: {e}")))
                }
                Ok(_) => {}
            }
            let v: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => return Err(QmpError::transport(format!("bad QMP line {line:?}: {e}"))),
            };
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError {
                    class: e["class"].as_str().unwrap_or("").to_string(),
                    desc: e["desc"].as_str().unwrap_or("").to_string(),
                });
            }
            return Err(QmpError::transport(format!("unexpected QMP line {line:?}")));
        }
    }

    fn transport_error(&mut self, what: String) -> QmpError {
        let status = wait_timeout(&mut self.child, Duration::from_millis(200));
        let status = status.map(|s| format!(" (QEMU {s})")).unwrap_or_default();
        QmpError::transport(format!(
            "{what}{status}; stderr: {}",
            self.stderr().trim_end()
        ))
    }

    /// Runs a human monitor command (`human-monitor-command`) and returns its output.
    pub fn hmp(&mut self, command_line: &str) -> Result<String, QmpError> {
        let r = self.execute(
            "human-monitor-command",
            json!({ "command-line": command_line }),
        )?;
        Ok(r.as_str().unwrap_or("").replace("\r\n", "\n"))
    }

    /// `qom-get` of `property` on QOM `path` (e.g. `/machine/peripheral/rp1`, `hotplug`).
    pub fn qom_get(&mut self, path: &str, property: &str) -> Result<Value, QmpError> {
        self.execute("qom-get", json!({ "path": path, "property": property }))
    }

    /// The raw text of `info qtree`.
    pub fn qtree_text(&mut self) -> Result<String, Error> {
        Ok(self.hmp("info qtree")?)
    }

    /// All PCI devices of the qtree (built-ins with an empty id too), see [`parse_qtree`].
    pub fn qtree_all(&mut self) -> Result<Vec<QdevPlacement>, Error> {
        Ok(parse_qtree(&self.qtree_text()?))
    }

    /// The placement of every PCI device that has an id, read from `info qtree` (works
    /// without firmware, so it shows the plan's bus/addr directly; bus numbers in the guest
    /// need [`Qemu::run_firmware`]).
    pub fn qtree(&mut self) -> Result<BTreeMap<String, QdevPlacement>, Error> {
        Ok(qtree_by_id(self.qtree_all()?))
    }

    /// Compares the qtree with the plan's `bus=`, `addr=` and `multifunction=on` of every
    /// device line with an id; returns one message per mismatch (empty = all placed as
    /// planned). See [`placement_mismatches`].
    pub fn placement_mismatches(&mut self) -> Result<Vec<String>, Error> {
        let tree = self.qtree()?;
        Ok(placement_mismatches(&self.plan, &tree))
    }

    /// `device_del` of `id`: `Ok(())` when QEMU accepted the unplug request (with `-S`
    /// nothing completes: the device stays), `Err(desc)` with QEMU's message otherwise.
    pub fn device_del(&mut self, id: &str) -> Result<(), String> {
        self.execute("device_del", json!({ "id": id }))
            .map(|_| ())
            .map_err(|e| e.desc)
    }

    /// Classified `device_del`: [`Unplug::Accepted`], [`Unplug::Refused`] when QEMU says
    /// the device cannot be hot-unplugged (see [`is_hotplug_refusal`]), `Err(desc)` for
    /// anything else (unknown id, unplug already pending, QEMU died).
    pub fn unplug(&mut self, id: &str) -> Result<Unplug, String> {
        match self.device_del(id) {
            Ok(()) => Ok(Unplug::Accepted),
            Err(desc) if is_hotplug_refusal(&desc) => Ok(Unplug::Refused(desc)),
            Err(desc) => Err(desc),
        }
    }

    /// True when QEMU refuses to hot-unplug `id`, false when it accepts the request.
    ///
    /// # Panics
    /// On any other error (e.g. `Device 'x' not found`), because the test is then wrong.
    /// Each device can be probed once: a second request for an accepted device fails with
    /// `Device ID is already in the process of unplug`.
    pub fn unplug_refused(&mut self, id: &str) -> bool {
        match self.unplug(id) {
            Ok(Unplug::Accepted) => false,
            Ok(Unplug::Refused(_)) => true,
            Err(e) => panic!("device_del {id}: unexpected error: {e}"),
        }
    }

    /// `query-pci`, parsed. Before the firmware ran, bridges have secondary bus 0 and
    /// nothing behind them is listed.
    pub fn query_pci(&mut self) -> Result<PciTree, Error> {
        let v = self.execute("query-pci", Value::Null)?;
        PciTree::from_qmp(&v)
    }

    /// The SeaBIOS debug log so far (port 0x402), e.g. `PCI: out of I/O address space`.
    /// At most the first 4 MiB (a firmware looping over bus numbers writes without end).
    pub fn firmware_log(&self) -> String {
        let mut buf = Vec::new();
        if let Ok(f) = std::fs::File::open(self.dir.join("firmware.log")) {
            let _ = f.take(4 << 20).read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Lets SeaBIOS run: `cont`, poll `query-pci` every 5 ms until the firmware has
    /// numbered every bridge and initialised every device ([`firmware_done`]), or the
    /// firmware log shows that it failed ([`firmware_failure`]) or finished PCI setup
    /// without getting there, or `timeout` passes; then `stop` and read `query-pci` once
    /// more. The guest stays paused afterwards, QMP keeps working.
    pub fn run_firmware(&mut self, timeout: Duration) -> Result<FirmwareRun, Error> {
        let start = Instant::now();
        self.execute("cont", Value::Null)?;
        let mut settled = false;
        let mut failure = None;
        loop {
            thread::sleep(Duration::from_millis(5));
            // Log first: if it says PCI setup is over, the query-pci below is final.
            let log = self.firmware_log();
            let pci = self.query_pci()?;
            if firmware_done(&pci) {
                settled = true;
                break;
            }
            failure = firmware_failure(&log);
            if failure.is_none() && firmware_pci_finished(&log) {
                failure = Some(
                    "SeaBIOS finished PCI setup but left bridges unnumbered or devices \
                     uninitialised"
                        .to_string(),
                );
            }
            if failure.is_some() {
                break;
            }
            if start.elapsed() > timeout {
                failure = Some(format!(
                    "SeaBIOS did not finish PCI setup within {timeout:?}"
                ));
                break;
            }
        }
        self.execute("stop", Value::Null)?;
        let elapsed = start.elapsed();
        let pci = self.query_pci()?;
        Ok(FirmwareRun {
            settled,
            failure,
            elapsed,
            pci,
        })
    }

    /// Lets OVMF run (after [`Qemu::start_uefi`]): `cont`, poll `query-pci` every 100 ms
    /// until every bridge is numbered and either every memory BAR of every endpoint is
    /// assigned (and the tree is unchanged on the next poll), or the tree has not changed
    /// for [`UEFI_QUIET`]: OVMF programs all resources in one pass, and when they do not fit
    /// (e.g. one I/O window too many) it leaves the devices behind the root ports with no
    /// BAR at all (observed); then `stop`. OVMF writes no log here, so `failure` only says
    /// that it timed out.
    pub fn run_uefi_firmware(&mut self, timeout: Duration) -> Result<FirmwareRun, Error> {
        let start = Instant::now();
        self.execute("cont", Value::Null)?;
        let mut last: Option<(PciTree, Instant)> = None;
        let mut settled = false;
        while start.elapsed() < timeout {
            thread::sleep(Duration::from_millis(100));
            let pci = self.query_pci()?;
            let numbered = pci
                .devices()
                .iter()
                .all(|d| d.bridge.as_ref().is_none_or(|b| b.secondary != 0));
            let same = last.as_ref().is_some_and(|(p, _)| *p == pci);
            if numbered && same {
                let since = last.as_ref().map_or(start, |(_, t)| *t);
                if uefi_resources_assigned(&pci) || since.elapsed() > UEFI_QUIET {
                    settled = true;
                    break;
                }
            }
            if !same {
                last = Some((pci, Instant::now()));
            }
        }
        self.execute("stop", Value::Null)?;
        let elapsed = start.elapsed();
        let pci = self.query_pci()?;
        Ok(FirmwareRun {
            settled,
            failure: (!settled)
                .then(|| format!("OVMF did not finish PCI setup within {timeout:?}")),
            elapsed,
            pci,
        })
    }

    /// Kills QEMU now (also done on drop).
    pub fn kill(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Kills a QEMU that never became a [`Qemu`] and removes its directory.
struct PendingChild {
    child: Option<Child>,
    dir: PathBuf,
}

impl Drop for PendingChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s.to_string());
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------------------
// Unplug classification
// ---------------------------------------------------------------------------------------

/// Result of a hot-unplug request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unplug {
    /// QEMU accepted the request (the device is hot-unpluggable).
    Accepted,
    /// QEMU refused because the device cannot be hot-unplugged where it sits; the message.
    Refused(String),
}

/// True for the `device_del` errors that mean "not hot-unpluggable here" in QEMU 7.2:
/// `Bus 'pcie.0' does not support hotplugging` (also `Bus 'rp2' ...` behind a
/// `hotplug=off` port in ACPI mode), `Device 'x' does not support hotplugging` and
/// `Hot-unplug failed: unsupported by the port device 'rp10'` (native PCIe path, e.g.
/// behind a pxb-pcie). Not a refusal: `Device 'x' not found`, `Device x is already in the
/// process of unplug`, transport errors.
pub fn is_hotplug_refusal(desc: &str) -> bool {
    desc.contains("does not support hotplugging")
        || desc.contains("Hot-unplug failed: unsupported by the port device")
}

// ---------------------------------------------------------------------------------------
// qtree
// ---------------------------------------------------------------------------------------

/// Where a PCI device sits according to `info qtree`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdevPlacement {
    /// qdev id (empty for built-in devices such as `mch`).
    pub id: String,
    /// Driver, e.g. `virtio-net-pci`.
    pub driver: String,
    /// Name of the parent bus: `pcie.0`, or the id of the controller that provides it
    /// (`rp1` for a root port `rp1`, `pxb1` for a pxb-pcie `pxb1`).
    pub bus: String,
    /// Slot on that bus (from `addr = 02.0`).
    pub slot: u8,
    /// Function on that bus.
    pub function: u8,
    /// The `multifunction` property.
    pub multifunction: bool,
}

/// Parses `info qtree` text into the PCI devices it lists (every `dev:` node that has an
/// `addr = SS.F` property), in qtree order. Works by indentation: a device's bus is the
/// nearest enclosing `bus:` line, its properties are the lines indented below it.
pub fn parse_qtree(text: &str) -> Vec<QdevPlacement> {
    enum Node {
        Bus(String),
        Dev(usize),
    }
    struct Pending {
        id: String,
        driver: String,
        bus: String,
        addr: Option<(u8, u8)>,
        multifunction: bool,
    }
    let mut stack: Vec<(usize, Node)> = Vec::new();
    let mut devs: Vec<Pending> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        let content = line.trim_start();
        if content.is_empty() {
            continue;
        }
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        if let Some(name) = content.strip_prefix("bus: ") {
            stack.push((indent, Node::Bus(name.trim().to_string())));
        } else if let Some(rest) = content.strip_prefix("dev: ") {
            let (driver, id) = match rest.split_once(", id ") {
                Some((d, id)) => (d.trim(), id.trim().trim_matches('"')),
                None => (rest.trim(), ""),
            };
            let bus = stack
                .iter()
                .rev()
                .find_map(|(_, n)| match n {
                    Node::Bus(b) => Some(b.clone()),
                    Node::Dev(_) => None,
                })
                .unwrap_or_default();
            devs.push(Pending {
                id: id.to_string(),
                driver: driver.to_string(),
                bus,
                addr: None,
                multifunction: false,
            });
            stack.push((indent, Node::Dev(devs.len() - 1)));
        } else if let Some((_, Node::Dev(idx))) = stack.last() {
            if let Some((key, value)) = content.split_once(" = ") {
                match key.trim() {
                    "addr" => devs[*idx].addr = parse_pci_addr(value.trim()),
                    "multifunction" => devs[*idx].multifunction = value.trim() == "true",
                    _ => {}
                }
            }
        }
    }
    devs.into_iter()
        .filter_map(|d| {
            let (slot, function) = d.addr?;
            Some(QdevPlacement {
                id: d.id,
                driver: d.driver,
                bus: d.bus,
                slot,
                function,
                multifunction: d.multifunction,
            })
        })
        .collect()
}

/// The devices of [`parse_qtree`] that have an id, keyed by id.
pub fn qtree_by_id(devices: Vec<QdevPlacement>) -> BTreeMap<String, QdevPlacement> {
    devices
        .into_iter()
        .filter(|d| !d.id.is_empty())
        .map(|d| (d.id.clone(), d))
        .collect()
}

/// Checks a qtree against the plan: for each device line with an id, the device must exist
/// with the same driver, on the line's `bus=` (if given), at its `addr=` (if given), and
/// have `multifunction` set if the line says `multifunction=on`.
pub fn placement_mismatches(
    plan: &QemuPlan,
    tree: &BTreeMap<String, QdevPlacement>,
) -> Vec<String> {
    let mut out = Vec::new();
    for d in &plan.devices {
        let Some(id) = &d.id else { continue };
        let Some(t) = tree.get(id) else {
            out.push(format!("{id}: not in the qtree"));
            continue;
        };
        if t.driver != d.driver {
            out.push(format!(
                "{id}: driver {} in the qtree, {} in the plan",
                t.driver, d.driver
            ));
        }
        if let Some(bus) = d.prop("bus") {
            if t.bus != bus {
                out.push(format!(
                    "{id}: on bus {} in the qtree, {bus} in the plan",
                    t.bus
                ));
            }
        }
        if let Some(a) = d.prop("addr") {
            match parse_pci_addr(a) {
                Some((s, f)) if (s, f) == (t.slot, t.function) => {}
                _ => out.push(format!(
                    "{id}: at {:02x}.{:x} in the qtree, addr={a} in the plan",
                    t.slot, t.function
                )),
            }
        }
        if matches!(d.prop("multifunction"), Some("on" | "true" | "yes")) && !t.multifunction {
            out.push(format!("{id}: multifunction is off in the qtree"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// query-pci
// ---------------------------------------------------------------------------------------

/// An address window `[base, limit]` (inclusive), as the bridge registers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub base: u64,
    /// Last address (inclusive).
    pub limit: u64,
}

impl AddrRange {
    /// Number of addresses in the window.
    pub fn size(&self) -> u64 {
        self.limit - self.base + 1
    }
}

/// Kind of a BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// I/O port space.
    Io,
    /// Memory space.
    Memory,
}

/// One BAR (region) of a PCI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciBar {
    /// BAR index (6 = expansion ROM).
    pub bar: u8,
    /// I/O or memory.
    pub kind: BarKind,
    /// Assigned address, `None` while unassigned (QEMU reports -1).
    pub address: Option<u64>,
    /// Size in bytes.
    pub size: u64,
    /// Prefetchable memory.
    pub prefetch: bool,
    /// 64-bit memory BAR.
    pub mem64: bool,
}

/// The bridge part of a PCI-PCI bridge (root port, switch port, pci bridges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciBridge {
    /// The bus the bridge itself sits on (primary).
    pub primary: u8,
    /// Secondary bus number (0 until the firmware numbered it).
    pub secondary: u8,
    /// Subordinate (highest) bus number below the bridge.
    pub subordinate: u8,
    /// I/O window; `None` when the bridge forwards no I/O (limit < base: what SeaBIOS
    /// programs for bridges without I/O BARs below them, unless `io-reserve` asks for one;
    /// also QEMU's reset state, so every window is `None` before the firmware ran).
    pub io_range: Option<AddrRange>,
    /// Non-prefetchable memory window, `None` when closed.
    pub memory_range: Option<AddrRange>,
    /// Prefetchable memory window, `None` when closed.
    pub prefetchable_range: Option<AddrRange>,
    /// Devices on the secondary bus (and recursively below).
    pub devices: Vec<PciDevice>,
}

/// One PCI function as `query-pci` reports it (guest view: bus numbers as programmed by
/// the firmware).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Guest bus number.
    pub bus: u8,
    /// Slot.
    pub slot: u8,
    /// Function.
    pub function: u8,
    /// qdev id (empty for built-in devices).
    pub qdev_id: String,
    /// Class code (`0x0604` = PCI bridge, `0x0600` = host bridge, `0x0200` = Ethernet).
    pub class: u16,
    /// Class description, e.g. `PCI bridge`.
    pub class_desc: String,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Interrupt pin (0 = none, 1 = INTA ...).
    pub irq_pin: u8,
    /// Interrupt line as programmed (0 until the firmware initialised the device).
    pub irq: Option<u8>,
    /// BARs.
    pub bars: Vec<PciBar>,
    /// Present for PCI-PCI bridges.
    pub bridge: Option<PciBridge>,
}

impl PciDevice {
    /// `BB:SS.F` in hex, like lspci.
    pub fn bdf(&self) -> String {
        format!("{:02x}:{:02x}.{:x}", self.bus, self.slot, self.function)
    }

    /// True for PCI-PCI bridges.
    pub fn is_bridge(&self) -> bool {
        self.bridge.is_some()
    }

    /// The I/O BARs.
    pub fn io_bars(&self) -> impl Iterator<Item = &PciBar> {
        self.bars.iter().filter(|b| b.kind == BarKind::Io)
    }

    fn from_qmp(v: &Value) -> Result<PciDevice, Error> {
        let num = |v: &Value, key: &str| -> Result<i64, Error> {
            v.get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| Error::Parse(format!("query-pci device without {key}: {v}")))
        };
        let mut bars = Vec::new();
        for r in v
            .get("regions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let address = r.get("address").and_then(Value::as_i64).unwrap_or(-1);
            bars.push(PciBar {
                bar: num(r, "bar")? as u8,
                kind: if r.get("type").and_then(Value::as_str) == Some("io") {
                    BarKind::Io
                } else {
                    BarKind::Memory
                },
                address: (address != -1).then_some(address as u64),
                size: num(r, "size")? as u64,
                prefetch: r.get("prefetch").and_then(Value::as_bool).unwrap_or(false),
                mem64: r
                    .get("mem_type_64")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        let bridge = match v.get("pci_bridge") {
            None => None,
            Some(b) => {
                let bus = b
                    .get("bus")
                    .ok_or_else(|| Error::Parse(format!("pci_bridge without bus: {b}")))?;
                let range = |key: &str| -> Option<AddrRange> {
                    let r = bus.get(key)?;
                    let base = r.get("base")?.as_i64()? as u64;
                    let limit = r.get("limit")?.as_i64()? as u64;
                    (limit >= base).then_some(AddrRange { base, limit })
                };
                let mut devices = Vec::new();
                for d in b
                    .get("devices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    devices.push(PciDevice::from_qmp(d)?);
                }
                Some(PciBridge {
                    primary: num(bus, "number")? as u8,
                    secondary: num(bus, "secondary")? as u8,
                    subordinate: num(bus, "subordinate")? as u8,
                    io_range: range("io_range"),
                    memory_range: range("memory_range"),
                    prefetchable_range: range("prefetchable_range"),
                    devices,
                })
            }
        };
        let class = v.get("class_info").cloned().unwrap_or(Value::Null);
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        Ok(PciDevice {
            bus: num(v, "bus")? as u8,
            slot: num(v, "slot")? as u8,
            function: num(v, "function")? as u8,
            qdev_id: v
                .get("qdev_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            class: num(&class, "class")? as u16,
            class_desc: class
                .get("desc")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            vendor: num(&id, "vendor")? as u16,
            device: num(&id, "device")? as u16,
            irq_pin: v.get("irq_pin").and_then(Value::as_i64).unwrap_or(0) as u8,
            irq: v.get("irq").and_then(Value::as_i64).map(|i| i as u8),
            bars,
            bridge,
        })
    }
}

/// A root bus of `query-pci`: `pcie.0` (bus 0) or a pxb-pcie bus (its `bus_nr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciRootBus {
    /// Bus number.
    pub bus: u8,
    /// Devices on it (bridges contain their children).
    pub devices: Vec<PciDevice>,
}

/// The parsed answer of `query-pci`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PciTree {
    /// Root buses in QEMU's order (pxb buses come before bus 0).
    pub root_buses: Vec<PciRootBus>,
}

impl PciTree {
    /// Parses the `return` value of `query-pci`.
    pub fn from_qmp(v: &Value) -> Result<PciTree, Error> {
        let arr = v
            .as_array()
            .ok_or_else(|| Error::Parse(format!("query-pci: {v}")))?;
        let mut root_buses = Vec::new();
        for b in arr {
            let bus = b
                .get("bus")
                .and_then(Value::as_i64)
                .ok_or_else(|| Error::Parse(format!("query-pci bus without number: {b}")))?;
            let mut devices = Vec::new();
            for d in b
                .get("devices")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                devices.push(PciDevice::from_qmp(d)?);
            }
            root_buses.push(PciRootBus {
                bus: bus as u8,
                devices,
            });
        }
        Ok(PciTree { root_buses })
    }

    /// Every device, depth first (a bridge before the devices behind it).
    pub fn devices(&self) -> Vec<&PciDevice> {
        fn walk<'a>(ds: &'a [PciDevice], out: &mut Vec<&'a PciDevice>) {
            for d in ds {
                out.push(d);
                if let Some(b) = &d.bridge {
                    walk(&b.devices, out);
                }
            }
        }
        let mut out = Vec::new();
        for r in &self.root_buses {
            walk(&r.devices, &mut out);
        }
        out
    }

    /// Every PCI-PCI bridge, depth first.
    pub fn bridges(&self) -> Vec<&PciDevice> {
        self.devices()
            .into_iter()
            .filter(|d| d.is_bridge())
            .collect()
    }

    /// The device with qdev id `id`.
    pub fn device(&self, id: &str) -> Option<&PciDevice> {
        self.devices().into_iter().find(|d| d.qdev_id == id)
    }

    /// The bridge part of device `id` (None if absent or not a bridge).
    pub fn bridge(&self, id: &str) -> Option<&PciBridge> {
        self.device(id).and_then(|d| d.bridge.as_ref())
    }

    /// The devices with an id, keyed by id.
    pub fn by_id(&self) -> BTreeMap<String, &PciDevice> {
        self.devices()
            .into_iter()
            .filter(|d| !d.qdev_id.is_empty())
            .map(|d| (d.qdev_id.clone(), d))
            .collect()
    }
}

/// True when the firmware is done with PCI: every bridge has a secondary bus number and
/// every device with an interrupt pin has its interrupt line programmed (SeaBIOS does that
/// last, after numbering buses and assigning BARs and windows).
pub fn firmware_done(pci: &PciTree) -> bool {
    let devices = pci.devices();
    !devices.is_empty()
        && devices.iter().all(|d| {
            d.bridge.as_ref().is_none_or(|b| b.secondary != 0)
                && (d.irq_pin == 0 || d.irq.unwrap_or(0) != 0)
        })
}

/// True when the firmware numbered every bridge and assigned every memory BAR of every
/// endpoint (what OVMF always does once its PCI bus driver ran).
pub fn uefi_resources_assigned(pci: &PciTree) -> bool {
    let devices = pci.devices();
    !devices.is_empty()
        && devices.iter().all(|d| match &d.bridge {
            Some(b) => b.secondary != 0,
            None => d
                .bars
                .iter()
                .filter(|b| b.kind == BarKind::Memory && b.bar < 6)
                .all(|b| b.address.is_some()),
        })
}

/// Why SeaBIOS gave up on PCI, from its log, if it did:
/// * `PCI: out of I/O address space` (also 32-bit memory): it stops there;
/// * `PCI bus numbers exhausted: PCI: secondary bus = 0xff -> 0x0`: bus numbers wrapped
///   past 255 (e.g. a pxb-pcie with `bus_nr=254` and three root ports), after which it
///   loops for ever;
/// * any line with `panic`.
///
/// Only complete lines count: the log is read while SeaBIOS writes it, and a line it is
/// still writing (`PCI: out of I/O address spa`) is read whole at the next poll.
pub fn firmware_failure(log: &str) -> Option<String> {
    for l in complete_lines(log).lines() {
        let l = l.trim();
        if l.starts_with("PCI: out of") || l.contains("PANIC") || l.contains("panic") {
            return Some(l.to_string());
        }
        if l.starts_with("PCI: secondary bus = ") && l.ends_with("-> 0x0") {
            return Some(format!("PCI bus numbers exhausted: {l}"));
        }
    }
    None
}

/// True when the SeaBIOS log shows it is past PCI setup (it prints `Found N cpu(s) max
/// supported N cpu(s)` right after).
pub fn firmware_pci_finished(log: &str) -> bool {
    complete_lines(log)
        .lines()
        .any(|l| l.starts_with("Found ") && l.contains(" cpu(s)"))
}

/// `log` up to its last newline: the lines the firmware has finished writing.
fn complete_lines(log: &str) -> &str {
    log.rfind('\n').map_or("", |i| &log[..=i])
}

/// Outcome of [`Qemu::run_firmware`].
#[derive(Debug, Clone)]
pub struct FirmwareRun {
    /// The firmware finished PCI setup ([`firmware_done`]) within the timeout.
    pub settled: bool,
    /// Why it did not settle: a fatal firmware message ([`firmware_failure`]), e.g.
    /// `PCI: out of I/O address space`, or a note that it finished or timed out without
    /// numbering everything. `None` when settled.
    pub failure: Option<String>,
    /// Time from `cont` to `stop`.
    pub elapsed: Duration,
    /// `query-pci` after `stop`.
    pub pci: PciTree,
}

// ---------------------------------------------------------------------------------------
// ivshmem server for ivshmem-doorbell
// ---------------------------------------------------------------------------------------

/// A minimal ivshmem server (the protocol of QEMU's `ivshmem-server`): for each client it
/// sends the protocol version 0, the client's peer id and then `-1` together with the
/// shared-memory fd (SCM_RIGHTS), and then keeps the connection open. One server per test
/// process, on an abstract Unix socket `pciplan-ivshmem-PID`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod ivshmem {
    use std::io::{self, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
    use std::sync::OnceLock;
    use std::thread;

    pub fn server_name() -> Option<String> {
        static NAME: OnceLock<Option<String>> = OnceLock::new();
        NAME.get_or_init(|| start().ok()).clone()
    }

    fn start() -> io::Result<String> {
        let name = format!("pciplan-ivshmem-{}", std::process::id());
        let listener = UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        let path = std::env::temp_dir().join(format!("{name}.shm"));
        let shm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        shm.set_len(1 << 20)?;
        let _ = std::fs::remove_file(&path);
        thread::spawn(move || {
            let mut next_peer: i64 = 0;
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let peer = next_peer;
                next_peer = (next_peer + 1) % 65536;
                if greet(&mut conn, peer, shm.as_raw_fd()).is_ok() {
                    // Keep the connection until QEMU closes it.
                    thread::spawn(move || {
                        let _ = io::copy(&mut conn, &mut io::sink());
                    });
                }
            }
        });
        Ok(name)
    }

    fn greet(conn: &mut UnixStream, peer: i64, fd: RawFd) -> io::Result<()> {
        conn.write_all(&0i64.to_le_bytes())?; // protocol version
        conn.write_all(&peer.to_le_bytes())?; // the client's id
        send_with_fd(conn, &(-1i64).to_le_bytes(), fd) // shared memory
    }

    #[repr(C)]
    struct IoVec {
        base: *const u8,
        len: usize,
    }

    #[repr(C)]
    struct MsgHdr {
        name: *mut u8,
        namelen: u32,
        iov: *const IoVec,
        iovlen: usize,
        control: *mut u8,
        controllen: usize,
        flags: i32,
    }

    /// `struct cmsghdr` followed by one fd, padded to CMSG_SPACE(sizeof(int)) = 24.
    #[repr(C, align(8))]
    struct FdCmsg {
        len: usize,
        level: i32,
        kind: i32,
        fd: i32,
        pad: i32,
    }

    extern "C" {
        fn sendmsg(sockfd: i32, msg: *const MsgHdr, flags: i32) -> isize;
    }

    const SOL_SOCKET: i32 = 1;
    const SCM_RIGHTS: i32 = 1;
    const MSG_NOSIGNAL: i32 = 0x4000;

    fn send_with_fd(conn: &UnixStream, data: &[u8], fd: RawFd) -> io::Result<()> {
        let iov = IoVec {
            base: data.as_ptr(),
            len: data.len(),
        };
        let mut cmsg = FdCmsg {
            len: std::mem::size_of::<usize>()
                + 2 * std::mem::size_of::<i32>()
                + std::mem::size_of::<i32>(),
            level: SOL_SOCKET,
            kind: SCM_RIGHTS,
            fd,
            pad: 0,
        };
        let msg = MsgHdr {
            name: std::ptr::null_mut(),
            namelen: 0,
            iov: &iov,
            iovlen: 1,
            control: (&mut cmsg as *mut FdCmsg).cast(),
            controllen: std::mem::size_of::<FdCmsg>(),
            flags: 0,
        };
        // SAFETY: all pointers reference live locals of the right layout for x86_64 /
        // aarch64 Linux; sendmsg does not retain them.
        let n = unsafe { sendmsg(conn.as_raw_fd(), &msg, MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else if n as usize != data.len() {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short sendmsg"))
        } else {
            Ok(())
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod ivshmem {
    pub fn server_name() -> Option<String> {
        None
    }
}
