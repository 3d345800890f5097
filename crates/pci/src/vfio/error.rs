//! [`VfioError`]: what can go wrong with VFIO, each message saying what to do.

use std::path::PathBuf;

use burst_mem::IovaMode;

use crate::address::PciAddress;

/// What can go wrong with VFIO.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// The device has no IOMMU group.
    #[error(
        "{addr} has no IOMMU group ({path} is missing): VFIO needs an IOMMU; boot with \
         `intel_iommu=on` (or `amd_iommu=on`), or bind the device to uio_pci_generic and use --iova-mode=pa"
    )]
    NoGroup {
        /// The device.
        addr: PciAddress,
        /// The link that is missing.
        path: PathBuf,
    },
    /// Another device of the group is on a kernel driver.
    #[error(
        "IOMMU group {group} of {addr} is not viable: {other} in the same group is bound to {driver}; \
         VFIO needs every device of a group on vfio-pci (or pci-stub, pcieport) or on no driver: \
         bind it with `devbind -b vfio-pci {other}` or unbind it (`devbind -u {other}`)"
    )]
    GroupNotViable {
        /// The device being opened.
        addr: PciAddress,
        /// Its group.
        group: u32,
        /// The device in the way.
        other: String,
        /// Its driver.
        driver: String,
    },
    /// `/dev/vfio/vfio` could not be opened or is unusable.
    #[error("cannot set up a VFIO container: {source}; {hint}")]
    Container {
        /// What vfio-ioctls said.
        source: vfio_ioctls::VfioError,
        /// What to do.
        hint: &'static str,
    },
    /// Opening the group or the device failed.
    #[error("cannot open {addr} through VFIO (group {group}): {source}; {hint}")]
    Open {
        /// The device.
        addr: PciAddress,
        /// Its group.
        group: u32,
        /// What vfio-ioctls said.
        source: vfio_ioctls::VfioError,
        /// What to do.
        hint: String,
    },
    /// The IOMMU came back (a device opened after the last one closed) but a range the
    /// container had mapped could not be mapped in it again.
    #[error(
        "opening {addr} set up the container's IOMMU again (the last device had closed, and the kernel \
         dropped the old one with its mappings), but mapping the container's DMA memory in it again failed: \
         {source}"
    )]
    Replay {
        /// The device whose opening set up the IOMMU.
        addr: PciAddress,
        /// The failed mapping.
        source: Box<VfioError>,
    },
    /// The device has no config region (not a PCI device?).
    #[error("{addr} has no VFIO config region: is it a PCI device bound to vfio-pci?")]
    NoConfigRegion {
        /// The device.
        addr: PciAddress,
    },
    /// The range is empty or runs past 2^64.
    #[error("IOVA range {iova:#x} (+{len:#x}) {problem}: nothing can be mapped there")]
    BadRange {
        /// First IOVA.
        iova: u64,
        /// Its length.
        len: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The IOVA range lies beyond the IOMMU's address width.
    #[error(
        "IOVA {iova:#x} (+{len:#x}) needs {needed} address bits but the IOMMU handles {width}: {}",
        width_advice(*mode, *needed)
    )]
    AddressWidth {
        /// First IOVA of the range.
        iova: u64,
        /// Its length.
        len: u64,
        /// Bits the range's last address needs.
        needed: u8,
        /// Bits the IOMMU translates.
        width: u8,
        /// What the IOVA is, when known: `Va` when it equals the virtual address mapped, `Pa`
        /// when it does not (a physical address, or one the caller chose).
        mode: Option<IovaMode>,
    },
    /// The IOVA range crosses a hole the IOMMU reserves (the MSI window, say).
    #[error(
        "IOVA range {iova:#x}..={last:#x} is not inside one usable IOMMU range (usable: {usable}); \
         the IOMMU reserves the rest (0xfee00000..0xfeefffff is the MSI window on x86)"
    )]
    ReservedRange {
        /// First IOVA.
        iova: u64,
        /// Last IOVA.
        last: u64,
        /// The usable ranges, for the message.
        usable: String,
    },
    /// A DMA map or unmap was asked while no device is open in the container.
    #[error(
        "the VFIO container has no open device, so no IOMMU to program: open a device (PciDevice::open) \
         before mapping DMA memory"
    )]
    NoIommuYet,
    /// The kernel refused a DMA map or unmap.
    #[error("{op} IOVA {iova:#x} (+{len:#x}) in the IOMMU failed: {source}{hint}")]
    Dma {
        /// `mapping` or `unmapping`.
        op: &'static str,
        /// The IOVA.
        iova: u64,
        /// The length.
        len: u64,
        /// What vfio-ioctls said.
        source: vfio_ioctls::VfioError,
        /// What to do, for the message.
        hint: &'static str,
    },
    /// `VFIO_DEVICE_RESET` failed.
    #[error("resetting {addr} failed: {source}{hint}")]
    Reset {
        /// The device.
        addr: PciAddress,
        /// What the kernel said.
        source: std::io::Error,
        /// What to do.
        hint: &'static str,
    },
}

/// [`VfioError::AddressWidth`]'s advice: `--iova-mode=pa` helps only when the IOVA is a virtual
/// address; a wider IOMMU helps when one that wide exists (48 bits: Intel's 4-level tables).
fn width_advice(mode: Option<IovaMode>, needed: u8) -> String {
    const WIDER: &str = "give the IOMMU 48 address bits (QEMU: -device intel-iommu,aw-bits=48, QEMU 10's default)";
    const TO_PA: &str = "use --iova-mode=pa (the IOVAs are then physical addresses)";
    let wider = needed <= 48;
    match (mode, wider) {
        (Some(IovaMode::Va), true) => format!("{TO_PA}, or {WIDER}"),
        (Some(IovaMode::Va), false) => TO_PA.to_string(),
        (Some(IovaMode::Pa), true) => {
            format!("the IOVA is not a virtual address (IOVA as PA), so --iova-mode=pa cannot help: {WIDER}")
        }
        (Some(IovaMode::Pa), false) => {
            "the IOVA is not a virtual address (IOVA as PA), so --iova-mode=pa cannot help, and IOMMUs that \
             translate that many bits are rare: check where the IOVA comes from"
                .to_string()
        }
        (None, true) => format!("with IOVA as VA, {TO_PA}; with IOVA as PA, {WIDER}"),
        (None, false) => format!("with IOVA as VA, {TO_PA}"),
    }
}
