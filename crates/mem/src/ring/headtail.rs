//! One side's head and tail (`struct rte_ring_headtail`): how a producer or consumer reserves
//! slots and publishes them, with the orderings of DPDK's C11 variant (`rte_ring_c11_pvt.h`).

use core::sync::atomic::{AtomicU32, Ordering};

use super::{Behavior, SyncMode, SPINS_BEFORE_YIELD};

/// One side's head and tail (`struct rte_ring_headtail`).
///
/// `head` is where the next reservation starts; `tail` is how far the side has published.
/// Slots between this side's tail and head are being copied by some thread of this side.
pub(super) struct HeadTail {
    pub(super) head: AtomicU32,
    pub(super) tail: AtomicU32,
}

impl HeadTail {
    pub(super) fn new() -> Self {
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
    pub(super) fn move_head(
        &self,
        other_tail: &AtomicU32,
        offset: u32,
        n: u32,
        behavior: Behavior,
        sync: SyncMode,
    ) -> (u32, u32) {
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
    pub(super) fn update_tail(&self, old: u32, new: u32, sync: SyncMode) {
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
