//! burst-mem: the memory every burst driver stands on.
//!
//! - [`hugepage`]: page sizes, per-node counts, hugetlbfs mounts; reserve and release.
//! - [`Memory`]: DMA memory that grows and shrinks by segments (hugepages, or 4 KiB pages with
//!   `--no-huge`), pinned, with IOVAs as PA or VA ([`IovaMode`], [`DmaMapper`]).
//! - [`Memzone`]: named reservations, IOVA-contiguous when hardware needs it.
//! - [`Mempool`]: fixed-size objects with per-lcore caches; [`PacketPool`]/[`PacketBuf`]: packet
//!   buffers on top.
//! - [`ring`]: bounded lock-free rings, single- or multi-producer/consumer.
//! - [`barrier`]: the memory barriers between the CPU, DMA memory and device registers.
//!
//! - [`shared`]: the memory as regions another process can map by file descriptor, and
//!   listeners told of every change (a vhost-user frontend's memory table).
//!
//! The layer knows nothing of PCI: the VFIO container in `burst-pci` implements [`DmaMapper`].

pub mod barrier;
pub mod error;
pub mod hugepage;
pub mod iova;
pub mod lcore;
pub mod mbuf;
pub mod memory;
pub mod mempool;
pub mod memzone;
pub mod ring;
mod segment;
pub mod shared;
pub mod socket_mem;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::MemError;
pub use iova::{DmaMapper, IovaMode};
pub use mbuf::{
    ChainBuilder, ChainError, CksumStatus, OlFlags, PacketBuf, PacketPool, PacketPoolConfig, TxL4, TxOffload,
};
pub use memory::{MemConfig, MemStats, Memory};
pub use mempool::{Mempool, MempoolConfig};
pub use memzone::{Memzone, MemzoneFlags};
pub use segment::remove_stale_files;
pub use shared::{MemoryListener, RegionSet, SharedRegion, SharedSegment};
pub use socket_mem::SocketMem;
