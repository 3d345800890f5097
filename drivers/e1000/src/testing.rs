//! What the unit tests and the benchmark (`benches/burst.rs`, feature `bench`) share: DMA
//! memory without hugepages, a doorbell that records instead of writing a register, the
//! device's side of a descriptor, and an RX and a TX queue run against those, with no device.
//! Not an API: hidden, and built only for tests and the benchmark.

use std::cell::Cell;

use burst_ethdev::SwStats;
use burst_mem::{Memory, PacketBuf, PacketPool};

use crate::desc::{RxDesc, TxDesc};
use crate::regs::{RDT, RXD_STAT_DD, RXD_STAT_EOP, TDT, TXD_STAT_DD};
use crate::ring::{wrap_add, DescRing, Descriptor, Doorbell};
use crate::rx::RxRing;
use crate::tx::TxRing;

/// A doorbell that remembers the last write.
#[derive(Default)]
pub struct Recorder {
    /// The last register written and its value.
    pub last: Cell<Option<(usize, u32)>>,
    /// How many writes.
    pub writes: Cell<usize>,
}

impl Doorbell for Recorder {
    #[inline]
    fn ring_tail(&self, reg: usize, value: u32) {
        self.last.set(Some((reg, value)));
        self.writes.set(self.writes.get() + 1);
    }
}

impl Recorder {
    /// The last value written to `reg`'s place, if the last write was to `reg`.
    fn last_to(&self, reg: usize) -> Option<u16> {
        self.last.get().filter(|&(r, _)| r == reg).map(|(_, v)| v as u16)
    }
}

/// Memory, names and pools without hugepages, as every driver's tests take them.
pub use burst_mem::testing::{memory, packet_pool as pool, unique_name as name};

/// A ring of `n` descriptors.
pub(crate) fn ring<D: Descriptor>(mem: &Memory, n: u16) -> DescRing<D> {
    DescRing::new(mem, &name("ring"), n, None).unwrap()
}

/// Writes back RX descriptor `i` as a device would: `length`, `status`, `errors`.
pub(crate) fn device_writes_rx(ring: &DescRing<RxDesc>, i: u16, length: u16, status: u8, errors: u8) {
    ring.desc(i).device_write_back(length, status, errors);
}

/// Sets the DD bit of TX descriptor `i`, as the device does when it is done with it.
pub(crate) fn device_done_tx(ring: &DescRing<TxDesc>, i: u16) {
    ring.desc(i).device_set_status(TXD_STAT_DD);
}

/// A started RX queue with a device that writes frames back into it as fast as asked: RDH is
/// the device's, RDT the last value the driver rang.
pub struct RxSim {
    rx: RxRing,
    bell: Recorder,
    /// RDH: the next descriptor the device fills.
    head: u16,
    /// The queue's counters.
    sw: SwStats,
}

impl RxSim {
    /// A queue of `n` descriptors armed from `pool` (2048-byte buffers).
    pub fn new(mem: &Memory, pool: &PacketPool, n: u16) -> RxSim {
        let sw = SwStats::new(1, 0);
        let mut rx = RxRing::new(ring(mem, n), pool.clone(), 2048, sw.rx(0));
        rx.arm().expect("the pool fills the ring");
        let bell = Recorder::default();
        bell.ring_tail(RDT, u32::from(rx.tail()));
        RxSim { rx, bell, head: 0, sw }
    }

    /// The device receives `k` frames of `len` bytes (or as many as it has descriptors for),
    /// writing each descriptor back done, whole and error-free; returns how many.
    pub fn device_receives(&mut self, k: u16, len: u16) -> u16 {
        let n = self.rx.ring().len();
        let tail = self.bell.last_to(RDT).unwrap_or(0);
        let mut done = 0;
        while done < k && self.head != tail {
            device_writes_rx(self.rx.ring(), self.head, len, RXD_STAT_DD | RXD_STAT_EOP, 0);
            self.head = wrap_add(self.head, 1, n);
            done += 1;
        }
        done
    }

    /// The driver's RX burst: up to `max` frames appended to `out`.
    #[inline(never)]
    pub fn rx_burst(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.rx.burst(&self.bell, out, max, 0)
    }

    /// Frames the driver dropped and buffers it could not get.
    pub fn dropped_nombuf(&self) -> (u64, u64) {
        let s = self.sw.get();
        (s.ierrors, s.rx_nombuf)
    }
}

impl Drop for RxSim {
    fn drop(&mut self) {
        self.rx.release();
    }
}

/// A started TX queue with a device that sends whatever it is given when asked: TDH is the
/// device's, TDT the last value the driver rang.
pub struct TxSim {
    tx: TxRing,
    bell: Recorder,
    /// TDH: the next descriptor the device sends.
    head: u16,
    sw: SwStats,
}

impl TxSim {
    /// A queue of `n` descriptors.
    pub fn new(mem: &Memory, n: u16) -> TxSim {
        let sw = SwStats::new(0, 1);
        TxSim { tx: TxRing::new(ring(mem, n), sw.tx(0)), bell: Recorder::default(), head: 0, sw }
    }

    /// The driver's TX burst: what fits is taken from the front of `bufs`.
    #[inline(never)]
    pub fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        self.tx.burst(&self.bell, bufs)
    }

    /// The device sends every descriptor up to TDT and writes DD back into each (the driver
    /// sets RS on every one); returns how many.
    pub fn device_sends(&mut self) -> u16 {
        let n = self.tx.ring().len();
        let tail = self.bell.last_to(TDT).unwrap_or(0);
        let mut done = 0;
        while self.head != tail {
            device_done_tx(self.tx.ring(), self.head);
            self.head = wrap_add(self.head, 1, n);
            done += 1;
        }
        done
    }

    /// Buffers the driver could not send.
    pub fn errors(&self) -> u64 {
        self.sw.get().oerrors
    }
}

impl Drop for TxSim {
    fn drop(&mut self) {
        self.tx.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_queues_move_every_frame_and_give_every_buffer_back() {
        let mem = memory();
        let pool = pool(&mem, 128);
        let mut rx = RxSim::new(&mem, &pool, 32);
        let mut tx = TxSim::new(&mem, 32);
        let mut bufs = Vec::new();
        for round in 0..5 {
            assert_eq!(rx.device_receives(20, 60), 20, "round {round}");
            assert_eq!(rx.rx_burst(&mut bufs, 32), 20);
            assert!(bufs.iter().all(|b| b.len() == 60));
            assert_eq!(tx.tx_burst(&mut bufs), 20);
            assert!(bufs.is_empty());
            assert_eq!(tx.device_sends(), 20);
        }
        // The device never passes the driver's tail: 31 of 32 descriptors are its.
        assert_eq!(rx.device_receives(40, 60), 31);
        assert_eq!((rx.dropped_nombuf(), tx.errors()), ((0, 0), 0));
        drop((rx, tx));
        assert!(pool.mempool().is_full());
    }
}
