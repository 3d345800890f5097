//! Receive: legacy descriptors (SDM 3.2.3) filled with mempool buffers, read back in bursts,
//! one RDT write per burst (SDM 3.2.6: software advances the tail past the descriptors it has
//! re-armed).
//!
//! Ring ownership: all `n` descriptors hold a buffer while the queue runs; RDT is the one
//! descriptor the device may not fill, so descriptors `next .. tail` (wrapping) are the device's
//! and the only ones this code reads. A DD bit anywhere else is never looked at, and the one
//! descriptor each tail move hands over is wiped first, so a DD written there early is not either.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::{PacketBuf, PacketPool};
use burst_pci::Bar;

use crate::desc::RxDesc;
use crate::regs::{RDT, RXD_ERR_FRAME, RXD_STAT_DD, RXD_STAT_EOP};
use crate::ring::{free_slots, prev, wrap_add, DescRing, Doorbell};

/// What one written-back descriptor means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxVerdict {
    /// A whole, good frame of this many bytes (within the buffer).
    Packet(usize),
    /// A frame to drop and count as an error: error bits, or a length of 0 or past the buffer.
    Bad,
    /// Part of a frame larger than one buffer (EOP clear): dropped with the rest of its frame.
    Partial,
}

/// Judges a descriptor the device marked done. Everything in it is untrusted: the length is
/// only believed when it fits the `room` bytes the device was given.
#[inline]
pub(crate) fn classify(status: u8, errors: u8, length: u16, room: usize) -> RxVerdict {
    if status & RXD_STAT_EOP == 0 {
        RxVerdict::Partial
    } else if errors & RXD_ERR_FRAME != 0 || length == 0 || usize::from(length) > room {
        RxVerdict::Bad
    } else {
        RxVerdict::Packet(usize::from(length))
    }
}

/// An RX queue's state: its ring and the buffer behind each descriptor.
pub(crate) struct RxRing {
    ring: DescRing<RxDesc>,
    pool: PacketPool,
    /// The buffer each descriptor points at (`None` while the queue is stopped).
    bufs: Vec<Option<PacketBuf>>,
    /// Bytes the device may write per buffer (RCTL.BSIZE), at most the pool's data room.
    bsize: usize,
    /// The next descriptor to look at.
    next: u16,
    /// RDT as last written: the first descriptor not handed to the device.
    tail: u16,
    /// Inside a frame that spans descriptors: drop up to its EOP.
    discarding: bool,
    /// The port's counters for this queue: frames dropped (`errors`), failed allocations.
    counters: Arc<QueueCounters>,
}

impl RxRing {
    /// A stopped queue on `ring`, to be filled from `pool` with `bsize`-byte buffers, counting
    /// into `counters`.
    pub(crate) fn new(ring: DescRing<RxDesc>, pool: PacketPool, bsize: usize, counters: Arc<QueueCounters>) -> RxRing {
        let n = usize::from(ring.len());
        RxRing {
            ring,
            pool,
            bufs: (0..n).map(|_| None).collect(),
            bsize,
            next: 0,
            tail: 0,
            discarding: false,
            counters,
        }
    }

    /// The descriptor ring.
    pub(crate) fn ring(&self) -> &DescRing<RxDesc> {
        &self.ring
    }

    /// Points every descriptor at a fresh buffer (SDM 14.4); afterwards RDH = 0 and RDT =
    /// [`RxRing::tail`]. When the pool is short, fails with the number of free buffers it has,
    /// holding none.
    pub(crate) fn arm(&mut self) -> Result<(), usize> {
        self.release();
        let n = self.ring.len();
        let mut fresh = Vec::with_capacity(usize::from(n));
        if !self.pool.alloc_bulk(&mut fresh, usize::from(n)) {
            return Err(self.pool.mempool().available());
        }
        for (i, buf) in fresh.into_iter().enumerate() {
            self.ring.desc(i as u16).arm(buf.data_iova());
            self.bufs[i] = Some(buf);
        }
        self.next = 0;
        self.tail = n - 1;
        self.discarding = false;
        Ok(())
    }

    /// RDT for a freshly armed ring.
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    /// Gives every buffer back to its pool and zeroes the descriptors. The device must be
    /// quiet (RCTL.EN clear).
    pub(crate) fn release(&mut self) {
        self.ring.zero();
        free_slots(&mut self.bufs);
        self.next = 0;
        self.tail = 0;
        self.discarding = false;
    }

