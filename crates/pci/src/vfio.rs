//! VFIO (Documentation/driver-api/vfio.rst): a device bound to `vfio-pci`, reached through its
//! IOMMU group, with DMA confined to what we map in the IOMMU.
//!
//! - One [`Container`] (`/dev/vfio/vfio`) per process, shared by every device (`Arc`): one set
//!   of IOMMU page tables, so a DMA segment is mapped once for all devices. It is the
//!   [`DmaMapper`] that `burst_mem::Memory` programs as segments come and go.
//! - Before a group is opened, every device in it must be bound to `vfio-pci` or to nothing (a
//!   PCI bridge may keep its driver): the kernel would refuse the group as "not viable"; we say
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

use burst_mem::DmaMapper;
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

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO's ioctls carry no size or direction bits.
const fn vfio_io(n: u32) -> libc::c_ulong {
    ((VFIO_TYPE as libc::c_ulong) << 8) | (VFIO_BASE + n) as libc::c_ulong
}
/// `VFIO_DEVICE_RESET` (linux/vfio.h).
const VFIO_DEVICE_RESET: libc::c_ulong = vfio_io(11);
/// `VFIO_IOMMU_GET_INFO` (linux/vfio.h).
const VFIO_IOMMU_GET_INFO: libc::c_ulong = vfio_io(12);

/// Drivers a device sharing a group may have without making the group unusable: VFIO's own,
/// and the ones the kernel marks `driver_managed_dma` (they do no DMA of their own).
const GROUP_SAFE_DRIVERS: [&str; 3] = ["vfio-pci", "pci-stub", "pcieport"];

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
         VFIO needs every device of a group off kernel drivers: bind it with `devbind -b vfio-pci {other}` \
         or unbind it (`devbind -u {other}`)"
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
    #[error(
        "cannot open {addr} through VFIO (group {group}): {source}; check that it is bound to vfio-pci \
         (`devbind --status`), that no other process has the group open, and that we are root"
    )]
    Open {
        /// The device.
        addr: PciAddress,
        /// Its group.
        group: u32,
        /// What vfio-ioctls said.
        source: vfio_ioctls::VfioError,
    },
    /// The device has no config region (not a PCI device?).
    #[error("{addr} has no VFIO config region: is it a PCI device bound to vfio-pci?")]
    NoConfigRegion {
        /// The device.
        addr: PciAddress,
    },
    /// The IOVA range lies beyond the IOMMU's address width.
    #[error(
        "IOVA {iova:#x} (+{len:#x}) needs {needed} address bits but the IOMMU handles {width}: use --iova-mode=pa \
         (the IOVAs are then physical addresses){}",
        wider_hint(*needed)
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
    /// A DMA map or unmap was asked before any device joined the container.
    #[error(
        "the VFIO container has no device yet, so no IOMMU to program: open a device (PciDevice::open) \
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

