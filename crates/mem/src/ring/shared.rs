//! [`SharedRing`]: a multi-producer/multi-consumer ring of `Copy` items, `Sync`, used by
//! reference (the mempool's free list).

use core::fmt;

use super::slots::Ring;
use super::{Behavior, RingError, SyncMode};

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
    /// As [`ring`](super::ring).
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
