//! The RX burst function: frames the kernel handed over (`TP_STATUS_USER`) are checked, copied
//! into buffers of the queue's pool (a chain when the frame is longer than one buffer and the
//! queue has the scatter offload), the VLAN tag the kernel took off put back (or left in
//! `vlan_tci` with the VLAN strip offload), and the frames handed back (`TP_STATUS_KERNEL`).
//! No syscall: the ring is polled.
//!
//! What the kernel wrote in a frame's header is untrusted: the packet must lie inside the frame
//! and be whole (`tp_snaplen == tp_len`), or the frame is counted as an error and handed back.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::{ChainBuilder, OlFlags, PacketBuf, PacketPool};

use crate::init::PacketSocket;
use crate::ring::Ring;
use crate::tpacket::{Tpacket2Hdr, TP_STATUS_KERNEL, TP_STATUS_USER, TP_STATUS_VLAN_TPID_VALID, TP_STATUS_VLAN_VALID};

/// An RX queue's state, lent to its handle while the handle lives.
pub(crate) struct RxState {
    /// The socket, shared with the TX queue of the same pair: it keeps `ring`'s memory mapped.
    pub _sock: Arc<PacketSocket>,
    /// Its RX ring.
    pub ring: Ring,
    /// The next frame to look at.
    pub next: u32,
    /// Where the buffers come from.
    pub pool: PacketPool,
    /// The port's number, stamped on every buffer.
    pub port: u16,
    /// A frame longer than one buffer becomes a chain (the scatter offload); else it is dropped.
    pub scatter: bool,
    /// The VLAN tag stays in `vlan_tci` (the VLAN strip offload); else it goes back in the data.
    pub strip: bool,
    /// The port's counters for this queue.
    pub counters: Arc<QueueCounters>,
}

/// Where a frame's packet lies, or why it cannot be taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// `len` bytes from `off` into the frame, and the VLAN tag to put back (TPID, TCI).
    Packet { off: usize, len: usize, vlan: Option<(u16, u16)> },
    /// The header does not describe a whole packet inside the frame.
    Bad,
}

/// Judges a frame's header against the frame it is in: the packet must start after the header,
/// end inside the frame and be whole, and be at least an Ethernet header's addresses long when a
/// tag is to be put back between them.
pub(crate) fn judge(h: &Tpacket2Hdr, frame_size: usize) -> Frame {
    let (off, len) = (usize::from(h.tp_mac), h.tp_snaplen as usize);
    if off < std::mem::size_of::<Tpacket2Hdr>() || off.checked_add(len).is_none_or(|end| end > frame_size) {
        return Frame::Bad;
    }
    if h.tp_len != h.tp_snaplen {
        // Cut short to fit the frame: not the packet that was sent.
        return Frame::Bad;
    }
    let vlan = (h.tp_status & TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid =
            if h.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 && h.tp_vlan_tpid != 0 { h.tp_vlan_tpid } else { 0x8100 };
        (tpid, h.tp_vlan_tci)
    });
    if vlan.is_some() && len < 12 {
        return Frame::Bad;
    }
    Frame::Packet { off, len, vlan }
}

/// Why a frame was not delivered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The pool had no buffer: leave the frame for the next burst.
    NoBuf,
    /// The frame does not fit one buffer and the queue does not scatter.
    TooLong,
}

/// Pieces of a frame to copy in order: raw pointers into the ring or into a local tag.
struct Pieces<'a> {
    parts: &'a [(*const u8, usize)],
    part: usize,
    at: usize,
}

impl Pieces<'_> {
    /// Copies the next `n` bytes to `dst`.
    ///
    /// # Safety
    /// Every part is readable for its length; `dst` is writable for `n` bytes; `n` is at most
    /// what is left.
    unsafe fn copy_to(&mut self, mut dst: *mut u8, mut n: usize) {
        while n > 0 {
            let (src, len) = self.parts[self.part];
            let take = (len - self.at).min(n);
            // SAFETY: inside the part and inside `dst`, per the caller.
            unsafe {
                std::ptr::copy_nonoverlapping(src.add(self.at), dst, take);
                dst = dst.add(take);
            }
            n -= take;
            self.at += take;
            if self.at == len {
                self.part += 1;
                self.at = 0;
            }
        }
    }
}

/// Copies `total` bytes of `parts` into a buffer of `pool`, or a chain of them when `scatter`.
///
/// # Safety
/// As [`Pieces::copy_to`]: the parts are readable and hold `total` bytes.
unsafe fn fill(
    pool: &PacketPool,
    parts: &[(*const u8, usize)],
    total: usize,
    scatter: bool,
) -> Result<PacketBuf, Refusal> {
    let mut src = Pieces { parts, part: 0, at: 0 };
    let mut first = pool.alloc().ok_or(Refusal::NoBuf)?;
    let room = first.buf_len() - first.headroom();
    if total <= room {
        first.set_len(total);
        // SAFETY: `total` bytes of the buffer's data, which we own; the parts hold them.
        unsafe { src.copy_to(first.data_mut().as_mut_ptr(), total) };
        return Ok(first);
    }
    if !scatter {
        return Err(Refusal::TooLong);
    }
    let mut chain = ChainBuilder::new();
    let mut left = total;
    let mut seg = Some(first);
    while left > 0 {
        let mut buf = match seg.take() {
            Some(b) => b,
            None => pool.alloc().ok_or(Refusal::NoBuf)?,
        };
        let n = buf.set_data_len(left);
        // SAFETY: `n` bytes of this segment's data; the parts hold `left >= n` more.
        unsafe { src.copy_to(buf.data_mut().as_mut_ptr(), n) };
        left -= n;
        chain.push(buf).map_err(|_| Refusal::TooLong)?;
    }
    chain.take().ok_or(Refusal::TooLong)
}

