//! The IOVA-mode vote: which addresses devices will be given for our memory, decided from how
//! every device is bound (DPDK's `rte_bus_get_iommu_class`, simplified) and, when the devices
//! leave it open, from what the machine offers (DPDK 22.11's `rte_eal_init`, `RTE_IOVA_DC`).
//!
//! - `uio_pci_generic` gives the device no IOMMU context of ours: it sees physical addresses,
//!   so a UIO device allows **PA** only.
//! - `vfio-pci` with an IOMMU allows **VA or PA**: we map each segment at the IOVA we choose. VA
//!   needs the IOMMU to translate addresses as wide as user-space virtual addresses (47 bits on
//!   x86-64); an IOMMU with fewer address bits allows PA only (DPDK does the same check, from the
//!   Intel IOMMU's MGAW).
//! - A device that allows PA only: **PA**.
//! - Otherwise (every device allows both, or there is no device), as DPDK's EAL does: **VA** if
//!   physical addresses cannot be read (not root, or no hugepages: [`HostIova::phys_addrs`]),
//!   else **VA** if an IOMMU is in use ([`HostIova::iommu`]), else **PA** (a device probed later
//!   without an IOMMU will need physical addresses).
//!
//! `--iova-mode` overrides the choice, and fails, naming the device, when a device cannot honour it.

use std::fmt;

use burst_mem::iova::Pagemap;
use burst_mem::IovaMode;

use crate::address::PciAddress;
use crate::sysfs::SysfsRoot;

/// Bits of a user-space virtual address on x86-64 with 4-level paging (the kernel also keeps
/// mmap below 2^47 with 5-level paging unless asked for more): what an IOMMU must translate for
/// IOVA as VA.
pub const USER_VA_BITS: u8 = 47;

/// The user-space driver a device is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binding {
    /// `vfio-pci`: IOMMU-protected, DMA mapped by us.
    Vfio,
    /// `uio_pci_generic`: no IOMMU context, IOVA as PA.
    Uio,
}

impl Binding {
    /// The kernel driver's name.
    pub fn driver(self) -> &'static str {
        match self {
            Binding::Vfio => "vfio-pci",
            Binding::Uio => "uio_pci_generic",
        }
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.driver())
    }
}

/// A set of IOVA modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IovaModes {
    /// IOVA as PA is allowed.
    pub pa: bool,
    /// IOVA as VA is allowed.
    pub va: bool,
}

impl IovaModes {
    /// Both modes.
    pub const ANY: IovaModes = IovaModes { pa: true, va: true };
    /// Physical addresses only.
    pub const PA_ONLY: IovaModes = IovaModes { pa: true, va: false };

    /// Whether `mode` is in the set.
    pub fn contains(self, mode: IovaMode) -> bool {
        match mode {
            IovaMode::Pa => self.pa,
            IovaMode::Va => self.va,
        }
    }
}

impl fmt::Display for IovaModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.pa, self.va) {
            (true, true) => "pa,va",
            (true, false) => "pa",
            (false, true) => "va",
            (false, false) => "none",
        })
    }
}

/// One device's say in the vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceVote {
    /// The device.
    pub addr: PciAddress,
    /// What it is bound to.
    pub binding: Binding,
    /// For VFIO: how many address bits its IOMMU translates, when known (Intel: MGAW).
    pub iommu_width: Option<u8>,
}

impl DeviceVote {
    /// The modes this device can work with.
    pub fn allowed(&self) -> IovaModes {
        match (self.binding, self.iommu_width) {
            (Binding::Uio, _) => IovaModes::PA_ONLY,
            (Binding::Vfio, Some(w)) if w < USER_VA_BITS => IovaModes::PA_ONLY,
            (Binding::Vfio, _) => IovaModes::ANY,
        }
    }

