//! A recording fake of [`ContainerIoctls`], for the container's unit tests: it keeps what the
//! kernel keeps for a container (the groups in it and their open device files, whether the IOMMU
//! exists, what is mapped in it), answers as Linux does where the container's logic depends on
//! it, and logs every call in order.
//!
//! What it models, from drivers/vfio/container.c and vfio_iommu_type1.c as vfio-ioctls drives
//! them, and nothing more (`crates/pci/tests/lab_device.rs` runs the container on a real kernel):
//!
//! - the first group set to the container sets the IOMMU type, which creates the IOMMU; when the
//!   last group leaves, the IOMMU goes with every mapping in it;
//! - a group leaves when the last device file of it closes; when opening a device fails after
//!   its group was set (`VFIO_GROUP_GET_DEVICE_FD`), the group stays, as vfio-ioctls keeps it,
//!   until a device of it opens and closes;
//! - map, unmap and `VFIO_IOMMU_GET_INFO` with no IOMMU fail with EINVAL; a mapping that overlaps
//!   one fails with EEXIST; an unmap takes the mappings inside its range, refuses one that would
//!   cut a mapping (EINVAL), and when it took another length than asked, vfio-ioctls reports
//!   `InvalidDmaUnmapSize`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use vfio_ioctls::VfioError;
use vmm_sys_util::errno::Error as SysError;

use super::{ContainerIoctls, IovaRange};

/// One call the container made, in the kernel's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Call {
    /// `VFIO_GROUP_SET_CONTAINER` of this group.
    SetContainer(u32),
    /// `VFIO_SET_IOMMU` (type-1 v2): the first group's.
    SetIommu,
    /// `VFIO_GROUP_UNSET_CONTAINER` of this group: its last device file closed.
    UnsetContainer(u32),
    /// `VFIO_IOMMU_GET_INFO`.
    GetInfo,
    /// `VFIO_IOMMU_MAP_DMA`.
    Map { iova: u64, len: usize },
    /// `VFIO_IOMMU_UNMAP_DMA`.
    Unmap { iova: u64, len: usize },
}

/// How the next device open fails.
#[derive(Clone, Copy, Debug)]
pub(super) enum OpenFailure {
    /// Opening `/dev/vfio/GROUP` fails with this errno (EBUSY: someone has it): nothing is set.
    Group(i32),
    /// Getting the device file fails with this errno, after the group joined the container.
    Device(i32),
}

/// The kernel's side of one container.
#[derive(Debug, Default)]
struct Kernel {
    /// Groups in the container, with their open device files.
    groups: BTreeMap<u32, usize>,
    /// IOVA ranges mapped in the IOMMU, in mapping order.
    mapped: Vec<(u64, usize)>,
    calls: Vec<Call>,
    open_failure: Option<OpenFailure>,
    map_failure: Option<i32>,
    info_fails: bool,
    page_sizes: u64,
    ranges: Option<Vec<IovaRange>>,
}

impl Kernel {
    fn iommu(&self) -> bool {
        !self.groups.is_empty()
    }
}

fn lock(kernel: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    kernel.lock().unwrap_or_else(|p| p.into_inner())
}

/// The fake; clones share one kernel, so a test keeps one to look at what the container did.
#[derive(Clone, Debug)]
pub(super) struct FakeIoctls {
    kernel: Arc<Mutex<Kernel>>,
}

impl FakeIoctls {
    /// A container whose IOMMU, once set, reports these page sizes and usable ranges (`None`: a
    /// kernel without the IOVA-range capability).
    pub(super) fn new(page_sizes: u64, ranges: Option<Vec<IovaRange>>) -> FakeIoctls {
        FakeIoctls { kernel: Arc::new(Mutex::new(Kernel { page_sizes, ranges, ..Kernel::default() })) }
    }

