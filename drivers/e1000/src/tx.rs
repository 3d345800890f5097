//! Transmit: legacy descriptors (SDM 3.3.3), EOP|IFCS|RS on each, one TDT write per burst, and
//! completed descriptors reclaimed in batches by checking only the DD bit of a batch's last
//! descriptor (the device completes descriptors in order, SDM 3.3.1), as ixy does.
//!
//! Ring ownership: descriptors `clean .. tail` (wrapping) are in flight; at most `n - 1` are, since
//! TDH == TDT means "nothing to send". Only in-flight descriptors are ever read back.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::{PacketBuf, PacketPool};
use burst_pci::Bar;

use crate::desc::TxDesc;
use crate::regs::{TDT, TXD_CMD_EOP, TXD_CMD_IFCS, TXD_CMD_RS, TXD_MAX_LEN, TXD_STAT_DD};
use crate::ring::{distance, free_slots, wrap_add, DescRing, Doorbell};

/// The command byte of every descriptor: one buffer per frame, CRC added by the device, DD
/// written back.
const CMD: u8 = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;

/// Descriptors reclaimed at a time (ixy's `TX_CLEAN_BATCH`).
const CLEAN_BATCH: u16 = 32;

/// A TX queue's state.
pub(crate) struct TxRing {
    ring: DescRing<TxDesc>,
    /// The buffer each in-flight descriptor sends.
    bufs: Vec<Option<PacketBuf>>,
    /// Next descriptor to fill (TDT as last written).
    tail: u16,
    /// Oldest descriptor not yet reclaimed.
    clean: u16,
    /// Descriptors reclaimed at a time: [`CLEAN_BATCH`], or less on a small ring.
    batch: u16,
    /// Reclaimed buffers on their way back to the pool (capacity `batch`, kept).
    done: Vec<PacketBuf>,
    /// The port's counters for this queue: buffers no descriptor could carry (`errors`).
    counters: Arc<QueueCounters>,
}

impl TxRing {
    /// A stopped queue on `ring`, counting into `counters`.
    pub(crate) fn new(ring: DescRing<TxDesc>, counters: Arc<QueueCounters>) -> TxRing {
        let n = ring.len();
        let batch = CLEAN_BATCH.min(n / 4).max(1);
        TxRing {
            bufs: (0..n).map(|_| None).collect(),
            ring,
            tail: 0,
            clean: 0,
            batch,
            done: Vec::with_capacity(usize::from(batch)),
            counters,
        }
    }

    /// The descriptor ring.
    pub(crate) fn ring(&self) -> &DescRing<TxDesc> {
        &self.ring
    }

    /// Whether descriptors are in flight.
    pub(crate) fn in_flight(&self) -> u16 {
        distance(self.clean, self.tail, self.ring.len())
    }

    /// Gives every buffer back and zeroes the ring; TDH = TDT = 0 afterwards. The device must
    /// be quiet (TCTL.EN clear).
    pub(crate) fn release(&mut self) {
        self.ring.zero();
        free_slots(&mut self.bufs);
        self.tail = 0;
        self.clean = 0;
    }

    /// Frees the buffers of whole batches the device is done with.
    #[inline]
    fn reclaim(&mut self) {
        let n = self.ring.len();
        while self.in_flight() >= self.batch {
            let last = wrap_add(self.clean, self.batch - 1, n);
            if self.ring.desc(last).status() & TXD_STAT_DD == 0 {
                break;
            }
            for k in 0..self.batch {
                let i = wrap_add(self.clean, k, n);
                if let Some(buf) = self.bufs[usize::from(i)].take() {
                    self.done.push(buf);
                }
            }
            PacketPool::free_bulk(&mut self.done);
            self.clean = wrap_add(self.clean, self.batch, n);
        }
    }