    /// Receives up to `max` frames into `out` (RX burst body); RDT is written once if any
    /// descriptor was re-armed.
    pub(crate) fn burst(&mut self, bar: &impl Doorbell, out: &mut Vec<PacketBuf>, max: usize, port: u16) -> usize {
        let n = self.ring.len();
        let mut i = self.next;
        let (mut got, mut bytes, mut bad, mut nombuf) = (0usize, 0u64, 0u64, 0u64);
        while got < max && i != self.tail {
            let desc = self.ring.desc(i);
            let status = desc.status();
            if status & RXD_STAT_DD == 0 {
                break;
            }
            // The rest of the descriptor is read after DD was seen set.
            burst_mem::barrier::dma_rmb();
            let errors = desc.errors();
            let length = desc.length();
            let verdict = match classify(status, errors, length, self.bsize) {
                // The last piece of a frame we are dropping: the frame counts once.
                _ if self.discarding && status & RXD_STAT_EOP != 0 => {
                    self.discarding = false;
                    RxVerdict::Bad
                }
                v => v,
            };
            match verdict {
                RxVerdict::Packet(len) => {
                    let Some(fresh) = self.pool.alloc() else {
                        // Leave the frame in the ring; the next burst tries again.
                        nombuf += 1;
                        break;
                    };
                    desc.arm(fresh.data_iova());
                    if let Some(mut buf) = self.bufs[usize::from(i)].replace(fresh) {
                        buf.set_len(len);
                        buf.set_port(port);
                        out.push(buf);
                        got += 1;
                        bytes += len as u64;
                    }
                }
                RxVerdict::Bad | RxVerdict::Partial => {
                    if verdict == RxVerdict::Partial {
                        self.discarding = true;
                    } else {
                        bad += 1;
                    }
                    // Same buffer again: re-arm the descriptor as it was.
                    if let Some(buf) = &self.bufs[usize::from(i)] {
                        desc.arm(buf.data_iova());
                    }
                }
            }
            i = wrap_add(i, 1, n);
        }
        if i != self.next {
            // The descriptor held back at the old tail is handed over now: whatever was written
            // to it while it was not the device's (a DD included) is wiped first.
            self.ring.desc(self.tail).clear_write_back();
            self.next = i;
            self.tail = prev(i, n);
            // Descriptors are in memory before the device learns of them (SDM 3.2.6).
            burst_mem::barrier::io_wmb();
            bar.ring_tail(RDT, u32::from(self.tail));
        }
        if got > 0 {
            self.counters.add(got as u64, bytes);
        }
        if bad > 0 {
            self.counters.add_errors(bad);
        }
        if nombuf > 0 {
            self.counters.add_nombuf(nombuf);
        }
        got
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // The device is stopped before a ring is dropped (stop and close disable RX first).
        free_slots(&mut self.bufs);
    }
}

/// A started RX queue's handle: owns the ring while it lives.
pub(crate) struct E1000Rx<'a> {
    pub ring: SlotGuard<'a, RxRing>,
    pub bar: &'a Bar,
    pub port: u16,
}

