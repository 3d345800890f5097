//! How devices find their drivers: PCI drivers declare ID tables, virtual-device drivers a name
//! prefix. The runtime builds a [`Registry`] with one line per driver crate.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;

use burst_mem::Memory;
use burst_pci::{PciAddress, PciDevice};

use crate::{EthDev, EthError, PortId};

/// A PCI vendor/device pair a driver takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciId {
    /// Vendor ID (0x8086 is Intel).
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
}

impl PciId {
    /// `vendor:device`.
    pub const fn new(vendor: u16, device: u16) -> PciId {
        PciId { vendor, device }
    }
}

/// Device arguments: the `key=value` pairs after a device's name (`net_null0,size=128`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevArgs {
    device: String,
    pairs: Vec<(String, String)>,
}

impl DevArgs {
    /// Splits `NAME[,key=value...]` into the name and its arguments.
    pub fn parse(spec: &str) -> Result<(String, DevArgs), EthError> {
        let mut fields = spec.split(',');
        let name = fields.next().unwrap_or_default().trim().to_string();
        if name.is_empty() {
            return Err(EthError::DevArgs {
                device: spec.to_string(),
                message: "the device name is empty: write NAME[,key=value...], e.g. net_null0,size=64".into(),
            });
        }
        let mut pairs: Vec<(String, String)> = Vec::new();
        for field in fields {
            let (k, v) = field.split_once('=').ok_or_else(|| EthError::DevArgs {
                device: name.clone(),
                message: format!("argument {field:?} is not key=value"),
            })?;
            if k.is_empty() {
                return Err(EthError::DevArgs {
                    device: name.clone(),
                    message: format!("argument {field:?} has no key"),
                });
            }
            if pairs.iter().any(|(have, _)| have == k) {
                return Err(EthError::DevArgs {
                    device: name.clone(),
                    message: format!("argument {k:?} is given twice"),
                });
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok((name.clone(), DevArgs { device: name, pairs }))
    }

    /// Arguments for `device` with no pairs.
    pub fn none(device: &str) -> DevArgs {
        DevArgs { device: device.to_string(), pairs: Vec::new() }
    }

    /// Fails naming the first key not in `known`.
    pub fn only(&self, known: &[&str]) -> Result<(), EthError> {
        match self.pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, _)) => Err(self.error(format!(
                "unknown argument {k:?}: {}",
                if known.is_empty() { "it takes none".to_string() } else { format!("it takes {}", known.join(", ")) }
            ))),
        }
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `key` as an integer in `range`, or `default` when absent.
    pub fn u64_in(&self, key: &str, range: std::ops::RangeInclusive<u64>, default: u64) -> Result<u64, EthError> {
        let Some(v) = self.get(key) else { return Ok(default) };
        let n = if let Some(hex) = v.strip_prefix("0x") { u64::from_str_radix(hex, 16) } else { v.parse() };
        match n {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.error(format!("{key}={v} is not a number in {}..={}", range.start(), range.end()))),
        }
    }

    /// `key` as a boolean (`0`/`1`, `false`/`true`, `no`/`yes`, `off`/`on`), or `default`.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, EthError> {
        match self.get(key) {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(self.error(format!("{key}={v} is not a boolean: use 0 or 1"))),
        }
    }

    /// `key` parsed with `FromStr`, or `None` when absent.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, EthError>
    where
        T::Err: fmt::Display,
    {
        self.get(key).map(|v| v.parse::<T>().map_err(|e| self.error(format!("{key}={v}: {e}")))).transpose()
    }

    /// An argument error for this device.
    pub fn error(&self, message: String) -> EthError {
        EthError::DevArgs { device: self.device.clone(), message }
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// What a PCI driver's probe gets.
pub struct PciProbe {
    /// The opened device (vfio-pci or uio_pci_generic).
    pub device: PciDevice,
    /// Its sysfs-reported NUMA node.
    pub socket: Option<u32>,
    /// The IDs it matched on.
    pub id: PciId,
    /// DMA memory, in the IOVA mode the runtime chose.
    pub memory: Memory,
    /// Arguments from `-a ADDR,key=value`.
    pub args: DevArgs,
    /// The port number it will have.
    pub port_id: PortId,
}

/// A PCI driver: its ID table and probe.
pub struct PciDriver {
    /// The driver's name (`net_e1000_em`).
    pub name: &'static str,
    /// The devices it takes.
    pub ids: &'static [PciId],
    /// Brings a matched device up to the probed state.
    pub probe: fn(PciProbe) -> Result<Box<dyn EthDev>, EthError>,
}

impl fmt::Debug for PciDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PciDriver").field("name", &self.name).field("ids", &self.ids).finish()
    }
}

