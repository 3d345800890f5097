//! The IOVA-mode vote: which addresses devices will be given for our memory, decided from how
//! every device is bound (DPDK's `rte_bus_get_iommu_class`, simplified).
//!
//! - `uio_pci_generic` gives the device no IOMMU context of ours: it sees physical addresses,
//!   so a UIO device allows **PA** only.
//! - `vfio-pci` with an IOMMU allows **VA or PA**: we map each segment at the IOVA we choose. VA
//!   needs the IOMMU to translate addresses as wide as user-space virtual addresses (47 bits on
//!   x86-64); an IOMMU with fewer address bits allows PA only (DPDK does the same check, from the
//!   Intel IOMMU's MGAW).
//! - No device: **VA**. Nothing needs physical addresses, VA works without root (no
//!   `/proc/self/pagemap`) and with `--no-huge`; a device probed later that cannot do VA is
//!   refused by the vote the runtime holds then.
//! - Otherwise VA when every device allows it, else PA.
//!
//! `--iova-mode` overrides the choice, and fails, naming the device, when a device cannot honour it.

use std::fmt;

use burst_mem::IovaMode;

use crate::address::PciAddress;

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

/// Picks the IOVA mode for a process using `devices`, honouring `requested` (`--iova-mode`).
pub fn choose_iova_mode(devices: &[DeviceVote], requested: Option<IovaMode>) -> Result<IovaMode, VoteError> {
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
    // Every binding allows PA, so the sets always meet: VA if all allow it, else PA.
    if devices.iter().all(|d| d.allowed().va) {
        Ok(IovaMode::Va)
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
    fn no_devices_prefers_va_and_honours_a_request() {
        assert_eq!(choose_iova_mode(&[], None), Ok(IovaMode::Va));
        assert_eq!(choose_iova_mode(&[], Some(IovaMode::Pa)), Ok(IovaMode::Pa));
    }

    #[test]
    fn vfio_devices_get_va_and_one_uio_device_makes_it_pa() {
        let vfio = [vote("00:02.0", Binding::Vfio, Some(48)), vote("00:04.0", Binding::Vfio, None)];
        assert_eq!(choose_iova_mode(&vfio, None), Ok(IovaMode::Va));
        assert_eq!(choose_iova_mode(&vfio, Some(IovaMode::Pa)), Ok(IovaMode::Pa));
        let mixed = [vfio[0].clone(), vote("00:03.0", Binding::Uio, None)];
        assert_eq!(choose_iova_mode(&mixed, None), Ok(IovaMode::Pa));
        assert_eq!(choose_iova_mode(&[vote("00:03.0", Binding::Uio, None)], None), Ok(IovaMode::Pa));
    }

    #[test]
    fn a_narrow_iommu_votes_pa() {
        let narrow = [vote("00:02.0", Binding::Vfio, Some(39))];
        assert_eq!(choose_iova_mode(&narrow, None), Ok(IovaMode::Pa));
        let err = choose_iova_mode(&narrow, Some(IovaMode::Va)).unwrap_err().to_string();
        assert!(err.starts_with("--iova-mode=va but 0000:00:02.0 is bound to vfio-pci"), "{err}");
        assert!(err.contains("translates 39-bit addresses") && err.contains("need 47"), "{err}");
        assert!(err.contains("use --iova-mode=pa"), "{err}");
    }

    #[test]
    fn a_refused_request_names_the_device_and_says_what_to_do() {
        let devs = [vote("00:02.0", Binding::Vfio, None), vote("00:03.0", Binding::Uio, None)];
        let err = choose_iova_mode(&devs, Some(IovaMode::Va)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--iova-mode=va but 0000:00:03.0 is bound to uio_pci_generic, which only does PA: \
             bind it to vfio-pci or drop --iova-mode"
        );
        assert!(matches!(err, VoteError::Refused { requested: IovaMode::Va, .. }));
    }
}
