//! pciplan plans the PCI/PCIe topology of QEMU `q35` guests with an integer program.
#![warn(missing_docs)]

mod catalog;
mod error;
mod ilp;
mod plan;
mod request;

pub use catalog::{BusKind, Catalog, ControllerModel, DeviceModel};
pub use error::{Cause, Explanation, InputError, PlanError, Violation};
pub use plan::{Plan, PlacedController, PlacedDevice};
pub use request::{Address, ControllerRequest, DeviceRequest, Hotplug, OffStrategy, Policy, Request};
