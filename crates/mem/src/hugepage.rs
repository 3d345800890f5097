//! Hugepages: which sizes the machine has, how many are reserved on each NUMA node, where
//! hugetlbfs is mounted; reserving pages and mounting hugetlbfs.
//!
//! DMA memory lives in hugepages so that a buffer spans few pages (few IOMMU entries, few TLB
//! misses) and stays put in physical memory. Pages are reserved into a per-size pool by writing
//! `nr_hugepages` in sysfs, and a process gets them by mapping files on a hugetlbfs mount for that
//! size. Everything here goes through a [`SysRoot`], so tests can point it at a
//! `fake::FakeSysTree` (feature `testing`) instead of the host's `/sys` and `/proc`.
//!
//! Not here: mapping the pages (the memory layer's DMA regions do that) and virtual-to-physical
//! translation.
//!
//! ```no_run
//! use burst_mem::hugepage::{PageSize, SysRoot};
//! let host = SysRoot::host();
//! host.reserve(512 << 20, PageSize::SIZE_2M, None)?; // 256 pages, needs root
//! let mount = host.mount_for(PageSize::SIZE_2M)?;
//! println!("2M pages at {}", mount.path.display());
//! # Ok::<(), burst_mem::hugepage::HugepageError>(())
//! ```

mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod mounts;
mod reserve;
mod size;
mod sysfs;

pub use error::HugepageError;
pub use mounts::{mount, mount_limited, unmount, HugetlbMount};
pub use reserve::{reservation_lock, Reservation, ReservationLock, RESERVATION_LOCK_PATH};
pub use size::{format_size, parse_size, PageSize};
pub use sysfs::{HugepageInfo, PageCounts, SysRoot};
