//! The driver's side of a split virtqueue (virtio 1.2, 2.7), shared by RX, TX and the control
//! queue: which descriptors are free, what was posted at each slot of the available ring, how
//! far the device has got in the used ring, and whether the device can still be trusted.
//!
//! A chain goes out in three steps: its head is put on the available ring ([`Virtqueue::post`],
//! 2.7.13.2), every head posted so far is published with one `avail.idx` store
//! ([`Virtqueue::publish`], 2.7.13.3), and the device is notified unless it asked not to be
//! ([`Virtqueue::kick`], 2.7.13.4). It comes back through the used ring (2.7.8): one read of
//! `used.idx` says how many entries are pending ([`Virtqueue::used_pending`]), then each is
//! taken either by its entry ([`Virtqueue::used_elem_at`]: an id the device wrote, untrusted) or,
//! with `IN_ORDER` (2.7.9), by position ([`Virtqueue::head_at`]: the head we posted at that slot,
//! never what the device wrote).
//!
//! A burst posts and takes many chains with a cursor of its own ([`Virtqueue::avail_slot`] and
//! [`Virtqueue::post_at`], then [`Virtqueue::publish_up_to`]; [`Virtqueue::used_slot`], then
//! [`Virtqueue::consume_to`]): the indices stay in registers and are stored once per burst. Kept
//! in the queue and stored per packet, they cost the RX path about 10% more instructions per
//! packet against a DPDK vhost back-end (callgrind).
//!
//! A `used.idx` that claims more entries than are in flight means the device is confused:
//! guessing which chains are done could hand back buffers it still writes, so the queue stops
//! (nothing more goes out or comes in) until the port is stopped and started again. Linux marks
//! a queue whose used ring makes no sense broken too (`BAD_RING` in `virtio_ring.c`).

use crate::transport::Notifier;
use crate::vring::{RingView, Vring};

/// One split virtqueue as the driver keeps it.
pub(crate) struct Virtqueue {
    ring: Vring,
    /// `ring`'s accessors, copied out so the data path reaches them without a hop.
    view: RingView,
    mask: u16,
    /// The next available-ring slot (free-running; published as `avail.idx`).
    avail_idx: u16,
    /// The next used-ring slot to take (free-running).
    last_used: u16,
    /// `used.idx` as [`Virtqueue::used_pending`] last read it (checked).
    used_idx: u16,
    /// The head posted at each available-ring slot (`slot & mask`).
    heads: Box<[u16]>,
    /// The descriptors not in flight.
    free: IdFifo,
    /// The device claimed more used entries than were in flight: nothing more is taken.
    broken: bool,
    notifier: Option<Notifier>,
}

