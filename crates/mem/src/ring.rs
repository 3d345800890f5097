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

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

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

/// One side's head and tail (`struct rte_ring_headtail`).
///
/// `head` is where the next reservation starts; `tail` is how far the side has published.
/// Slots between this side's tail and head are being copied by some thread of this side.
struct HeadTail {
    head: AtomicU32,
    tail: AtomicU32,
}

impl HeadTail {
    fn new() -> Self {
        HeadTail { head: AtomicU32::new(0), tail: AtomicU32::new(0) }
    }

    /// Reserves up to `n` slots on this side (`__rte_ring_headtail_move_head`).
    ///
    /// `other_tail` is the opposite side's tail; `offset` is the capacity for producers (free
    /// slots = capacity + consumer tail - producer head) and 0 for consumers (filled slots =
    /// producer tail - consumer head). Returns the old head and the count reserved (0 when
    /// nothing was).
    ///
    /// Orderings follow DPDK after its 2025 fix of the C11 variant (commit a4ad0eba9d): the
    /// head is load-acquired and the compare-and-swap is release/acquire, rather than a relaxed
    /// load plus an acquire fence. A head value seen here then carries with it the other tail
    /// the thread that wrote it saw, so `other_tail` read here is never older than that, and
    /// the subtraction cannot underflow.
    #[inline(always)]
    fn move_head(&self, other_tail: &AtomicU32, offset: u32, n: u32, behavior: Behavior, sync: SyncMode) -> (u32, u32) {
        let mut old_head = self.head.load(Ordering::Acquire);
        loop {
            // Acquire: the opposite side's slot accesses up to its tail happen-before ours.
            let entries = offset.wrapping_add(other_tail.load(Ordering::Acquire)).wrapping_sub(old_head);
            let n = if n <= entries {
                n
            } else {
                match behavior {
                    Behavior::Bulk => 0,
                    Behavior::Burst => entries,
                }
            };
            if n == 0 {
                return (old_head, 0);
            }
            let new_head = old_head.wrapping_add(n);
            match sync {
                SyncMode::Single => {
                    // Only this thread reads or writes this head.
                    self.head.store(new_head, Ordering::Relaxed);
                    return (old_head, n);
                }
                SyncMode::Multi => {
                    match self.head.compare_exchange_weak(old_head, new_head, Ordering::Release, Ordering::Acquire) {
                        Ok(_) => return (old_head, n),
                        Err(current) => old_head = current,
                    }
                }
            }
        }
    }

    /// Publishes the slots `old..new` of this side (`__rte_ring_update_tail`).
    ///
    /// With many threads on a side, earlier reservations must be published first, so this waits
    /// for the tail to reach `old`. The wait loads with acquire (DPDK uses relaxed) so that the
    /// earlier thread's slot copies happen-before our release store, and so before whatever the
    /// opposite side does after reading our tail.
    #[inline(always)]
    fn update_tail(&self, old: u32, new: u32, sync: SyncMode) {
        if sync == SyncMode::Multi {
            let mut spins = 0u32;
            while self.tail.load(Ordering::Acquire) != old {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
        self.tail.store(new, Ordering::Release);
    }
}

/// The ring core shared by every handle: slots plus the two head/tail pairs.
///
/// `repr(C)` keeps the read-only fields first, then the producer pair and the consumer pair on
/// cache lines of their own, as `struct rte_ring` lays them out.
#[repr(C)]
struct Ring<T> {
    /// `mask + 1` slots; slot `i & mask` holds an item iff `cons.tail <= i < prod.tail`
    /// (wrapping), outside of operations in progress.
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: u32,
    capacity: u32,
    producers: SyncMode,
    consumers: SyncMode,
    prod: CachePadded<HeadTail>,
    cons: CachePadded<HeadTail>,
}

// SAFETY: items are moved in by one thread and out by another, so `T: Send` is required. Slots
// are only touched by the thread that reserved them through `move_head`, and reservations on
// each side are disjoint: a `Multi` side reserves with compare-and-swap, and a `Single` side is
// only reachable through one `&mut` handle (`Producer`/`Consumer` are not `Sync` and cannot be
// cloned when `Single`). The acquire/release pairs on the tails order the slot copies.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: see `Send` above; no `&T` is ever handed out, so `T: Sync` is not needed.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    fn new(capacity: usize, producers: SyncMode, consumers: SyncMode) -> Result<Self, RingError> {
        if capacity == 0 {
            return Err(RingError::ZeroCapacity);
        }
        if capacity > MAX_CAPACITY {
            return Err(RingError::CapacityTooLarge { requested: capacity, max: MAX_CAPACITY });
        }
        // The capacity is exact and the free count is computed from it, so the slot count need
        // only be a power of two no smaller than it (2^31 at most: it divides 2^32, so indices
        // can wrap freely).
        let size = capacity.next_power_of_two();
        let mut slots: Vec<UnsafeCell<MaybeUninit<T>>> = Vec::new();
        slots.try_reserve_exact(size).map_err(|_| RingError::OutOfMemory {
            slots: size,
            bytes: size.saturating_mul(core::mem::size_of::<T>()),
        })?;
        slots.resize_with(size, || UnsafeCell::new(MaybeUninit::uninit()));
        Ok(Ring {
            slots: slots.into_boxed_slice(),
            // Both fit: size <= 2^31, capacity <= 2^31 - 1.
            mask: (size - 1) as u32,
            capacity: capacity as u32,
            producers,
            consumers,
            prod: CachePadded::new(HeadTail::new()),
            cons: CachePadded::new(HeadTail::new()),
        })
    }

    /// Pointer to slot 0; slot `i & mask` is at `base().add(i & mask)`.
    #[inline(always)]
    fn base(&self) -> *mut T {
        // `UnsafeCell<MaybeUninit<T>>` has the layout of `T`, and writing through a pointer
        // obtained from `UnsafeCell::raw_get` is allowed while shared.
        UnsafeCell::raw_get(self.slots.as_ptr()).cast::<T>()
    }

    /// Number of items in the ring (`rte_ring_count`): exact when no operation is in progress,
    /// a snapshot otherwise.
    #[inline]
    fn count(&self) -> u32 {
        let cons_tail = self.cons.tail.load(Ordering::Acquire);
        let prod_tail = self.prod.tail.load(Ordering::Acquire);
        prod_tail.wrapping_sub(cons_tail).min(self.capacity)
    }

