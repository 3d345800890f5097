//! What the kernel says about the PCI devices: a read-only scan of sysfs and procfs.
//!
//! Everything goes through a [`SysfsRoot`]: [`SysfsRoot::host`] reads the machine's `/sys` and
//! `/proc`, [`SysfsRoot::at`] a tree laid out the same way under another directory, such as the
//! ones `crate::fake::FakeSysfs` builds for tests. Files read, relative to the root:
//!
//! - `sys/bus/pci/devices/*/`: `vendor`, `device`, `subsystem_vendor`, `subsystem_device`,
//!   `class`, `resource`, `numa_node`, `driver_override`, `modalias`, the `driver` and
//!   `iommu_group` links, `net/*` and `uio/uio*`;
//! - `sys/bus/pci/drivers/*` (drivers the kernel has), `sys/kernel/iommu_groups/*`;
//! - `proc/net/route`, `proc/net/ipv6_route` (interfaces with routes), `proc/modules`,
//!   `proc/*/fd/*` (who has a device open, [`SysfsRoot::holders`]);
//! - `usr/share/misc/pci.ids` or `usr/share/hwdata/pci.ids` for device names ([`PciIds`]).
//!
//! Nothing here writes: binding is [`crate::bind`].
//!
//! ```no_run
//! use burst_pci::sysfs::SysfsRoot;
//! for dev in SysfsRoot::host().scan()? {
//!     println!("{} {:04x}:{:04x} {:?}", dev.address, dev.vendor, dev.device, dev.driver);
//! }
//! # Ok::<(), burst_pci::sysfs::SysfsError>(())
//! ```

mod error;
mod holders;
mod ids;
mod info;
mod routes;

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use error::SysfsError;
pub use holders::Holder;
pub use ids::PciIds;
pub use info::{is_user_space_driver, BarInfo, BarKind, DeviceKind, PciDeviceInfo, USER_SPACE_DRIVERS};

use crate::PciAddress;

/// What [`SysfsRoot::scan_all`] found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The devices read, sorted by address.
    pub devices: Vec<PciDeviceInfo>,
    /// The devices left out, with why (a file that cannot be read or makes no sense).
    pub skipped: Vec<(PciAddress, SysfsError)>,
}

/// Where sysfs and procfs are: `/` on the host, a directory holding `sys/` and `proc/` in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysfsRoot {
    root: PathBuf,
}

impl SysfsRoot {
    /// The machine's own `/sys` and `/proc`.
    pub fn host() -> SysfsRoot {
        SysfsRoot::at("/")
    }

    /// The tree under `dir` (which holds `sys/` and `proc/`).
    pub fn at(dir: impl Into<PathBuf>) -> SysfsRoot {
        SysfsRoot { root: dir.into() }
    }

    /// The directory holding `sys/` and `proc/`.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `sys/bus/pci/devices`.
    pub fn devices_dir(&self) -> PathBuf {
        self.root.join("sys/bus/pci/devices")
    }

    /// `sys/bus/pci/devices/<addr>`.
    pub fn device_dir(&self, addr: PciAddress) -> PathBuf {
        self.devices_dir().join(addr.to_string())
    }

    /// `sys/bus/pci/drivers`.
    pub fn drivers_dir(&self) -> PathBuf {
        self.root.join("sys/bus/pci/drivers")
    }

    /// `sys/bus/pci/drivers/<driver>`.
    pub fn driver_dir(&self, driver: &str) -> PathBuf {
        self.drivers_dir().join(driver)
    }

    /// `sys/bus/pci/drivers_probe`: writing an address there asks the kernel to find the device
    /// a driver.
    pub fn drivers_probe(&self) -> PathBuf {
        self.root.join("sys/bus/pci/drivers_probe")
    }