/// State a virtual-device driver keeps across its probes in one runtime (`net_ring` pairs its
/// ports through it), keyed by driver name.
#[derive(Default)]
pub struct VdevShared {
    map: HashMap<&'static str, Box<dyn Any + Send>>,
}

impl VdevShared {
    /// The driver's state, made with `Default` on first use.
    pub fn get_or_default<T: Any + Send + Default>(&mut self, driver: &'static str) -> &mut T {
        let slot = self.map.entry(driver).or_insert_with(|| Box::new(T::default()));
        if !slot.is::<T>() {
            *slot = Box::new(T::default());
        }
        slot.downcast_mut::<T>().unwrap_or_else(|| unreachable!("the slot was just given a T"))
    }
}

impl fmt::Debug for VdevShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VdevShared").field("drivers", &self.map.keys().collect::<Vec<_>>()).finish()
    }
}

/// What a virtual-device driver's probe gets.
pub struct VdevProbe<'a> {
    /// The device's full name (`net_null0`).
    pub name: &'a str,
    /// Its arguments.
    pub args: &'a DevArgs,
    /// DMA memory.
    pub memory: &'a Memory,
    /// State shared by this driver's probes.
    pub shared: &'a mut VdevShared,
    /// The port number it will have.
    pub port_id: PortId,
}

/// A virtual-device driver: devices whose name starts with `name` are its.
pub struct VdevDriver {
    /// The name prefix (`net_null`): `--vdev net_null0` and `--vdev net_null_a` are its devices.
    pub name: &'static str,
    /// Other prefixes it answers to (DPDK's `RTE_PMD_REGISTER_ALIAS`: `eth_null` for `net_null`).
    pub aliases: &'static [&'static str],
    /// The arguments it takes, for help and errors (`size=N,copy=0|1`).
    pub params: &'static str,
    /// Makes the device.
    pub probe: fn(VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError>,
    /// Called once after every virtual device was probed, to refuse what is incomplete (a
    /// `net_ring` pair with one port).
    pub finish: Option<VdevFinish>,
}

/// A virtual-device driver's check after all probes ([`VdevDriver::finish`]).
pub type VdevFinish = fn(&mut VdevShared) -> Result<(), EthError>;

impl fmt::Debug for VdevDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VdevDriver").field("name", &self.name).finish()
    }
}

/// The drivers a runtime knows.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    pci: Vec<&'static PciDriver>,
    vdev: Vec<&'static VdevDriver>,
}

impl Registry {
    /// No drivers.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a PCI driver.
    pub fn pci(mut self, driver: &'static PciDriver) -> Registry {
        self.pci.push(driver);
        self
    }

    /// Adds a virtual-device driver.
    pub fn vdev(mut self, driver: &'static VdevDriver) -> Registry {
        self.vdev.push(driver);
        self
    }

    /// The PCI drivers.
    pub fn pci_drivers(&self) -> &[&'static PciDriver] {
        &self.pci
    }

    /// The virtual-device drivers.
    pub fn vdev_drivers(&self) -> &[&'static VdevDriver] {
        &self.vdev
    }

