//! The TX burst function: completions are reaped first (their buffers go back to their pool),
//! then each packet goes on the TX ring in place when it is a one-segment buffer of the UMEM's
//! pool, or copied into one that is (a buffer of another pool, a chain); the ring's index is
//! published once, and the one syscall is made only when the kernel asks for it (copy mode
//! always does: it sends in `sendmsg`) or busy polling is on. A full ring takes no more: the
//! rest stay with the caller.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::{PacketBuf, PacketPool};

use crate::if_xdp::XdpDesc;
use crate::init::XskSocket;
use crate::ring::XskRing;
use crate::umem::Umem;

/// An TX queue's state, lent to its handle while the handle lives.
pub(crate) struct TxState {
    pub tx: XskRing<XdpDesc>,
    pub comp: XskRing<u64>,
    pub umem: Arc<Umem>,
    pub sock: Arc<XskSocket>,
    pub busy: bool,
    /// Completed buffers on their way back to the pool (capacity kept).
    pub done: Vec<PacketBuf>,
    pub counters: Arc<QueueCounters>,
}

impl TxState {
    /// Takes back the buffers the kernel has sent.
    pub(crate) fn reap(&mut self) {
        let n = self.comp.ready(self.comp.size());
        for i in 0..n {
            if let Some(buf) = self.umem.take_completion(self.comp.read(i)) {
                self.done.push(buf);
            }
        }
        if n > 0 {
            self.comp.release(n);
            PacketPool::free_bulk(&mut self.done);
        }
    }

    /// `buf` as a descriptor of the UMEM: in place, or copied into a fresh buffer of its pool.
    /// `None` when it cannot be sent (no buffer to copy into, or too long for one).
    #[inline]
    fn place(&self, buf: PacketBuf) -> Option<XdpDesc> {
        match self.umem.give_tx(buf) {
            Ok(d) => Some(d),
            Err(buf) => {
                let mut copy = self.umem.pool().alloc()?;
                let len = buf.pkt_len() as usize;
                if len > copy.buf_len() - copy.headroom() {
                    return None;
                }
                copy.set_len(len);
                let mut at = 0;
                for seg in buf.segments() {
                    copy.data_mut()[at..at + seg.len()].copy_from_slice(seg.data());
                    at += seg.len();
                }
                self.umem.give_tx(copy).ok()
            }
        }
    }
}

/// A TX queue's handle.
pub(crate) struct XdpTx<'a> {
    pub state: SlotGuard<'a, TxState>,
}

impl TxBurst for XdpTx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        let s = &mut *self.state;
        s.reap();
        let room = s.tx.free(bufs.len().min(u32::MAX as usize) as u32);
        let (mut queued, mut bytes, mut dropped) = (0u32, 0u64, 0u64);
        for buf in bufs.drain(..room as usize) {
            match s.place(buf) {
                Some(d) => {
                    s.tx.write(queued, d);
                    queued += 1;
                    bytes += u64::from(d.len);
                }
                None => dropped += 1,
            }
        }
        if queued > 0 {
            s.tx.submit(queued);
        }
        // Copy mode sends a batch per call: kick while anything is still on the ring.
        if (s.busy || s.tx.needs_wakeup()) && (queued > 0 || s.tx.outstanding() > 0) {
            s.sock.kick_tx();
        }
        s.counters.add(u64::from(queued), bytes);
        if dropped > 0 {
            s.counters.add_errors(dropped);
        }
        room as usize
    }
}
