//! The RX burst function: descriptors off the RX ring become the very buffers that were put on
//! the fill ring (no copy: the frame is already in the buffer, [`crate::umem`]), the fill ring
//! gets as many fresh buffers back, and both rings' indices are published once per burst. The
//! one syscall, only when nothing came and the kernel asks for one (busy polling, or the fill
//! ring's need-wakeup flag), drives the kernel on.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::PacketBuf;

use crate::if_xdp::XdpDesc;
use crate::init::XskSocket;
use crate::ring::XskRing;
use crate::umem::Umem;

/// An RX queue's state, lent to its handle while the handle lives.
pub(crate) struct RxState {
    pub rx: XskRing<XdpDesc>,
    pub fill: XskRing<u64>,
    pub umem: Arc<Umem>,
    pub sock: Arc<XskSocket>,
    /// The port's number, stamped on every buffer.
    pub port: u16,
    /// Busy polling is on: a burst with nothing received polls the NIC.
    pub busy: bool,
    /// Buffers the fill ring should hold and does not, for want of them in the pool.
    pub owed: u32,
    /// Fresh buffers on their way to the fill ring (capacity kept).
    pub scratch: Vec<PacketBuf>,
    pub counters: Arc<QueueCounters>,
}

impl RxState {
    /// Puts up to `n` fresh buffers on the fill ring; what the pool or the ring cannot take now
    /// is owed to the next burst. Returns how many went on.
    pub(crate) fn refill(&mut self, n: u32) -> u32 {
        let want = self.fill.free(n + self.owed);
        let total = n + self.owed;
        let mut got = want;
        if !self.umem.pool().alloc_bulk(&mut self.scratch, want as usize) {
            got = 0;
            if want > 0 {
                self.counters.add_nombuf(u64::from(want));
            }
        }
        for (i, buf) in self.scratch.drain(..).enumerate() {
            let addr = self.umem.give_fill(buf);
            self.fill.write(i as u32, addr);
        }
        if got > 0 {
            self.fill.submit(got);
        }
        // Never more than the fill ring holds: a kernel that claims frames it never took cannot
        // make the debt grow without end.
        self.owed = (total - got).min(self.fill.size());
        got
    }
}

/// An RX queue's handle.
pub(crate) struct XdpRx<'a> {
    pub state: SlotGuard<'a, RxState>,
}

impl RxBurst for XdpRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        let s = &mut *self.state;
        let n = s.rx.ready(max.min(u32::MAX as usize) as u32);
        if n == 0 {
            if s.owed > 0 {
                s.refill(0);
            }
            if s.busy || s.fill.needs_wakeup() {
                s.sock.wake_rx();
            }
            return 0;
        }
        let (mut got, mut bytes, mut bad) = (0usize, 0u64, 0u64);
        for i in 0..n {
            match s.umem.take_rx(s.rx.read(i)) {
                Ok(mut buf) => {
                    buf.set_port(s.port);
                    bytes += buf.len() as u64;
                    bufs.push(buf);
                    got += 1;
                }
                Err(_) => bad += 1,
            }
        }
        s.rx.release(n);
        // As many back on the fill ring as came off it (a refused descriptor's buffer included:
        // the kernel no longer holds it).
        s.refill(n);
        s.counters.add(got as u64, bytes);
        if bad > 0 {
            s.counters.add_errors(bad);
        }
        got
    }
}