    /// Moves up to `n` items from `src` into the ring; returns how many were moved (`0` or `n`
    /// for [`Behavior::Bulk`], `0..=n` for [`Behavior::Burst`]). The items moved are the first
    /// ones of `src`, in order.
    ///
    /// # Safety
    ///
    /// - `src` is valid for reads of `n` items of `T`, initialized, and does not overlap the
    ///   ring's slots.
    /// - The items moved (the returned count, from the front of `src`) now belong to the ring:
    ///   the caller must not drop or use them again. The rest still belong to the caller.
    /// - `sync` is `self.producers`, or `Multi`; if it is `Single`, no other thread is enqueuing
    ///   on this ring during the call.
    #[inline(always)]
    unsafe fn enqueue_raw(&self, src: *const T, n: u32, behavior: Behavior, sync: SyncMode) -> u32 {
        let (head, n) = self.prod.move_head(&self.cons.tail, self.capacity, n, behavior, sync);
        if n == 0 {
            return 0;
        }
        // SAFETY: `move_head` reserved slots `head..head + n` for this thread alone, and the
        // consumers are done with them (the acquire load of their tail saw them released); `src`
        // is valid for `n` reads and disjoint from the slots (caller's contract).
        unsafe { self.copy_in(head, src, n) };
        self.prod.update_tail(head, head.wrapping_add(n), sync);
        n
    }

    /// Moves up to `n` items from the ring to `dst`; returns how many were moved (`0` or `n`
    /// for [`Behavior::Bulk`], `0..=n` for [`Behavior::Burst`]), oldest first.
    ///
    /// # Safety
    ///
    /// - `dst` is valid for writes of `n` items of `T` and does not overlap the ring's slots.
    ///   Whatever `dst[..returned]` held is overwritten without being dropped; the caller owns
    ///   the items written there.
    /// - `sync` is `self.consumers`, or `Multi`; if it is `Single`, no other thread is dequeuing
    ///   from this ring during the call.
    #[inline(always)]
    unsafe fn dequeue_raw(&self, dst: *mut T, n: u32, behavior: Behavior, sync: SyncMode) -> u32 {
        let (head, n) = self.cons.move_head(&self.prod.tail, 0, n, behavior, sync);
        if n == 0 {
            return 0;
        }
        // SAFETY: `move_head` reserved filled slots `head..head + n` for this thread alone (the
        // acquire load of the producer tail saw them published); `dst` is valid for `n` writes
        // and disjoint from the slots (caller's contract).
        unsafe { self.copy_out(head, dst, n) };
        self.cons.update_tail(head, head.wrapping_add(n), sync);
        n
    }

    /// Moves one item in by value, straight into its slot: no detour through a stack copy,
    /// which would put a store-to-load forwarding on every single-item enqueue.
    ///
    /// # Safety
    ///
    /// As [`Ring::enqueue_raw`] for the sync mode.
    #[inline(always)]
    unsafe fn enqueue_one(&self, item: T, sync: SyncMode) -> Result<(), T> {
        let (head, got) = self.prod.move_head(&self.cons.tail, self.capacity, 1, Behavior::Bulk, sync);
        if got == 0 {
            return Err(item);
        }
        // SAFETY: `move_head` reserved slot `head` for this thread alone and the consumers are
        // done with it; the index is masked into the slot array.
        unsafe { self.base().add((head & self.mask) as usize).write(item) };
        self.prod.update_tail(head, head.wrapping_add(1), sync);
        Ok(())
    }

    /// Moves one item out by value (see [`Ring::enqueue_one`]).
    ///
    /// # Safety
    ///
    /// As [`Ring::dequeue_raw`] for the sync mode.
    #[inline(always)]
    unsafe fn dequeue_one(&self, sync: SyncMode) -> Option<T> {
        let (head, got) = self.cons.move_head(&self.prod.tail, 0, 1, Behavior::Bulk, sync);
        if got == 0 {
            return None;
        }
        // SAFETY: `move_head` reserved filled slot `head` for this thread alone (published by
        // the producer tail it acquired); reading it moves the item out, and the slot counts as
        // empty once our tail passes it.
        let item = unsafe { self.base().add((head & self.mask) as usize).read() };
        self.cons.update_tail(head, head.wrapping_add(1), sync);
        Some(item)
    }

    /// Copies `n` items from `src` into the slots starting at index `head`, in at most two
    /// contiguous chunks (`__rte_ring_enqueue_elems`).
    ///
    /// # Safety
    ///
    /// Slots `head..head + n` are reserved by this thread, `n <= capacity`, and `src` is valid
    /// for `n` reads and disjoint from the slots.
    #[inline(always)]
    unsafe fn copy_in(&self, head: u32, src: *const T, n: u32) {
        let size = self.mask as usize + 1;
        let idx = (head & self.mask) as usize;
        let n = n as usize;
        let first = n.min(size - idx);
        let base = self.base();
        // SAFETY: `idx + first <= size` and `n - first <= idx` (n <= capacity <= size), so both
        // chunks are inside the slot array; `src` is valid for `first + (n - first)` reads; the
        // regions are disjoint (caller's contract).
        unsafe {
            ptr::copy_nonoverlapping(src, base.add(idx), first);
            ptr::copy_nonoverlapping(src.add(first), base, n - first);
        }
    }

