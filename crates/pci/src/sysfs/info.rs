//! What a scan says about one PCI function: IDs, class, driver, IOMMU group, NUMA node, BARs,
//! kernel interfaces.

use crate::PciAddress;

/// The drivers that hand a device to user space. A device on one of these belongs to burst
/// (or DPDK); a device on any other driver belongs to the kernel.
pub const USER_SPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Whether `driver` hands its devices to user space (see [`USER_SPACE_DRIVERS`]).
pub fn is_user_space_driver(driver: &str) -> bool {
    USER_SPACE_DRIVERS.contains(&driver)
}

/// One PCI function as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDeviceInfo {
    pub address: PciAddress,
    /// `vendor`, e.g. 0x8086.
    pub vendor: u16,
    /// `device`, e.g. 0x100e.
    pub device: u16,
    /// `subsystem_vendor` (0 if the file is missing).
    pub subsystem_vendor: u16,
    /// `subsystem_device` (0 if the file is missing).
    pub subsystem_device: u16,
    /// `class`: base class, subclass and programming interface, e.g. 0x020000 (Ethernet).
    pub class: u32,
    /// The driver bound now (basename of the `driver` link), if any.
    pub driver: Option<String>,
    /// The IOMMU group (basename of the `iommu_group` link); `None` without an IOMMU.
    pub iommu_group: Option<u32>,
    /// `numa_node`; `None` when the kernel says -1 (no NUMA, or unknown).
    pub numa_node: Option<u32>,
    /// The memory and I/O BARs the device has (unassigned and absent BARs left out).
    pub bars: Vec<BarInfo>,
    /// The kernel network interfaces on this device (`net/*`), sorted.
    pub interfaces: Vec<String>,
    /// Those of `interfaces` that have a route (`/proc/net/route` or `/proc/net/ipv6_route`),
    /// or are enslaved to a bridge, bond or team (`master`, and its master...) that has one:
    /// taking the device away from the kernel cuts their traffic.
    pub active_interfaces: Vec<String>,
    /// For the active interfaces that are active through a master: (interface, the master with
    /// the routes).
    pub active_masters: Vec<(String, String)>,
    /// `driver_override`, if set (the kernel shows an unset one as `(null)`).
    pub driver_override: Option<String>,
    /// `modalias`, e.g. `pci:v00008086d0000100Esv...`, if the file is there.
    pub modalias: Option<String>,
    /// The UIO device number (`uio/uioN`), when bound to a UIO driver.
    pub uio: Option<u32>,
}

impl PciDeviceInfo {
    /// Which kind of device this is, for grouping (network, crypto, baseband, other).
    pub fn kind(&self) -> DeviceKind {
        DeviceKind::of(self.class, self.vendor)
    }

    /// Whether this is a network device (class 0x02xxxx).
    pub fn is_network(&self) -> bool {
        self.kind() == DeviceKind::Network
    }

    /// Whether an interface of this device has a route (dpdk-devbind's `*Active*`).
    pub fn is_active(&self) -> bool {
        !self.active_interfaces.is_empty()
    }

    /// Whether the device is bound to a user-space driver ([`USER_SPACE_DRIVERS`]).
    pub fn on_user_space_driver(&self) -> bool {
        self.driver.as_deref().is_some_and(is_user_space_driver)
    }
}

/// A BAR (base address register) that the device has and the kernel assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR number, 0 to 5.
    pub index: u8,
    /// Bus address where it starts.
    pub start: u64,
    /// Size in bytes.
    pub len: u64,
    pub kind: BarKind,
    /// Prefetchable memory (`IORESOURCE_PREFETCH`).
    pub prefetchable: bool,
}

/// Memory or I/O port space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    Mem,
    Io,
}

/// Device kinds that devbind groups its status by, like dpdk-devbind's `--status-dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    /// Class 0x02 (network controller).
    Network,
    /// Class 0x10 (encryption controller, 0x1080 for most crypto accelerators), and Intel's
    /// 0x0b40 co-processors (QuickAssist).
    Crypto,
    /// Class 0x12 (processing accelerators: baseband, FPGA).
    Baseband,
    /// Anything else (bridges, storage, ...): not shown by `devbind --status`.
    Other,
}

impl DeviceKind {
    /// The kinds devbind shows, in the order it shows them.
    pub const SHOWN: [DeviceKind; 3] = [DeviceKind::Network, DeviceKind::Crypto, DeviceKind::Baseband];

