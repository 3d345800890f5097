//! Chained packets (`rte_mbuf` chains): a packet larger than one buffer, or built from pieces,
//! is a head [`PacketBuf`] and the segments its `next` pointers reach. The head's `pkt_len` is
//! the sum of every segment's `data_len` and its `nb_segs` their count; every operation here
//! keeps both true, and keeps every segment's data inside its own buffer.
//!
//! Length changes work on the packet as a whole, as an application sees it: [`PacketBuf::append`]
//! grows the last segment, [`PacketBuf::trim`] cuts from the end across segments and frees those
//! it empties, [`PacketBuf::adj`] cuts from the front the same way (the metadata moves to the new
//! first segment when the old one goes), [`PacketBuf::prepend`] grows the first segment's front.
//! [`PacketBuf::read`] reads bytes across segments (`rte_pktmbuf_read`), and
//! [`PacketBuf::linearize`] copies a chain into its first buffer when it fits.
//!
//! Segments may come from different pools: each goes back to its own.

use std::ptr::NonNull;

use super::{MbufHeader, PacketBuf};
use crate::mempool;

/// Why a chain operation was refused; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain would have more segments than a packet counts (`nb_segs` is 16 bits, DPDK's
    /// `RTE_MBUF_MAX_NB_SEGS`).
    #[error("a packet of {have} segments cannot take {more} more: a packet has at most {max}")]
    TooManySegments {
        /// Segments now.
        have: u16,
        /// Segments to add.
        more: u16,
        /// The most a packet has.
        max: u16,
    },
    /// The chain would be longer than a packet's 32-bit length.
    #[error("a packet of {have} bytes cannot take {more} more: a packet is at most {max} bytes")]
    TooLong {
        /// Bytes now.
        have: u32,
        /// Bytes to add.
        more: u32,
        /// The most a packet holds.
        max: u32,
    },
    /// A chain does not fit its first buffer.
    #[error(
        "a packet of {pkt_len} bytes in {nb_segs} segments does not fit one buffer: its first has room for {room} \
         bytes after its headroom; use a pool with a data room of at least {pkt_len} bytes, or keep the chain"
    )]
    DoesNotFit {
        /// The packet's length.
        pkt_len: u32,
        /// Its segments.
        nb_segs: u16,
        /// Bytes the first buffer holds from its data offset on.
        room: usize,
    },
}

/// One segment of a packet, read-only: its data and where a device finds it.
#[derive(Clone, Copy)]
pub struct Segment<'a> {
    hdr: &'a MbufHeader,
}

impl<'a> Segment<'a> {
    /// The segment's bytes.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        let h = self.hdr;
        // SAFETY: data_off + data_len <= buf_len holds for every segment, and the packet owning
        // it is borrowed for 'a.
        unsafe { std::slice::from_raw_parts(h.buf_addr.add(usize::from(h.data_off)), usize::from(h.data_len)) }
    }

    /// Bytes in the segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.hdr.data_len)
    }

    /// True when the segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.hdr.data_len == 0
    }

    /// The IOVA of the segment's first byte: what a TX descriptor points at.
    #[inline]
    pub fn data_iova(&self) -> u64 {
        self.hdr.buf_iova + u64::from(self.hdr.data_off)
    }

    /// The address of the segment's first byte, for a device that takes virtual addresses.
    #[inline]
    pub fn data_addr(&self) -> *const u8 {
        // SAFETY: data_off <= buf_len: inside (or one past) the segment's buffer.
        unsafe { self.hdr.buf_addr.add(usize::from(self.hdr.data_off)) }
    }
}

impl std::fmt::Debug for Segment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("len", &self.len()).field("data_iova", &self.data_iova()).finish()
    }
}

