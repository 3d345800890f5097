//! The ring core every handle shares: the slot array, the producer and consumer head/tail
//! pairs, and the raw moves of items in and out that the typed ends wrap.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::Ordering;

use crossbeam_utils::CachePadded;

use super::headtail::HeadTail;
use super::{Behavior, RingError, SyncMode, MAX_CAPACITY};

/// The ring core shared by every handle: slots plus the two head/tail pairs.
///
/// `repr(C)` keeps the read-only fields first, then the producer pair and the consumer pair on
/// cache lines of their own, as `struct rte_ring` lays them out.
#[repr(C)]
pub(super) struct Ring<T> {
    /// `mask + 1` slots; slot `i & mask` holds an item iff `cons.tail <= i < prod.tail`
    /// (wrapping), outside of operations in progress.
    pub(super) slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    pub(super) mask: u32,
    pub(super) capacity: u32,
    pub(super) producers: SyncMode,
    pub(super) consumers: SyncMode,
    pub(super) prod: CachePadded<HeadTail>,
    pub(super) cons: CachePadded<HeadTail>,
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
    pub(super) fn new(capacity: usize, producers: SyncMode, consumers: SyncMode) -> Result<Self, RingError> {
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
    pub(super) fn count(&self) -> u32 {
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
    pub(super) unsafe fn enqueue_raw(&self, src: *const T, n: u32, behavior: Behavior, sync: SyncMode) -> u32 {
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
    pub(super) unsafe fn dequeue_raw(&self, dst: *mut T, n: u32, behavior: Behavior, sync: SyncMode) -> u32 {
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
    pub(super) unsafe fn enqueue_one(&self, item: T, sync: SyncMode) -> Result<(), T> {
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
    pub(super) unsafe fn dequeue_one(&self, sync: SyncMode) -> Option<T> {
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