    /// Copies `n` items out of the slots starting at index `head` to `dst`, in at most two
    /// contiguous chunks (`__rte_ring_dequeue_elems`).
    ///
    /// # Safety
    ///
    /// Filled slots `head..head + n` are reserved by this thread, `n <= capacity`, and `dst` is
    /// valid for `n` writes and disjoint from the slots.
    #[inline(always)]
    unsafe fn copy_out(&self, head: u32, dst: *mut T, n: u32) {
        let size = self.mask as usize + 1;
        let idx = (head & self.mask) as usize;
        let n = n as usize;
        let first = n.min(size - idx);
        let base = self.base();
        // SAFETY: as in `copy_in`, both chunks are inside the slot array and `dst` is valid for
        // `n` writes, disjoint from the slots (caller's contract).
        unsafe {
            ptr::copy_nonoverlapping(base.add(idx), dst, first);
            ptr::copy_nonoverlapping(base, dst.add(first), n - first);
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        // `&mut self`: every handle is gone, so no operation is in progress and the items are
        // exactly the slots between the consumer tail and the producer tail.
        let end = *self.prod.tail.get_mut();
        let mut i = *self.cons.tail.get_mut();
        let base = self.base();
        while i != end {
            // SAFETY: slot `i & mask` is inside the array and holds an initialized item that
            // nothing else owns (the ring's invariant); each is dropped once.
            unsafe { ptr::drop_in_place(base.add((i & self.mask) as usize)) };
            i = i.wrapping_add(1);
        }
    }
}

/// Makes a ring holding up to `capacity` items of `T`, and returns its two ends.
///
/// `producers` and `consumers` choose each side's [`SyncMode`]; a `Multi` side's handle can be
/// cloned with `try_clone` and used from several threads at once. The ring (and any items still
/// in it) is dropped with its last handle.
///
/// # Errors
///
/// [`RingError::ZeroCapacity`], [`RingError::CapacityTooLarge`] (over [`MAX_CAPACITY`]), or
/// [`RingError::OutOfMemory`].
pub fn ring<T: Send>(
    capacity: usize,
    producers: SyncMode,
    consumers: SyncMode,
) -> Result<(Producer<T>, Consumer<T>), RingError> {
    let ring = Arc::new(Ring::new(capacity, producers, consumers)?);
    Ok((Producer { ring: Arc::clone(&ring), _not_sync: PhantomData }, Consumer { ring, _not_sync: PhantomData }))
}

/// The enqueueing end of a ring made by [`ring`].
///
/// `Send` but not `Sync`: each thread enqueues through its own handle, and a single-producer
/// ring has exactly one.
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<burst_mem::ring::Producer<u64>>();
/// ```
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Send> Producer<T> {
    /// Enqueues one item, or hands it back if the ring is full.
    #[inline]
    pub fn enqueue(&mut self, item: T) -> Result<(), T> {
        // SAFETY: `&mut self` and the handle's sync mode uphold the single-producer contract.
        unsafe { self.ring.enqueue_one(item, self.ring.producers) }
    }

    /// Enqueues all of `items` or none (`rte_ring_enqueue_bulk`).
    ///
    /// On success all items are moved from the front of `items` (the `Vec` becomes empty, its
    /// allocation kept) and their count is returned; returns 0 and leaves `items` untouched if
    /// they do not all fit.
    #[inline]
    pub fn enqueue_bulk(&mut self, items: &mut Vec<T>) -> usize {
        let len = items.len();
        if len > self.ring.capacity as usize {
            return 0;
        }
        // SAFETY: `items[..len]` is initialized and outside the ring; the single-producer
        // contract holds as in `enqueue`.
        let moved = unsafe { self.ring.enqueue_raw(items.as_ptr(), len as u32, Behavior::Bulk, self.ring.producers) };
        if moved != 0 {
            // SAFETY: all `len` items now belong to the ring; forget them without dropping.
            unsafe { items.set_len(0) };
        }
        moved as usize
    }

    /// Enqueues as many of `items` as fit (`rte_ring_enqueue_burst`), taken from the front in
    /// order; the rest stay in `items`, shifted to its front, still in order. Returns how many
    /// were taken.
    ///
    /// Like a NIC's `tx_burst`: the caller keeps what the ring did not take.
    #[inline]
    pub fn enqueue_burst(&mut self, items: &mut Vec<T>) -> usize {
        let len = items.len();
        let n = len.min(self.ring.capacity as usize);
        let base = items.as_mut_ptr();
        // SAFETY: `items[..n]` is initialized and outside the ring; the single-producer contract
        // holds as in `enqueue`.
        let moved = unsafe { self.ring.enqueue_raw(base, n as u32, Behavior::Burst, self.ring.producers) } as usize;
        if moved != 0 {
            // SAFETY: `items[..moved]` now belong to the ring; the `len - moved` items after
            // them are still ours and slide down over those slots (overlapping, so `copy`),
            // then the length covers exactly them. Nothing between can panic.
            unsafe {
                ptr::copy(base.add(moved), base, len - moved);
                items.set_len(len - moved);
            }
        }
        moved
    }

    /// A second handle on the same ring, for another thread; `Some` only when the ring was
    /// made with `producers == SyncMode::Multi`.
    pub fn try_clone(&self) -> Option<Self> {
        match self.ring.producers {
            SyncMode::Multi => Some(Producer { ring: Arc::clone(&self.ring), _not_sync: PhantomData }),
            SyncMode::Single => None,
        }
    }

    /// Number of items in the ring (a snapshot while other threads use it).
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.count() as usize
    }

    /// Whether the ring holds no item (a snapshot while other threads use it).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the ring holds: exactly the capacity it was made with.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// Number of items that can be enqueued before the ring is full (a snapshot while other
    /// threads use it).
    #[inline]
    pub fn free_count(&self) -> usize {
        self.capacity() - self.len()
    }
}

impl<T> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("sync", &self.ring.producers)
            .field("len", &self.ring.count())
            .field("capacity", &self.ring.capacity)
            .finish()
    }
}

/// The dequeueing end of a ring made by [`ring`].
///
/// `Send` but not `Sync`: each thread dequeues through its own handle, and a single-consumer
/// ring has exactly one.
///
/// ```compile_fail
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<burst_mem::ring::Consumer<u64>>();
/// ```
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    _not_sync: PhantomData<Cell<()>>,
}

impl<T: Send> Consumer<T> {
    /// Dequeues the oldest item, or `None` if the ring is empty.
    #[inline]
    pub fn dequeue(&mut self) -> Option<T> {
        // SAFETY: `&mut self` and the handle's sync mode uphold the single-consumer contract.
        unsafe { self.ring.dequeue_one(self.ring.consumers) }
    }

    /// Appends exactly `n` items to `out`, oldest first, or none if fewer than `n` are in the
    /// ring (`rte_ring_dequeue_bulk`). Returns `n` or 0.
    ///
    /// Reserve room in `out` beforehand: if it has fewer than `n` spare slots, this reserves
    /// them, which allocates.
    #[inline]
    pub fn dequeue_bulk(&mut self, out: &mut Vec<T>, n: usize) -> usize {
        if n == 0 || n > self.ring.capacity as usize {
            return 0;
        }
        out.reserve(n);
        self.dequeue_into(out, n, Behavior::Bulk)
    }

