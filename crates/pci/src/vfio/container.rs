//! The process's VFIO container: one IOMMU context shared by every device, the count of the
//! device files open in it, and the DMA mappings it remembers and maps again when the IOMMU comes
//! back (see the module documentation of `vfio`). Its ioctls go through [`ContainerIoctls`], so
//! this logic is unit-tested (`container/tests.rs`) without `/dev/vfio`.

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use burst_mem::{DmaMapper, IovaMode};

use super::group::open_hint;
use super::ioctls::{ContainerIoctls, HostIoctls};
use super::iommu::{bits_for, check_range};
use super::{IovaRange, VfioError};
use crate::address::PciAddress;
use crate::sysfs::device_dir;

#[cfg(test)]
mod tests;

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
///
/// `I` is the seam its ioctls go through: the machine's VFIO ([`HostIoctls`]) everywhere but in
/// this crate's unit tests.
pub struct Container<I: ContainerIoctls = HostIoctls> {
    ioctls: I,
    state: Mutex<IommuState>,
}

impl<I: ContainerIoctls> std::fmt::Debug for Container<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("state", &*self.lock()).finish()
    }
}

impl Container {
    /// Opens `/dev/vfio/vfio`. Share the result with every device the process opens.
    pub fn new() -> Result<Arc<Container>, VfioError> {
        Ok(Container::with_ioctls(HostIoctls::open()?))
    }
}

impl<I: ContainerIoctls> Container<I> {
    /// A container issuing its ioctls through `ioctls`, with no device open yet.
    pub(crate) fn with_ioctls(ioctls: I) -> Arc<Container<I>> {
        Arc::new(Container { ioctls, state: Mutex::new(IommuState::default()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IommuState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens `addr`, of IOMMU group `group` (checked viable), in this container and counts it in
    /// ([`Container::join`]). `sysfs_width` is the device's Intel IOMMU MGAW, if sysfs has it.
    pub(crate) fn open(
        self: &Arc<Self>,
        sysfs_root: &Path,
        addr: PciAddress,
        group: u32,
        sysfs_width: Option<u8>,
    ) -> Result<Arc<OpenDevice<I>>, VfioError> {
        let device = self.ioctls.open_device(&device_dir(sysfs_root, addr), group).map_err(|source| {
            let hint = open_hint(sysfs_root, group, &source);
            VfioError::Open { addr, group, source, hint }
        })?;
        self.join(addr, device, sysfs_width)
    }

    /// `device`, just opened in this container (its group attached, so the IOMMU is set), joins
    /// the count. The IOMMU is asked what it translates; if `device` is the only open device,
    /// the IOMMU may be a new one (the previous one went with the last device), and every range
    /// mapped through the container is mapped in it again. `sysfs_width` is the device's Intel
    /// IOMMU MGAW, if sysfs has it.
    fn join(
        self: &Arc<Self>,
        addr: PciAddress,
        device: I::Device,
        sysfs_width: Option<u8>,
    ) -> Result<Arc<OpenDevice<I>>, VfioError> {
        let info = self.ioctls.iommu_info();
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
        unsafe { self.ioctls.map_dma(r.iova, r.len, r.va as *mut u8) }.map_err(|source| VfioError::Dma {
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
            if let Err(e) = self.ioctls.unmap_dma(iova, len) {
                tracing::debug!("unmapping {iova:#x} with no device open: {e} (the IOMMU went with the last device)");
            }
            return Ok(());
        }
        self.ioctls.unmap_dma(iova, len).map_err(|source| VfioError::Dma {
            op: "unmapping",
            iova,
            len: len as u64,
            source,
            hint: "; unmap exactly what was mapped",
        })
    }
}

impl<I: ContainerIoctls> DmaMapper for Container<I> {
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
/// INTx [`Irq`](crate::irq::Irq) for unmasking), so the count follows whoever really keeps the
/// device open.
pub(crate) struct OpenDevice<I: ContainerIoctls = HostIoctls> {
    /// `None` only while dropping.
    device: Option<I::Device>,
    container: Arc<Container<I>>,
}

impl<I: ContainerIoctls> std::ops::Deref for OpenDevice<I> {
    type Target = I::Device;

    fn deref(&self) -> &I::Device {
        self.device.as_ref().expect("an OpenDevice has its device until it drops")
    }
}

impl<I: ContainerIoctls> AsRawFd for OpenDevice<I>
where
    I::Device: AsRawFd,
{
    fn as_raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

impl<I: ContainerIoctls> Drop for OpenDevice<I> {
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
