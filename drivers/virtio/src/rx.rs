//! Receive (virtio 1.2, 5.1.6.3 and 5.1.6.4): one device-writable descriptor per buffer,
//! covering the net header's place at the end of the headroom and the whole data room, so the
//! device writes the header just in front of the frame and the frame lands where the
//! application expects it (`data_off` = the pool's headroom). As DPDK's virtio does.
//!
//! Bookkeeping: descriptor `id` holds the buffer `bufs[id]` while it is the device's; the ring's
//! own bookkeeping (free descriptors, what was posted where, the used ring) is the shared
//! [`Virtqueue`]'s. Used entries are untrusted: an id out of range or not in flight, a length
//! shorter than a header and an Ethernet header or longer than the buffer, a `num_buffers`
//! of 0 or more than the ring holds are counted and dropped, never followed.
//!
//! A frame over several mergeable buffers (`num_buffers` > 1, 5.1.6.4) comes in the order the
//! buffers are used: the header only in the first, each of the others holding data from its
//! descriptor's start (so that segment's `data_off` is the headroom less the header), every one
//! but the last full (5.1.6.4.2). With `RxOffloads::SCATTER` on the queue they become one chained
//! packet, assembled in a `ChainBuilder` that outlives the burst when the frame's last buffer
//! has not been used yet. A frame whose buffers break the rule (a buffer before the last not
//! full, a length past the buffer) is dropped with them and counts once in `ierrors`. Without
//! `SCATTER` such a frame cannot be returned: its buffers are dropped and it counts in `ierrors`
//! and `rx_mergeable_dropped`. A frame the device never finishes holds its buffers until the
//! port stops, which frees them.
//!
//! With `GUEST_CSUM` negotiated (an RX checksum or LRO offload asked for), each packet's header
//! is read for its offload flags (`crate::offload`); without it the header is never read past
//! `num_buffers`.
//!
//! Per burst: one read of `used.idx`, one bulk allocation for the refill, one `avail.idx` store,
//! and a kick only when the device has not set `VRING_USED_F_NO_NOTIFY`.
//!
//! With `IN_ORDER` (2.7.9) the device uses buffers in the order they were made available and
//! may report a batch of them with one used entry, at the batch's first slot, carrying the id
//! and length of its last buffer; the other slots keep whatever an earlier lap left there.
//! Buffers are then taken by position, from our own record of the available ring, never by the
//! ids the device writes; a buffer before the batch's last is full. (Linux's
//! `virtqueue_get_buf_ctx_split_in_order` does the same.) See [`RxQueue::next_in_order`].
//!
//! A `used.idx` that claims more buffers than are in flight stops the queue: nothing is
//! received until the port is stopped and started again (Linux marks the queue broken too).

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::{ChainBuilder, PacketBuf, PacketPool};

use crate::offload::{self, NetHdr};
use crate::spec::net_hdr;
use crate::spec::ring::VRING_DESC_F_WRITE;
use crate::stats::Extra;
use crate::virtqueue::Virtqueue;
use crate::vring::Vring;

/// Shortest frame accepted: an Ethernet header (DPDK drops shorter ones too).
const ETHER_HDR_LEN: u32 = 14;

/// Refill once this many descriptors are free (fewer on small rings).
const REFILL_BATCH: u16 = 32;

/// An RX queue's state.
pub(crate) struct RxQueue {
    pub(crate) vq: Virtqueue,
    pool: PacketPool,
    bufs: Vec<Option<PacketBuf>>,
    fresh: Vec<PacketBuf>,
    /// Net header bytes in front of each frame.
    hdr_len: u32,
    /// `MRG_RXBUF`: `num_buffers` is read from each header.
    mergeable: bool,
    /// `IN_ORDER`: buffers are taken by position, not by the used entries' ids.
    in_order: bool,
    /// In-order: the used entry of the batch being taken (id and length of its last buffer).
    batch: Option<(u32, u32)>,
    /// `RxOffloads::SCATTER`: a frame over several buffers becomes a chain.
    scatter: bool,
    /// `GUEST_CSUM` was negotiated: each header is read for its offload flags.
    pub(crate) offload: bool,
    /// Buffers still to come of the frame being assembled in `chain`, or, with `chain` empty,
    /// of a frame being dropped.
    left: u16,
    /// The frame being assembled, across bursts if need be.
    chain: ChainBuilder,
    /// Offset of the descriptor's start in the buffer: headroom - header.
    desc_off: u64,
    /// Offset of `num_buffers` in the buffer.
    nb_off: usize,
    /// Bytes the device may write per buffer: header + data room.
    room: u32,
    refill_batch: u16,
    /// Descriptors carry virtual addresses.
    pub(crate) va: bool,
    pub(crate) port: u16,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) extra: Arc<Extra>,
}