    /// Appends up to `max` items to `out`, oldest first: as many as the ring holds
    /// (`rte_ring_dequeue_burst`). Returns how many.
    ///
    /// Reserve room in `out` beforehand: if it has fewer than `max` spare slots, this reserves
    /// room for what the ring holds at the time of the call, which allocates.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let mut n = max.min(self.ring.capacity as usize);
        if out.capacity() - out.len() < n {
            // Only the slow path looks at the count: reserve no more than is there now, and
            // take no more than we reserved.
            n = n.min(self.ring.count() as usize);
            out.reserve(n);
        }
        if n == 0 {
            return 0;
        }
        self.dequeue_into(out, n, Behavior::Burst)
    }

    /// Dequeues up to `n` items to the spare capacity of `out`. `out` has room for `n` more
    /// items and `n <= capacity`.
    #[inline(always)]
    fn dequeue_into(&mut self, out: &mut Vec<T>, n: usize, behavior: Behavior) -> usize {
        debug_assert!(out.capacity() - out.len() >= n && n <= self.ring.capacity as usize);
        let len = out.len();
        // SAFETY: the spare capacity `out[len..len + n]` is valid for writes and outside the
        // ring (the callers reserved it); the single-consumer contract holds as in `dequeue`.
        let moved =
            unsafe { self.ring.dequeue_raw(out.as_mut_ptr().add(len), n as u32, behavior, self.ring.consumers) };
        // SAFETY: the ring initialized `out[len..len + moved]`, which we now own.
        unsafe { out.set_len(len + moved as usize) };
        moved as usize
    }

    /// A second handle on the same ring, for another thread; `Some` only when the ring was
    /// made with `consumers == SyncMode::Multi`.
    pub fn try_clone(&self) -> Option<Self> {
        match self.ring.consumers {
            SyncMode::Multi => Some(Consumer { ring: Arc::clone(&self.ring), _not_sync: PhantomData }),
            SyncMode::Single => None,
        }
    }

    /// Number of items in the ring (a snapshot while other threads use it).
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.count() as usize
    }

    /// Whether the ring holds no item (a snapshot while other threads use it).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the ring holds: exactly the capacity it was made with.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("sync", &self.ring.consumers)
            .field("len", &self.ring.count())
            .field("capacity", &self.ring.capacity)
            .finish()
    }
}

/// A multi-producer/multi-consumer ring of `Copy` items (pointers, indices), shared by
/// reference: it is `Sync`, so put it in an `Arc` or a `static` and call it from any thread.
///
/// The mempool keeps its free buffers in one. The slice methods copy items in and out, so there
/// is nothing to drop and no `Vec` to grow.
pub struct SharedRing<T: Copy + Send> {
    ring: Ring<T>,
}

impl<T: Copy + Send> SharedRing<T> {
    /// Makes an empty ring holding up to `capacity` items.
    ///
    /// # Errors
    ///
    /// As [`ring`].
    pub fn new(capacity: usize) -> Result<Self, RingError> {
        Ok(SharedRing { ring: Ring::new(capacity, SyncMode::Multi, SyncMode::Multi)? })
    }

    /// Enqueues all of `items` or none; returns whether they were enqueued.
    #[inline]
    pub fn enqueue_bulk(&self, items: &[T]) -> bool {
        if items.is_empty() {
            return true;
        }
        if items.len() > self.ring.capacity as usize {
            return false;
        }
        // SAFETY: `items` is initialized and outside the ring; `T: Copy`, so the ring taking
        // copies leaves the caller's items valid; `Multi` allows concurrent producers.
        unsafe { self.ring.enqueue_raw(items.as_ptr(), items.len() as u32, Behavior::Bulk, SyncMode::Multi) != 0 }
    }

    /// Enqueues as many of `items` as fit; returns `n`, meaning `items[..n]` were taken.
    #[inline]
    pub fn enqueue_burst(&self, items: &[T]) -> usize {
        let n = items.len().min(self.ring.capacity as usize);
        // SAFETY: as in `enqueue_bulk`.
        unsafe { self.ring.enqueue_raw(items.as_ptr(), n as u32, Behavior::Burst, SyncMode::Multi) as usize }
    }

    /// Fills all of `out` with the oldest items, or leaves it untouched if fewer than
    /// `out.len()` are in the ring; returns whether it was filled.
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> bool {
        if out.is_empty() {
            return true;
        }
        if out.len() > self.ring.capacity as usize {
            return false;
        }
        // SAFETY: `out` is valid for writes and outside the ring; `T: Copy`, so overwriting its
        // old values needs no drop; `Multi` allows concurrent consumers.
        unsafe { self.ring.dequeue_raw(out.as_mut_ptr(), out.len() as u32, Behavior::Bulk, SyncMode::Multi) != 0 }
    }

    /// Fills the front of `out` with as many of the oldest items as the ring holds; returns
    /// `n`, meaning `out[..n]` was written.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> usize {
        let n = out.len().min(self.ring.capacity as usize);
        // SAFETY: as in `dequeue_bulk`.
        unsafe { self.ring.dequeue_raw(out.as_mut_ptr(), n as u32, Behavior::Burst, SyncMode::Multi) as usize }
    }

    /// Number of items in the ring (a snapshot while other threads use it).
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.count() as usize
    }

    /// Whether the ring holds no item (a snapshot while other threads use it).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most items the ring holds: exactly the capacity it was made with.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }
}

