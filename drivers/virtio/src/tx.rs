//! Transmit (virtio 1.2, 5.1.6.2): a zeroed net header in front of each frame. With
//! `ANY_LAYOUT` or `VERSION_1` and room in the headroom, the header is written just before the
//! data and one descriptor covers both (DPDK's "can push"); otherwise a two-descriptor chain:
//! the header from this queue's header area (one per descriptor, zeroed once), then the data.
//!
//! Bookkeeping: a chain's head id holds the buffer in `bufs[head]` and its second descriptor
//! (if any) in `chain[head]`; the ring's own bookkeeping is the shared [`Virtqueue`]'s.
//! Completed chains are reclaimed lazily, when free descriptors run short, and their buffers
//! freed with one bulk put. Used entries naming no chain in flight are counted, never followed.
//!
//! With `IN_ORDER` (2.7.9) the device uses chains in the order they were made available, so
//! `used.idx` alone says which chains are done: reclaim takes the heads by position, from our
//! own record of the available ring, and never reads the used entries (DPDK's in-order path does
//! the same). The device's cache keeps those lines; reading them would pull each one to this CPU
//! and back, which is what costs most when the device polls from another core.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::{Memzone, PacketBuf, PacketPool};

use crate::spec::net_hdr;
use crate::spec::ring::VRING_DESC_F_NEXT;
use crate::stats::Extra;
use crate::virtqueue::Virtqueue;
use crate::vring::Vring;

/// No second descriptor.
const NONE: u16 = u16::MAX;

/// Reclaim when fewer than this many descriptors would be free after a burst.
const FREE_THRESH: u16 = 32;

/// A TX queue's state.
pub(crate) struct TxQueue {
    pub(crate) vq: Virtqueue,
    /// `size` headers of `hdr_len` bytes, all zero, for the two-descriptor path.
    hdrs: Memzone,
    bufs: Vec<Option<PacketBuf>>,
    chain: Vec<u16>,
    done: Vec<PacketBuf>,
    hdr_len: u32,
    /// The header may share the data's descriptor (`ANY_LAYOUT` or `VERSION_1`).
    can_push: bool,
    /// `IN_ORDER` was negotiated: reclaim by position, without reading used entries.
    in_order: bool,
    free_thresh: u16,
    /// Base address of `hdrs` as descriptors carry it (IOVA or VA).
    hdr_base: u64,
    pub(crate) va: bool,
    pub(crate) counters: Arc<QueueCounters>,
    pub(crate) extra: Arc<Extra>,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxQueue").field("vq", &self.vq).finish()
    }
}

impl TxQueue {
    /// A stopped queue on `vq`, with `hdrs` (at least `size * hdr_len` bytes) for chained
    /// headers.
    pub(crate) fn new(
        vq: Vring,
        hdrs: Memzone,
        hdr_len: usize,
        can_push: bool,
        in_order: bool,
        counters: Arc<QueueCounters>,
    ) -> TxQueue {
        let n = usize::from(vq.size());
        assert!(hdrs.len() >= n * hdr_len, "the header area holds one header per descriptor");
        // SAFETY: the memzone is ours, `hdrs.len()` bytes, and no device knows it yet.
        unsafe { std::ptr::write_bytes(hdrs.as_ptr(), 0, hdrs.len()) };
        let mut q = TxQueue {
            bufs: (0..n).map(|_| None).collect(),
            chain: vec![NONE; n],
            done: Vec::with_capacity(n),
            hdr_len: hdr_len as u32,
            can_push,
            in_order,
            free_thresh: FREE_THRESH.min(vq.size() / 4).max(1),
            hdr_base: 0,
            va: false,
            counters,
            extra: Arc::default(),
            hdrs,
            vq: Virtqueue::new(vq),
        };
        q.release();
        q
    }

    /// Takes every buffer back and clears the ring (the device must be reset); sets the header
    /// area's address for [`TxQueue::va`].
    pub(crate) fn release(&mut self) {
        self.vq.reset();
        let mut bufs: Vec<PacketBuf> = self.bufs.iter_mut().filter_map(Option::take).collect();
        PacketPool::free_bulk(&mut bufs);
        self.chain.fill(NONE);
        self.hdr_base = if self.va { self.hdrs.as_ptr() as u64 } else { self.hdrs.iova() };
    }

