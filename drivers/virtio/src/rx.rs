//! Receive (virtio 1.2, 5.1.6.3 and 5.1.6.4): one device-writable descriptor per buffer,
//! covering the net header's place at the end of the headroom and the whole data room, so the
//! device writes the header just in front of the frame and the frame lands where the
//! application expects it (`data_off` = the pool's headroom). As DPDK's virtio does.
//!
//! Bookkeeping: descriptor `id` holds the buffer `bufs[id]` while it is the device's; the ring's
//! own bookkeeping (free descriptors, what was posted where, the used ring) is the shared
//! [`Virtqueue`]'s. Used entries are untrusted: an id out of range or not in flight, a length
//! shorter than a header and an Ethernet header or longer than the buffer, a `num_buffers`
//! other than 1 are counted and dropped, never followed. A frame that spans several mergeable
//! buffers cannot be returned (a `PacketBuf` has one segment): its buffers are dropped and it
//! counts in `ierrors` and `rx_mergeable_dropped`.
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
use burst_mem::{PacketBuf, PacketPool};

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
    /// Buffers still to come of a dropped multi-buffer frame.
    discard: u16,
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
            discard: 0,
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
        self.discard = 0;
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

    /// Receives up to `max` frames into `out` (the burst body).
    #[inline]
    pub(crate) fn burst<const VA: bool>(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
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
            if let Some(buf) = self.receive(id, len, &mut t) {
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
    /// `None` when the entry or the frame is bad (counted in `t`) or part of a dropped one.
    #[inline(always)]
    fn receive(&mut self, id: u32, len: u32, t: &mut Tally) -> Option<PacketBuf> {
        let Some(mut buf) = self.bufs.get_mut(id as usize).and_then(Option::take) else {
            // Out of range, or not the device's: nothing of ours to touch.
            t.bad += 1;
            self.extra.add_bad_used(1);
            return None;
        };
        // `id` named a buffer in flight, so it is in range and not free.
        self.vq.free_desc(id as u16);
        if self.discard > 0 {
            self.discard -= 1;
            return None;
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
                t.bad += 1;
                if nb > 1 && nb <= self.vq.size() {
                    t.mrg += 1;
                    self.discard = nb - 1;
                }
                return None;
            }
        }
        let flen = (len - self.hdr_len) as usize;
        buf.set_len(flen);
        buf.set_port(self.port);
        t.bytes += flen as u64;
        t.got += 1;
        Some(buf)
    }
}

/// A started RX queue's handle: owns the queue state while it lives.
pub(crate) struct VirtioRx<'a> {
    pub q: SlotGuard<'a, RxQueue>,
}

impl RxBurst for VirtioRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        if self.q.va {
            self.q.burst::<true>(bufs, max)
        } else {
            self.q.burst::<false>(bufs, max)
        }
    }
}

#[cfg(test)]
mod tests {
    use burst_ethdev::{Port, XStat};
    use proptest::prelude::*;

