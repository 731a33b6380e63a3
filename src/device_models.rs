//! The device models of a catalog, by QEMU driver name: a sorted map (the order catalogs
//! are written in, and what [`std::ops::Deref`] gives for reading) with an index beside
//! it. Every plan looks models up many times (each device, in each topology, check and
//! report); the index (src/strtable.rs) answers from three words of the name, where
//! the sorted map compares about six names and a general hash map hashes every byte.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::DeviceModel;
use crate::strtable::StrTable;

/// Device models by QEMU driver name.
///
/// ```
/// let cat = pciplan::Catalog::q35();
/// assert!(cat.devices.get("virtio-net-pci").is_some());
/// assert!(cat.devices.keys().any(|m| m == "e1000"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DeviceModels {
    sorted: BTreeMap<String, DeviceModel>,
    index: StrTable<String, DeviceModel>,
}

impl DeviceModels {
    /// The model named `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&DeviceModel> {
        self.index.get(name)
    }

    /// Adds or replaces a model; returns the one it replaced.
    pub fn insert(&mut self, name: String, model: DeviceModel) -> Option<DeviceModel> {
        let old = self.sorted.insert(name, model);
        self.index = index(&self.sorted);
        old
    }
}

/// The index of `sorted`.
fn index(sorted: &BTreeMap<String, DeviceModel>) -> StrTable<String, DeviceModel> {
    let mut index = StrTable::with_capacity(sorted.len());
    for (k, v) in sorted {
        index.insert(k.clone(), v.clone());
    }
    index
}

impl From<BTreeMap<String, DeviceModel>> for DeviceModels {
    fn from(sorted: BTreeMap<String, DeviceModel>) -> Self {
        let index = index(&sorted);
        DeviceModels { sorted, index }
    }
}

impl Deref for DeviceModels {
    type Target = BTreeMap<String, DeviceModel>;
    fn deref(&self) -> &Self::Target {
        &self.sorted
    }
}

impl<'a> IntoIterator for &'a DeviceModels {
    type Item = (&'a String, &'a DeviceModel);
    type IntoIter = std::collections::btree_map::Iter<'a, String, DeviceModel>;
    fn into_iter(self) -> Self::IntoIter {
        self.sorted.iter()
    }
}

impl Serialize for DeviceModels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sorted.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DeviceModels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(d).map(DeviceModels::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn index_follows_the_map() {
        let cat = Catalog::q35();
        let mut m = cat.devices.clone();
        for (name, model) in &m.sorted {
            assert_eq!(m.get(name).map(|x| x.io), Some(model.io), "{name}");
        }
        assert!(m.get("no-such-model").is_none());
        let mut new = m["e1000"].clone();
        new.io = false;
        assert!(m.insert("e1000".into(), new).is_some_and(|old| old.io));
        assert!(!m.get("e1000").unwrap().io && !m["e1000"].io);
        let text = serde_json::to_string(&m).unwrap();
        let back: DeviceModels = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), m.len());
        assert!(!back.get("e1000").unwrap().io);
    }
}
