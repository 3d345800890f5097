//! The seam between the container's logic and the kernel. Every ioctl a
//! [`Container`](super::Container) issues goes through [`ContainerIoctls`]: opening a device in
//! it (which sets the device's group to the container and, for the first group, the IOMMU type),
//! `VFIO_IOMMU_GET_INFO`, and DMA map and unmap. rust-vmm's vfio-ioctls keeps its own syscalls
//! behind such a seam; here it lets the container's bookkeeping (the device count, the replay of
//! its mappings in a new IOMMU, the checks and errors) be unit-tested without `/dev/vfio`, with
//! the recording fake of `fake.rs`.
//!
//! [`HostIoctls`] is the real one: vfio-ioctls' `VfioContainer` for all but
//! `VFIO_IOMMU_GET_INFO`, which vfio-ioctls does not wrap with its capabilities.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use vfio_ioctls::{VfioContainer, VfioDevice, VfioOps};

use super::iommu::{ne_u32, parse_iommu_info};
use super::{IovaRange, VfioError, VFIO_IOMMU_GET_INFO};

/// The ioctls of a VFIO container (Documentation/driver-api/vfio.rst). The errors are
/// vfio-ioctls' own, so that the container's messages do not depend on which implementation ran.
pub trait ContainerIoctls: Send + Sync + 'static {
    /// A device file open in the container. Dropping it closes the file; when it was the last
    /// open device of its group, the group leaves the container (`VFIO_GROUP_UNSET_CONTAINER`),
    /// and when that was the last group, the kernel drops the IOMMU and every mapping in it.
    type Device: Send + Sync;

    /// Opens the device whose sysfs directory is `sysfs_dir`, of IOMMU group `group`, in the
    /// container: its group is set to the container first (`VFIO_GROUP_SET_CONTAINER`) unless it
    /// is there already, and the first group to join sets the IOMMU type (`VFIO_SET_IOMMU`,
    /// type-1 v2), which creates the IOMMU.
    fn open_device(&self, sysfs_dir: &Path, group: u32) -> Result<Self::Device, vfio_ioctls::VfioError>;

    /// `VFIO_IOMMU_GET_INFO`: the IOVA page sizes (bit n: 2^n bytes) and, when the kernel has the
    /// IOVA-range capability (Linux 5.4+), the usable IOVA ranges.
    fn iommu_info(&self) -> io::Result<(u64, Option<Vec<IovaRange>>)>;

    /// `VFIO_IOMMU_MAP_DMA` of `len` bytes at virtual address `va` to `iova`, readable and
    /// writable by the devices; the kernel pins the pages.
    ///
    /// # Safety
    ///
    /// As vfio-ioctls' `VfioContainer::vfio_dma_map`: until the range is unmapped
    /// ([`ContainerIoctls::unmap_dma`] with the same `iova` and `len`) or `[va, va + len)` is
    /// unmapped from the process, the devices may read and write that memory at any time, so it
    /// must be reached only through raw pointers (volatile or atomic access) or system calls, and
    /// no Rust reference to it may be live.
    unsafe fn map_dma(&self, iova: u64, len: usize, va: *mut u8) -> Result<(), vfio_ioctls::VfioError>;

    /// `VFIO_IOMMU_UNMAP_DMA` of `len` bytes at `iova`; an error if the kernel unmapped another
    /// length (nothing, or part of a larger mapping).
    fn unmap_dma(&self, iova: u64, len: usize) -> Result<(), vfio_ioctls::VfioError>;
}

/// The machine's VFIO: `/dev/vfio/vfio` through vfio-ioctls.
pub struct HostIoctls {
    /// Shared with every `VfioDevice` opened in it (vfio-ioctls keeps its groups there).
    vfio: Arc<VfioContainer>,
}

impl HostIoctls {
    /// Opens `/dev/vfio/vfio` and checks that it offers the type-1 IOMMU.
    pub(crate) fn open() -> Result<HostIoctls, VfioError> {
        let vfio = VfioContainer::new(None).map_err(|source| {
            let hint = match source {
                // The container opened but offers no type-1 IOMMU: its module is not loaded.
                vfio_ioctls::VfioError::VfioExtension => "the type-1 IOMMU backend is not loaded: run `modprobe vfio_iommu_type1`",
                _ => "load the modules (`modprobe vfio-pci vfio_iommu_type1`) and run as root (or give this user /dev/vfio/*)",
            };
            VfioError::Container { source, hint }
        })?;
        Ok(HostIoctls { vfio: Arc::new(vfio) })
    }
}

impl ContainerIoctls for HostIoctls {
    type Device = VfioDevice;

    fn open_device(&self, sysfs_dir: &Path, _group: u32) -> Result<VfioDevice, vfio_ioctls::VfioError> {
        // vfio-ioctls reads the group from `sysfs_dir`'s `iommu_group` link itself, and sets it
        // to the container (and the IOMMU type, for the first group) on the way.
        let ops: Arc<dyn VfioOps> = self.vfio.clone();
        VfioDevice::new(sysfs_dir, ops, false)
    }

    fn iommu_info(&self) -> io::Result<(u64, Option<Vec<IovaRange>>)> {
        iommu_info(self.vfio.as_raw_fd())
    }

    unsafe fn map_dma(&self, iova: u64, len: usize, va: *mut u8) -> Result<(), vfio_ioctls::VfioError> {
        // SAFETY: this method's contract is `vfio_dma_map`'s, and the caller upholds it.
        unsafe { self.vfio.vfio_dma_map(iova, len, va) }
    }

    fn unmap_dma(&self, iova: u64, len: usize) -> Result<(), vfio_ioctls::VfioError> {
        self.vfio.vfio_dma_unmap(iova, len)
    }
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