    use crate::spec::features as f;
    use crate::testdev::{device, memory, pool, started};
    use crate::transport::TransportKind;

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|k| seed.wrapping_add(k as u8)).collect()
    }

    fn xstat(port: &Port, name: &str) -> u64 {
        port.xstats().into_iter().find(|x| x.name == name).map_or(u64::MAX, |x: XStat| x.value)
    }

    #[test]
    fn frames_arrive_without_their_header_and_the_ring_is_refilled() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 200);
        let port = started(&dev, &mem, 1, &pool);
        assert_eq!(dev.kicks(0), 1, "the filled ring is announced after DRIVER_OK");
        for i in 0..40 {
            assert!(dev.rx_push(0, &frame(60 + i, i as u8), 12));
        }
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        assert_eq!(rx.rx_burst(&mut out, 32), 32);
        assert_eq!(rx.rx_burst(&mut out, 32), 8);
        for (i, b) in out.iter().enumerate() {
            assert_eq!(b.data(), frame(60 + i, i as u8).as_slice());
            assert_eq!((b.port(), b.headroom()), (3, 128));
        }
        assert_eq!(dev.avail_pending(0), 56, "refilled in batches of 16: the last 8 wait");
        assert!(dev.kicks(0) >= 1, "notified: the device did not set NO_NOTIFY");
        let s = port.stats();
        assert_eq!((s.ipackets, s.ibytes, s.ierrors), (40, (60..100).sum::<u64>(), 0));
    }

    #[test]
    fn no_kick_when_the_device_polls() {
        let dev = device();
        dev.state().no_notify = true;
        let mem = memory();
        let pool = pool(&mem, 200);
        let port = started(&dev, &mem, 1, &pool);
        let _ = dev.kicks(0);
        for _ in 0..40 {
            assert!(dev.rx_push(0, &frame(60, 0), 12));
        }
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 40);
        assert_eq!(dev.kicks(0), 0);
        assert_eq!(dev.avail_pending(0), 64);
    }

    #[test]
    fn without_mergeable_buffers_the_header_is_ten_bytes() {
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::VhostUser;
            s.features = f::ANY_LAYOUT | f::MAC;
        }
        let mem = memory();
        let pool = pool(&mem, 200);
        let port = started(&dev, &mem, 1, &pool);
        // num_buffers is not read: 0 there is fine.
        assert!(dev.rx_push(0, &frame(1514, 9), 10));
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1);
        assert_eq!(out[0].data(), frame(1514, 9).as_slice());
    }

    #[test]
    fn a_frame_over_several_buffers_is_dropped_with_all_its_buffers() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 200);
        let mut port = started(&dev, &mem, 1, &pool);
        assert!(dev.rx_push(0, &frame(60, 1), 12));
        assert!(dev.rx_push(0, &frame(5000, 2), 12), "three buffers");
        assert!(dev.rx_push(0, &frame(61, 3), 12));
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut out = Vec::new();
            // One at a time: the dropped frame's buffers may straddle bursts.
            let mut got = 0;
            for _ in 0..5 {
                got += rx.rx_burst(&mut out, 1);
            }
            assert_eq!(got, 2);
            assert_eq!(out.iter().map(|b| b.len()).collect::<Vec<_>>(), [60, 61]);
        }
        assert_eq!(port.stats().ierrors, 1);
        assert_eq!(xstat(&port, "rx_mergeable_dropped"), 1);
        assert_eq!(pool.mempool().in_use(), 64 - 5, "the 5 buffers are back in the pool (refill waits for 16)");
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn in_order_batches_are_taken_by_position_not_by_the_entries() {
        let dev = device();
        dev.state().features |= f::IN_ORDER;
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut out = Vec::new();
            // A lap of ordinary frames first: every used slot then holds an entry that looks
            // valid (an id posted again at the same slot).
            for i in 0..64u32 {
                assert!(dev.rx_push(0, &frame(60, i as u8), 12));
                assert_eq!(rx.rx_burst(&mut out, 32), 1);
            }
            out.clear();
            // A frame over three buffers, reported as one batch, then two ordinary frames, one of
            // them batched alone.
            assert!(dev.rx_push_batched(0, &frame(5000, 0xcc), 12), "three buffers");
            assert!(dev.rx_push(0, &frame(61, 7), 12));
            assert!(dev.rx_push_batched(0, &frame(62, 8), 12));
            let mut got = 0;
            for _ in 0..8 {
                got += rx.rx_burst(&mut out, 1);
            }
            assert_eq!(got, 2, "only the two ordinary frames");
            assert_eq!(out[0].data(), frame(61, 7).as_slice());
            assert_eq!(out[1].data(), frame(62, 8).as_slice());
        }
        assert_eq!(xstat(&port, "rx_mergeable_dropped"), 1);
        assert_eq!(xstat(&port, "rx_bad_used_entries"), 0, "the stale slots were never read");
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn a_used_idx_beyond_what_was_posted_stops_the_queue_until_restart() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        dev.used_jump(0, 65);
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut out = Vec::new();
            for _ in 0..3 {
                assert_eq!(rx.rx_burst(&mut out, 32), 0);
            }
        }
        assert_eq!(port.stats().ierrors, 1, "counted once");
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
        port.start().unwrap();
        assert!(dev.rx_push(0, &frame(60, 2), 12));
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1, "a restart clears it");
    }

    #[test]
    fn bad_lengths_and_num_buffers_are_errors() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 200);
        let mut port = started(&dev, &mem, 1, &pool);
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(dev.take_avail(0).unwrap());
        }
        let mut hdr = [0u8; 12];
        hdr[10] = 1;
        for id in &ids {
            dev.write_buffer(0, *id, 0, &hdr);
        }
        // num_buffers 0 in the last one.
        dev.write_buffer(0, ids[3], 10, &[0, 0]);
        dev.used_raw(
            0,
            &[
                (u32::from(ids[0]), 12 + 13),
                (u32::from(ids[1]), 2048 + 12 + 1),
                (u32::from(ids[2]), 12 + 14),
                (u32::from(ids[3]), 100),
            ],
        );
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1, "only the 14-byte frame");
        assert_eq!(out[0].len(), 14);
        assert_eq!(port.stats().ierrors, 3);
        drop(out);
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn a_short_pool_counts_nombuf_and_refills_later() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 70);
        let port = started(&dev, &mem, 1, &pool);
        for _ in 0..40 {
            assert!(dev.rx_push(0, &frame(60, 0), 12));
        }
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 40);
        assert_eq!(dev.avail_pending(0), 24 + 6, "the 6 spare buffers went in");
        assert_eq!(port.stats().rx_nombuf, 34);
        drop(out);
        assert!(dev.rx_push(0, &frame(60, 0), 12));
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 1);
        assert_eq!(dev.avail_pending(0), 64, "refilled once buffers came back");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn whatever_the_device_writes_in_the_used_ring_nothing_leaks_or_breaks(
            rounds in proptest::collection::vec(
                proptest::collection::vec((0u32..80, 0u32..2200, any::<bool>(), 0u16..4), 0..20), 1..6),
            jump in proptest::option::of(65u16..1000),
        ) {
            let dev = device();
            let mem = memory();
            let pool = pool(&mem, 200);
            let mut port = started(&dev, &mem, 1, &pool);
            {
                let mut rx = port.rx_queue(0).unwrap();
                let mut out = Vec::new();
                for writes in rounds {
                    for (id, len, real, nb) in writes {
                        if real {
                            // A buffer the device really took, with any num_buffers.
                            if let Some(id) = dev.take_avail(0) {
                                dev.write_buffer(0, id, 10, &nb.to_le_bytes());
                                dev.used_raw(0, &[(u32::from(id), len)]);
                            }
                        } else {
                            dev.used_raw(0, &[(id, len)]);
                        }
                    }
                    rx.rx_burst(&mut out, 32);
                    for b in &out {
                        prop_assert!(b.len() >= 14 && b.len() <= 2048);
                    }
                    out.clear();
                }
                if let Some(k) = jump {
                    dev.used_jump(0, k);
                    rx.rx_burst(&mut out, 32);
                    rx.rx_burst(&mut out, 32);
                }
            }
            prop_assert!(pool.mempool().in_use() <= 64);
            port.stop().unwrap();
            prop_assert!(pool.mempool().is_full());
        }
    }
}
