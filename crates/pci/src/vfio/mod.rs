//! VFIO (Documentation/driver-api/vfio.rst): a device bound to `vfio-pci`, reached through its
//! IOMMU group, with DMA confined to what we map in the IOMMU.
//!
//! - One [`Container`] (`/dev/vfio/vfio`) per process, shared by every device (`Arc`): one set
//!   of IOMMU page tables, so a DMA segment is mapped once for all devices. It is the
//!   [`DmaMapper`](burst_mem::DmaMapper) that `burst_mem::Memory` programs as segments come and go.
//! - The IOMMU exists only while a device is open in the container: when the last device file
//!   closes, vfio-ioctls detaches its group and the kernel drops the IOMMU with every mapping
//!   (`vfio_group_detach_container`). The container therefore remembers every range mapped
//!   through it and maps them all again when a device opens after that: `burst_mem::Memory`
//!   keeps believing its segments are mapped, and they are. It counts the open device files
//!   (`OpenDevice`), whoever holds them (a `PciDevice`, a BAR, an INTx [`Irq`](crate::irq::Irq)).
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
//!
//! One idea a file: `container.rs` (the container, its device count and its DMA replay),
//! `ioctls.rs` (the seam its ioctls go through, and the real ones), `iommu.rs` (what the IOMMU
//! translates), `group.rs` (group viability and who holds a group), `device.rs` (an open device:
//! regions, BARs, interrupts, reset), `error.rs`; `fake.rs`, a recording fake of the container's
//! ioctls, for its unit tests.

use vfio_bindings::bindings::vfio::{VFIO_BASE, VFIO_TYPE};

mod container;
mod device;
mod error;
#[cfg(test)]
mod fake;
mod group;
mod ioctls;
mod iommu;

pub use container::Container;
pub(crate) use container::OpenDevice;
pub(crate) use device::VfioPci;
pub use error::VfioError;
pub use group::{check_group_viable, keeps_group_viable};
pub use ioctls::{ContainerIoctls, HostIoctls};
pub use iommu::{intel_iommu_width, IovaRange};

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: VFIO's ioctls carry no size or direction bits.
const fn vfio_io(n: u32) -> libc::c_ulong {
    ((VFIO_TYPE as libc::c_ulong) << 8) | (VFIO_BASE + n) as libc::c_ulong
}
/// `VFIO_DEVICE_RESET` (linux/vfio.h).
const VFIO_DEVICE_RESET: libc::c_ulong = vfio_io(11);
/// `VFIO_IOMMU_GET_INFO` (linux/vfio.h).
const VFIO_IOMMU_GET_INFO: libc::c_ulong = vfio_io(12);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_vfio_h() {
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
    }
}
