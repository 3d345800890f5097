//! Bounded lock-free rings with DPDK `rte_ring` semantics.
//!
//! What this implements: DPDK's head/tail ring (`lib/ring`, the C11 memory-model variant in
//! `rte_ring_c11_pvt.h`), with single- or multi-producer and single- or multi-consumer sync
//! modes, *bulk* (all or nothing) and *burst* (as many as possible) operations, and an exact
//! capacity (as with `RING_F_EXACT_SZ`: a full ring holds exactly the capacity asked for).
//!
//! - [`ring`] makes a [`Producer`]/[`Consumer`] pair for any `T: Send`. The handles are `Send`
//!   but not `Sync`; a `Multi` side can be cloned ([`Producer::try_clone`]), a `Single` side
//!   cannot, so the type system upholds the single-producer/single-consumer contract.
//! - [`SharedRing`] is always multi-producer/multi-consumer and `Sync`, for `Copy` items such
//!   as buffer pointers; the mempool keeps its free buffers in one.
//!
//! What this does not implement: DPDK's HTS and RTS sync modes, the peek and zero-copy APIs,
//! named rings and lookup, and rings placed in hugepage memory (the slots are a heap allocation).
//!
//! Like `rte_ring`, a multi-producer (or multi-consumer) ring is not preemption-safe: a thread
//! descheduled between reserving slots and publishing them stalls every other producer (or
//! consumer) until it runs again. Pin one thread per core, as lcores are. Unlike DPDK, a waiter
//! yields the CPU after a bounded spin, so oversubscribed threads (tests, unpinned apps) do not
//! burn whole time slices waiting on a descheduled peer.
//!
//! Nothing on the enqueue/dequeue paths allocates, locks or makes a syscall, except that the
//! `Vec` wrappers of [`Consumer`] grow the caller's `Vec` when it lacks room: reserve it up front.
//!
//! ```
//! use burst_mem::ring::{ring, SyncMode};
//!
//! let (mut tx, mut rx) = ring::<u64>(4, SyncMode::Single, SyncMode::Single)?;
//! let mut burst: Vec<u64> = (0..6).collect();
//! // Like `tx_burst`: the ring takes what fits, the caller keeps the rest, in order.
//! assert_eq!(tx.enqueue_burst(&mut burst), 4);
//! assert_eq!(burst, [4, 5]);
//!
//! let mut out = Vec::with_capacity(32);
//! assert_eq!(rx.dequeue_burst(&mut out, 32), 4);
//! assert_eq!(out, [0, 1, 2, 3]);
//! # Ok::<(), burst_mem::ring::RingError>(())
//! ```
//!
//! The files: `headtail.rs` (one side's head and tail: reserving slots and publishing them),
//! `slots.rs` (the slot array and the raw moves in and out), `handles.rs` (the typed ends made by
//! [`ring`]), `shared.rs` ([`SharedRing`]), `tests.rs`.

mod handles;
mod headtail;
mod shared;
mod slots;
#[cfg(test)]
mod tests;

pub use handles::{ring, Consumer, Producer};
pub use shared::SharedRing;

/// The largest capacity a ring can have: DPDK's `RTE_RING_SZ_MASK`, 2^31 - 1.
///
/// Indices are `u32` and wrap; any in-flight span up to the slot count fits in them.
pub const MAX_CAPACITY: usize = 0x7fff_ffff;

/// How many `spin_loop` rounds a waiter makes before it starts yielding the CPU.
///
/// A running peer publishes a burst in far fewer; past this it has most likely been
/// descheduled. (Measured on 2 cores with 4 threads sharing a ring: spinning 1024 rounds made
/// the free-list stress test about ten times slower than 64.)
const SPINS_BEFORE_YIELD: u32 = 64;

/// Whether one or many threads may use a side (producer or consumer) of a ring at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// One thread at a time: the head moves with a plain store, no compare-and-swap and no
    /// wait for other threads (DPDK's `RING_F_SP_ENQ` / `RING_F_SC_DEQ`).
    Single,
    /// Any number of threads: the head moves with compare-and-swap, and each thread publishes
    /// its slots in reservation order (DPDK's default MP/MC mode).
    Multi,
}

/// Why a ring could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A capacity of zero was asked for.
    #[error("ring capacity must be at least 1: ask for a capacity of 1 or more")]
    ZeroCapacity,
    /// The capacity does not fit the ring's 31-bit index space.
    #[error(
        "ring capacity {requested} exceeds the maximum of {max} (2^31 - 1): ask for a smaller \
         capacity, or spread the items over several rings"
    )]
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
        /// [`MAX_CAPACITY`].
        max: usize,
    },
    /// The slot array could not be allocated.
    #[error("could not allocate {bytes} bytes for {slots} ring slots: ask for a smaller capacity")]
    OutOfMemory {
        /// Number of slots (the capacity rounded up to a power of two).
        slots: usize,
        /// Bytes those slots need.
        bytes: usize,
    },
}

/// Fixed (bulk: all or nothing) or variable (burst: as many as possible), as DPDK's
/// `RTE_RING_QUEUE_FIXED` / `RTE_RING_QUEUE_VARIABLE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behavior {
    Bulk,
    Burst,
}