    /// The PCI driver whose table holds `id`, with the matching entry.
    pub fn find_pci(&self, id: PciId) -> Option<&'static PciDriver> {
        self.pci.iter().copied().find(|d| d.ids.contains(&id))
    }

    /// The virtual-device driver for device `name`: the longest driver name or alias it starts
    /// with.
    pub fn find_vdev(&self, name: &str) -> Result<&'static VdevDriver, EthError> {
        self.vdev
            .iter()
            .copied()
            .filter_map(|d| {
                std::iter::once(d.name)
                    .chain(d.aliases.iter().copied())
                    .filter(|n| name.starts_with(n))
                    .map(str::len)
                    .max()
                    .map(|len| (d, len))
            })
            .max_by_key(|&(_, len)| len)
            .map(|(d, _)| d)
            .ok_or_else(|| EthError::UnknownVdev {
                name: name.to_string(),
                known: self.vdev.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
            })
    }
}

/// A PCI device the runtime should probe: its address and `-a` arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciSpec {
    /// The address.
    pub addr: PciAddress,
    /// `-a ADDR,key=value` arguments.
    pub args: DevArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devargs_split_name_and_pairs() {
        let (name, args) = DevArgs::parse("net_null0,size=128,copy=1").unwrap();
        assert_eq!(name, "net_null0");
        assert_eq!(args.get("size"), Some("128"));
        assert_eq!(args.u64_in("size", 1..=9000, 64).unwrap(), 128);
        assert!(args.bool("copy", false).unwrap());
        assert!(args.only(&["size", "copy"]).is_ok());
        let err = args.only(&["size"]).unwrap_err().to_string();
        assert!(err.contains("unknown argument \"copy\"") && err.contains("it takes size"), "{err}");
    }

    #[test]
    fn malformed_devargs_say_what_is_wrong() {
        for (spec, want) in [
            ("", "name is empty"),
            ("net_null0,size", "not key=value"),
            ("net_null0,=3", "no key"),
            ("net_null0,size=1,size=2", "given twice"),
        ] {
            let err = DevArgs::parse(spec).unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
        let (_, args) = DevArgs::parse("net_null0,size=huge").unwrap();
        let err = args.u64_in("size", 1..=9000, 64).unwrap_err().to_string();
        assert!(err.contains("size=huge is not a number in 1..=9000"), "{err}");
    }

    fn no_probe(_: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
        Err(EthError::NotSupported { driver: "test", what: "probe" })
    }

    static NULL: VdevDriver =
        VdevDriver { name: "net_null", aliases: &["eth_null"], params: "", probe: no_probe, finish: None };
    static NULL_X: VdevDriver =
        VdevDriver { name: "net_nullx", aliases: &[], params: "", probe: no_probe, finish: None };

    #[test]
    fn vdevs_match_the_longest_prefix_and_unknown_ones_list_the_known() {
        let reg = Registry::new().vdev(&NULL).vdev(&NULL_X);
        assert_eq!(reg.find_vdev("net_null0").unwrap().name, "net_null");
        assert_eq!(reg.find_vdev("net_nullx1").unwrap().name, "net_nullx");
        assert_eq!(reg.find_vdev("eth_null0").unwrap().name, "net_null", "DPDK's alias");
        let err = reg.find_vdev("net_foo0").unwrap_err().to_string();
        assert!(err.contains("unknown virtual device \"net_foo0\"") && err.contains("net_null, net_nullx"), "{err}");
    }

    #[test]
    fn shared_state_is_per_driver() {
        let mut shared = VdevShared::default();
        *shared.get_or_default::<u32>("a") += 2;
        *shared.get_or_default::<u32>("a") += 3;
        assert_eq!(*shared.get_or_default::<u32>("a"), 5);
        assert_eq!(*shared.get_or_default::<u32>("b"), 0);
    }
}