impl RxState {
    /// Takes frame `i` (ours: its status said so) into a buffer.
    #[inline]
    fn take(&self, i: u32) -> Result<Option<PacketBuf>, Refusal> {
        let h = self.ring.header(i);
        let Frame::Packet { off, len, vlan } = judge(&h, self.ring.frame_size()) else {
            return Ok(None);
        };
        // SAFETY: `off + len <= frame_size` (judged), inside the frame, which is ours until
        // released.
        let data = unsafe { self.ring.frame(i).add(off).cast_const() };
        let mut buf = match vlan {
            Some((tpid, tci)) if !self.strip => {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&tpid.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                // SAFETY: `len >= 12` (judged): the addresses, the tag, then the rest.
                let parts = unsafe { [(data, 12), (tag.as_ptr(), 4), (data.add(12), len - 12)] };
                // SAFETY: every part is readable for its length.
                unsafe { fill(&self.pool, &parts, len + 4, self.scatter)? }
            }
            _ => {
                // SAFETY: the packet's bytes in the frame.
                let mut buf = unsafe { fill(&self.pool, &[(data, len)], len, self.scatter)? };
                if let Some((_, tci)) = vlan {
                    buf.set_vlan_tci(tci);
                    buf.set_ol_flags(OlFlags::RX_VLAN | OlFlags::RX_VLAN_STRIPPED);
                }
                buf
            }
        };
        buf.set_port(self.port);
        Ok(Some(buf))
    }
}

/// An RX queue's handle.
pub(crate) struct PacketRx<'a> {
    pub state: SlotGuard<'a, RxState>,
}

impl RxBurst for PacketRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        let s = &mut *self.state;
        let (mut n, mut bytes, mut errors) = (0usize, 0u64, 0u64);
        let mut i = s.next;
        while n < max {
            if s.ring.status(i).load(std::sync::atomic::Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            match s.take(i) {
                Ok(Some(buf)) => {
                    bytes += u64::from(buf.pkt_len());
                    bufs.push(buf);
                    n += 1;
                }
                Ok(None) | Err(Refusal::TooLong) => errors += 1,
                Err(Refusal::NoBuf) => {
                    // The frame stays ours for the next burst, when buffers may be back.
                    s.counters.add_nombuf(1);
                    break;
                }
            }
            s.ring.release(i, TP_STATUS_KERNEL);
            i = s.ring.next(i);
        }
        s.next = i;
        s.counters.add(n as u64, bytes);
        if errors > 0 {
            s.counters.add_errors(errors);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(status: u32, mac: u16, snap: u32, len: u32) -> Tpacket2Hdr {
        Tpacket2Hdr { tp_status: status, tp_mac: mac, tp_snaplen: snap, tp_len: len, ..Tpacket2Hdr::default() }
    }

    #[test]
    fn headers_that_reach_outside_their_frame_or_cut_a_packet_short_are_refused() {
        let u = TP_STATUS_USER;
        assert_eq!(judge(&hdr(u, 66, 60, 60), 2048), Frame::Packet { off: 66, len: 60, vlan: None });
        assert_eq!(judge(&hdr(u, 66, 1982, 1982), 2048), Frame::Packet { off: 66, len: 1982, vlan: None });
        assert_eq!(judge(&hdr(u, 66, 1983, 1983), 2048), Frame::Bad, "one byte past the frame");
        assert_eq!(judge(&hdr(u, 16, 60, 60), 2048), Frame::Bad, "inside the header");
        assert_eq!(judge(&hdr(u, 66, 100, 1500), 2048), Frame::Bad, "truncated");
        assert_eq!(judge(&hdr(u, u16::MAX, u32::MAX, u32::MAX), 2048), Frame::Bad);
        let mut h = hdr(u | TP_STATUS_VLAN_VALID, 66, 60, 60);
        h.tp_vlan_tci = 7;
        assert_eq!(judge(&h, 2048), Frame::Packet { off: 66, len: 60, vlan: Some((0x8100, 7)) });
        h.tp_status |= TP_STATUS_VLAN_TPID_VALID;
        h.tp_vlan_tpid = 0x88a8;
        assert_eq!(judge(&h, 2048), Frame::Packet { off: 66, len: 60, vlan: Some((0x88a8, 7)) });
        assert_eq!(judge(&hdr(u | TP_STATUS_VLAN_VALID, 66, 11, 11), 2048), Frame::Bad);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the kernel writes in a header, a packet that is taken lies inside its frame.
        #[test]
        fn a_taken_packet_lies_inside_its_frame(
            status in any::<u32>(), mac in any::<u16>(), snap in any::<u32>(), len in any::<u32>(),
            frame_size in 96usize..70_000,
        ) {
            let h = Tpacket2Hdr { tp_status: status, tp_mac: mac, tp_snaplen: snap, tp_len: len, ..Tpacket2Hdr::default() };
            if let Frame::Packet { off, len, vlan } = judge(&h, frame_size) {
                prop_assert!(off >= 32 && off + len <= frame_size);
                prop_assert!(vlan.is_none() || len >= 12);
            }
        }
    }
}