    /// Every PCI function, sorted by address, and the devices that could not be read (each with
    /// its error). The error is only for the devices directory itself.
    pub fn scan_all(&self) -> Result<Scan, SysfsError> {
        let dir = self.devices_dir();
        let entries = fs::read_dir(&dir).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => SysfsError::NoSysfs { path: dir.clone() },
            _ => SysfsError::Read { path: dir.clone(), source },
        })?;
        let mut addrs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| SysfsError::Read { path: dir.clone(), source })?;
            if let Some(addr) = entry.file_name().to_str().and_then(|n| n.parse::<PciAddress>().ok()) {
                addrs.push(addr);
            }
        }
        addrs.sort();
        let routed = self.routed_interfaces();
        let mut scan = Scan::default();
        for addr in addrs {
            match self.read_device(addr, &routed) {
                Ok(dev) => scan.devices.push(dev),
                // Removed while we looked (hot unplug): it is not there any more.
                Err(SysfsError::NoDevice { .. }) => {}
                // One device sysfs describes oddly does not hide the others.
                Err(e) => scan.skipped.push((addr, e)),
            }
        }
        Ok(scan)
    }

    /// Every PCI function, sorted by address. A device whose files cannot be read or make no
    /// sense is left out with a warning (`tracing`); [`SysfsRoot::scan_all`] says which.
    pub fn scan(&self) -> Result<Vec<PciDeviceInfo>, SysfsError> {
        let scan = self.scan_all()?;
        for (addr, e) in &scan.skipped {
            tracing::warn!("left {addr} out of the PCI scan: {e}");
        }
        Ok(scan.devices)
    }

    /// One device. Error if there is no such device: "no PCI device 0000:00:09.0: see
    /// `devbind --status`", or if one of its files cannot be read or makes no sense.
    pub fn device(&self, addr: PciAddress) -> Result<PciDeviceInfo, SysfsError> {
        self.read_device(addr, &self.routed_interfaces())
    }

    /// The device that `arg` names: a PCI address (`0000:00:02.0`, `00:02.0`) or the name of
    /// one of its kernel network interfaces (`eth0`), like dpdk-devbind's arguments.
    pub fn resolve(&self, arg: &str) -> Result<PciAddress, SysfsError> {
        if let Ok(addr) = arg.parse::<PciAddress>() {
            return self.exists(addr).then_some(addr).ok_or(SysfsError::NoDevice { addr });
        }
        // An interface name: /sys/class/net is not read (a fake tree need not have it); the
        // devices' own net/ directories say the same.
        if !arg.is_empty() && !arg.contains('/') && arg != "." && arg != ".." {
            for dev in self.scan()? {
                if dev.interfaces.iter().any(|i| i == arg) {
                    return Ok(dev.address);
                }
            }
        }
        if arg.contains(':') || arg.contains('.') {
            // Meant as an address: say what is wrong with it.
            return Err(arg.parse::<PciAddress>().unwrap_err().into());
        }
        Err(SysfsError::NoSuchInterface { arg: arg.to_string() })
    }

    /// Whether the device exists.
    pub fn exists(&self, addr: PciAddress) -> bool {
        self.device_dir(addr).exists()
    }

    /// The driver the device is bound to now, if any.
    pub fn current_driver(&self, addr: PciAddress) -> Result<Option<String>, SysfsError> {
        if !self.exists(addr) {
            return Err(SysfsError::NoDevice { addr });
        }
        Ok(link_name(&self.device_dir(addr).join("driver")))
    }

    /// Whether the machine has an IOMMU in use (`/sys/kernel/iommu_groups` has entries).
    pub fn iommu_present(&self) -> bool {
        fs::read_dir(self.root.join("sys/kernel/iommu_groups")).is_ok_and(|mut d| d.next().is_some())
    }

    /// The devices in IOMMU group `group`, sorted (empty if there is no such group).
    pub fn group_devices(&self, group: u32) -> Vec<PciAddress> {
        let dir = self.root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
        let mut addrs: Vec<PciAddress> = names_in(&dir).iter().filter_map(|n| n.parse().ok()).collect();
        addrs.sort();
        addrs
    }

    /// N of the device's `uio/uioN`, when it is bound to a UIO driver (`/dev/uioN`).
    pub fn uio_index(&self, addr: PciAddress) -> Option<u32> {
        names_in(&self.device_dir(addr).join("uio")).iter().filter_map(|n| n.strip_prefix("uio")?.parse().ok()).min()
    }

    /// Whether kernel module `name` is loaded (`proc/modules`) or built in with a presence in
    /// `sys/module`. `-` and `_` are the same in module names.
    pub fn module_loaded(&self, name: &str) -> bool {
        let name = name.replace('-', "_");
        let listed = fs::read_to_string(self.root.join("proc/modules"))
            .is_ok_and(|text| text.lines().any(|l| l.split_whitespace().next() == Some(name.as_str())));
        listed || self.root.join("sys/module").join(&name).is_dir()
    }

    /// Whether the kernel has PCI driver `driver` (`sys/bus/pci/drivers/<driver>` exists).
    pub fn driver_loaded(&self, driver: &str) -> bool {
        !driver.is_empty() && !driver.contains('/') && self.driver_dir(driver).is_dir()
    }

    /// The PCI drivers the kernel has now, sorted.
    pub fn drivers(&self) -> Vec<String> {
        let mut names = names_in(&self.drivers_dir());
        names.sort();
        names
    }

    /// Interfaces that have a route (IPv4 or IPv6, `lo` and link-local left out; see
    /// dpdk-devbind's `*Active*`). Missing files (no IPv6) count as no routes.
    pub fn routed_interfaces(&self) -> BTreeSet<String> {
        let read = |p: &str| fs::read_to_string(self.root.join(p)).unwrap_or_default();
        let mut ifaces = routes::ipv4_routed(&read("proc/net/route"));
        ifaces.extend(routes::ipv6_routed(&read("proc/net/ipv6_route")));
        ifaces
    }

    /// A device; [`SysfsError::NoDevice`] also when it goes away while its files are read (a
    /// read error then is the removal, not a problem of the file).
    fn read_device(&self, addr: PciAddress, routed: &BTreeSet<String>) -> Result<PciDeviceInfo, SysfsError> {
        let dir = self.device_dir(addr);
        // One path for a device that was never there and one removed half-way: whatever failed,
        // if the directory is gone now, the device is.
        self.read_files(addr, &dir, routed).map_err(|e| if dir.exists() { e } else { SysfsError::NoDevice { addr } })
    }

    fn read_files(&self, addr: PciAddress, dir: &Path, routed: &BTreeSet<String>) -> Result<PciDeviceInfo, SysfsError> {
        let vendor = read_id(&dir.join("vendor"), "a hex vendor ID like 0x8086")?;
        let device = read_id(&dir.join("device"), "a hex device ID like 0x100e")?;
        let subsystem = |file: &str| -> Result<u16, SysfsError> {
            let path = dir.join(file);
            Ok(if path.exists() { read_id(&path, "a hex subsystem ID")? } else { 0 })
        };
        let subsystem_vendor = subsystem("subsystem_vendor")?;
        let subsystem_device = subsystem("subsystem_device")?;
        let class = read_hex(&dir.join("class"), "a hex class like 0x020000")?;
        let iommu_group = match link_name(&dir.join("iommu_group")) {
            None => None,
            Some(name) => Some(name.parse().map_err(|_| SysfsError::Parse {
                path: dir.join("iommu_group"),
                expected: "a link to an IOMMU group number",
                found: name,
            })?),
        };
        let numa_node = match read_optional(&dir.join("numa_node"))? {
            None => None,
            Some(text) => {
                let node: i64 = text.parse().map_err(|_| SysfsError::Parse {
                    path: dir.join("numa_node"),
                    expected: "a NUMA node number or -1",
                    found: text,
                })?;
                u32::try_from(node).ok()
            }
        };
        let bars = match read_optional(&dir.join("resource"))? {
            None => Vec::new(),
            Some(text) => info::parse_resource(&text).ok_or_else(|| SysfsError::Parse {
                path: dir.join("resource"),
                expected: "lines of `0xSTART 0xEND 0xFLAGS`",
                found: text.lines().next().unwrap_or("").to_string(),
            })?,
        };
        let iface_dirs = interface_dirs(dir);
        let interfaces: Vec<String> = iface_dirs.iter().map(|(name, _)| name.clone()).collect();
        let mut active_interfaces = Vec::new();
        let mut active_masters = Vec::new();
        for (name, path) in &iface_dirs {
            if routed.contains(name) {
                active_interfaces.push(name.clone());
            } else if let Some(master) = masters_of(path).into_iter().find(|m| routed.contains(m)) {
                active_interfaces.push(name.clone());
                active_masters.push((name.clone(), master));
            }
        }
        let driver_override = read_optional(&dir.join("driver_override"))?.filter(|s| !s.is_empty() && s != "(null)");
        Ok(PciDeviceInfo {
            address: addr,
            vendor,
            device,
            subsystem_vendor,
            subsystem_device,
            class,
            driver: link_name(&dir.join("driver")),
            iommu_group,
            numa_node,
            bars,
            interfaces,
            active_interfaces,
            active_masters,
            driver_override,
            modalias: read_optional(&dir.join("modalias"))?.filter(|s| !s.is_empty()),
            uio: self.uio_index(addr),
        })
    }
}

