//! VFIO (Documentation/driver-api/vfio.rst): a device bound to `vfio-pci`, reached through its
//! IOMMU group, with DMA confined to what we map in the IOMMU.
//!
//! - One [`Container`] (`/dev/vfio/vfio`) per process, shared by every device (`Arc`): one set
//!   of IOMMU page tables, so a DMA segment is mapped once for all devices. It is the
//!   [`DmaMapper`] that `burst_mem::Memory` programs as segments come and go.
//! - The IOMMU exists only while a device is open in the container: when the last device file
//!   closes, vfio-ioctls detaches its group and the kernel drops the IOMMU with every mapping
//!   (`vfio_group_detach_container`). The container therefore remembers every range mapped
//!   through it and maps them all again when a device opens after that: `burst_mem::Memory`
//!   keeps believing its segments are mapped, and they are. It counts the open device files
//!   (`OpenDevice`), whoever holds them (a `PciDevice`, a BAR, an INTx [`Irq`]).
//! - Before a group is opened, every device in it must be on a driver that leaves DMA to its
//!   owner (`driver_managed_dma`: vfio-pci and its variant drivers, pci-stub, pcieport) or on
//!   no driver: the kernel would refuse the group as "not viable" (Linux 5.19 and later); we say
//!   which device is in the way and what to do.
//! - The IOMMU's usable IOVA ranges come from `VFIO_IOMMU_GET_INFO`'s IOVA-range capability
//!   (Linux 5.4+); without it, from the Intel IOMMU's MGAW in sysfs (DPDK's way). Every mapping
//!   is checked against them first, so "IOVA needs 47 bits, the IOMMU handles 39" is an error
//!   that says so rather than the kernel's EINVAL/EFAULT.
//! - BARs with `VFIO_REGION_INFO_FLAG_MMAP` are mapped; others (I/O-port BARs, such as legacy
//!   virtio's BAR0) are reached with pread/pwrite on the device file at the region's offset.
//!
//! Built on vfio-ioctls; the few ioctls it does not wrap (`VFIO_IOMMU_GET_INFO` with
//! capabilities, `VFIO_DEVICE_RESET` with its error) are issued here.

use std::fs;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burst_mem::{DmaMapper, IovaMode};
use vfio_bindings::bindings::vfio::{
    VFIO_BASE, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP, VFIO_TYPE,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps, VfioRegionInfoCap};
use vmm_sys_util::eventfd::EventFd;

use crate::address::PciAddress;
use crate::bar::{Bar, BarError};
use crate::config::{ConfigFile, BAR0, BAR_IO_SPACE};
use crate::irq::{Irq, IrqError, IrqInfo, IrqKind};
use crate::sysfs::SysfsRoot;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO's ioctls carry no size or direction bits.
const fn vfio_io(n: u32) -> libc::c_ulong {
    ((VFIO_TYPE as libc::c_ulong) << 8) | (VFIO_BASE + n) as libc::c_ulong
}
/// `VFIO_DEVICE_RESET` (linux/vfio.h).
const VFIO_DEVICE_RESET: libc::c_ulong = vfio_io(11);
/// `VFIO_IOMMU_GET_INFO` (linux/vfio.h).
const VFIO_IOMMU_GET_INFO: libc::c_ulong = vfio_io(12);

/// Whether a device on `driver` leaves its IOMMU group usable by VFIO. Since Linux 5.19
/// (`iommu_group_claim_dma_owner`) a group is viable when every device in it is on no driver or
/// on a driver that sets `driver_managed_dma`: vfio-pci and its variant drivers
/// (`mlx5_vfio_pci`, `hisi_acc_vfio_pci`, ...), pci-stub and pcieport. Any other driver, a
/// bridge's `shpchp` included, makes the group unusable.
pub fn keeps_group_viable(driver: &str) -> bool {
    matches!(driver, "vfio-pci" | "pci-stub" | "pcieport") || driver.ends_with("_vfio_pci")
}

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

/// A range of IOVAs the IOMMU translates, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRange {
    /// First usable IOVA.
    pub start: u64,
    /// Last usable IOVA.
    pub end: u64,
}

impl std::fmt::Display for IovaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}..={:#x}", self.start, self.end)
    }
}

/// Bits needed to write `last`, the highest address of a range.
fn bits_for(last: u64) -> u8 {
    (64 - last.leading_zeros()) as u8
}

/// A range mapped through the container, kept so it can be mapped again in a new IOMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DmaRange {
    va: usize,
    iova: u64,
    len: usize,
}

impl DmaRange {
    /// What the IOVA is, for [`VfioError::AddressWidth`]'s advice.
    fn mode(&self) -> IovaMode {
        if self.iova == self.va as u64 {
            IovaMode::Va
        } else {
            IovaMode::Pa
        }
    }
}

/// What is known about the container's IOMMU.
#[derive(Clone, Debug, Default)]
struct IommuState {
    /// Device files open in the container ([`OpenDevice`]). While there is one, its group is
    /// attached and the IOMMU exists; when the last one closes, the kernel drops the IOMMU.
    devices: usize,
    /// From `VFIO_IOMMU_GET_INFO`, when the kernel reports them.
    ranges: Option<Vec<IovaRange>>,
    /// IOVA page sizes the IOMMU supports (bit n = 2^n bytes).
    page_sizes: u64,
    /// The narrowest Intel IOMMU MGAW among the devices, from sysfs.
    sysfs_width: Option<u8>,
    /// Every range mapped with [`Container::map_dma`] and not unmapped since, in mapping order:
    /// what the IOMMU must hold whenever it exists.
    mapped: Vec<DmaRange>,
}