    /// Why the device cannot do `mode`, for messages.
    fn why_not(&self, mode: IovaMode) -> String {
        match (self.binding, mode, self.iommu_width) {
            (Binding::Uio, IovaMode::Va, _) => "is bound to uio_pci_generic, which only does PA".to_string(),
            (Binding::Vfio, IovaMode::Va, Some(w)) => format!(
                "is bound to vfio-pci behind an IOMMU that translates {w}-bit addresses, and \
                 user-space virtual addresses need {USER_VA_BITS}"
            ),
            (binding, mode, _) => format!("is bound to {binding}, which does not do {mode}"),
        }
    }
}

/// The vote cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// `--iova-mode` asked for a mode a device cannot do.
    #[error("--iova-mode={requested} but {addr} {reason}: {hint}")]
    Refused {
        /// The mode asked for.
        requested: IovaMode,
        /// The first device that cannot do it.
        addr: PciAddress,
        /// Why not.
        reason: String,
        /// What to do.
        hint: String,
    },
}

/// What the machine offers, for when the devices leave the mode open (DPDK's `RTE_IOVA_DC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostIova {
    /// Physical addresses of our memory can be read: memory is in hugepages and
    /// `/proc/self/pagemap` gives frame numbers (root: CAP_SYS_ADMIN). DPDK's
    /// `rte_eal_using_phys_addrs`.
    pub phys_addrs: bool,
    /// An IOMMU is in use: `/sys/kernel/iommu_groups` has entries. DPDK's `is_iommu_enabled`,
    /// [`SysfsRoot::iommu_present`].
    pub iommu: bool,
}

impl HostIova {
    /// This machine and process: an IOMMU per `root`, physical addresses if memory will be in
    /// `hugepages` and the page map gives a frame number for a page of ours.
    pub fn probe(root: &SysfsRoot, hugepages: bool) -> HostIova {
        let here = 0u8;
        let phys_addrs =
            hugepages && Pagemap::open().and_then(|p| p.phys_addr(std::ptr::addr_of!(here) as usize)).is_ok();
        HostIova { phys_addrs, iommu: root.iommu_present() }
    }

    /// The mode when no device asks for one: DPDK 22.11 `rte_eal_init` for `RTE_IOVA_DC`.
    fn undecided(self) -> IovaMode {
        if !self.phys_addrs || self.iommu {
            IovaMode::Va
        } else {
            IovaMode::Pa
        }
    }
}

