//! burst-mem: the memory every burst driver stands on.
//!
//! - [`hugepage`]: page sizes, per-node counts, hugetlbfs mounts; reserve and release.
//! - [`ring`]: bounded lock-free rings, single- or multi-producer/consumer.

pub mod hugepage;
pub mod ring;