/// The process's VFIO container: one IOMMU context shared by all its devices.
///
/// The kernel keeps the IOMMU, and the DMA mappings in it, only while a device is open in the
/// container. The container remembers what was mapped through it and maps it all again when a
/// device opens after the last one closed, so a DMA mapping lasts from [`Container::map_dma`] to
/// [`Container::unmap_dma`] whatever devices come and go in between.
pub struct Container {
    vfio: Arc<VfioContainer>,
    state: Mutex<IommuState>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("state", &*self.lock()).finish()
    }
}

impl Container {
    /// Opens `/dev/vfio/vfio`. Share the result with every device the process opens.
    pub fn new() -> Result<Arc<Container>, VfioError> {
        let vfio = VfioContainer::new(None).map_err(|source| {
            let hint = match source {
                // The container opened but offers no type-1 IOMMU: its module is not loaded.
                vfio_ioctls::VfioError::VfioExtension => "the type-1 IOMMU backend is not loaded: run `modprobe vfio_iommu_type1`",
                _ => "load the modules (`modprobe vfio-pci vfio_iommu_type1`) and run as root (or give this user /dev/vfio/*)",
            };
            VfioError::Container { source, hint }
        })?;
        Ok(Arc::new(Container { vfio: Arc::new(vfio), state: Mutex::new(IommuState::default()) }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IommuState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `device`, just opened in this container (its group attached, so the IOMMU is set), joins
    /// the count. The IOMMU is asked what it translates; if `device` is the only open device,
    /// the IOMMU may be a new one (the previous one went with the last device), and every range
    /// mapped through the container is mapped in it again. `sysfs_width` is the device's Intel
    /// IOMMU MGAW, if sysfs has it.
    fn join(
        self: &Arc<Self>,
        addr: PciAddress,
        device: VfioDevice,
        sysfs_width: Option<u8>,
    ) -> Result<Arc<OpenDevice>, VfioError> {
        let info = iommu_info(self.vfio.as_raw_fd());
        let mut st = self.lock();
        st.devices += 1;
        st.sysfs_width = match (st.sysfs_width, sysfs_width) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match info {
            Ok((page_sizes, ranges)) => {
                st.page_sizes = page_sizes;
                st.ranges = ranges;
            }
            Err(e) => tracing::warn!("VFIO_IOMMU_GET_INFO failed: {e}; IOVA checks use sysfs only"),
        }
        tracing::debug!(ranges = ?st.ranges, width = ?st.sysfs_width, devices = st.devices, "VFIO container IOMMU");
        let replayed = if st.devices == 1 { self.replay(&st) } else { Ok(()) };
        drop(st);
        // Made after the lock is released, since its drop (which counts the device out again)
        // takes the lock: a panic above cannot leave a guard and an `OpenDevice` dropping
        // together.
        let open = OpenDevice { device: Some(device), container: self.clone() };
        match replayed {
            Ok(()) => Ok(Arc::new(open)),
            Err(e) => {
                drop(open);
                Err(VfioError::Replay { addr, source: Box::new(e) })
            }
        }
    }

    /// Maps every remembered range in the IOMMU. A range the IOMMU already holds (EEXIST) is
    /// fine: the IOMMU outlived its devices (vfio-ioctls keeps a group attached when opening a
    /// device of it failed half-way), so nothing was lost.
    fn replay(&self, st: &IommuState) -> Result<(), VfioError> {
        if !st.mapped.is_empty() {
            tracing::info!(ranges = st.mapped.len(), "mapping the VFIO container's DMA memory in its new IOMMU");
        }
        for r in &st.mapped {
            check_range(r.iova, r.len as u64, st.ranges.as_deref(), st.sysfs_width, Some(r.mode()))?;
            match self.dma_map(r) {
                Err(VfioError::Dma { source: vfio_ioctls::VfioError::IommuDmaMap(e), .. })
                    if e.errno() == libc::EEXIST => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// `VFIO_IOMMU_MAP_DMA` of `r`, read and write.
    fn dma_map(&self, r: &DmaRange) -> Result<(), VfioError> {
        // SAFETY: VFIO pins the pages backing [va, va + len) and fails with EFAULT if they are
        // not mapped in this process; nothing in this process's memory changes. The caller of
        // `map_dma` handed the range over for DMA until it unmaps it (which forgets the range),
        // and what the device then writes there is what the driver programs it to, as with any
        // DMA address.
        unsafe { self.vfio.vfio_dma_map(r.iova, r.len, r.va as *mut u8) }.map_err(|source| VfioError::Dma {
            op: "mapping",
            iova: r.iova,
            len: r.len as u64,
            source,
            hint: "; EEXIST: the range is already mapped; ENOMEM: raise RLIMIT_MEMLOCK (ulimit -l) or \
                   the DMA mapping limit (vfio_iommu_type1 dma_entry_limit)",
        })
    }

    /// How many device files are open in the container (devices, and the BARs and INTx
    /// interrupts that keep a device open after its `PciDevice` is gone). 0: no IOMMU now.
    pub fn open_devices(&self) -> usize {
        self.lock().devices
    }

    /// The IOVA ranges the IOMMU translates, when the kernel reports them (Linux 5.4+) and a
    /// device has joined.
    pub fn iova_ranges(&self) -> Option<Vec<IovaRange>> {
        self.lock().ranges.clone()
    }

    /// IOVA page sizes the IOMMU supports (bit n set: 2^n bytes); 0 before a device joins.
    pub fn iova_page_sizes(&self) -> u64 {
        self.lock().page_sizes
    }

    /// How many address bits the IOMMU translates: from the IOVA ranges' top, else from the
    /// Intel IOMMU's MGAW; `None` when neither is known.
    pub fn address_width(&self) -> Option<u8> {
        let st = self.lock();
        match &st.ranges {
            Some(r) if !r.is_empty() => r.iter().map(|r| bits_for(r.end)).max(),
            _ => st.sysfs_width,
        }
    }

    /// Checks that `len` bytes at `iova` are translatable by the IOMMU.
    pub fn check_iova(&self, iova: u64, len: u64) -> Result<(), VfioError> {
        let st = self.lock();
        if st.devices == 0 {
            return Err(VfioError::NoIommuYet);
        }
        check_range(iova, len, st.ranges.as_deref(), st.sysfs_width, None)
    }

    /// Maps `len` bytes at virtual address `va` for DMA at `iova`, readable and writable by the
    /// devices (`VFIO_IOMMU_MAP_DMA`); the kernel pins the pages. Checks the IOVA first. The
    /// range stays mapped until [`Container::unmap_dma`], in whatever IOMMU the container has:
    /// if every device closes and one opens again, it is mapped again.
    pub fn map_dma(&self, va: usize, iova: u64, len: usize) -> Result<(), VfioError> {
        let r = DmaRange { va, iova, len };
        // Held across the ioctl, so that a device joining meanwhile does not map it a second time.
        let mut st = self.lock();
        if st.devices == 0 {
            return Err(VfioError::NoIommuYet);
        }
        check_range(iova, len as u64, st.ranges.as_deref(), st.sysfs_width, Some(r.mode()))?;
        self.dma_map(&r)?;
        st.mapped.push(r);
        Ok(())
    }

    /// Undoes a [`Container::map_dma`] of the same range; fails if the kernel unmapped a
    /// different length (nothing, or part of a larger mapping). The range is forgotten in any
    /// case: it is never mapped again. With no device open the IOMMU has usually gone and the
    /// range with it, but not always (vfio-ioctls keeps a group attached when opening a device
    /// failed half-way), so the kernel is still asked to unmap it and its refusal ignored.
    pub fn unmap_dma(&self, iova: u64, len: usize) -> Result<(), VfioError> {
        let mut st = self.lock();
        let known = st.mapped.iter().position(|r| r.iova == iova && r.len == len).map(|i| st.mapped.remove(i));
        if st.devices == 0 {
            if known.is_none() {
                return Err(VfioError::NoIommuYet);
            }
            if let Err(e) = self.vfio.vfio_dma_unmap(iova, len) {
                tracing::debug!("unmapping {iova:#x} with no device open: {e} (the IOMMU went with the last device)");
            }
            return Ok(());
        }
        self.vfio.vfio_dma_unmap(iova, len).map_err(|source| VfioError::Dma {
            op: "unmapping",
            iova,
            len: len as u64,
            source,
            hint: "; unmap exactly what was mapped",
        })
    }
}

impl DmaMapper for Container {
    fn map(&self, va: usize, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.map_dma(va, iova, len)?)
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.unmap_dma(iova, len)?)
    }
}

/// A VFIO device file open in a [`Container`]. While one lives, its group stays attached to
/// the container, and so does the IOMMU: the container counts them. Everything that needs the
/// device file holds an `Arc<OpenDevice>` (config space, BARs reached through the file, an
/// INTx [`Irq`] for unmasking), so the count follows whoever really keeps the device open.
pub(crate) struct OpenDevice {
    /// `None` only while dropping.
    device: Option<VfioDevice>,
    container: Arc<Container>,
}

impl std::ops::Deref for OpenDevice {
    type Target = VfioDevice;

    fn deref(&self) -> &VfioDevice {
        self.device.as_ref().expect("an OpenDevice has its device until it drops")
    }
}

impl AsRawFd for OpenDevice {
    fn as_raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl Drop for OpenDevice {
    fn drop(&mut self) {
        // Under the container's lock, so that no mapping runs between the group leaving (the
        // IOMMU may go with it: vfio-ioctls detaches the group when its device file closes) and
        // the count saying so.
        let mut st = self.container.lock();
        drop(self.device.take());
        st.devices = st.devices.saturating_sub(1);
        if st.devices == 0 && !st.mapped.is_empty() {
            tracing::debug!(
                ranges = st.mapped.len(),
                "last VFIO device closed: the IOMMU is gone; its mappings come back with the next device"
            );
        }
    }
}

/// The check behind [`Container::check_iova`]. `mode` says what the IOVA is, for the advice
/// when it does not fit.
fn check_range(
    iova: u64,
    len: u64,
    ranges: Option<&[IovaRange]>,
    sysfs_width: Option<u8>,
    mode: Option<IovaMode>,
) -> Result<(), VfioError> {
    let last = match len.checked_sub(1) {
        None => return Err(VfioError::BadRange { iova, len, problem: "is empty (the length is zero)" }),
        Some(l) => iova.checked_add(l).ok_or(VfioError::BadRange {
            iova,
            len,
            problem: "wraps around the end of the 64-bit address space",
        })?,
    };
    let width = match ranges {
        Some(r) if !r.is_empty() => r.iter().map(|r| bits_for(r.end)).max(),
        _ => sysfs_width,
    };
    if let Some(width) = width {
        if bits_for(last) > width {
            return Err(VfioError::AddressWidth { iova, len, needed: bits_for(last), width, mode });
        }
    }
    if let Some(ranges) = ranges {
        if !ranges.iter().any(|r| r.start <= iova && last <= r.end) {
            let usable = ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
            return Err(VfioError::ReservedRange { iova, last, usable });
        }
    }
    Ok(())
}

/// `VFIO_IOMMU_GET_INFO` on a container with an IOMMU set: IOVA page sizes and, when the kernel
/// has the capability, the usable IOVA ranges.
fn iommu_info(container: RawFd) -> std::io::Result<(u64, Option<Vec<IovaRange>>)> {
    // struct vfio_iommu_type1_info: argsz u32, flags u32, iova_pgsizes u64, cap_offset u32, pad.
    const INFO_LEN: usize = 24;
    let mut len = INFO_LEN;
    for _ in 0..2 {
        // u64s, for the struct's 8-byte alignment.
        let mut buf = vec![0u64; len.div_ceil(8)];
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&((buf.len() * 8) as u32).to_ne_bytes()); // argsz; flags 0
        buf[0] = u64::from_ne_bytes(head);
        // SAFETY: VFIO_IOMMU_GET_INFO writes at most `argsz` bytes into the buffer, which is
        // that long and 8-byte aligned as the struct needs.
        let r = unsafe { libc::ioctl(container, VFIO_IOMMU_GET_INFO, buf.as_mut_ptr()) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let want = ne_u32(&bytes, 0).unwrap_or(0) as usize;
        if want > bytes.len() {
            // The capabilities did not fit: the kernel said how much room they need.
            len = want;
            continue;
        }
        return Ok(parse_iommu_info(&bytes));
    }
    Err(std::io::Error::other("VFIO_IOMMU_GET_INFO kept asking for a larger buffer"))
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a filled `vfio_iommu_type1_info` and its capability chain (`vfio_info_cap_header`:
/// id u16, version u16, next u32 from the start of the info) for the IOVA-range capability
/// (`nr_iovas` u32, reserved u32, then `{start, end}` u64 pairs).
fn parse_iommu_info(b: &[u8]) -> (u64, Option<Vec<IovaRange>>) {
    let flags = ne_u32(b, 4).unwrap_or(0);
    let page_sizes = ne_u64(b, 8).unwrap_or(0);
    if flags & VFIO_IOMMU_INFO_CAPS == 0 {
        return (page_sizes, None);
    }
    let mut next = ne_u32(b, 16).unwrap_or(0) as usize;
    let mut hops = 0;
    while next != 0 && hops < 16 {
        hops += 1;
        let (Some(header), Some(link)) = (ne_u32(b, next), ne_u32(b, next + 4)) else { break };
        let id = header & 0xffff;
        if id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let n = ne_u32(b, next + 8).unwrap_or(0) as usize;
            let ranges: Option<Vec<IovaRange>> = (0..n)
                .map(|i| {
                    let at = next + 16 + i * 16;
                    Some(IovaRange { start: ne_u64(b, at)?, end: ne_u64(b, at + 8)? })
                })
                .collect();
            return (page_sizes, ranges);
        }
        next = link as usize;
    }
    (page_sizes, None)
}

/// The Intel IOMMU's maximum guest address width for the device's IOMMU: CAP register bits
/// 21:16 plus one (VT-d spec 11.4.2, "Capability Register"), as DPDK reads it from
/// `/sys/bus/pci/devices/ADDR/iommu/intel-iommu/cap`.
pub fn intel_iommu_width(sysfs_root: &Path, addr: PciAddress) -> Option<u8> {
    let path = device_dir(sysfs_root, addr).join("iommu/intel-iommu/cap");
    let text = fs::read_to_string(path).ok()?;
    let cap = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some(mgaw(cap))
}

fn mgaw(cap: u64) -> u8 {
    ((cap >> 16) & 0x3f) as u8 + 1
}

pub(crate) fn device_dir(sysfs_root: &Path, addr: PciAddress) -> PathBuf {
    sysfs_root.join("sys/bus/pci/devices").join(addr.to_string())
}

/// The last path component a symlink points to (`driver` -> `.../drivers/e1000` gives `e1000`).
pub(crate) fn link_name(link: &Path) -> Option<String> {
    Some(fs::read_link(link).ok()?.file_name()?.to_string_lossy().into_owned())
}

/// The IOMMU group of `addr`, after checking that every other device in it is on no driver or
/// on one that keeps the group viable ([`keeps_group_viable`]).
pub fn check_group_viable(sysfs_root: &Path, addr: PciAddress) -> Result<u32, VfioError> {
    let dev = device_dir(sysfs_root, addr);
    let link = dev.join("iommu_group");
    let group: u32 =
        link_name(&link).and_then(|g| g.parse().ok()).ok_or_else(|| VfioError::NoGroup { addr, path: link.clone() })?;
    let members = sysfs_root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
    let mut names: Vec<String> = fs::read_dir(&members)
        .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    names.sort();
    for name in names {
        if name == addr.to_string() {
            continue;
        }
        let Some(driver) = link_name(&members.join(&name).join("driver")) else { continue };
        if !keeps_group_viable(&driver) {
            return Err(VfioError::GroupNotViable { addr, group, other: name, driver });
        }
    }
    Ok(group)
}

/// What to do when opening a device of `group` failed with `source`. EBUSY on the group file
/// means someone has it open already (a group file opens once): this process through another
/// container, or another process.
fn open_hint(sysfs_root: &Path, group: u32, source: &vfio_ioctls::VfioError) -> String {
    const GENERIC: &str = "check that it is bound to vfio-pci (`devbind --status`) and that we are root";
    let busy = matches!(source, vfio_ioctls::VfioError::OpenGroup(e, _) if e.raw_os_error() == Some(libc::EBUSY));
    if !busy {
        return GENERIC.to_string();
    }
    let file = format!("/dev/vfio/{group}");
    let holders = SysfsRoot::at(sysfs_root).holders(&file);
    let me = std::process::id();
    if holders.iter().any(|h| h.pid == me) {
        return format!(
            "this process has {file} open already, through another container: a group opens once per process, \
             so pass the first device's container (`PciDevice::container()`, the same `Arc<Container>`) to \
             `PciDevice::open` for every device"
        );
    }
    match holders.as_slice() {
        [] => format!("{file} is open already (another process?); {GENERIC}"),
        others => format!(
            "{file} is open in {}: a group opens once; stop that process first",
            others.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A device bound to vfio-pci, open.
pub(crate) struct VfioPci {
    addr: PciAddress,
    group: u32,
    iommu_width: Option<u8>,
    // Field order is drop order: the config file shares the device's descriptor.
    config: ConfigFile,
    device: Arc<OpenDevice>,
    container: Arc<Container>,
}

impl VfioPci {
    /// Opens `addr`, which must be bound to vfio-pci, in `container` (a new one if `None`).
    pub(crate) fn open(
        sysfs_root: &Path,
        addr: PciAddress,
        container: Option<&Arc<Container>>,
    ) -> Result<VfioPci, VfioError> {
        let group = check_group_viable(sysfs_root, addr)?;
        let container = match container {
            Some(c) => c.clone(),
            None => Container::new()?,
        };
        let ops: Arc<dyn VfioOps> = container.vfio.clone();
        let device = VfioDevice::new(&device_dir(sysfs_root, addr), ops, false).map_err(|source| {
            let hint = open_hint(sysfs_root, group, &source);
            VfioError::Open { addr, group, source, hint }
        })?;
        let iommu_width = intel_iommu_width(sysfs_root, addr);
        // Counted from here: an early return below drops it, and the count with it.
        let device = container.join(addr, device, iommu_width)?;
        let size = device.get_region_size(VFIO_PCI_CONFIG_REGION_INDEX);
        if size == 0 {
            return Err(VfioError::NoConfigRegion { addr });
        }
        let offset = device.get_region_offset(VFIO_PCI_CONFIG_REGION_INDEX);
        let config = ConfigFile::new(addr, device.clone(), offset, size.min(4096) as u16);
        tracing::debug!(%addr, group, "opened through VFIO");
        Ok(VfioPci { addr, group, iommu_width, config, device, container })
    }

    pub(crate) fn group(&self) -> u32 {
        self.group
    }

    pub(crate) fn iommu_width(&self) -> Option<u8> {
        self.container.address_width().or(self.iommu_width)
    }

    pub(crate) fn container(&self) -> &Arc<Container> {
        &self.container
    }

    pub(crate) fn config(&self) -> &ConfigFile {
        &self.config
    }

    fn present_bars(&self) -> String {
        let present: Vec<String> = (0..6u32)
            .filter(|&i| self.device.get_region_size(i) > 0)
            .map(|i| format!("BAR{i} ({:#x} bytes)", self.device.get_region_size(i)))
            .collect();
        if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        }
    }

    /// Whether VFIO lets us mmap the whole region: it says MMAP, and if it lists sparse areas
    /// (to keep the MSI-X table out), they cover everything or the table is mappable anyway.
    /// If not, why not.
    fn whole_region_mappable(&self, index: u32, size: u64) -> Result<(), &'static str> {
        if self.device.get_region_flags(index) & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err("the region has no MMAP flag");
        }
        let caps = self.device.get_region_caps(index);
        if caps.iter().any(|c| matches!(c, VfioRegionInfoCap::MsixMappable)) {
            return Ok(());
        }
        match caps.iter().find_map(|c| match c {
            VfioRegionInfoCap::SparseMmap(s) => Some(s),
            _ => None,
        }) {
            None => Ok(()),
            Some(sparse) if sparse.areas.iter().any(|a| a.offset == 0 && a.size >= size) => Ok(()),
            Some(_) => Err("only sparse areas of it are mappable, the MSI-X table being carved out"),
        }
    }

    /// Maps (or opens for pread/pwrite) BAR `index`. `owner` keeps the device open.
    pub(crate) fn bar(&self, index: u8, owner: Arc<dyn Send + Sync>) -> Result<Bar, BarError> {
        let addr = self.addr;
        let no_bar = || BarError::NoSuchBar { addr, index, present: self.present_bars() };
        if index > 5 {
            return Err(no_bar());
        }
        let region = u32::from(index);
        let size = self.device.get_region_size(region);
        if size == 0 {
            return Err(no_bar());
        }
        let offset = self.device.get_region_offset(region);
        let bar_reg = self.config.read32(BAR0 + 4 * u16::from(index)).unwrap_or(0);
        let is_io = bar_reg & BAR_IO_SPACE != 0;
        if !is_io {
            match self.whole_region_mappable(region, size) {
                Ok(()) => match Bar::map(addr, index, self.device.as_raw_fd(), offset, size, Some(owner.clone())) {
                    Ok(bar) => return Ok(bar),
                    Err(e) => {
                        tracing::warn!("{e}; reaching it through pread/pwrite instead: register access will be slow")
                    }
                },
                Err(why) => tracing::warn!(
                    "BAR{index} of {addr} is a memory BAR that VFIO does not let us map whole ({why}): reaching it \
                     through pread/pwrite, one system call per register access, so register access will be slow"
                ),
            }
        }
        Ok(Bar::through_file(addr, index, self.device.clone(), offset, size, Some(owner)))
    }

    pub(crate) fn irq_info(&self) -> IrqInfo {
        let count = |i| self.device.get_irq_info(i).map_or(0, |irq| irq.count);
        IrqInfo {
            intx: count(VFIO_PCI_INTX_IRQ_INDEX),
            msi: count(VFIO_PCI_MSI_IRQ_INDEX),
            msix: count(VFIO_PCI_MSIX_IRQ_INDEX),
        }
    }

    fn index(kind: IrqKind) -> u32 {
        match kind {
            IrqKind::Intx => VFIO_PCI_INTX_IRQ_INDEX,
            IrqKind::Msi => VFIO_PCI_MSI_IRQ_INDEX,
            IrqKind::Msix => VFIO_PCI_MSIX_IRQ_INDEX,
        }
    }

    /// Routes `count` vectors of `kind` to new eventfds.
    pub(crate) fn enable_irqs(&self, kind: IrqKind, count: u32) -> Result<Vec<Irq>, IrqError> {
        let addr = self.addr;
        let available = self.irq_info().count(kind);
        if count == 0 || count > available {
            let hint = match kind {
                IrqKind::Intx => "",
                _ if available == 0 => ": the device has no such capability; use INTx",
                _ => "",
            };
            return Err(IrqError::NotAvailable { addr, kind, asked: count, available, hint });
        }
        let mut fds = Vec::new();
        for _ in 0..count {
            fds.push(EventFd::new(libc::EFD_NONBLOCK).map_err(|source| IrqError::Io {
                op: "creating an eventfd for the",
                addr,
                source,
            })?);
        }
        self.device.enable_irq(Self::index(kind), fds.iter().collect()).map_err(|source| IrqError::Setup {
            addr,
            kind,
            source,
        })?;
        let intx = (kind == IrqKind::Intx).then(|| self.device.clone());
        Ok(fds.into_iter().enumerate().map(|(v, fd)| Irq::eventfd(addr, kind, v as u32, fd, intx.clone())).collect())
    }

    /// Stops routing `kind` interrupts (the eventfds stay valid but stay quiet).
    pub(crate) fn disable_irqs(&self, kind: IrqKind) -> Result<(), IrqError> {
        self.device.disable_irq(Self::index(kind)).map_err(|source| IrqError::Setup { addr: self.addr, kind, source })
    }

    /// `VFIO_DEVICE_RESET`: function-level reset (FLR, PM, or a bus reset the kernel may do).
    pub(crate) fn reset(&self) -> Result<(), VfioError> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument and touches no memory of ours.
        let r = unsafe { libc::ioctl(self.device.as_raw_fd(), VFIO_DEVICE_RESET) };
        if r == 0 {
            return Ok(());
        }
        let source = std::io::Error::last_os_error();
        let hint = if source.raw_os_error() == Some(libc::EINVAL) {
            ": the device has no reset method the kernel can use (no FLR, PM reset or bus reset); \
             re-initialise it through its registers instead"
        } else {
            ""
        };
        Err(VfioError::Reset { addr: self.addr, source, hint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn ioctl_numbers_match_linux_vfio_h() {
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
    }

    #[test]
    fn mgaw_is_bits_21_to_16_plus_one() {
        // The lab's QEMU 10 intel-iommu (aw-bits=48): cap 0xd2008c222f0606.
        assert_eq!(mgaw(0x00d2_008c_222f_0606), 48);
        // aw-bits=39 (QEMU before 9.2): MGAW field 38.
        assert_eq!(mgaw(0x00d2_008c_2226_0606), 39);
    }

    fn info_with_ranges(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[4..8].copy_from_slice(&VFIO_IOMMU_INFO_CAPS.to_ne_bytes());
        b[8..16].copy_from_slice(&0x4020_1000u64.to_ne_bytes());
        // A migration capability first, to be skipped, then the IOVA ranges.
        b[16..20].copy_from_slice(&24u32.to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&48u32.to_ne_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16).to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(ranges.len() as u32).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        for (s, e) in ranges {
            b.extend_from_slice(&s.to_ne_bytes());
            b.extend_from_slice(&e.to_ne_bytes());
        }
        b
    }

    const LAB_RANGES: [(u64, u64); 2] = [(0, 0xfedf_ffff), (0xfef0_0000, 0xffff_ffff_ffff)];

    #[test]
    fn iova_ranges_are_read_from_the_capability_chain() {
        let (sizes, ranges) = parse_iommu_info(&info_with_ranges(&LAB_RANGES));
        assert_eq!(sizes, 0x4020_1000);
        let ranges = ranges.unwrap();
        assert_eq!(ranges, LAB_RANGES.map(|(start, end)| IovaRange { start, end }).to_vec());
        // No caps flag: no ranges. Truncated chain: no ranges, no panic.
        let mut b = info_with_ranges(&LAB_RANGES);
        b[4] = 0;
        assert_eq!(parse_iommu_info(&b).1, None);
        let b = info_with_ranges(&LAB_RANGES);
        assert_eq!(parse_iommu_info(&b[..60]).1, None);
    }

    #[test]
    fn ranges_and_widths_decide_what_may_be_mapped() {
        let ranges: Vec<IovaRange> = LAB_RANGES.map(|(start, end)| IovaRange { start, end }).to_vec();
        let r = Some(ranges.as_slice());
        let va = Some(IovaMode::Va);
        assert!(check_range(0x7f12_3440_0000, 2 << 20, r, None, va).is_ok(), "a 47-bit VA fits 48 bits");
        assert!(check_range(0x1000_0000, 2 << 20, r, None, None).is_ok());
        let err = check_range(1 << 48, 4096, r, None, None).unwrap_err();
        assert!(matches!(err, VfioError::AddressWidth { needed: 49, width: 48, .. }), "{err}");
        let err = check_range(0xfee0_0000, 4096, r, None, None).unwrap_err().to_string();
        assert!(err.contains("MSI window") && err.contains("0xfef00000..=0xffffffffffff"), "{err}");
        assert!(check_range(0xfed0_0000, 2 << 20, r, None, None).is_err(), "straddles the hole");
        // Only the sysfs width known: the lab with aw-bits=39 and IOVA as VA.
        let err = check_range(0x7fab_cd00_0000, 2 << 20, None, Some(39), va).unwrap_err().to_string();
        assert_eq!(
            err,
            "IOVA 0x7fabcd000000 (+0x200000) needs 47 address bits but the IOMMU handles 39: use --iova-mode=pa \
             (the IOVAs are then physical addresses), or give the IOMMU 48 address bits \
             (QEMU: -device intel-iommu,aw-bits=48, QEMU 10's default)"
        );
        assert!(check_range(0x7f_ffe0_0000, 2 << 20, None, Some(39), None).is_ok(), "ends at 2^39 - 1");
        assert!(check_range(0x7f_fff0_0000, 2 << 20, None, Some(39), None).is_err());
        assert!(check_range(0x1000, 4096, None, None, None).is_ok(), "nothing known: the kernel decides");
    }

    #[test]
    fn empty_and_wrapping_ranges_say_so() {
        let err = check_range(0x1000, 0, None, None, None).unwrap_err().to_string();
        assert_eq!(err, "IOVA range 0x1000 (+0x0) is empty (the length is zero): nothing can be mapped there");
        let err = check_range(u64::MAX, 2, None, None, None).unwrap_err().to_string();
        assert!(err.contains("wraps around the end of the 64-bit address space"), "{err}");
        assert!(!err.contains("address bits"), "{err}");
        assert!(check_range(u64::MAX, 1, None, None, None).is_ok(), "the last byte itself");
    }

    #[test]
    fn width_advice_fits_the_iova_mode() {
        let err = |mode, iova| check_range(iova, 4096, None, Some(39), mode).unwrap_err().to_string();
        // IOVA as PA already: no advice to switch to PA.
        let pa = err(Some(IovaMode::Pa), 0x80_0000_0000);
        assert!(!pa.contains("use --iova-mode=pa"), "{pa}");
        assert!(pa.contains("so --iova-mode=pa cannot help: give the IOMMU 48 address bits"), "{pa}");
        // Not known: both cases, each with its advice.
        let unknown = err(None, 0x7f00_0000_0000);
        assert!(
            unknown.contains("with IOVA as VA, use --iova-mode=pa (the IOVAs are then physical addresses); with IOVA as PA, give the IOMMU 48"),
            "{unknown}"
        );
        // Beyond what any IOMMU translates: no advice to widen it.
        let far = check_range(1 << 60, 4096, None, Some(48), Some(IovaMode::Pa)).unwrap_err().to_string();
        assert!(far.contains("cannot help") && far.contains("are rare") && !far.contains("aw-bits"), "{far}");
        let far_va = check_range(1 << 60, 4096, None, Some(48), Some(IovaMode::Va)).unwrap_err().to_string();
        assert!(far_va.ends_with("use --iova-mode=pa (the IOVAs are then physical addresses)"), "{far_va}");
    }

    /// A fake sysfs group: `members` are (address, driver, class).
    fn fake_group(tag: &str, members: &[(&str, Option<&str>, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("burst-pci-vfio-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let groups = root.join("sys/kernel/iommu_groups/7/devices");
        fs::create_dir_all(&groups).unwrap();
        fs::create_dir_all(root.join("sys/bus/pci/drivers")).unwrap();
        for (addr, driver, class) in members {
            let dev = root.join("sys/devices/pci0000:00").join(addr);
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("class"), format!("{class}\n")).unwrap();
            symlink(root.join("sys/kernel/iommu_groups/7"), dev.join("iommu_group")).unwrap();
            if let Some(d) = driver {
                let ddir = root.join("sys/bus/pci/drivers").join(d);
                fs::create_dir_all(&ddir).unwrap();
                symlink(&ddir, dev.join("driver")).unwrap();
            }
            fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
            symlink(&dev, root.join("sys/bus/pci/devices").join(addr)).unwrap();
            symlink(&dev, groups.join(addr)).unwrap();
        }
        root
    }

    #[test]
    fn a_group_with_a_device_on_a_kernel_driver_is_refused_naming_it() {
        let root = fake_group(
            "busy",
            &[("0000:00:10.0", Some("vfio-pci"), "0x020000"), ("0000:00:10.1", Some("e1000"), "0x020000")],
        );
        let err = check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IOMMU group 7 of 0000:00:10.0 is not viable: 0000:00:10.1 in the same group is bound to e1000; \
             VFIO needs every device of a group on vfio-pci (or pci-stub, pcieport) or on no driver: \
             bind it with `devbind -b vfio-pci 0000:00:10.1` or unbind it (`devbind -u 0000:00:10.1`)"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unbound_devices_and_dma_managing_drivers_keep_a_group_viable() {
        // Linux 5.19+: no driver, or a driver with driver_managed_dma (VFIO and its variant
        // drivers, pci-stub, pcieport).
        let root = fake_group(
            "ok",
            &[
                ("0000:00:10.0", Some("vfio-pci"), "0x020000"),
                ("0000:00:10.1", None, "0x020000"),
                ("0000:00:10.2", Some("vfio-pci"), "0x020000"),
                ("0000:00:10.3", Some("mlx5_vfio_pci"), "0x020000"),
                ("0000:00:10.4", Some("pci-stub"), "0x020000"),
                ("0000:00:1c.0", Some("pcieport"), "0x060400"),
            ],
        );
        assert_eq!(check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap(), 7);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_bridge_on_another_driver_makes_the_group_unusable() {
        // Before 5.19 a bridge on any driver was let through; now only driver_managed_dma counts.
        let root = fake_group(
            "bridge",
            &[("0000:00:10.0", Some("vfio-pci"), "0x020000"), ("0000:00:1c.0", Some("shpchp"), "0x060400")],
        );
        let err = check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap_err();
        assert!(
            matches!(&err, VfioError::GroupNotViable { other, driver, .. } if other == "0000:00:1c.0" && driver == "shpchp"),
            "{err}"
        );
        fs::remove_dir_all(root).unwrap();
        for (driver, viable) in [
            ("vfio-pci", true),
            ("hisi_acc_vfio_pci", true),
            ("pci-stub", true),
            ("pcieport", true),
            ("shpchp", false),
            ("e1000", false),
            ("vfio_iommu_type1", false),
        ] {
            assert_eq!(keeps_group_viable(driver), viable, "{driver}");
        }
    }

    #[test]
    fn no_group_link_says_an_iommu_is_needed() {
        let root = fake_group("nogroup", &[("0000:00:02.0", Some("vfio-pci"), "0x020000")]);
        fs::remove_file(root.join("sys/devices/pci0000:00/0000:00:02.0/iommu_group")).unwrap();
        let err = check_group_viable(&root, "0000:00:02.0".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("has no IOMMU group") && err.contains("intel_iommu=on"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_busy_group_says_who_has_it() {
        let root = fake_group("busy-hint", &[("0000:00:02.0", Some("vfio-pci"), "0x020000")]);
        let busy = || vfio_ioctls::VfioError::OpenGroup(std::io::Error::from_raw_os_error(libc::EBUSY), "7".into());
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.starts_with("/dev/vfio/7 is open already"), "{hint}");
        // This process: a second container for a device of the same group.
        let fd = root.join(format!("proc/{}/fd", std::process::id()));
        fs::create_dir_all(&fd).unwrap();
        symlink("/dev/vfio/7", fd.join("9")).unwrap();
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.contains("through another container") && hint.contains("the same `Arc<Container>`"), "{hint}");
        assert!(!hint.contains("no other process"), "{hint}");
        fs::remove_dir_all(root.join("proc")).unwrap();
        // Another process.
        let other = root.join("proc/1/fd");
        fs::create_dir_all(&other).unwrap();
        symlink("/dev/vfio/7", other.join("5")).unwrap();
        fs::write(root.join("proc/1/comm"), "testpmd\n").unwrap();
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.starts_with("/dev/vfio/7 is open in testpmd (pid 1)"), "{hint}");
        // Anything else: the usual checks.
        let hint = open_hint(&root, 7, &vfio_ioctls::VfioError::GroupViable);
        assert!(hint.contains("bound to vfio-pci"), "{hint}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn intel_width_comes_from_the_devices_iommu_cap() {
        let root = fake_group("width", &[("0000:00:02.0", Some("vfio-pci"), "0x020000")]);
        let dev = root.join("sys/devices/pci0000:00/0000:00:02.0");
        assert_eq!(intel_iommu_width(&root, "0000:00:02.0".parse().unwrap()), None);
        fs::create_dir_all(dev.join("iommu/intel-iommu")).unwrap();
        fs::write(dev.join("iommu/intel-iommu/cap"), "d2008c222f0606\n").unwrap();
        assert_eq!(intel_iommu_width(&root, "0000:00:02.0".parse().unwrap()), Some(48));
        fs::remove_dir_all(root).unwrap();
    }
}