impl std::fmt::Debug for Virtqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Virtqueue")
            .field("ring", &self.ring)
            .field("free", &self.free.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl Virtqueue {
    /// The queue on `ring`, every descriptor free.
    pub(crate) fn new(ring: Vring) -> Virtqueue {
        let size = ring.size();
        Virtqueue {
            view: *ring.view(),
            mask: size - 1,
            avail_idx: 0,
            last_used: 0,
            used_idx: 0,
            heads: vec![0; usize::from(size)].into_boxed_slice(),
            free: IdFifo::full(size),
            broken: false,
            notifier: None,
            ring,
        }
    }

    /// The ring's memory (its layout goes to the transport).
    pub(crate) fn ring(&self) -> &Vring {
        &self.ring
    }

    /// Descriptors in the ring.
    #[inline]
    pub(crate) fn size(&self) -> u16 {
        self.ring.size()
    }

    /// Clears the ring and forgets every chain, for a start: the device must be reset (it no
    /// longer uses the ring), and whoever held buffers in the chains has taken them back.
    pub(crate) fn reset(&mut self) {
        self.ring.clear();
        self.free.refill_all();
        self.avail_idx = 0;
        self.last_used = 0;
        self.used_idx = 0;
        self.broken = false;
        self.notifier = None;
    }

    /// How to notify the device of this queue, from the transport's `setup_queue`.
    pub(crate) fn set_notifier(&mut self, notifier: Notifier) {
        self.notifier = Some(notifier);
    }

    /// Whether the queue stopped: the device claimed more than was in flight, or its owner
    /// gave up on it ([`Virtqueue::mark_broken`]).
    #[inline]
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Stops the queue until the next [`Virtqueue::reset`]: the device may still complete what
    /// is in flight, so nothing it answers can be matched to a new chain.
    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Descriptors not in flight.
    #[inline(always)]
    pub(crate) fn free_descs(&self) -> usize {
        self.free.len()
    }

    /// A free descriptor, in the order they came back (ring order when the device completes in
    /// order, which `IN_ORDER` asks of the driver too: 2.7.9).
    #[inline(always)]
    pub(crate) fn alloc_desc(&mut self) -> Option<u16> {
        self.free.pop()
    }

    /// Gives back descriptor `id`, which must be one of a chain the device has used.
    #[inline(always)]
    pub(crate) fn free_desc(&mut self, id: u16) {
        self.free.push(id);
    }

    /// Writes descriptor `id` (2.7.5).
    #[inline(always)]
    pub(crate) fn set_desc(&self, id: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.view.set_desc(id, addr, len, flags, next);
    }

    /// Puts the chain at `head` on the available ring (2.7.13.2), unpublished.
    #[inline(always)]
    pub(crate) fn post(&mut self, head: u16) {
        let slot = self.avail_idx;
        self.view.set_avail_ring(slot, head);
        self.heads[usize::from(slot & self.mask)] = head;
        self.avail_idx = slot.wrapping_add(1);
    }

    /// Publishes every chain posted: one `avail.idx` store, after the descriptors and ring
    /// entries (2.7.13.3).
    #[inline]
    pub(crate) fn publish(&self) {
        self.view.publish_avail(self.avail_idx);
    }

    /// The next available-ring slot, for a burst that posts many chains with
    /// [`Virtqueue::post_at`] and a local cursor (kept in a register, not stored per chain), then
    /// [`Virtqueue::publish_up_to`].
    #[inline(always)]
    pub(crate) fn avail_slot(&self) -> u16 {
        self.avail_idx
    }

    /// Puts the chain at `head` on available-ring slot `slot` (from [`Virtqueue::avail_slot`]
    /// on, one slot per chain), unpublished.
    #[inline(always)]
    pub(crate) fn post_at(&mut self, slot: u16, head: u16) {
        self.view.set_avail_ring(slot, head);
        self.heads[usize::from(slot & self.mask)] = head;
    }

    /// Publishes every chain posted with [`Virtqueue::post_at`] before `slot`.
    #[inline(always)]
    pub(crate) fn publish_up_to(&mut self, slot: u16) {
        self.avail_idx = slot;
        self.publish();
    }

    /// Notifies the device after a publish, unless it set `VRING_USED_F_NO_NOTIFY` (2.7.13.4):
    /// a polling back-end gets no kick.
    #[inline]
    pub(crate) fn kick(&self) {
        if let Some(n) = &self.notifier {
            if self.view.needs_kick() {
                n.notify();
            }
        }
    }

    /// Notifies the device whatever it asked (the control queue, and the RX rings filled
    /// before `DRIVER_OK`).
    pub(crate) fn notify(&self) {
        if let Some(n) = &self.notifier {
            n.notify();
        }
    }

    /// How many used entries wait to be taken: one read of `used.idx`, after which the entries
    /// below it may be read. `None` when the device claims more than is in flight: the queue
    /// is then broken (said once, in the log) and the caller counts the error.
    #[inline]
    pub(crate) fn used_pending(&mut self) -> Option<u16> {
        let used = self.view.used_idx_acquire();
        let pending = used.wrapping_sub(self.last_used);
        if pending > self.avail_idx.wrapping_sub(self.last_used) {
            self.overclaimed(used);
            return None;
        }
        self.used_idx = used;
        Some(pending)
    }

    #[cold]
    fn overclaimed(&mut self, used: u16) {
        self.broken = true;
        tracing::error!(
            queue = self.ring.index(),
            used,
            last_used = self.last_used,
            avail = self.avail_idx,
            "virtio: the device used more buffers than were made available on this virtqueue; the queue is \
             stopped: stop and start the port"
        );
    }

    /// The next used slot to take, for a burst that takes many with a local cursor
    /// ([`Virtqueue::used_elem_at`], [`Virtqueue::head_at`]) and then [`Virtqueue::consume_to`].
    #[inline(always)]
    pub(crate) fn used_slot(&self) -> u16 {
        self.last_used
    }

    /// The used entry at `slot`: id and length as the device wrote them, untrusted.
    #[inline(always)]
    pub(crate) fn used_elem_at(&self, slot: u16) -> (u32, u32) {
        self.view.used_elem(slot)
    }

    /// The head we posted at `slot` (`IN_ORDER`: the buffer used at that slot, 2.7.9).
    #[inline(always)]
    pub(crate) fn head_at(&self, slot: u16) -> u16 {
        self.heads[usize::from(slot & self.mask)]
    }

    /// Marks every used slot before `slot` taken.
    #[inline(always)]
    pub(crate) fn consume_to(&mut self, slot: u16) {
        self.last_used = slot;
    }

    /// Takes the next used slot by position (`IN_ORDER`, 2.7.9): the head we posted there.
    #[inline(always)]
    pub(crate) fn next_in_order(&mut self) -> u16 {
        let head = self.head_at(self.last_used);
        self.last_used = self.last_used.wrapping_add(1);
        head
    }
}

/// The free descriptor ids of a ring, handed out in the order they came back (a FIFO). A device
/// that completes in order (DPDK's vhost, QEMU) then gets descriptors and available-ring entries
/// in ring order: the descriptor table is read sequentially and the available ring's entries
/// stay as they were. Holds at most `size` ids; every id is either here or in flight, never both
/// (callers push only ids they took back from a buffer slot).
pub(crate) struct IdFifo {
    ids: Box<[u16]>,
    head: u16,
    tail: u16,
    mask: u16,
}

impl IdFifo {
    /// Every id of a ring of `size` (a power of two), in order `0, 1, ..`.
    pub(crate) fn full(size: u16) -> IdFifo {
        debug_assert!(size.is_power_of_two());
        let mut f = IdFifo { ids: vec![0; usize::from(size)].into_boxed_slice(), head: 0, tail: 0, mask: size - 1 };
        f.refill_all();
        f
    }

    /// Puts every id back, in order.
    pub(crate) fn refill_all(&mut self) {
        for (i, v) in self.ids.iter_mut().enumerate() {
            *v = i as u16;
        }
        self.head = 0;
        self.tail = self.ids.len() as u16;
    }

    /// Ids held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.tail.wrapping_sub(self.head))
    }

    /// The oldest id.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<u16> {
        if self.head == self.tail {
            return None;
        }
        let id = self.ids[usize::from(self.head & self.mask)];
        self.head = self.head.wrapping_add(1);
        Some(id)
    }

    /// Gives an id back. Holding `size` ids already means the caller broke the rule above; the id
    /// is then dropped rather than overwrite one (a driver bug, never a device's doing).
    #[inline]
    pub(crate) fn push(&mut self, id: u16) {
        if self.len() >= self.ids.len() {
            debug_assert!(false, "more free ids than descriptors");
            return;
        }
        self.ids[usize::from(self.tail & self.mask)] = id;
        self.tail = self.tail.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdev::memory;

    fn queue(size: u16) -> Virtqueue {
        let mem = memory();
        let name = crate::testdev::name("vq");
        Virtqueue::new(Vring::new(&mem, &name, 0, size, None).unwrap())
    }

    #[test]
    fn free_ids_come_back_in_the_order_they_were_returned() {
        let mut f = IdFifo::full(4);
        assert_eq!(f.len(), 4);
        assert_eq!((f.pop(), f.pop(), f.pop()), (Some(0), Some(1), Some(2)));
        f.push(1);
        f.push(0);
        assert_eq!(f.len(), 3);
        assert_eq!((f.pop(), f.pop(), f.pop(), f.pop()), (Some(3), Some(1), Some(0), None));
        for _ in 0..10 {
            f.push(2);
            assert_eq!(f.pop(), Some(2));
        }
        f.refill_all();
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn posted_heads_come_back_by_entry_or_by_position() {
        let mut q = queue(8);
        let view = *q.ring().view();
        let heads: Vec<u16> = (0..3).map(|_| q.alloc_desc().unwrap()).collect();
        for &h in &heads {
            q.post(h);
        }
        q.publish();
        assert_eq!((view.avail_idx(), view.avail_ring(1)), (3, 1));
        assert_eq!(q.used_pending(), Some(0));
        // The device uses the first two, reporting them out of order.
        view.set_used_elem(0, 1, 60);
        view.set_used_elem(1, 0, 70);
        view.set_used_idx(2);
        assert_eq!(q.used_pending(), Some(2));
        let slot = q.used_slot();
        assert_eq!(q.used_elem_at(slot), (1, 60));
        // By position the next slot holds head 0 and the one after head 1, whatever the entries say.
        assert_eq!((q.head_at(slot), q.head_at(slot + 1)), (0, 1));
        q.consume_to(slot + 1);
        assert_eq!(q.next_in_order(), 1);
        assert_eq!(q.used_pending(), Some(0));
    }

    #[test]
    fn a_used_idx_past_what_is_in_flight_breaks_the_queue_until_reset() {
        let mut q = queue(8);
        let view = *q.ring().view();
        let h = q.alloc_desc().unwrap();
        q.post(h);
        q.publish();
        view.set_used_idx(2);
        assert_eq!(q.used_pending(), None, "two used, one in flight");
        assert!(q.is_broken());
        q.reset();
        assert!(!q.is_broken());
        assert_eq!((q.free_descs(), view.avail_idx(), view.used_idx()), (8, 0, 0), "the ring is cleared");
        q.mark_broken();
        assert!(q.is_broken());
    }
}