/// The segments of a packet, first to last ([`PacketBuf::segments`]).
pub struct Segments<'a> {
    next: Option<&'a MbufHeader>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    #[inline]
    fn next(&mut self) -> Option<Segment<'a>> {
        let hdr = self.next?;
        // SAFETY: a segment's `next` is null or a live segment of the same packet, which the
        // borrow of the head keeps alive and unchanged.
        self.next = unsafe { hdr.next.as_ref() };
        Some(Segment { hdr })
    }
}

/// Gives every segment from `head` on back to its own pool, each with `next` null and
/// `nb_segs` 1, as a pool keeps its buffers.
///
/// # Safety
/// `head` is a packet's head that the caller owns, with every segment it reaches, and gives up.
#[cold]
#[inline(never)]
pub(super) unsafe fn free_segments(head: NonNull<MbufHeader>) {
    let mut seg = head.as_ptr();
    while !seg.is_null() {
        // SAFETY: the caller owns every segment; each is read and reset once, then released.
        unsafe {
            let next = (*seg).next;
            (*seg).next = std::ptr::null_mut();
            (*seg).nb_segs = 1;
            mempool::put_one((*seg).pool, NonNull::new_unchecked(seg).cast());
            seg = next;
        }
    }
}

impl PacketBuf {
    /// The packet's segments, first to last.
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments { next: Some(self.h()) }
    }

    /// The last segment's header.
    fn last_seg(&mut self) -> *mut MbufHeader {
        let mut seg = self.hdr.as_ptr();
        // SAFETY: every `next` of a packet we own is null or a live segment of it.
        unsafe {
            while !(*seg).next.is_null() {
                seg = (*seg).next;
            }
        }
        seg
    }

    /// Appends the packet `tail` (all its segments) to this one (`rte_pktmbuf_chain`): the
    /// lengths and segment counts add up, `tail`'s metadata is dropped. Refused, with `tail`
    /// handed back unchanged, when the counts would overflow.
    pub fn chain(&mut self, tail: PacketBuf) -> Result<(), (PacketBuf, ChainError)> {
        let (have, more) = (self.nb_segs(), tail.nb_segs());
        if have.checked_add(more).is_none() {
            return Err((tail, ChainError::TooManySegments { have, more, max: u16::MAX }));
        }
        let (bytes, add) = (self.pkt_len(), tail.pkt_len());
        if bytes.checked_add(add).is_none() {
            return Err((tail, ChainError::TooLong { have: bytes, more: add, max: u32::MAX }));
        }
        let last = self.last_seg();
        let tail = tail.into_raw();
        // SAFETY: `last` is our last segment; `tail` is a packet we now own, whose segments
        // become ours.
        unsafe { (*last).next = tail.as_ptr() };
        let h = self.h_mut();
        h.nb_segs = have + more;
        h.pkt_len = bytes + add;
        Ok(())
    }

    /// Grows the packet at its end by `n` bytes, in the last segment's tailroom, and returns
    /// them (`rte_pktmbuf_append`); `None` (and no change) when that segment has no room.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let pkt_len = self.pkt_len();
        let last = self.last_seg();
        // SAFETY: `last` is a live segment of this packet, which `&mut self` holds exclusively.
        // The reference ends before the head's header is borrowed again below: for a
        // one-segment packet the two are the same header, and two live `&mut` to it would be
        // undefined behaviour.
        let (base, start) = unsafe {
            let l = &mut *last;
            let room = usize::from(l.buf_len) - usize::from(l.data_off) - usize::from(l.data_len);
            if n > room || pkt_len.checked_add(n as u32).is_none() {
                return None;
            }
            let start = usize::from(l.data_off) + usize::from(l.data_len);
            l.data_len += n as u16;
            (l.buf_addr, start)
        };
        self.h_mut().pkt_len += n as u32;
        // SAFETY: `start + n <= buf_len` (checked against the room), inside the last segment's
        // buffer, which this packet owns.
        Some(unsafe { std::slice::from_raw_parts_mut(base.add(start), n) })
    }

    /// Grows the packet at its front by `n` bytes, in the first segment's headroom, and returns
    /// them (`rte_pktmbuf_prepend`); `None` (and no change) when the headroom is too small.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.h_mut();
        if n > usize::from(h.data_off) || usize::from(h.data_len) + n > usize::from(u16::MAX) {
            return None;
        }
        h.pkt_len = h.pkt_len.checked_add(n as u32)?;
        h.data_off -= n as u16;
        h.data_len += n as u16;
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the packet's front (`rte_pktmbuf_adj`, across segments): a
    /// segment emptied this way is freed and the next becomes the first, taking the packet's
    /// metadata with it. Returns the first segment's data after the cut; `None` (and no change)
    /// when the packet is shorter than `n`.
    pub fn adj(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.pkt_len() as usize {
            return None;
        }
        let mut left = n;
        loop {
            let h = self.h_mut();
            let here = usize::from(h.data_len);
            if left < here || h.next.is_null() {
                // The cut ends in this segment (the last one may be emptied, never freed).
                let cut = left.min(here);
                h.data_off += cut as u16;
                h.data_len -= cut as u16;
                h.pkt_len -= cut as u32;
                break;
            }
            // The whole first segment goes: the next one becomes the head.
            left -= here;
            self.drop_first_segment();
        }
        Some(self.data_mut())
    }

    /// Frees the first segment of a chain (it has a next) and makes the next one the head,
    /// with the packet's metadata and counts.
    fn drop_first_segment(&mut self) {
        let old = self.hdr;
        // SAFETY: the head has a next segment (the caller checked), which we own; the old head
        // is released once its metadata has been copied.
        unsafe {
            let o = &mut *old.as_ptr();
            let n = &mut *o.next;
            n.pkt_len = o.pkt_len - u32::from(o.data_len);
            n.nb_segs = o.nb_segs - 1;
            n.port = o.port;
            n.ol_flags = o.ol_flags;
            n.vlan_tci = o.vlan_tci;
            n.vlan_tci_outer = o.vlan_tci_outer;
            n.rss_hash = o.rss_hash;
            n.packet_type = o.packet_type;
            n.tx_offload = o.tx_offload;
            self.hdr = NonNull::new_unchecked(o.next);
            o.next = std::ptr::null_mut();
            o.nb_segs = 1;
            mempool::put_one(o.pool, old.cast());
        }
    }

    /// Removes `n` bytes from the packet's end (`rte_pktmbuf_trim`, across segments): segments
    /// left empty after the cut are freed, except the first. False (and no change) when the
    /// packet is shorter than `n`.
    pub fn trim(&mut self, n: usize) -> bool {
        let pkt_len = self.pkt_len() as usize;
        if n > pkt_len {
            return false;
        }
        let mut keep = pkt_len - n;
        let mut seg = self.hdr.as_ptr();
        // SAFETY: we walk and change segments of a packet `&mut self` holds exclusively; the
        // segments after the cut are detached before they are freed.
        unsafe {
            let mut kept_segs = 1u16;
            while keep > usize::from((*seg).data_len) && !(*seg).next.is_null() {
                keep -= usize::from((*seg).data_len);
                seg = (*seg).next;
                kept_segs += 1;
            }
            (*seg).data_len = keep.min(usize::from((*seg).data_len)) as u16;
            let rest = (*seg).next;
            (*seg).next = std::ptr::null_mut();
            if let Some(rest) = NonNull::new(rest) {
                free_segments(rest);
            }
            let h = self.h_mut();
            h.nb_segs = kept_segs;
            h.pkt_len = (pkt_len - n) as u32;
        }
        true
    }

    /// Frees every segment after the first: the packet becomes its first segment's data.
    #[inline(always)]
    fn free_tail(&mut self) {
        if !self.is_contiguous() {
            self.free_tail_slow();
        }
    }

    /// The chain part of [`PacketBuf::free_tail`], out of line so that the one-segment case
    /// (every RX buffer a driver fills) stays a load and a branch.
    #[cold]
    #[inline(never)]
    fn free_tail_slow(&mut self) {
        let h = self.h_mut();
        if let Some(rest) = NonNull::new(h.next) {
            h.next = std::ptr::null_mut();
            h.nb_segs = 1;
            // SAFETY: the detached segments were this packet's; nothing else holds them.
            unsafe { free_segments(rest) };
        }
    }

    /// Makes the packet one segment of `len` bytes from its data offset (a driver does this on
    /// RX), clamped to the buffer: a device-written length is untrusted. A chain's other
    /// segments are freed. Returns the length set.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> usize {
        self.free_tail();
        let h = self.h_mut();
        let room = usize::from(h.buf_len) - usize::from(h.data_off);
        let len = len.min(room);
        h.data_len = len as u16;
        h.pkt_len = len as u32;
        len
    }

    /// Sets this segment's length only (a driver assembling a chain on RX, before
    /// [`ChainBuilder::push`]), clamped to the buffer; the packet's length follows for a
    /// one-segment packet. Returns the length set.
    #[inline]
    pub fn set_data_len(&mut self, len: usize) -> usize {
        let h = self.h_mut();
        let room = usize::from(h.buf_len) - usize::from(h.data_off);
        let len = len.min(room);
        let old = u32::from(h.data_len);
        h.data_len = len as u16;
        h.pkt_len = h.pkt_len - old + len as u32;
        len
    }

    /// Makes the packet one segment of `len` bytes starting `data_off` bytes into the buffer (a
    /// driver whose device chose where in the buffer a frame lands, as AF_XDP's kernel does).
    /// A device-written offset and length are untrusted: false, and no change, unless both lie
    /// inside the buffer. A chain's other segments are freed.
    pub fn set_data_at(&mut self, data_off: usize, len: usize) -> bool {
        let buf_len = usize::from(self.h().buf_len);
        if data_off > buf_len || len > buf_len - data_off {
            return false;
        }
        self.free_tail();
        let h = self.h_mut();
        h.data_off = data_off as u16;
        h.data_len = len as u16;
        h.pkt_len = len as u32;
        true
    }

    /// Copies `bytes` in as the whole packet, one segment (a chain's others are freed); false,
    /// and no change, if they do not fit the first buffer.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        let h = self.h();
        if bytes.len() > usize::from(h.buf_len) - usize::from(h.data_off) {
            return false;
        }
        self.set_len(bytes.len());
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// Copies a chain into its first buffer and frees the other segments
    /// (`rte_pktmbuf_linearize`), so that [`PacketBuf::data`] is the whole packet. Refused, with
    /// nothing changed, when the packet does not fit the first buffer from its data offset on.
    pub fn linearize(&mut self) -> Result<(), ChainError> {
        if self.is_contiguous() {
            return Ok(());
        }
        let h = self.h();
        let room = usize::from(h.buf_len) - usize::from(h.data_off);
        let pkt_len = h.pkt_len;
        if pkt_len as usize > room {
            return Err(ChainError::DoesNotFit { pkt_len, nb_segs: h.nb_segs, room });
        }
        let mut at = usize::from(h.data_len);
        let (base, first) = (h.buf_addr, usize::from(h.data_off));
        let mut seg = h.next;
        // SAFETY: every segment after the first is ours and readable; the copies land in the
        // first buffer between its data's end and `data_off + pkt_len <= buf_len`, a place no
        // segment's data is in (segments are distinct buffers).
        unsafe {
            while !seg.is_null() {
                let s = &*seg;
                let n = usize::from(s.data_len);
                std::ptr::copy_nonoverlapping(s.buf_addr.add(usize::from(s.data_off)), base.add(first + at), n);
                at += n;
                seg = s.next;
            }
        }
        debug_assert_eq!(at, pkt_len as usize);
        self.free_tail();
        let h = self.h_mut();
        h.data_len = pkt_len as u16;
        h.pkt_len = pkt_len;
        Ok(())
    }

    /// `out.len()` bytes of the packet from byte `off` (`rte_pktmbuf_read`): a slice of the
    /// segment that holds them all, or `out` with them copied in from as many segments as they
    /// span. `None` when the packet is shorter than `off + out.len()`.
    pub fn read<'a>(&'a self, off: usize, out: &'a mut [u8]) -> Option<&'a [u8]> {
        let n = out.len();
        if off.checked_add(n)? > self.pkt_len() as usize {
            return None;
        }
        let (mut start, mut got) = (0usize, 0usize);
        for s in self.segments() {
            let end = start + s.len();
            if end <= off + got || n == got {
                start = end;
                continue;
            }
            // Where in this segment the bytes still wanted begin.
            let from = off + got - start;
            if got == 0 && from + n <= s.len() {
                return Some(&s.data()[from..from + n]);
            }
            let take = (n - got).min(s.len() - from);
            out[got..got + take].copy_from_slice(&s.data()[from..from + take]);
            got += take;
            start = end;
        }
        (got == n).then_some(&*out)
    }
}

