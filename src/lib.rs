//! pciplan plans the PCI/PCIe topology of QEMU `q35` guests with an integer program.
//!
//! On q35 a device on the root bus `pcie.0` is an integrated endpoint the guest cannot
//! hot-unplug; a device behind a `pcie-root-port` can be unplugged unless the port has
//! `hotplug=off`. pciplan places every device so that its hotplug requirement holds, adds
//! the fewest controllers, keeps pinned addresses, and proves the answer optimal.
//!
//! ```
//! use pciplan::{plan, Request};
//! let req = Request::from_json(r#"{"devices":[
//!     {"id":"net0","model":"virtio-net-pci","hotplug":"off"},
//!     {"id":"nic1","model":"e1000","hotplug":"on"}]}"#).unwrap();
//! let p = plan(&req).unwrap();
//! assert_eq!(p.cost, 2); // a pcie-pci-bridge and the root port it sits on
//! println!("{}", pciplan::emit::qemu(&p, pciplan::Catalog::q35()));
//! ```
#![warn(missing_docs)]

pub mod batch;
mod catalog;
mod changes;
mod device_models;
pub mod emit;
mod error;
mod fleet_adoption;
pub mod hooks;
mod idmap;
mod ilp;
pub mod libvirt;
mod plan;
mod planner;
mod policy_patch;
mod previous;
mod request;
mod rule;
mod shape;
mod strtable;
mod topology;
mod validate;
pub mod whatif;

/// The text of the ids, models, drivers and bus names in a [`Request`] and a [`Plan`]: a
/// string kept inline up to 24 bytes (as nearly all of them are), so that copying one
/// into a plan allocates nothing. It dereferences to `str` and compares with `&str`.
pub type Text = compact_str::CompactString;

pub use catalog::{BusKind, Catalog, ControllerModel, DeviceModel, HotplugControl, Layout};
pub use changes::{fixes, summary, Change, ChangeKind, Seen};
pub use device_models::DeviceModels;
pub use error::{Cause, Explanation, InputError, PlanError, Violation};
pub use plan::{PlacedController, PlacedDevice, Plan};
pub use planner::{adopt, adopt_by_program, adopt_with, forget_solutions, plan, plan_with};
pub use policy_patch::PolicyPatch;
pub use previous::{Previous, PreviousController, PreviousDevice};
pub use request::{
    Address, ControllerRequest, DeviceRequest, Firmware, Hotplug, OffStrategy, Policy, Request,
    MAX_DEVICES, MAX_REQUEST_BYTES,
};
pub use rule::{Rule, UnknownRule};
pub use shape::{CacheStats, ShapeCache};
pub use validate::{validate, validate_pins};

/// The crate's version (`Cargo.toml`), for tools built on the library (the Python package's
/// `__version__`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
