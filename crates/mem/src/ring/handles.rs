//! The two ends of a ring for any `T: Send`: [`Producer`] and [`Consumer`], made by [`ring`].
//! Each is `Send` but not `Sync`, and only a `Multi` side can be cloned, so the type system
//! upholds the single-producer/single-consumer contract.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr;
use std::sync::Arc;

use super::slots::Ring;
use super::{Behavior, RingError, SyncMode};

/// Makes a ring holding up to `capacity` items of `T`, and returns its two ends.
///
/// `producers` and `consumers` choose each side's [`SyncMode`]; a `Multi` side's handle can be
/// cloned with `try_clone` and used from several threads at once. The ring (and any items still
/// in it) is dropped with its last handle.
///
/// # Errors
///
/// [`RingError::ZeroCapacity`], [`RingError::CapacityTooLarge`] (over [`MAX_CAPACITY`](super::MAX_CAPACITY)), or
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
    /// Reached by the tests too, to start the indices near their wrap.
    pub(super) ring: Arc<Ring<T>>,
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