/// A packet being assembled from segments, in O(1) per segment (a driver's RX path across
/// descriptors, and across bursts when a frame's end has not arrived yet). Dropping it frees
/// what it holds.
#[derive(Default)]
pub struct ChainBuilder {
    head: Option<PacketBuf>,
    last: Option<NonNull<MbufHeader>>,
}

// SAFETY: `last` points into the chain `head` owns; moving the builder moves both together, and
// only `&mut self` methods touch the segments.
unsafe impl Send for ChainBuilder {}

impl ChainBuilder {
    /// An empty builder.
    pub fn new() -> ChainBuilder {
        ChainBuilder::default()
    }

    /// Whether no segment is held.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Segments held.
    pub fn nb_segs(&self) -> u16 {
        self.head.as_ref().map_or(0, PacketBuf::nb_segs)
    }

    /// Bytes held.
    pub fn pkt_len(&self) -> u32 {
        self.head.as_ref().map_or(0, PacketBuf::pkt_len)
    }

    /// Appends the one-segment packet `seg` (its `data_len` bytes). The first segment pushed
    /// is the head whose metadata the packet keeps. Refused, with `seg` handed back, when the
    /// packet would have too many segments or bytes, or `seg` is a chain.
    pub fn push(&mut self, seg: PacketBuf) -> Result<(), (PacketBuf, ChainError)> {
        if !seg.is_contiguous() {
            let more = seg.nb_segs();
            return Err((seg, ChainError::TooManySegments { have: self.nb_segs(), more, max: 1 }));
        }
        let Some(head) = self.head.as_mut() else {
            self.last = Some(seg.hdr);
            self.head = Some(seg);
            return Ok(());
        };
        let have = head.nb_segs();
        if have == u16::MAX {
            return Err((seg, ChainError::TooManySegments { have, more: 1, max: u16::MAX }));
        }
        let add = u32::from(seg.h().data_len);
        let Some(total) = head.pkt_len().checked_add(add) else {
            return Err((seg, ChainError::TooLong { have: head.pkt_len(), more: add, max: u32::MAX }));
        };
        let seg = seg.into_raw();
        let last = self.last.unwrap_or(head.hdr);
        // SAFETY: `last` is the chain's last segment, owned through `head`; `seg` is now ours.
        unsafe { (*last.as_ptr()).next = seg.as_ptr() };
        let h = head.h_mut();
        h.nb_segs = have + 1;
        h.pkt_len = total;
        self.last = Some(seg);
        Ok(())
    }

    /// The packet assembled so far, leaving the builder empty.
    pub fn take(&mut self) -> Option<PacketBuf> {
        self.last = None;
        self.head.take()
    }
}

impl std::fmt::Debug for ChainBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainBuilder").field("nb_segs", &self.nb_segs()).field("pkt_len", &self.pkt_len()).finish()
    }
}