    /// The kind of a device with this `class` from this `vendor`.
    pub fn of(class: u32, vendor: u16) -> DeviceKind {
        const INTEL: u16 = 0x8086;
        match (class >> 16, class >> 8) {
            (0x02, _) => DeviceKind::Network,
            (0x10, _) => DeviceKind::Crypto,
            (_, 0x0b40) if vendor == INTEL => DeviceKind::Crypto,
            (0x12, _) => DeviceKind::Baseband,
            _ => DeviceKind::Other,
        }
    }

    /// The name `--status-dev` takes: `net`, `crypto`, `baseband`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Network => "net",
            DeviceKind::Crypto => "crypto",
            DeviceKind::Baseband => "baseband",
            DeviceKind::Other => "other",
        }
    }

    /// The title word for status output: `Network`, `Crypto`, `Baseband`, `Other`.
    pub fn title(self) -> &'static str {
        match self {
            DeviceKind::Network => "Network",
            DeviceKind::Crypto => "Crypto",
            DeviceKind::Baseband => "Baseband",
            DeviceKind::Other => "Other",
        }
    }
}

// Flags in the third column of `resource` (include/linux/ioport.h).
const IORESOURCE_IO: u64 = 0x100;
const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_PREFETCH: u64 = 0x2000;

/// Parses a device's `resource` file: one `start end flags` line per resource, BARs 0 to 5
/// first (then the expansion ROM and, for bridges, the windows, which are left out).
/// `None` if a line is malformed.
pub(crate) fn parse_resource(text: &str) -> Option<Vec<BarInfo>> {
    let mut bars = Vec::new();
    for (index, line) in text.lines().take(6).enumerate() {
        let mut fields = line.split_whitespace().map(|f| u64::from_str_radix(f.strip_prefix("0x")?, 16).ok());
        let (Some(Some(start)), Some(Some(end)), Some(Some(flags))) = (fields.next(), fields.next(), fields.next())
        else {
            return None;
        };
        let kind = if flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else if flags & IORESOURCE_MEM != 0 {
            BarKind::Mem
        } else {
            continue;
        };
        if start == 0 || end < start {
            continue; // not assigned
        }
        let prefetchable = flags & IORESOURCE_PREFETCH != 0;
        bars.push(BarInfo { index: index as u8, start, len: end - start + 1, kind, prefetchable });
    }
    Some(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lines_become_bars() {
        // An e1000 in the lab: BAR0 memory, BAR1 I/O ports, then the ROM line and empty lines.
        let text = "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n\
                    0x000000000000c000 0x000000000000c03f 0x0000000000040101\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x00000000fe000000 0x00000000fe003fff 0x000000000014220c\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x00000000feb80000 0x00000000febbffff 0x0000000000046200\n";
        let bars = parse_resource(text).unwrap();
        assert_eq!(
            bars,
            vec![
                BarInfo { index: 0, start: 0xfebc0000, len: 0x20000, kind: BarKind::Mem, prefetchable: false },
                BarInfo { index: 1, start: 0xc000, len: 0x40, kind: BarKind::Io, prefetchable: false },
                BarInfo { index: 4, start: 0xfe000000, len: 0x4000, kind: BarKind::Mem, prefetchable: true },
            ]
        );
    }

    #[test]
    fn malformed_resource_is_refused() {
        assert_eq!(parse_resource("0x0 0x1\n"), None);
        assert_eq!(parse_resource("zz 0x1 0x200\n"), None);
        assert_eq!(parse_resource(""), Some(vec![]));
    }

    #[test]
    fn classes_group_like_dpdk_devbind() {
        assert_eq!(DeviceKind::of(0x020000, 0x8086), DeviceKind::Network);
        assert_eq!(DeviceKind::of(0x028000, 0x1af4), DeviceKind::Network);
        assert_eq!(DeviceKind::of(0x108000, 0x1234), DeviceKind::Crypto);
        assert_eq!(DeviceKind::of(0x0b4000, 0x8086), DeviceKind::Crypto);
        assert_eq!(DeviceKind::of(0x0b4000, 0x1234), DeviceKind::Other);
        assert_eq!(DeviceKind::of(0x120000, 0x8086), DeviceKind::Baseband);
        assert_eq!(DeviceKind::of(0x010802, 0x8086), DeviceKind::Other);
    }
}
