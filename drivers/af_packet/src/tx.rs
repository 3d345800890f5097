//! The TX burst function: each packet (a chain too) is copied into the next free frame of the
//! TX ring (`TP_STATUS_AVAILABLE`) and handed to the kernel (`TP_STATUS_SEND_REQUEST`); one
//! `sendto` per burst, and only when something was queued, makes the kernel send them
//! (packet_mmap.rst, "TX ring"). A full ring takes no more: the rest stay with the caller.
//! A packet longer than a frame holds is taken and dropped, counted as an error.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::PacketBuf;

use crate::init::PacketSocket;
use crate::ring::Ring;
use crate::tpacket::{TP_STATUS_SENDING, TP_STATUS_SEND_REQUEST, TP_STATUS_TS_MASK, TX_DATA_OFFSET};

/// The status bits that mean the kernel still has the frame: asked to send, or sending.
const BUSY: u32 = TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING;

/// A TX queue's state, lent to its handle while the handle lives.
pub(crate) struct TxState {
    /// The socket, shared with the RX queue of the same pair.
    pub sock: Arc<PacketSocket>,
    /// Its TX ring.
    pub ring: Ring,
    /// The next frame to fill.
    pub next: u32,
    /// The port's counters for this queue.
    pub counters: Arc<QueueCounters>,
}

/// A TX queue's handle.
pub(crate) struct PacketTx<'a> {
    pub state: SlotGuard<'a, TxState>,
}

/// Copies every segment of `buf` to `dst`, which has room for `buf.pkt_len()` bytes.
///
/// # Safety
/// `dst` is writable for `buf.pkt_len()` bytes.
#[inline]
unsafe fn copy_out(buf: &PacketBuf, mut dst: *mut u8) {
    for seg in buf.segments() {
        // SAFETY: the segments' lengths add up to pkt_len, which fits `dst` (the caller's word).
        unsafe {
            std::ptr::copy_nonoverlapping(seg.data_addr(), dst, seg.len());
            dst = dst.add(seg.len());
        }
    }
}

impl TxBurst for PacketTx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        let s = &mut *self.state;
        let room = s.ring.frame_size() - TX_DATA_OFFSET;
        let (mut taken, mut queued, mut bytes, mut oversize) = (0usize, 0u64, 0u64, 0u64);
        let mut i = s.next;
        for buf in bufs.iter() {
            let len = buf.pkt_len() as usize;
            if len > room {
                oversize += 1;
                taken += 1;
                continue;
            }
            let status = s.ring.status(i).load(std::sync::atomic::Ordering::Acquire) & !TP_STATUS_TS_MASK;
            if status & BUSY != 0 {
                break;
            }
            let frame = s.ring.frame(i);
            // SAFETY: the frame is ours (not busy); its data area holds `room >= len` bytes after
            // the header, inside the ring; the header's length fields are plain u32s at offsets
            // 4 and 8 of the 16-aligned frame.
            unsafe {
                copy_out(buf, frame.add(TX_DATA_OFFSET));
                std::ptr::write_volatile(frame.add(4).cast::<u32>(), len as u32);
                std::ptr::write_volatile(frame.add(8).cast::<u32>(), len as u32);
            }
            s.ring.release(i, TP_STATUS_SEND_REQUEST);
            i = s.ring.next(i);
            taken += 1;
            queued += 1;
            bytes += len as u64;
        }
        s.next = i;
        // The buffers' bytes are in the ring: they go back to their pools now.
        bufs.drain(..taken);
        if queued > 0 && s.sock.kick().is_err() {
            // The interface went away or down: counted as errors, as DPDK does (the frames stay
            // in the ring and leave with a later kick if it comes back).
            s.counters.add_errors(queued);
        } else {
            s.counters.add(queued, bytes);
        }
        if oversize > 0 {
            s.counters.add_errors(oversize);
        }
        taken
    }
}