/// What one burst counts, added to the counters once at its end.
#[derive(Default)]
struct Tally {
    got: usize,
    bytes: u64,
    /// Frames of several buffers, dropped.
    mrg: u64,
    /// Entries or frames counted in `ierrors`.
    bad: u64,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue").field("vq", &self.vq).finish()
    }
}

impl RxQueue {
    /// A stopped queue on `vq` filled from `pool`; the pool's headroom holds the header
    /// (checked by the caller: `headroom >= hdr_len`).
    pub(crate) fn new(
        vq: Vring,
        pool: PacketPool,
        hdr_len: usize,
        mergeable: bool,
        in_order: bool,
        scatter: bool,
        counters: Arc<QueueCounters>,
    ) -> RxQueue {
        let n = usize::from(vq.size());
        let headroom = usize::from(pool.headroom());
        debug_assert!(headroom >= hdr_len);
        RxQueue {
            bufs: (0..n).map(|_| None).collect(),
            fresh: Vec::with_capacity(n),
            hdr_len: hdr_len as u32,
            mergeable,
            in_order,
            batch: None,
            scatter,
            offload: false,
            left: 0,
            chain: ChainBuilder::new(),
            desc_off: (headroom - hdr_len) as u64,
            nb_off: headroom - hdr_len + net_hdr::NUM_BUFFERS,
            room: (usize::from(pool.data_room()) + hdr_len) as u32,
            refill_batch: REFILL_BATCH.min(vq.size() / 4).max(1),
            va: false,
            port: 0,
            counters,
            extra: Arc::default(),
            pool,
            vq: Virtqueue::new(vq),
        }
    }

    /// Buffers the device holds.
    pub(crate) fn in_flight(&self) -> usize {
        self.bufs.len() - self.vq.free_descs()
    }

    /// Empties and refills the ring for a start (the device is reset); returns how many
    /// buffers were posted.
    pub(crate) fn arm(&mut self) -> usize {
        self.release();
        if self.va {
            self.refill::<true>();
        } else {
            self.refill::<false>();
        }
        self.in_flight()
    }

    /// Takes every buffer back and clears the ring. The device must be reset.
    pub(crate) fn release(&mut self) {
        self.vq.reset();
        self.fresh.clear();
        let mut bufs: Vec<PacketBuf> = self.bufs.iter_mut().filter_map(Option::take).collect();
        PacketPool::free_bulk(&mut bufs);
        self.left = 0;
        // A frame the device never finished: its buffers go back now.
        drop(self.chain.take());
        self.batch = None;
    }

    /// Posts a fresh buffer on every free descriptor the pool can fill, with one bulk
    /// allocation and one `avail.idx` store; returns whether anything was posted.
    #[inline]
    fn refill<const VA: bool>(&mut self) -> bool {
        let want = self.vq.free_descs();
        if want == 0 {
            return false;
        }
        if !self.pool.alloc_bulk(&mut self.fresh, want) {
            // Short pool: take what is there (rare path), count the rest.
            let have = self.pool.mempool().available().min(want);
            self.counters.add_nombuf((want - have) as u64);
            if have == 0 || !self.pool.alloc_bulk(&mut self.fresh, have) {
                return false;
            }
        }
        let mut slot = self.vq.avail_slot();
        for buf in self.fresh.drain(..) {
            // `fresh` holds at most as many buffers as there are free descriptors.
            let Some(id) = self.vq.alloc_desc() else { break };
            let base = if VA { buf.buf_addr() as u64 } else { buf.buf_iova() };
            self.vq.set_desc(id, base + self.desc_off, self.room, VRING_DESC_F_WRITE, 0);
            self.vq.post_at(slot, id);
            slot = slot.wrapping_add(1);
            if let Some(b) = self.bufs.get_mut(usize::from(id)) {
                *b = Some(buf);
            }
        }
        self.vq.publish_up_to(slot);
        true
    }