/// `sys/bus/pci/devices/<addr>` under `sysfs_root`, for code that holds the root as a path.
pub(crate) fn device_dir(sysfs_root: &Path, addr: PciAddress) -> PathBuf {
    SysfsRoot::at(sysfs_root).device_dir(addr)
}

/// The basename of where the link at `path` points, or `None` if there is no link
/// (`driver` -> `.../drivers/e1000` gives `e1000`).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The network interfaces of the device at `dir` and their directories, sorted by name:
/// `net/*`, and `*/net/*` for drivers that put the interface on a child device (virtio-pci:
/// `virtio0/net/eth0`), as dpdk-devbind's walk of the device directory finds them.
fn interface_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let in_net = |net: PathBuf| names_in(&net).into_iter().map(move |n| (n.clone(), net.join(n)));
    let mut found: Vec<(String, PathBuf)> = in_net(dir.join("net")).collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            // Real child directories only: the links (driver, subsystem, ...) lead elsewhere.
            if entry.file_type().is_ok_and(|t| t.is_dir()) && entry.file_name() != "net" {
                found.extend(in_net(entry.path().join("net")));
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.0 == b.0);
    found
}

/// The upper devices an interface is enslaved to, nearest first: its `master` link (a bridge,
/// bond or team: `/sys/class/net/IF/master`), that one's `master`, and so on.
fn masters_of(iface_dir: &Path) -> Vec<String> {
    let mut masters = Vec::new();
    let mut dir = iface_dir.to_path_buf();
    // A handful of levels (a bond in a bridge); the bound stops a looping tree.
    while masters.len() < 8 {
        let Ok(target) = fs::read_link(dir.join("master")) else { break };
        // Relative to the directory holding the link: `../../../virtual/net/br0`.
        dir = dir.join(target);
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else { break };
        masters.push(name);
    }
    masters
}

/// The names in a directory (empty if it does not exist or cannot be read).
fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()
}

/// A file's content without surrounding whitespace, or `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, SysfsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SysfsError::Read { path: path.to_path_buf(), source }),
    }
}

/// A file holding a 16-bit hex ID (`0x8086`).
fn read_id(path: &Path, expected: &'static str) -> Result<u16, SysfsError> {
    let value = read_hex(path, expected)?;
    u16::try_from(value).map_err(|_| SysfsError::Parse {
        path: path.to_path_buf(),
        expected,
        found: format!("{value:#x}"),
    })
}

/// A file holding one hex number (`0x8086`).
fn read_hex(path: &Path, expected: &'static str) -> Result<u32, SysfsError> {
    let text = fs::read_to_string(path).map_err(|source| SysfsError::Read { path: path.to_path_buf(), source })?;
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u32::from_str_radix(digits, 16).map_err(|_| SysfsError::Parse {
        path: path.to_path_buf(),
        expected,
        found: text.to_string(),
    })
}

#[cfg(test)]
mod tests;