    /// Frees the buffers of every chain the device has used.
    #[inline]
    fn reclaim(&mut self) {
        let Some(pending) = self.vq.used_pending() else {
            // The device is confused: guessing which chains are done could free buffers it
            // still reads. The queue stopped (logged); counted once here.
            self.counters.add_errors(1);
            self.extra.add_bad_used(1);
            return;
        };
        if pending == 0 {
            return;
        }
        let mut bad = 0u64;
        // A local cursor over the used ring, stored back once.
        let mut slot = self.vq.used_slot();
        for _ in 0..pending {
            let id = if self.in_order { u32::from(self.vq.head_at(slot)) } else { self.vq.used_elem_at(slot).0 };
            slot = slot.wrapping_add(1);
            match self.bufs.get_mut(id as usize).and_then(Option::take) {
                Some(buf) => {
                    self.done.push(buf);
                    self.vq.free_desc(id as u16);
                    // `id` < size: it named a buffer.
                    let second = std::mem::replace(&mut self.chain[id as usize], NONE);
                    if second != NONE {
                        self.vq.free_desc(second);
                    }
                }
                None => bad += 1,
            }
        }
        self.vq.consume_to(slot);
        if bad > 0 {
            self.counters.add_errors(bad);
            self.extra.add_bad_used(bad);
        }
        PacketPool::free_bulk(&mut self.done);
    }

    /// How many buffers from the front of `bufs` fit in `free` descriptors: one each when the
    /// header can be pushed into the headroom, two otherwise.
    #[inline]
    fn fit(&self, bufs: &[PacketBuf], free: usize) -> usize {
        if !self.can_push {
            return bufs.len().min(free / 2);
        }
        let (mut need, mut take) = (0usize, 0usize);
        for b in bufs {
            let d = if b.headroom() >= net_hdr::LEN_MRG { 1 } else { 2 };
            if need + d > free {
                break;
            }
            need += d;
            take += 1;
        }
        take
    }

    /// Takes what fits from the front of `bufs` (the burst body).
    #[inline]
    pub(crate) fn burst<const VA: bool>(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        if bufs.is_empty() || self.vq.is_broken() {
            return 0;
        }
        let per = if self.can_push { 1 } else { 2 };
        if self.vq.free_descs() < bufs.len() * per + usize::from(self.free_thresh) {
            self.reclaim();
            if self.vq.is_broken() {
                return 0;
            }
        }
        let take = self.fit(bufs, self.vq.free_descs());
        if take == 0 {
            return 0;
        }
        let hdr_len = self.hdr_len;
        let (mut sent, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        // A local cursor over the available ring, published once.
        let mut slot = self.vq.avail_slot();
        for buf in bufs.drain(..take) {
            let len = buf.len() as u32;
            if len == 0 || !buf.is_contiguous() {
                // Nothing to send: taken and freed, counted as an error.
                dropped += 1;
                self.done.push(buf);
                continue;
            }
            let base = if VA { buf.buf_addr() as u64 } else { buf.buf_iova() };
            let data = base + u64::from(buf.data_off());
            let head = if self.can_push && buf.headroom() >= net_hdr::LEN_MRG {
                // SAFETY: the 12 bytes before the data are headroom of a buffer we own
                // (`headroom() >= 12`); zeroing them covers a 10- or 12-byte header.
                unsafe { zero_header(buf.buf_addr().add(usize::from(buf.data_off()) - 12)) };
                let Some(id) = self.vq.alloc_desc() else { break };
                self.vq.set_desc(id, data - u64::from(hdr_len), len + hdr_len, 0, 0);
                id
            } else {
                let (Some(h), Some(d)) = (self.vq.alloc_desc(), self.vq.alloc_desc()) else { break };
                let hdr = self.hdr_base + u64::from(h) * u64::from(hdr_len);
                self.vq.set_desc(h, hdr, hdr_len, VRING_DESC_F_NEXT, d);
                self.vq.set_desc(d, data, len, 0, 0);
                self.chain[usize::from(h)] = d;
                h
            };
            self.vq.post_at(slot, head);
            slot = slot.wrapping_add(1);
            self.bufs[usize::from(head)] = Some(buf);
            sent += 1;
            bytes += u64::from(len);
        }
        if sent > 0 {
            self.vq.publish_up_to(slot);
            self.vq.kick();
        }
        self.counters.add(sent, bytes);
        if dropped > 0 {
            self.counters.add_errors(dropped);
            PacketPool::free_bulk(&mut self.done);
        }
        take
    }
}

/// Zeroes the 12 header bytes at `p` unless they are zero already. A buffer sent before holds
/// a zero header from last time, in a line the device has read: not writing it leaves the line
/// shared, so the device's next read of it hits its own cache instead of taking the line back
/// from this CPU (DPDK's `ASSIGN_UNLESS_EQUAL` on the header serves the same purpose).
///
/// # Safety
/// `p` must be valid for reads and writes of 12 bytes, which nothing else accesses meanwhile.
#[inline(always)]
unsafe fn zero_header(p: *mut u8) {
    // SAFETY: the caller's promise; unaligned loads of our own memory.
    let (a, b) = unsafe { (p.cast::<u64>().read_unaligned(), p.add(8).cast::<u32>().read_unaligned()) };
    if a | u64::from(b) != 0 {
        // SAFETY: as above.
        unsafe { std::ptr::write_bytes(p, 0, 12) };
    }
}

/// A started TX queue's handle.
pub(crate) struct VirtioTx<'a> {
    pub q: SlotGuard<'a, TxQueue>,
}