    /// Receives up to `max` frames into `out` (the burst body). `OL`: read each header's offload
    /// fields (`GUEST_CSUM` negotiated).
    #[inline]
    pub(crate) fn burst<const VA: bool, const OL: bool>(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        if self.vq.is_broken() {
            return 0;
        }
        let Some(pending) = self.vq.used_pending() else {
            // The device is confused: the queue stopped (logged); counted once here.
            self.counters.add_errors(1);
            self.extra.add_bad_used(1);
            return 0;
        };
        let n = pending.min(max.min(usize::from(u16::MAX)) as u16);
        let mut t = Tally::default();
        // A local cursor over the used ring, stored back once.
        let mut slot = self.vq.used_slot();
        let end = slot.wrapping_add(pending);
        for _ in 0..n {
            let (id, len) =
                if self.in_order { self.next_in_order(slot, end, &mut t) } else { self.vq.used_elem_at(slot) };
            slot = slot.wrapping_add(1);
            if let Some(buf) = self.receive::<OL>(id, len, &mut t) {
                out.push(buf);
            }
        }
        self.vq.consume_to(slot);
        if t.got > 0 {
            self.counters.add(t.got as u64, t.bytes);
        }
        if t.bad > 0 {
            self.counters.add_errors(t.bad);
            self.extra.add_mergeable_dropped(t.mrg);
        }
        if self.vq.free_descs() >= usize::from(self.refill_batch) && self.refill::<VA>() {
            self.vq.kick();
        }
        t.got
    }

    /// With `IN_ORDER` (2.7.9): the buffer at used slot `slot` by position, and the length it
    /// was used with (`end`: the slot `used.idx` names).
    /// The first slot of a batch holds the batch's used entry, naming its last buffer: that
    /// buffer gets the entry's length, every one before it is full. An entry that names no
    /// buffer at or after its slot is counted and taken as this buffer's alone.
    #[inline(always)]
    fn next_in_order(&mut self, slot: u16, end: u16, t: &mut Tally) -> (u32, u32) {
        let (last, last_len) = match self.batch {
            Some(b) => b,
            None => {
                let (id, len) = self.vq.used_elem_at(slot);
                // The entry must name a buffer of this batch: one at or after this slot.
                let ahead = end.wrapping_sub(slot);
                if (0..ahead).any(|k| u32::from(self.vq.head_at(slot.wrapping_add(k))) == id) {
                    (id, len)
                } else {
                    t.bad += 1;
                    self.extra.add_bad_used(1);
                    (u32::from(self.vq.head_at(slot)), len)
                }
            }
        };
        let id = u32::from(self.vq.head_at(slot));
        if last == id {
            self.batch = None;
            (id, last_len)
        } else {
            // A buffer before the batch's last one: the device filled it.
            self.batch = Some((last, last_len));
            (id, self.room)
        }
    }

    /// The buffer of descriptor `id`, which the device used with `len` bytes: the frame, or
    /// `None` when the entry or the frame is bad (counted in `t`), or part of a frame of several
    /// buffers (dropped, or completed by a later buffer).
    #[inline(always)]
    fn receive<const OL: bool>(&mut self, id: u32, len: u32, t: &mut Tally) -> Option<PacketBuf> {
        let Some(mut buf) = self.bufs.get_mut(id as usize).and_then(Option::take) else {
            // Out of range, or not the device's: nothing of ours to touch.
            self.bad_entry(t);
            return None;
        };
        // `id` named a buffer in flight, so it is in range and not free.
        self.vq.free_desc(id as u16);
        if self.left > 0 {
            return self.continuation::<OL>(buf, len, t);
        }
        if len < self.hdr_len + ETHER_HDR_LEN || len > self.room {
            t.bad += 1;
            return None;
        }
        if self.mergeable {
            // SAFETY: `nb_off + 2 <= headroom <= buf_len`: inside the buffer, which the
            // device has given back; it may be unaligned, so an unaligned read.
            let nb = u16::from_le(unsafe { buf.buf_addr().add(self.nb_off).cast::<u16>().read_unaligned() });
            if nb != 1 {
                self.first_of_many(buf, nb, len, t);
                return None;
            }
        }
        let flen = (len - self.hdr_len) as usize;
        buf.set_len(flen);
        buf.set_port(self.port);
        if OL && !self.offload_flags(&mut buf) {
            t.bad += 1;
            return None;
        }
        t.bytes += flen as u64;
        t.got += 1;
        Some(buf)
    }