/// The second half of [`VfioError::AddressWidth`]'s advice, when a wider IOMMU can exist.
fn wider_hint(needed: u8) -> &'static str {
    if needed <= 48 {
        ", or give the IOMMU 48 address bits (QEMU: -device intel-iommu,aw-bits=48, QEMU 10's default)"
    } else {
        ""
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

/// What is known about the container's IOMMU.
#[derive(Clone, Debug, Default)]
struct IommuState {
    /// Devices that joined.
    devices: usize,
    /// From `VFIO_IOMMU_GET_INFO`, when the kernel reports them.
    ranges: Option<Vec<IovaRange>>,
    /// IOVA page sizes the IOMMU supports (bit n = 2^n bytes).
    page_sizes: u64,
    /// The narrowest Intel IOMMU MGAW among the devices, from sysfs.
    sysfs_width: Option<u8>,
}

/// The process's VFIO container: one IOMMU context shared by all its devices.
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

    /// A device joined: the IOMMU is set now, so ask it what it translates. `sysfs_width` is the
    /// device's Intel IOMMU MGAW, if sysfs has it.
    fn device_joined(&self, sysfs_width: Option<u8>) {
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
        tracing::debug!(ranges = ?st.ranges, width = ?st.sysfs_width, "VFIO container IOMMU");
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
        check_range(iova, len, st.ranges.as_deref(), st.sysfs_width)
    }

    /// Maps `len` bytes at virtual address `va` for DMA at `iova`, readable and writable by the
    /// devices (`VFIO_IOMMU_MAP_DMA`); the kernel pins the pages. Checks the IOVA first.
    pub fn map_dma(&self, va: usize, iova: u64, len: usize) -> Result<(), VfioError> {
        self.check_iova(iova, len as u64)?;
        // SAFETY: VFIO pins the pages backing [va, va + len) and fails with EFAULT if they are
        // not mapped in this process; nothing in this process's memory changes. What the device
        // then writes there is what the driver programs it to, as with any DMA address.
        unsafe { self.vfio.vfio_dma_map(iova, len, va as *mut u8) }.map_err(|source| VfioError::Dma {
            op: "mapping",
            iova,
            len: len as u64,
            source,
            hint: "; EEXIST: the range is already mapped; ENOMEM: raise RLIMIT_MEMLOCK (ulimit -l) or \
                   the DMA mapping limit (vfio_iommu_type1 dma_entry_limit)",
        })
    }

    /// Undoes a [`Container::map_dma`] of the same range; fails if the kernel unmapped a
    /// different length (nothing, or part of a larger mapping).
    pub fn unmap_dma(&self, iova: u64, len: usize) -> Result<(), VfioError> {
        if self.lock().devices == 0 {
            return Err(VfioError::NoIommuYet);
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

/// The check behind [`Container::check_iova`].
fn check_range(iova: u64, len: u64, ranges: Option<&[IovaRange]>, sysfs_width: Option<u8>) -> Result<(), VfioError> {
    let last = match len.checked_sub(1).and_then(|l| iova.checked_add(l)) {
        Some(last) => last,
        None => return Err(VfioError::AddressWidth { iova, len, needed: 65, width: 64 }),
    };
    let width = match ranges {
        Some(r) if !r.is_empty() => r.iter().map(|r| bits_for(r.end)).max(),
        _ => sysfs_width,
    };
    if let Some(width) = width {
        if bits_for(last) > width {
            return Err(VfioError::AddressWidth { iova, len, needed: bits_for(last), width });
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

/// The IOMMU group of `addr`, after checking that every other device in it is bound to a
/// VFIO-safe driver or to none, or is a PCI bridge.
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
        let other = members.join(&name);
        let Some(driver) = link_name(&other.join("driver")) else { continue };
        if GROUP_SAFE_DRIVERS.contains(&driver.as_str()) || is_bridge(&other) {
            continue;
        }
        return Err(VfioError::GroupNotViable { addr, group, other: name, driver });
    }
    Ok(group)
}

/// Class 0x0604xx: a PCI-to-PCI bridge.
fn is_bridge(dev: &Path) -> bool {
    fs::read_to_string(dev.join("class"))
        .ok()
        .and_then(|c| u32::from_str_radix(c.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|c| c >> 8 == 0x0604)
}

/// A device bound to vfio-pci, open.
pub(crate) struct VfioPci {
    addr: PciAddress,
    group: u32,
    iommu_width: Option<u8>,
    // Field order is drop order: the config file shares the device's descriptor.
    config: ConfigFile,
    device: Arc<VfioDevice>,
    container: Arc<Container>,
}

impl Drop for VfioPci {
    fn drop(&mut self) {
        // The group leaves the container once the device file closes (vfio-ioctls); when the
        // last one has, there is no IOMMU to program until a device joins again.
        let mut st = self.container.lock();
        st.devices = st.devices.saturating_sub(1);
    }
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
        let device = VfioDevice::new(&device_dir(sysfs_root, addr), ops, false).map_err(|source| VfioError::Open {
            addr,
            group,
            source,
        })?;
        let device = Arc::new(device);
        let iommu_width = intel_iommu_width(sysfs_root, addr);
        container.device_joined(iommu_width);
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
    fn whole_region_mappable(&self, index: u32, size: u64) -> bool {
        if self.device.get_region_flags(index) & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return false;
        }
        let caps = self.device.get_region_caps(index);
        if caps.iter().any(|c| matches!(c, VfioRegionInfoCap::MsixMappable)) {
            return true;
        }
        match caps.iter().find_map(|c| match c {
            VfioRegionInfoCap::SparseMmap(s) => Some(s),
            _ => None,
        }) {
            None => true,
            Some(sparse) => sparse.areas.iter().any(|a| a.offset == 0 && a.size >= size),
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
        if !is_io && self.whole_region_mappable(region, size) {
            match Bar::map(addr, index, self.device.as_raw_fd(), offset, size, Some(owner.clone())) {
                Ok(bar) => return Ok(bar),
                Err(e) => tracing::warn!("{e}; falling back to pread/pwrite"),
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
        assert!(check_range(0x7f12_3440_0000, 2 << 20, r, None).is_ok(), "a 47-bit VA fits 48 bits");
        assert!(check_range(0x1000_0000, 2 << 20, r, None).is_ok());
        let err = check_range(1 << 48, 4096, r, None).unwrap_err();
        assert!(matches!(err, VfioError::AddressWidth { needed: 49, width: 48, .. }), "{err}");
        let err = check_range(0xfee0_0000, 4096, r, None).unwrap_err().to_string();
        assert!(err.contains("MSI window") && err.contains("0xfef00000..=0xffffffffffff"), "{err}");
        assert!(check_range(0xfed0_0000, 2 << 20, r, None).is_err(), "straddles the hole");
        // Only the sysfs width known: the lab with aw-bits=39 and IOVA as VA.
        let err = check_range(0x7fab_cd00_0000, 2 << 20, None, Some(39)).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "IOVA 0x7fabcd000000 (+0x200000) needs 47 address bits but the IOMMU handles 39: use --iova-mode=pa"
            ),
            "{err}"
        );
        assert!(check_range(0x7f_ffe0_0000, 2 << 20, None, Some(39)).is_ok(), "ends at 2^39 - 1");
        assert!(check_range(0x7f_fff0_0000, 2 << 20, None, Some(39)).is_err());
        assert!(check_range(u64::MAX, 2, None, None).is_err(), "wraps");
        assert!(check_range(0x1000, 4096, None, None).is_ok(), "nothing known: the kernel decides");
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
             VFIO needs every device of a group off kernel drivers: bind it with `devbind -b vfio-pci 0000:00:10.1` \
             or unbind it (`devbind -u 0000:00:10.1`)"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unbound_devices_vfio_devices_and_bridges_keep_a_group_viable() {
        let root = fake_group(
            "ok",
            &[
                ("0000:00:10.0", Some("vfio-pci"), "0x020000"),
                ("0000:00:10.1", None, "0x020000"),
                ("0000:00:10.2", Some("vfio-pci"), "0x020000"),
                ("0000:00:1c.0", Some("shpchp"), "0x060400"),
            ],
        );
        assert_eq!(check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap(), 7);
        fs::remove_dir_all(root).unwrap();
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