/// Picks the IOVA mode for a process using `devices`, honouring `requested` (`--iova-mode`);
/// `host` decides when the devices do not (no device, or all allow both).
pub fn choose_iova_mode(
    devices: &[DeviceVote],
    requested: Option<IovaMode>,
    host: HostIova,
) -> Result<IovaMode, VoteError> {
    if let Some(mode) = requested {
        return match devices.iter().find(|d| !d.allowed().contains(mode)) {
            None => Ok(mode),
            Some(d) => Err(VoteError::Refused {
                requested: mode,
                addr: d.addr,
                reason: d.why_not(mode),
                hint: match (d.binding, mode) {
                    (Binding::Uio, IovaMode::Va) => "bind it to vfio-pci or drop --iova-mode".to_string(),
                    (Binding::Vfio, IovaMode::Va) => {
                        "use --iova-mode=pa, or give the IOMMU more address bits (QEMU: -device intel-iommu,aw-bits=48)"
                            .to_string()
                    }
                    _ => "drop --iova-mode".to_string(),
                },
            }),
        };
    }
    // Every binding allows PA, so the sets always meet: PA if one allows nothing else, else
    // (all allow both, or no device) what the machine suggests.
    if devices.iter().all(|d| d.allowed().va) {
        Ok(host.undecided())
    } else {
        Ok(IovaMode::Pa)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(addr: &str, binding: Binding, iommu_width: Option<u8>) -> DeviceVote {
        DeviceVote { addr: addr.parse().unwrap(), binding, iommu_width }
    }

    /// Root with hugepages on a machine with an IOMMU: the lab's `--iommu on`.
    const LAB: HostIova = HostIova { phys_addrs: true, iommu: true };

    fn choose(devices: &[DeviceVote], requested: Option<IovaMode>) -> Result<IovaMode, VoteError> {
        choose_iova_mode(devices, requested, LAB)
    }

    #[test]
    fn allowed_sets_follow_the_binding_and_the_iommu_width() {
        assert_eq!(vote("00:02.0", Binding::Uio, None).allowed(), IovaModes::PA_ONLY);
        assert_eq!(vote("00:02.0", Binding::Uio, Some(48)).allowed(), IovaModes::PA_ONLY);
        assert_eq!(vote("00:02.0", Binding::Vfio, None).allowed(), IovaModes::ANY);
        assert_eq!(vote("00:02.0", Binding::Vfio, Some(48)).allowed(), IovaModes::ANY);
        assert_eq!(vote("00:02.0", Binding::Vfio, Some(47)).allowed(), IovaModes::ANY);
        assert_eq!(vote("00:02.0", Binding::Vfio, Some(39)).allowed(), IovaModes::PA_ONLY);
        assert_eq!(IovaModes::ANY.to_string(), "pa,va");
    }

    #[test]
    fn no_devices_decide_as_dpdk_does_and_a_request_wins() {
        let host = |phys_addrs, iommu| HostIova { phys_addrs, iommu };
        // No physical addresses (not root, or --no-huge): VA whatever else.
        assert_eq!(choose_iova_mode(&[], None, host(false, false)), Ok(IovaMode::Va));
        assert_eq!(choose_iova_mode(&[], None, host(false, true)), Ok(IovaMode::Va));
        // Physical addresses and an IOMMU: VA.
        assert_eq!(choose_iova_mode(&[], None, host(true, true)), Ok(IovaMode::Va));
        // Physical addresses and no IOMMU: PA.
        assert_eq!(choose_iova_mode(&[], None, host(true, false)), Ok(IovaMode::Pa));
        assert_eq!(choose_iova_mode(&[], Some(IovaMode::Pa), host(false, true)), Ok(IovaMode::Pa));
        assert_eq!(choose_iova_mode(&[], Some(IovaMode::Va), host(true, false)), Ok(IovaMode::Va));
        // Devices that allow both leave it to the machine too.
        let vfio = [vote("00:02.0", Binding::Vfio, Some(48))];
        assert_eq!(choose_iova_mode(&vfio, None, host(false, true)), Ok(IovaMode::Va));
    }

    #[test]
    fn vfio_devices_get_va_and_one_uio_device_makes_it_pa() {
        let vfio = [vote("00:02.0", Binding::Vfio, Some(48)), vote("00:04.0", Binding::Vfio, None)];
        assert_eq!(choose(&vfio, None), Ok(IovaMode::Va));
        assert_eq!(choose(&vfio, Some(IovaMode::Pa)), Ok(IovaMode::Pa));
        let mixed = [vfio[0].clone(), vote("00:03.0", Binding::Uio, None)];
        assert_eq!(choose(&mixed, None), Ok(IovaMode::Pa));
        assert_eq!(choose(&[vote("00:03.0", Binding::Uio, None)], None), Ok(IovaMode::Pa));
    }

    #[test]
    fn a_narrow_iommu_votes_pa() {
        let narrow = [vote("00:02.0", Binding::Vfio, Some(39))];
        assert_eq!(choose(&narrow, None), Ok(IovaMode::Pa));
        let err = choose(&narrow, Some(IovaMode::Va)).unwrap_err().to_string();
        assert!(err.starts_with("--iova-mode=va but 0000:00:02.0 is bound to vfio-pci"), "{err}");
        assert!(err.contains("translates 39-bit addresses") && err.contains("need 47"), "{err}");
        assert!(err.contains("use --iova-mode=pa"), "{err}");
    }

    #[test]
    fn a_refused_request_names_the_device_and_says_what_to_do() {
        let devs = [vote("00:02.0", Binding::Vfio, None), vote("00:03.0", Binding::Uio, None)];
        let err = choose(&devs, Some(IovaMode::Va)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--iova-mode=va but 0000:00:03.0 is bound to uio_pci_generic, which only does PA: \
             bind it to vfio-pci or drop --iova-mode"
        );
        assert!(matches!(err, VoteError::Refused { requested: IovaMode::Va, .. }));
    }
}
