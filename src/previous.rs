//! Re-planning without moving anything (docs/formats.md "Re-planning"): an earlier plan becomes
//! pins for every device and controller that still exists.

use serde::Deserialize;

use crate::error::InputError;
use crate::plan::Plan;
use crate::request::{Address, ControllerRequest, Request};
use crate::Text;

/// A device of an earlier plan: at least `id`, `bus`, `slot`, `function`.
#[derive(Debug, Clone, Deserialize)]
pub struct PreviousDevice {
    /// Device id.
    pub id: String,
    /// Bus.
    pub bus: String,
    /// Slot.
    pub slot: u8,
    /// Function.
    #[serde(default)]
    pub function: u8,
}

/// A controller of an earlier plan.
#[derive(Debug, Clone, Deserialize)]
pub struct PreviousController {
    /// Controller id.
    pub id: String,
    /// Catalog model.
    pub model: String,
    /// Parent bus.
    pub bus: String,
    /// Slot.
    pub slot: u8,
    /// Function.
    #[serde(default)]
    pub function: u8,
    /// Chassis.
    #[serde(default)]
    pub chassis: Option<u8>,
    /// Port number.
    #[serde(default)]
    pub port: Option<u8>,
    /// Port hotplug.
    #[serde(default)]
    pub hotplug: Option<bool>,
    /// Expander bus number.
    #[serde(default)]
    pub bus_nr: Option<u8>,
    /// Expander NUMA node.
    #[serde(default)]
    pub numa_node: Option<u32>,
    /// `io-reserve`.
    #[serde(default, rename = "io-reserve")]
    pub io_reserve: Option<u32>,
}

/// An earlier plan, read leniently (other tools may add fields).
#[derive(Debug, Clone, Deserialize)]
pub struct Previous {
    /// Devices.
    pub devices: Vec<PreviousDevice>,
    /// Controllers.
    #[serde(default)]
    pub controllers: Vec<PreviousController>,
}

impl Previous {
    /// Parses a `--format json` plan (or a batch result line's `plan`).
    pub fn from_json(text: &str) -> Result<Previous, InputError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            InputError::new(
                format!("previous plan: {}", e.path()),
                e.inner().to_string(),
            )
        })
    }
}

impl From<&Plan> for Previous {
    fn from(p: &Plan) -> Previous {
        Previous {
            devices: p
                .devices
                .iter()
                .map(|d| PreviousDevice {
                    id: d.id.to_string(),
                    bus: d.bus.to_string(),
                    slot: d.slot,
                    function: d.function,
                })
                .collect(),
            controllers: p
                .controllers
                .iter()
                .map(|c| PreviousController {
                    id: c.id.to_string(),
                    model: c.model.to_string(),
                    bus: c.bus.to_string(),
                    slot: c.slot,
                    function: c.function,
                    chassis: c.chassis,
                    port: c.port,
                    hotplug: c.hotplug,
                    bus_nr: c.bus_nr,
                    numa_node: c.numa_node,
                    io_reserve: c.io_reserve,
                })
                .collect(),
        }
    }
}

impl Request {
    /// This request with every device that exists in `prev` pinned at its old address, and
    /// every controller of `prev` kept as an existing controller, so that planning it moves
    /// nothing and only places new devices.
    ///
    /// A device the request pins elsewhere than `prev` had it is an error naming it.
    ///
    /// ```
    /// let r1 = pciplan::Request::from_json(r#"{"devices":[{"id":"a","model":"virtio-net-pci"}]}"#).unwrap();
    /// let p1 = pciplan::plan(&r1).unwrap();
    /// let r2 = pciplan::Request::from_json(r#"{"devices":[{"id":"b","model":"virtio-blk-pci"},{"id":"a","model":"virtio-net-pci"}]}"#).unwrap();
    /// let p2 = pciplan::plan(&r2.pinned_to(&(&p1).into()).unwrap()).unwrap();
    /// assert_eq!(p2.devices[1].bus, p1.devices[0].bus); // a did not move
    /// ```
    pub fn pinned_to(&self, prev: &Previous) -> Result<Request, InputError> {
        let mut out = self.clone();
        for (i, d) in out.devices.iter_mut().enumerate() {
            let Some(p) = prev.devices.iter().find(|p| p.id == d.id) else {
                continue;
            };
            let old = Address {
                bus: Text::from(p.bus.as_str()),
                slot: p.slot,
                function: p.function,
            };
            match &d.address {
                Some(a) if *a != old => {
                    return Err(InputError::new(
                        format!("devices[{i}].address"),
                        format!("device '{}' is pinned at {a} but the previous plan has it at {old}; moving it would change what the guest sees", d.id),
                    ))
                }
                _ => d.address = Some(old),
            }
        }
        for c in &prev.controllers {
            if let Some(existing) = out.controllers.iter().find(|x| x.id == c.id) {
                let old = Address {
                    bus: Text::from(c.bus.as_str()),
                    slot: c.slot,
                    function: c.function,
                };
                if existing.address != old {
                    return Err(InputError::new(
                        "controllers",
                        format!(
                            "controller '{}' is at {} but the previous plan has it at {old}",
                            c.id, existing.address
                        ),
                    ));
                }
                continue;
            }
            if out.devices.iter().any(|d| d.id == c.id) {
                return Err(InputError::new(
                    "devices",
                    format!("id '{}' was a controller in the previous plan", c.id),
                ));
            }
            out.controllers.push(ControllerRequest {
                id: Text::from(c.id.as_str()),
                model: Text::from(c.model.as_str()),
                hotplug: c.hotplug,
                address: Address {
                    bus: Text::from(c.bus.as_str()),
                    slot: c.slot,
                    function: c.function,
                },
                chassis: c.chassis,
                port: c.port,
                bus_nr: c.bus_nr,
                numa_node: c.numa_node,
                io_reserve: c.io_reserve,
            });
        }
        out.check_shape()?;
        Ok(out)
    }
}