impl TxBurst for VirtioTx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        if self.q.va {
            self.q.burst::<true>(bufs)
        } else {
            self.q.burst::<false>(bufs)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::spec::features as f;
    use crate::testdev::{device, frames, memory, pool, started};
    use crate::transport::TransportKind;

    #[test]
    fn one_descriptor_with_the_header_in_the_headroom() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 1, &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 3, 60);
        // Old bytes in the headroom, where the header goes: the header must still be zero.
        for (i, b) in bufs.iter_mut().enumerate() {
            b.prepend(12).unwrap()[i * 4..].fill(0xaa);
            b.adj(12).unwrap();
        }
        let want: Vec<Vec<u8>> = bufs.iter().map(|b| b.data().to_vec()).collect();
        assert_eq!(tx.tx_burst(&mut bufs), 3);
        assert!(bufs.is_empty());
        assert_eq!(dev.kicks(1), 1, "one kick per burst");
        let got = dev.tx_pop(1);
        assert_eq!(got.len(), 3);
        for ((bytes, descs), want) in got.iter().zip(&want) {
            assert_eq!(*descs, 1);
            assert_eq!(&bytes[..12], &[0u8; 12], "a zeroed 12-byte header");
            assert_eq!(&bytes[12..], want.as_slice());
        }
        // Used chains are reclaimed once descriptors run short.
        let mut more = frames(&pool, 60, 60);
        assert_eq!(tx.tx_burst(&mut more), 60);
        assert_eq!(port.stats().opackets, 63);
        drop(tx);
        let _ = dev.tx_pop(1);
        let mut tx = port.tx_queue(0).unwrap();
        let mut more = frames(&pool, 50, 60);
        assert_eq!(tx.tx_burst(&mut more), 50, "the 63 used descriptors came back");
        assert_eq!(pool.mempool().in_use(), 64 + 50, "RX ring + what is in flight");
    }

    #[test]
    fn two_descriptors_without_any_layout_or_without_headroom() {
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::VhostUser;
            s.features = f::MRG_RXBUF;
        }
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 1, &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 40, 100);
        assert_eq!(tx.tx_burst(&mut bufs), 32, "two descriptors each: 32 fit in 64");
        assert_eq!(bufs.len(), 8);
        let got = dev.tx_pop(1);
        assert!(got.iter().all(|(b, d)| *d == 2 && b.len() == 112 && b[..12] == [0u8; 12]));
        drop(bufs);
        drop(tx);

        // With ANY_LAYOUT, a buffer without headroom still goes, as a chain.
        let dev = device();
        let port = started(&dev, &mem, 1, &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 2, 60);
        bufs[1].prepend(128).unwrap();
        assert_eq!(tx.tx_burst(&mut bufs), 2);
        let got = dev.tx_pop(1);
        assert_eq!((got[0].1, got[1].1), (1, 2));
        assert_eq!(got[1].0.len(), 12 + 188);
    }

    #[test]
    fn a_full_ring_takes_what_fits_and_stop_frees_the_rest() {
        let dev = device();
        dev.state().no_notify = true;
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        {
            let mut tx = port.tx_queue(0).unwrap();
            let mut bufs = frames(&pool, 100, 60);
            assert_eq!(tx.tx_burst(&mut bufs), 64);
            assert_eq!(bufs.len(), 36, "the caller keeps the rest, in order");
            assert_eq!(tx.tx_burst(&mut bufs), 0);
            assert_eq!(dev.kicks(1), 0, "the device polls");
            let mut empty = frames(&pool, 0, 0);
            assert_eq!(tx.tx_burst(&mut empty), 0);
        }
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn empty_buffers_are_taken_and_counted() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 1, &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 3, 60);
        bufs[1].set_len(0);
        assert_eq!(tx.tx_burst(&mut bufs), 3);
        assert_eq!(dev.tx_pop(1).len(), 2);
        drop(tx);
        let s = port.stats();
        assert_eq!((s.opackets, s.oerrors), (2, 1));
    }

    /// Sends bursts of 32 until the ring takes fewer: how many it took.
    fn fill(tx: &mut burst_ethdev::TxQueue<'_>, pool: &burst_mem::PacketPool) -> usize {
        let mut total = 0;
        loop {
            let mut bufs = frames(pool, 32, 60);
            let took = tx.tx_burst(&mut bufs);
            total += took;
            if took < 32 {
                return total;
            }
        }
    }

    #[test]
    fn in_order_reclaim_follows_used_idx_and_ignores_the_entries() {
        for in_order in [true, false] {
            let dev = device();
            if in_order {
                dev.state().features |= f::IN_ORDER;
            }
            let mem = memory();
            let pool = pool(&mem, 1200);
            let mut port = started(&dev, &mem, 1, &pool);
            let size = usize::from(dev.state().queues[&1].layout.size);
            {
                let mut tx = port.tx_queue(0).unwrap();
                let mut bufs = frames(&pool, 3, 60);
                assert_eq!(tx.tx_burst(&mut bufs), 3);
                for _ in 0..3 {
                    dev.take_avail(1).unwrap();
                }
                // The device uses the three chains but writes nonsense ids.
                dev.used_raw(1, &[(999, 0), (999, 0), (999, 0)]);
                let took = fill(&mut tx, &pool);
                if in_order {
                    assert_eq!(took, size, "the three chains came back by used.idx alone");
                } else {
                    assert_eq!(took, size - 3, "ids naming nothing free nothing");
                }
            }
            let s = port.stats();
            assert_eq!(s.oerrors, if in_order { 0 } else { 3 });
            port.stop().unwrap();
            assert!(pool.mempool().is_full());
        }
    }

    #[test]
    fn a_used_idx_beyond_what_was_sent_stops_the_queue_until_restart() {
        for in_order in [false, true] {
            let dev = device();
            if in_order {
                dev.state().features |= f::IN_ORDER;
            }
            let mem = memory();
            let pool = pool(&mem, 600);
            let mut port = started(&dev, &mem, 1, &pool);
            {
                let mut tx = port.tx_queue(0).unwrap();
                let mut bufs = frames(&pool, 10, 60);
                assert_eq!(tx.tx_burst(&mut bufs), 10);
                // The device claims 200 chains done, more than the ring ever held: nothing can
                // be trusted, nothing is freed.
                dev.used_jump(1, 200);
                let took = fill(&mut tx, &pool);
                assert!(took < 64, "the queue stopped taking frames ({took})");
                let mut more = frames(&pool, 4, 60);
                assert_eq!(tx.tx_burst(&mut more), 0);
            }
            assert_eq!(port.stats().oerrors, 1, "counted once");
            port.stop().unwrap();
            assert!(pool.mempool().is_full(), "stop takes everything back");
            port.start().unwrap();
            let mut tx = port.tx_queue(0).unwrap();
            let mut bufs = frames(&pool, 4, 60);
            assert_eq!(tx.tx_burst(&mut bufs), 4, "a restart clears it");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn hostile_used_entries_are_counted_and_nothing_leaks(
            rounds in proptest::collection::vec((1usize..40, proptest::collection::vec((0u32..200, any::<u32>()), 0..10), any::<bool>()), 1..8),
            in_order in any::<bool>(),
        ) {
            let dev = device();
            if in_order {
                dev.state().features |= f::IN_ORDER;
            }
            let mem = memory();
            let pool = pool(&mem, 400);
            let mut port = started(&dev, &mem, 1, &pool);
            {
                let mut tx = port.tx_queue(0).unwrap();
                for (n, junk, serve) in rounds {
                    let mut bufs = frames(&pool, n, 64);
                    let took = tx.tx_burst(&mut bufs);
                    prop_assert_eq!(took + bufs.len(), n);
                    if serve {
                        let _ = dev.tx_pop(1);
                    }
                    // Duplicates, ids out of range, ids of non-head descriptors.
                    dev.used_raw(1, &junk);
                }
            }
            prop_assert!(pool.mempool().in_use() <= 64 + 64);
            port.stop().unwrap();
            prop_assert!(pool.mempool().is_full());
        }
    }
}