    /// Counts a used entry naming no buffer in flight. Out of line, so that the compiler lays
    /// the loop out for entries that do (one jump a packet less).
    #[cold]
    #[inline(never)]
    fn bad_entry(&self, t: &mut Tally) {
        t.bad += 1;
        self.extra.add_bad_used(1);
    }

    /// Sets `pkt`'s offload flags from the header in front of its first segment; false when
    /// the packet must be dropped.
    #[inline(always)]
    fn offload_flags(&self, pkt: &mut PacketBuf) -> bool {
        // SAFETY: the header's 10 bytes end at `desc_off + hdr_len <= headroom`, inside the
        // first segment's buffer, which the device has given back.
        let h = unsafe { NetHdr::read(pkt.buf_addr().add(self.desc_off as usize)) };
        h.is_plain() || offload::rx_offload(pkt, h)
    }

    /// The first buffer of a frame the header says spans `nb` buffers (used with `len` bytes):
    /// the head of a chain with scatter, else dropped with the buffers to come.
    #[cold]
    #[inline(never)]
    fn first_of_many(&mut self, mut buf: PacketBuf, nb: u16, len: u32, t: &mut Tally) {
        if nb == 0 || nb > self.vq.size() {
            // Nothing to follow: the buffers after it are judged on their own.
            t.bad += 1;
            return;
        }
        // The buffers to come are this frame's, whatever becomes of it.
        self.left = nb - 1;
        if !self.scatter {
            t.bad += 1;
            t.mrg += 1;
            return;
        }
        if len != self.room {
            // 5.1.6.4.2: every buffer but the last is used to its full length.
            t.bad += 1;
            return;
        }
        buf.set_len((len - self.hdr_len) as usize);
        buf.set_port(self.port);
        // An empty builder takes any one-segment packet; counted when the frame completes.
        if self.chain.push(buf).is_err() {
            t.bad += 1;
        }
    }

    /// A buffer after the first of a frame of several (`self.left > 0`): appended to the chain
    /// being assembled, or dropped with it. Returns the frame when this was its last buffer.
    #[cold]
    #[inline(never)]
    fn continuation<const OL: bool>(&mut self, mut buf: PacketBuf, len: u32, t: &mut Tally) -> Option<PacketBuf> {
        self.left -= 1;
        if self.chain.is_empty() {
            // A frame being dropped.
            return None;
        }
        // Not past the buffer, never empty, and full unless it is the last (5.1.6.4.2).
        if len == 0 || len > self.room || (self.left > 0 && len != self.room) {
            drop(self.chain.take());
            t.bad += 1;
            return None;
        }
        // 5.1.6.4: no header in this buffer: its data starts at the descriptor's start.
        buf.prepend(self.hdr_len as usize);
        buf.set_data_len(len as usize);
        if let Err((seg, _)) = self.chain.push(buf) {
            // More segments or bytes than a packet counts: `nb <= ring size` rules it out.
            drop(seg);
            drop(self.chain.take());
            t.bad += 1;
            return None;
        }
        if self.left > 0 {
            return None;
        }
        let mut pkt = self.chain.take()?;
        if OL && !self.offload_flags(&mut pkt) {
            t.bad += 1;
            return None;
        }
        t.bytes += u64::from(pkt.pkt_len());
        t.got += 1;
        Some(pkt)
    }
}

/// A started RX queue's handle: owns the queue state while it lives.
pub(crate) struct VirtioRx<'a> {
    pub q: SlotGuard<'a, RxQueue>,
}

impl RxBurst for VirtioRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        match (self.q.va, self.q.offload) {
            (true, false) => self.q.burst::<true, false>(bufs, max),
            (false, false) => self.q.burst::<false, false>(bufs, max),
            (true, true) => self.q.burst::<true, true>(bufs, max),
            (false, true) => self.q.burst::<false, true>(bufs, max),
        }
    }
}

#[cfg(test)]
mod tests;