impl RxBurst for E1000Rx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.ring.burst(self.bar, bufs, max, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::{RXD_ERR_CE, RXD_ERR_RXE};
    use burst_ethdev::SwStats;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const DONE: u8 = RXD_STAT_DD | RXD_STAT_EOP;

    #[test]
    fn a_good_descriptor_gives_its_length() {
        assert_eq!(classify(DONE, 0, 60, 2048), RxVerdict::Packet(60));
        assert_eq!(classify(DONE, 0, 2048, 2048), RxVerdict::Packet(2048));
    }

    #[test]
    fn lengths_past_the_buffer_or_zero_are_errors() {
        assert_eq!(classify(DONE, 0, 2049, 2048), RxVerdict::Bad);
        assert_eq!(classify(DONE, 0, u16::MAX, 2048), RxVerdict::Bad);
        assert_eq!(classify(DONE, 0, 0, 2048), RxVerdict::Bad);
    }

    #[test]
    fn error_bits_and_missing_eop_drop_the_frame() {
        assert_eq!(classify(DONE, RXD_ERR_CE, 60, 2048), RxVerdict::Bad);
        assert_eq!(classify(DONE, RXD_ERR_RXE, 60, 2048), RxVerdict::Bad);
        assert_eq!(classify(RXD_STAT_DD, 0, 2048, 2048), RxVerdict::Partial);
        // Checksum error bits alone do not drop a frame: no checksum offload is asked for.
        assert_eq!(classify(DONE, 0x60, 60, 2048), RxVerdict::Packet(60));
    }

    use crate::testing::{device_writes_rx, memory, pool, ring, Recorder};

    /// A running RX queue of `n` descriptors on a pool of `count` buffers, and its counters.
    fn running(n: u16, count: usize) -> (RxRing, PacketPool, SwStats) {
        let mem = memory();
        let pool = pool(&mem, count);
        let sw = SwStats::new(1, 0);
        let mut rx = RxRing::new(ring(&mem, n), pool.clone(), 2048, sw.rx(0));
        rx.arm().unwrap();
        assert_eq!(rx.tail(), n - 1);
        (rx, pool, sw)
    }

    /// Frames dropped and failed allocations counted.
    fn dropped_nombuf(sw: &SwStats) -> (u64, u64) {
        let s = sw.get();
        (s.ierrors, s.rx_nombuf)
    }

    #[test]
    fn frames_come_out_with_their_length_and_the_tail_follows_once() {
        let (mut rx, pool, _sw) = running(32, 64);
        let bell = Recorder::default();
        let addr0 = rx.ring.desc(0).buffer();
        device_writes_rx(&rx.ring, 0, 60, DONE, 0);
        device_writes_rx(&rx.ring, 1, 1514, DONE, 0);
        let mut out = Vec::new();
        assert_eq!(rx.burst(&bell, &mut out, 32, 7), 2);
        assert_eq!(out.iter().map(|b| (b.len(), b.port())).collect::<Vec<_>>(), [(60, 7), (1514, 7)]);
        assert_eq!(out[0].data_iova(), addr0, "the buffer the device wrote into");
        assert_ne!(rx.ring.desc(0).buffer(), addr0, "descriptor 0 re-armed with a fresh buffer");
        assert_eq!((bell.last.get(), bell.writes.get()), (Some((RDT, 1)), 1));
        // Nothing new: no tail write.
        assert_eq!(rx.burst(&bell, &mut out, 32, 7), 0);
        assert_eq!(bell.writes.get(), 1);
        drop(out);
        rx.release();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn bad_descriptors_are_counted_and_their_buffers_reused() {
        let (mut rx, pool, sw) = running(32, 64);
        let bell = Recorder::default();
        let addrs: Vec<u64> = (0..5).map(|i| rx.ring.desc(i).buffer()).collect();
        device_writes_rx(&rx.ring, 0, 5000, DONE, 0); // longer than the buffer
        device_writes_rx(&rx.ring, 1, 60, DONE, RXD_ERR_CE); // CRC error
        device_writes_rx(&rx.ring, 2, 2048, RXD_STAT_DD, 0); // a frame over three buffers
        device_writes_rx(&rx.ring, 3, 2048, RXD_STAT_DD, 0);
        device_writes_rx(&rx.ring, 4, 100, DONE, 0);
        device_writes_rx(&rx.ring, 5, 64, DONE, 0);
        let mut out = Vec::new();
        assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1);
        assert_eq!(out[0].len(), 64);
        assert_eq!(dropped_nombuf(&sw), (3, 0), "oversize, CRC error, one spanning frame");
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(rx.ring.desc(i as u16).buffer(), *a, "descriptor {i} keeps its buffer");
            assert_eq!(rx.ring.desc(i as u16).status(), 0, "and its status is cleared");
        }
        drop(out);
        rx.release();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn a_done_descriptor_not_handed_over_is_never_read() {
        let (mut rx, pool, _sw) = running(32, 64);
        let bell = Recorder::default();
        for i in 0..32 {
            device_writes_rx(&rx.ring, i, 60, DONE, 0);
        }
        let mut out = Vec::new();
        assert_eq!(rx.burst(&bell, &mut out, 100, 0), 31, "descriptor 31 (RDT) is not the device's");
        assert_eq!(bell.last.get(), Some((RDT, 30)));
        // Descriptor 31 still says done, but it was never handed over: ignored.
        assert_eq!(rx.burst(&bell, &mut out, 100, 0), 0);
        drop(out);
        rx.release();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn an_empty_pool_leaves_the_frame_in_the_ring() {
        let (mut rx, pool, sw) = running(32, 33);
        let bell = Recorder::default();
        for i in 0..3 {
            device_writes_rx(&rx.ring, i, 60, DONE, 0);
        }
        let mut out = Vec::new();
        assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1, "one spare buffer");
        assert_eq!(dropped_nombuf(&sw), (0, 1));
        out.clear();
        assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1, "the next frame once a buffer is back");
        assert_eq!(out[0].len(), 60);
        drop(out);
        rx.release();
        assert!(pool.mempool().is_full());
    }

    proptest! {
        #[test]
        fn whatever_the_device_writes_the_queue_stays_sound(
            rounds in vec(vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..40), 1..6),
            max in 1usize..64,
        ) {
            let (mut rx, pool, _sw) = running(32, 80);
                let bell = Recorder::default();
            let mut out = Vec::new();
            for writes in rounds {
                // The device writes back descriptors in order from the next one, whatever it puts there.
                for (k, (length, status, errors)) in writes.into_iter().enumerate().take(32) {
                    let i = wrap_add(rx.next, k as u16, 32);
                    device_writes_rx(&rx.ring, i, length, status | RXD_STAT_DD, errors);
                }
                let before = out.len();
                let got = rx.burst(&bell, &mut out, max, 0);
                prop_assert!(got <= max && out.len() == before + got);
                for b in &out[before..] {
                    prop_assert!(!b.is_empty() && b.len() <= 2048);
                }
                if let Some((reg, tail)) = bell.last.get() {
                    prop_assert_eq!(reg, RDT);
                    prop_assert!(tail < 32);
                }
                out.clear();
            }
            rx.release();
            prop_assert!(pool.mempool().is_full());
        }

        #[test]
        fn no_descriptor_yields_a_length_outside_the_buffer(
            status: u8,
            errors: u8,
            length: u16,
            room in 0usize..20000,
        ) {
            match classify(status, errors, length, room) {
                RxVerdict::Packet(len) => {
                    prop_assert!(len > 0 && len <= room);
                    prop_assert!(status & RXD_STAT_EOP != 0 && errors & RXD_ERR_FRAME == 0);
                }
                RxVerdict::Partial => prop_assert!(status & RXD_STAT_EOP == 0),
                RxVerdict::Bad => prop_assert!(status & RXD_STAT_EOP != 0),
            }
        }
    }
}