    /// Takes what fits from the front of `bufs` (TX burst body).
    pub(crate) fn burst(&mut self, bar: &impl Doorbell, bufs: &mut Vec<PacketBuf>) -> usize {
        self.reclaim();
        let n = self.ring.len();
        let room = usize::from(n - 1 - self.in_flight());
        let take = room.min(bufs.len());
        if take == 0 {
            return 0;
        }
        let mut dropped = 0u64;
        let mut tail = self.tail;
        for buf in bufs.drain(..take) {
            let len = buf.len();
            if len == 0 || len > TXD_MAX_LEN || !buf.is_contiguous() {
                // Nothing a descriptor can carry: taken and freed, counted as an error.
                dropped += 1;
                continue;
            }
            let desc = self.ring.desc(tail);
            desc.set_buffer(buf.data_iova());
            desc.set_command(len as u16, CMD);
            self.bufs[usize::from(tail)] = Some(buf);
            tail = wrap_add(tail, 1, n);
        }
        if tail != self.tail {
            self.tail = tail;
            // Descriptors are in memory before the device learns of them (SDM 3.3.1).
            burst_mem::barrier::io_wmb();
            bar.ring_tail(TDT, u32::from(tail));
        }
        if dropped > 0 {
            self.counters.add_errors(dropped);
        }
        take
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        free_slots(&mut self.bufs);
    }
}

/// A started TX queue's handle: owns the ring while it lives.
pub(crate) struct E1000Tx<'a> {
    pub ring: SlotGuard<'a, TxRing>,
    pub bar: &'a Bar,
}

impl TxBurst for E1000Tx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        self.ring.burst(self.bar, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use burst_ethdev::SwStats;

    use crate::testing::{device_done_tx, memory, pool, ring, Recorder};

    fn packets(pool: &PacketPool, n: usize, len: usize) -> Vec<PacketBuf> {
        let mut v = Vec::new();
        assert!(pool.alloc_bulk(&mut v, n));
        for b in &mut v {
            b.set_len(len);
        }
        v
    }

    #[test]
    fn a_burst_takes_what_fits_and_rings_once() {
        let mem = memory();
        let pool = pool(&mem, 128);
        let (sw, bell) = (SwStats::new(0, 1), Recorder::default());
        let mut tx = TxRing::new(ring(&mem, 32), sw.tx(0));
        let mut bufs = packets(&pool, 40, 60);
        let first = bufs[0].data_iova();
        assert_eq!(tx.burst(&bell, &mut bufs), 31, "n - 1 descriptors in flight at most");
        assert_eq!(bufs.len(), 9, "the caller keeps the rest");
        assert_eq!((bell.last.get(), bell.writes.get()), (Some((TDT, 31)), 1));
        assert_eq!(tx.ring.desc(0).buffer(), first);
        assert_eq!(tx.ring.desc(0).length(), 60);
        assert_eq!(tx.ring.desc(0).cmd(), CMD);
        assert_eq!(tx.burst(&bell, &mut bufs), 0, "full, and nothing done yet");
        assert_eq!(bell.writes.get(), 1);
        drop(bufs);
        tx.release();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn completed_batches_are_reclaimed_by_their_last_descriptor() {
        let mem = memory();
        let pool = pool(&mem, 128);
        let (sw, bell) = (SwStats::new(0, 1), Recorder::default());
        let mut tx = TxRing::new(ring(&mem, 32), sw.tx(0));
        assert_eq!(tx.batch, 8);
        let mut bufs = packets(&pool, 31, 100);
        assert_eq!(tx.burst(&bell, &mut bufs), 31);
        // The device finishes 0..=6: the first batch's last (7) is not done, nothing is freed.
        for i in 0..7 {
            device_done_tx(&tx.ring, i);
        }
        tx.reclaim();
        assert_eq!((tx.in_flight(), pool.mempool().in_use()), (31, 31));
        // 7..=20 done too: batches 0..8 and 8..16 go back.
        for i in 7..21 {
            device_done_tx(&tx.ring, i);
        }
        tx.reclaim();
        assert_eq!((tx.in_flight(), pool.mempool().in_use()), (15, 15));
        let mut more = packets(&pool, 20, 100);
        assert_eq!(tx.burst(&bell, &mut more), 16);
        assert_eq!(bell.last.get(), Some((TDT, 15)), "wrapped around");
        drop(more);
        tx.release();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn empty_or_oversized_buffers_are_taken_and_counted() {
        let mem = memory();
        let pool = pool(&mem, 16);
        let (sw, bell) = (SwStats::new(0, 1), Recorder::default());
        let mut tx = TxRing::new(ring(&mem, 32), sw.tx(0));
        let mut bufs = packets(&pool, 3, 60);
        bufs[1].set_len(0);
        assert_eq!(tx.burst(&bell, &mut bufs), 3);
        assert_eq!(sw.get().oerrors, 1);
        assert_eq!((tx.in_flight(), bell.last.get()), (2, Some((TDT, 2))));
        tx.release();
        assert!(pool.mempool().is_full());
    }
}