    /// The calls made since the last `take_calls`, in order.
    pub(super) fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut lock(&self.kernel).calls)
    }

    /// What the IOMMU holds now (empty when there is no IOMMU).
    pub(super) fn mapped(&self) -> Vec<(u64, usize)> {
        lock(&self.kernel).mapped.clone()
    }

    /// Makes the next device open fail.
    pub(super) fn fail_next_open(&self, failure: OpenFailure) {
        lock(&self.kernel).open_failure = Some(failure);
    }

    /// Makes the next map fail with `errno` (ENOMEM: the pinned-memory limit).
    pub(super) fn fail_next_map(&self, errno: i32) {
        lock(&self.kernel).map_failure = Some(errno);
    }

    /// Makes every `VFIO_IOMMU_GET_INFO` fail, as on a kernel or IOMMU driver without it.
    pub(super) fn fail_info(&self) {
        lock(&self.kernel).info_fails = true;
    }
}

/// A device file open in the fake container; closing it may take its group, and the IOMMU, away.
#[derive(Debug)]
pub(super) struct FakeDevice {
    group: u32,
    kernel: Arc<Mutex<Kernel>>,
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        let mut k = lock(&self.kernel);
        let Some(open) = k.groups.get_mut(&self.group) else { return };
        *open -= 1;
        if *open == 0 {
            k.groups.remove(&self.group);
            k.calls.push(Call::UnsetContainer(self.group));
            if !k.iommu() {
                k.mapped.clear();
            }
        }
    }
}

impl ContainerIoctls for FakeIoctls {
    type Device = FakeDevice;

    fn open_device(&self, _sysfs_dir: &Path, group: u32) -> Result<FakeDevice, VfioError> {
        let mut k = lock(&self.kernel);
        let failure = k.open_failure.take();
        if let Some(OpenFailure::Group(errno)) = failure {
            return Err(VfioError::OpenGroup(io::Error::from_raw_os_error(errno), group.to_string()));
        }
        if !k.groups.contains_key(&group) {
            k.calls.push(Call::SetContainer(group));
            if !k.iommu() {
                k.calls.push(Call::SetIommu);
            }
            k.groups.insert(group, 0);
        }
        if let Some(OpenFailure::Device(errno)) = failure {
            return Err(VfioError::GroupGetDeviceFD(SysError::new(errno)));
        }
        *k.groups.entry(group).or_default() += 1;
        Ok(FakeDevice { group, kernel: self.kernel.clone() })
    }

    fn iommu_info(&self) -> io::Result<(u64, Option<Vec<IovaRange>>)> {
        let mut k = lock(&self.kernel);
        k.calls.push(Call::GetInfo);
        if !k.iommu() || k.info_fails {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok((k.page_sizes, k.ranges.clone()))
    }

    unsafe fn map_dma(&self, iova: u64, len: usize, _va: *mut u8) -> Result<(), VfioError> {
        let mut k = lock(&self.kernel);
        k.calls.push(Call::Map { iova, len });
        let overlaps = k.mapped.iter().any(|&(i, l)| iova < i + l as u64 && i < iova + len as u64);
        let errno = if !k.iommu() {
            Some(libc::EINVAL)
        } else if let Some(errno) = k.map_failure.take() {
            Some(errno)
        } else if overlaps {
            Some(libc::EEXIST)
        } else {
            None
        };
        if let Some(errno) = errno {
            return Err(VfioError::IommuDmaMap(SysError::new(errno)));
        }
        k.mapped.push((iova, len));
        Ok(())
    }

    fn unmap_dma(&self, iova: u64, len: usize) -> Result<(), VfioError> {
        let mut k = lock(&self.kernel);
        k.calls.push(Call::Unmap { iova, len });
        if !k.iommu() {
            return Err(VfioError::IommuDmaUnmap(SysError::new(libc::EINVAL)));
        }
        let end = iova + len as u64;
        let inside = |&(i, l): &(u64, usize)| iova <= i && i + l as u64 <= end;
        let overlaps = |&(i, l): &(u64, usize)| i < end && iova < i + l as u64;
        // Type-1 v2 does not split a mapping: a range that cuts one is refused.
        if k.mapped.iter().any(|m| overlaps(m) && !inside(m)) {
            return Err(VfioError::IommuDmaUnmap(SysError::new(libc::EINVAL)));
        }
        let unmapped: usize = k.mapped.iter().filter(|m| inside(m)).map(|&(_, l)| l).sum();
        k.mapped.retain(|m| !inside(m));
        if unmapped == len {
            Ok(())
        } else {
            Err(VfioError::InvalidDmaUnmapSize)
        }
    }
}