impl<T: Copy + Send> fmt::Debug for SharedRing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRing").field("len", &self.ring.count()).field("capacity", &self.ring.capacity).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;
    use std::thread;

    use proptest::prelude::*;

    const SYNC_MODES: [(SyncMode, SyncMode); 4] = [
        (SyncMode::Single, SyncMode::Single),
        (SyncMode::Single, SyncMode::Multi),
        (SyncMode::Multi, SyncMode::Single),
        (SyncMode::Multi, SyncMode::Multi),
    ];

    /// An item that counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn full_ring_holds_exactly_capacity() {
        for (producers, consumers) in SYNC_MODES {
            for capacity in [1, 2, 3, 7, 8, 9, 255, 256, 1000, 1024] {
                let (mut tx, mut rx) = ring::<usize>(capacity, producers, consumers).unwrap();
                assert_eq!(tx.capacity(), capacity);
                assert_eq!(rx.capacity(), capacity);
                for i in 0..capacity {
                    assert_eq!(tx.enqueue(i), Ok(()), "capacity {capacity}: item {i}");
                }
                assert_eq!(tx.enqueue(usize::MAX), Err(usize::MAX));
                assert_eq!((tx.len(), tx.free_count(), rx.len()), (capacity, 0, capacity));
                for i in 0..capacity {
                    assert_eq!(rx.dequeue(), Some(i));
                }
                assert_eq!(rx.dequeue(), None);
                assert!(tx.is_empty() && rx.is_empty());
                assert_eq!(tx.free_count(), capacity);
            }
        }
    }

    #[test]
    fn bad_capacities_are_errors() {
        assert!(matches!(ring::<u8>(0, SyncMode::Single, SyncMode::Single), Err(RingError::ZeroCapacity)));
        assert!(matches!(
            ring::<u8>(MAX_CAPACITY + 1, SyncMode::Multi, SyncMode::Multi),
            Err(RingError::CapacityTooLarge { requested, max: MAX_CAPACITY }) if requested == MAX_CAPACITY + 1
        ));
        assert!(matches!(SharedRing::<usize>::new(0), Err(RingError::ZeroCapacity)));
        let message = RingError::ZeroCapacity.to_string();
        assert!(message.contains("at least 1"), "{message}");
    }

    #[test]
    fn bulk_is_all_or_nothing() {
        for (producers, consumers) in SYNC_MODES {
            let (mut tx, mut rx) = ring::<u32>(8, producers, consumers).unwrap();
            let mut items = vec![1, 2, 3, 4, 5];
            assert_eq!(tx.enqueue_bulk(&mut items), 5);
            assert!(items.is_empty());

            let mut more = vec![6, 7, 8, 9];
            assert_eq!(tx.enqueue_bulk(&mut more), 0);
            assert_eq!(more, [6, 7, 8, 9]);
            let mut too_many: Vec<u32> = (0..9).collect();
            assert_eq!(tx.enqueue_bulk(&mut too_many), 0);
            assert_eq!(too_many.len(), 9);

            let mut out = vec![100];
            assert_eq!(rx.dequeue_bulk(&mut out, 6), 0);
            assert_eq!(out, [100]);
            assert_eq!(rx.dequeue_bulk(&mut out, 9), 0);
            assert_eq!(rx.dequeue_bulk(&mut out, 2), 2);
            assert_eq!(out, [100, 1, 2]);
            assert_eq!(rx.dequeue_bulk(&mut out, 3), 3);
            assert_eq!(out, [100, 1, 2, 3, 4, 5]);
            assert!(rx.is_empty());
        }
    }

    #[test]
    fn burst_takes_what_fits_and_leaves_the_rest_in_order() {
        for (producers, consumers) in SYNC_MODES {
            let (mut tx, mut rx) = ring::<String>(5, producers, consumers).unwrap();
            let mut items: Vec<String> = (0..8).map(|i| i.to_string()).collect();
            assert_eq!(tx.enqueue_burst(&mut items), 5);
            assert_eq!(items, ["5", "6", "7"]);
            assert_eq!(tx.enqueue_burst(&mut items), 0);
            assert_eq!(items, ["5", "6", "7"]);

            let mut out = Vec::with_capacity(16);
            assert_eq!(rx.dequeue_burst(&mut out, 2), 2);
            assert_eq!(out, ["0", "1"]);
            assert_eq!(tx.enqueue_burst(&mut items), 2);
            assert_eq!(items, ["7"]);
            assert_eq!(rx.dequeue_burst(&mut out, 100), 5);
            assert_eq!(out, ["0", "1", "2", "3", "4", "5", "6"]);
            assert_eq!(rx.dequeue_burst(&mut out, 100), 0);
            assert_eq!(tx.enqueue_burst(&mut items), 1);
            assert!(items.is_empty());
            assert_eq!(tx.enqueue_burst(&mut items), 0);
        }
    }

    #[test]
    fn dequeue_into_a_vec_without_room_grows_it() {
        let (mut tx, mut rx) = ring::<u64>(100, SyncMode::Single, SyncMode::Single).unwrap();
        let mut items: Vec<u64> = (0..10).collect();
        assert_eq!(tx.enqueue_bulk(&mut items), 10);
        let mut out = Vec::new();
        assert_eq!(rx.dequeue_burst(&mut out, usize::MAX), 10);
        assert_eq!(out, (0..10).collect::<Vec<_>>());
        // Burst reserves only what is there, not `max`.
        assert!(out.capacity() < 100);
        let mut out = Vec::new();
        assert_eq!(rx.dequeue_bulk(&mut out, 1), 0);
        assert_eq!(rx.dequeue_burst(&mut out, 0), 0);
    }

    #[test]
    fn wraps_around_the_slot_array() {
        for (producers, consumers) in SYNC_MODES {
            // 5 items in 8 slots: every offset of the start is visited, and most batches split.
            let (mut tx, mut rx) = ring::<u32>(5, producers, consumers).unwrap();
            let (mut next_in, mut next_out) = (0u32, 0u32);
            let mut out = Vec::with_capacity(5);
            for round in 0..100 {
                let n = 1 + round % 5;
                let mut items: Vec<u32> = (next_in..next_in + n).collect();
                assert_eq!(tx.enqueue_bulk(&mut items), n as usize);
                next_in += n;
                out.clear();
                assert_eq!(rx.dequeue_burst(&mut out, 5), n as usize);
                assert_eq!(out, (next_out..next_out + n).collect::<Vec<_>>());
                next_out += n;
            }
        }
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        let (mut tx, mut rx) = ring::<u32>(6, SyncMode::Multi, SyncMode::Multi).unwrap();
        let start = u32::MAX - 3;
        for side in [&tx.ring.prod, &tx.ring.cons] {
            side.head.store(start, Ordering::Relaxed);
            side.tail.store(start, Ordering::Relaxed);
        }
        let mut out = Vec::with_capacity(6);
        for round in 0..10u32 {
            let mut items: Vec<u32> = (0..6).map(|i| round * 10 + i).collect();
            assert_eq!(tx.enqueue_bulk(&mut items), 6);
            assert_eq!(tx.free_count(), 0);
            out.clear();
            assert_eq!(rx.dequeue_bulk(&mut out, 6), 6);
            assert_eq!(out, (0..6).map(|i| round * 10 + i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn only_multi_sides_clone() {
        let (tx, rx) = ring::<u8>(4, SyncMode::Single, SyncMode::Single).unwrap();
        assert!(tx.try_clone().is_none() && rx.try_clone().is_none());
        let (tx, rx) = ring::<u8>(4, SyncMode::Multi, SyncMode::Single).unwrap();
        assert!(tx.try_clone().is_some() && rx.try_clone().is_none());
        let (tx, rx) = ring::<u8>(4, SyncMode::Single, SyncMode::Multi).unwrap();
        assert!(tx.try_clone().is_none() && rx.try_clone().is_some());
        let (mut tx, rx) = ring::<u8>(4, SyncMode::Multi, SyncMode::Multi).unwrap();
        let mut tx2 = tx.try_clone().unwrap();
        let mut rx2 = rx.try_clone().unwrap();
        tx.enqueue(1).unwrap();
        tx2.enqueue(2).unwrap();
        drop(rx);
        assert_eq!((rx2.dequeue(), rx2.dequeue()), (Some(1), Some(2)));
    }

    #[test]
    fn items_left_in_the_ring_drop_with_the_last_handle() {
        let drops = Arc::new(AtomicUsize::new(0));
        let (mut tx, mut rx) = ring::<Tracked>(5, SyncMode::Single, SyncMode::Multi).unwrap();
        // Move the indices so the leftovers straddle the end of the slot array.
        for _ in 0..6 {
            assert!(tx.enqueue(Tracked(Arc::clone(&drops))).is_ok());
            drop(rx.dequeue());
        }
        assert_eq!(drops.load(Ordering::Relaxed), 6);
        let mut items: Vec<Tracked> = (0..7).map(|_| Tracked(Arc::clone(&drops))).collect();
        assert_eq!(tx.enqueue_burst(&mut items), 5);
        let rejected = tx.enqueue(Tracked(Arc::clone(&drops))).unwrap_err();
        drop(rejected);
        drop(items);
        assert_eq!(drops.load(Ordering::Relaxed), 6 + 1 + 2);
        let rx2 = rx.try_clone().unwrap();
        drop(rx);
        drop(tx);
        assert_eq!(drops.load(Ordering::Relaxed), 9, "the ring lives while a handle does");
        drop(rx2);
        assert_eq!(drops.load(Ordering::Relaxed), 14);
    }

    #[test]
    fn shared_ring_bulk_and_burst() {
        let ring = SharedRing::<usize>::new(6).unwrap();
        assert_eq!(ring.capacity(), 6);
        assert!(ring.enqueue_bulk(&[1, 2, 3, 4]));
        assert!(!ring.enqueue_bulk(&[5, 6, 7]));
        assert!(!ring.enqueue_bulk(&[0; 7]));
        assert_eq!(ring.enqueue_burst(&[5, 6, 7]), 2);
        assert_eq!(ring.len(), 6);
        let mut out = [0; 4];
        assert!(!ring.dequeue_bulk(&mut [0; 7]));
        assert!(ring.dequeue_bulk(&mut out));
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(!ring.dequeue_bulk(&mut out));
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(ring.dequeue_burst(&mut out), 2);
        assert_eq!(out[..2], [5, 6]);
        assert!(ring.is_empty());
        assert_eq!(ring.dequeue_burst(&mut out), 0);
        assert!(ring.enqueue_bulk(&[]) && ring.dequeue_bulk(&mut []));
    }

    #[test]
    fn handles_are_send_and_shared_ring_is_sync() {
        fn is_send<T: Send>() {}
        fn is_sync<T: Sync>() {}
        is_send::<Producer<Box<u8>>>();
        is_send::<Consumer<Box<u8>>>();
        is_send::<SharedRing<usize>>();
        is_sync::<SharedRing<usize>>();
    }

    #[derive(Clone, Debug)]
    enum Op {
        Enqueue,
        EnqueueBulk(usize),
        EnqueueBurst(usize),
        Dequeue,
        DequeueBulk(usize),
        DequeueBurst(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Enqueue),
            (0..24usize).prop_map(Op::EnqueueBulk),
            (0..24usize).prop_map(Op::EnqueueBurst),
            Just(Op::Dequeue),
            (0..24usize).prop_map(Op::DequeueBulk),
            (0..24usize).prop_map(Op::DequeueBurst),
        ]
    }

    fn sync_mode() -> impl Strategy<Value = SyncMode> {
        prop_oneof![Just(SyncMode::Single), Just(SyncMode::Multi)]
    }

    proptest! {
        #[test]
        fn ring_matches_a_vecdeque(
            capacity in 1..20usize,
            producers in sync_mode(),
            consumers in sync_mode(),
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let (mut tx, mut rx) = ring::<u64>(capacity, producers, consumers).unwrap();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            let mut fresh = |n: usize| -> Vec<u64> { (0..n).map(|_| { next += 1; next }).collect() };
            for op in ops {
                let free = capacity - model.len();
                match op {
                    Op::Enqueue => {
                        let item = fresh(1)[0];
                        if free > 0 {
                            prop_assert_eq!(tx.enqueue(item), Ok(()));
                            model.push_back(item);
                        } else {
                            prop_assert_eq!(tx.enqueue(item), Err(item));
                        }
                    }
                    Op::EnqueueBulk(n) => {
                        let mut items = fresh(n);
                        let before = items.clone();
                        let taken = tx.enqueue_bulk(&mut items);
                        if n <= free {
                            prop_assert_eq!(taken, n);
                            prop_assert!(items.is_empty());
                            model.extend(before);
                        } else {
                            prop_assert_eq!(taken, 0);
                            prop_assert_eq!(items, before);
                        }
                    }
                    Op::EnqueueBurst(n) => {
                        let mut items = fresh(n);
                        let before = items.clone();
                        let taken = tx.enqueue_burst(&mut items);
                        prop_assert_eq!(taken, n.min(free));
                        prop_assert_eq!(&items[..], &before[taken..]);
                        model.extend(&before[..taken]);
                    }
                    Op::Dequeue => prop_assert_eq!(rx.dequeue(), model.pop_front()),
                    Op::DequeueBulk(n) => {
                        let mut out = vec![0];
                        let got = rx.dequeue_bulk(&mut out, n);
                        if n > 0 && n <= model.len() {
                            prop_assert_eq!(got, n);
                            let expected: Vec<u64> = model.drain(..n).collect();
                            prop_assert_eq!(&out[1..], &expected[..]);
                        } else {
                            prop_assert_eq!(got, 0);
                            prop_assert_eq!(out, [0]);
                        }
                    }
                    Op::DequeueBurst(n) => {
                        let mut out = Vec::with_capacity(n / 2);
                        let got = rx.dequeue_burst(&mut out, n);
                        let expected: Vec<u64> = model.drain(..n.min(model.len())).collect();
                        prop_assert_eq!(got, expected.len());
                        prop_assert_eq!(out, expected);
                    }
                }
                prop_assert_eq!(tx.len(), model.len());
                prop_assert_eq!(rx.len(), model.len());
                prop_assert_eq!(tx.free_count(), capacity - model.len());
            }
        }

        #[test]
        fn shared_ring_matches_a_vecdeque(
            capacity in 1..20usize,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let ring = SharedRing::<u64>::new(capacity).unwrap();
            let mut model = VecDeque::new();
            let mut next = 0u64;
            let mut fresh = |n: usize| -> Vec<u64> { (0..n).map(|_| { next += 1; next }).collect() };
            for op in ops {
                let free = capacity - model.len();
                match op {
                    Op::Enqueue | Op::EnqueueBulk(_) => {
                        let items = fresh(if let Op::EnqueueBulk(n) = op { n } else { 1 });
                        let ok = ring.enqueue_bulk(&items);
                        prop_assert_eq!(ok, items.len() <= free);
                        if ok {
                            model.extend(items);
                        }
                    }
                    Op::EnqueueBurst(n) => {
                        let items = fresh(n);
                        let taken = ring.enqueue_burst(&items);
                        prop_assert_eq!(taken, n.min(free));
                        model.extend(&items[..taken]);
                    }
                    Op::Dequeue | Op::DequeueBulk(_) => {
                        let mut out = vec![0; if let Op::DequeueBulk(n) = op { n } else { 1 }];
                        let ok = ring.dequeue_bulk(&mut out);
                        prop_assert_eq!(ok, out.len() <= model.len());
                        if ok {
                            let expected: Vec<u64> = model.drain(..out.len()).collect();
                            prop_assert_eq!(out, expected);
                        } else {
                            prop_assert!(out.iter().all(|&x| x == 0));
                        }
                    }
                    Op::DequeueBurst(n) => {
                        let mut out = vec![0; n];
                        let got = ring.dequeue_burst(&mut out);
                        let expected: Vec<u64> = model.drain(..n.min(model.len())).collect();
                        prop_assert_eq!(&out[..got], &expected[..]);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
            }
        }
    }

    /// A tiny per-thread xorshift, to vary batch sizes without shared state.
    fn next_rand(state: &mut u32) -> u32 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        *state
    }

    /// Tags a value with the producer that sent it: producer in the top 16 bits.
    fn tag(producer: usize, seq: usize) -> usize {
        producer << 48 | seq
    }

    /// Checks what the consumers saw: every value of every producer exactly once, and each
    /// producer's values in increasing order within each consumer's log.
    fn check_logs(logs: &[Vec<usize>], producers: usize, per_producer: usize) {
        let mut seen = vec![vec![false; per_producer]; producers];
        for (consumer, log) in logs.iter().enumerate() {
            let mut last = vec![None; producers];
            for &value in log {
                let (p, seq) = (value >> 48, value & ((1 << 48) - 1));
                assert!(p < producers && seq < per_producer, "consumer {consumer}: bogus value {value:#x}");
                assert!(!seen[p][seq], "producer {p} value {seq} received twice");
                seen[p][seq] = true;
                assert!(last[p] < Some(seq), "consumer {consumer}: producer {p} value {seq} after {:?}", last[p]);
                last[p] = Some(seq);
            }
        }
        for (p, seen) in seen.iter().enumerate() {
            let missing = seen.iter().filter(|&&s| !s).count();
            assert_eq!(missing, 0, "producer {p}: {missing} values never received");
        }
    }

    /// Sends `tag(id, 0..count)` in order, mixing single, bulk and burst enqueues of random sizes.
    fn produce(mut tx: Producer<usize>, id: usize, count: usize) {
        let mut rng = 0x9e37_79b9 ^ (id as u32 + 1).wrapping_mul(0x85eb_ca6b);
        // Values staged in `batch` come before `next`; they are retried until taken.
        let mut batch = Vec::with_capacity(64);
        let mut next = 0;
        while next < count || !batch.is_empty() {
            if batch.is_empty() && next_rand(&mut rng) % 3 == 0 {
                if tx.enqueue(tag(id, next)).is_ok() {
                    next += 1;
                }
                continue;
            }
            if batch.is_empty() {
                let n = (1 + next_rand(&mut rng) as usize % 64).min(count - next);
                batch.extend((next..next + n).map(|seq| tag(id, seq)));
                next += n;
            }
            let taken =
                if next_rand(&mut rng) % 2 == 0 { tx.enqueue_bulk(&mut batch) } else { tx.enqueue_burst(&mut batch) };
            if taken == 0 {
                thread::yield_now();
            }
        }
    }

    /// Receives until `received` reaches `total`, mixing single, bulk and burst dequeues of random
    /// sizes; returns what it received, in order.
    fn consume(mut rx: Consumer<usize>, id: usize, received: &AtomicUsize, total: usize) -> Vec<usize> {
        let mut rng = 0x1234_5678 ^ (id as u32 + 1).wrapping_mul(0xc2b2_ae35);
        let mut log = Vec::with_capacity(total);
        while received.load(Ordering::Relaxed) < total {
            log.reserve(64);
            let got = match next_rand(&mut rng) % 3 {
                0 => rx.dequeue().map(|value| log.push(value)).map_or(0, |()| 1),
                1 => rx.dequeue_bulk(&mut log, 1 + next_rand(&mut rng) as usize % 64),
                _ => rx.dequeue_burst(&mut log, 64),
            };
            if got == 0 {
                thread::yield_now();
            } else {
                received.fetch_add(got, Ordering::Relaxed);
            }
        }
        log
    }

    /// Runs `producers` x `per_producer` tagged values through a ring to `consumers` threads and
    /// checks delivery.
    fn stress(sync: SyncMode, producers: usize, consumers: usize, per_producer: usize, capacity: usize) {
        let (tx, rx) = ring::<usize>(capacity, sync, sync).unwrap();
        let total = producers * per_producer;
        let received = Arc::new(AtomicUsize::new(0));
        let mut txs = vec![tx];
        let mut rxs = vec![rx];
        for _ in 1..producers {
            txs.push(txs[0].try_clone().unwrap());
        }
        for _ in 1..consumers {
            rxs.push(rxs[0].try_clone().unwrap());
        }
        let senders: Vec<_> =
            txs.into_iter().enumerate().map(|(id, tx)| thread::spawn(move || produce(tx, id, per_producer))).collect();
        let receivers: Vec<_> = rxs
            .into_iter()
            .enumerate()
            .map(|(id, rx)| {
                let received = Arc::clone(&received);
                thread::spawn(move || consume(rx, id, &received, total))
            })
            .collect();
        senders.into_iter().for_each(|t| t.join().unwrap());
        let logs: Vec<Vec<usize>> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(logs.iter().map(Vec::len).sum::<usize>(), total);
        check_logs(&logs, producers, per_producer);
    }

    #[test]
    fn spsc_stress_keeps_order() {
        let count = if cfg!(debug_assertions) { 1_000_000 } else { 10_000_000 };
        stress(SyncMode::Single, 1, 1, count, 256);
    }

    #[test]
    fn mpmc_stress_delivers_each_value_once_in_producer_order() {
        let per_producer = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
        stress(SyncMode::Multi, 4, 4, per_producer, 128);
    }

    #[test]
    fn shared_ring_mpmc_stress_delivers_each_value_once_in_producer_order() {
        const PRODUCERS: usize = 3;
        const CONSUMERS: usize = 3;
        let per_producer = if cfg!(debug_assertions) { 200_000 } else { 1_000_000 };
        let total = PRODUCERS * per_producer;
        let ring = Arc::new(SharedRing::<usize>::new(100).unwrap());
        let received = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..PRODUCERS)
            .map(|id| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let mut rng = 0xdead_beef ^ (id as u32 + 1).wrapping_mul(0x85eb_ca6b);
                    let mut next = 0;
                    while next < per_producer {
                        let n = (1 + next_rand(&mut rng) as usize % 32).min(per_producer - next);
                        let batch: Vec<usize> = (next..next + n).map(|seq| tag(id, seq)).collect();
                        let taken = if next_rand(&mut rng) % 2 == 0 {
                            if ring.enqueue_bulk(&batch) {
                                n
                            } else {
                                0
                            }
                        } else {
                            ring.enqueue_burst(&batch)
                        };
                        next += taken;
                        if taken == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..CONSUMERS)
            .map(|id| {
                let ring = Arc::clone(&ring);
                let received = Arc::clone(&received);
                thread::spawn(move || {
                    let mut rng = 0x0bad_cafe ^ (id as u32 + 1).wrapping_mul(0xc2b2_ae35);
                    let mut log = Vec::with_capacity(total);
                    let mut buf = [0; 32];
                    while received.load(Ordering::Relaxed) < total {
                        let n = 1 + next_rand(&mut rng) as usize % 32;
                        let got = if next_rand(&mut rng) % 2 == 0 {
                            if ring.dequeue_bulk(&mut buf[..n]) {
                                n
                            } else {
                                0
                            }
                        } else {
                            ring.dequeue_burst(&mut buf[..n])
                        };
                        log.extend_from_slice(&buf[..got]);
                        if got == 0 {
                            thread::yield_now();
                        } else {
                            received.fetch_add(got, Ordering::Relaxed);
                        }
                    }
                    log
                })
            })
            .collect();
        senders.into_iter().for_each(|t| t.join().unwrap());
        let logs: Vec<Vec<usize>> = receivers.into_iter().map(|t| t.join().unwrap()).collect();
        check_logs(&logs, PRODUCERS, per_producer);
        assert!(ring.is_empty());
    }

    /// The mempool's use: a full ring of buffer indices, threads taking some and putting them
    /// back. A bulk put of what one took must always fit, even with the ring at exact capacity.
    #[test]
    fn shared_ring_as_a_free_list_never_loses_or_duplicates() {
        const ITEMS: usize = 1000;
        const THREADS: usize = 4;
        let rounds = if cfg!(debug_assertions) { 50_000 } else { 500_000 };
        let ring = Arc::new(SharedRing::<usize>::new(ITEMS).unwrap());
        let all: Vec<usize> = (0..ITEMS).collect();
        assert!(ring.enqueue_bulk(&all));
        let workers: Vec<_> = (0..THREADS)
            .map(|id| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    let mut rng = 0x5eed ^ (id as u32 + 1).wrapping_mul(0x27d4_eb2f);
                    let mut held = [0; 32];
                    for _ in 0..rounds {
                        let n = 1 + next_rand(&mut rng) as usize % 32;
                        let got = if next_rand(&mut rng) % 2 == 0 {
                            if ring.dequeue_bulk(&mut held[..n]) {
                                n
                            } else {
                                0
                            }
                        } else {
                            ring.dequeue_burst(&mut held[..n])
                        };
                        assert!(held[..got].iter().all(|&i| i < ITEMS));
                        assert!(ring.enqueue_bulk(&held[..got]), "putting back {got} items found no room");
                    }
                })
            })
            .collect();
        workers.into_iter().for_each(|t| t.join().unwrap());
        let mut left = vec![0; ITEMS];
        assert!(ring.dequeue_bulk(&mut left));
        left.sort_unstable();
        assert_eq!(left, all);
    }
}
