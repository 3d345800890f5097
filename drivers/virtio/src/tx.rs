//! Transmit (virtio 1.2, 5.1.6.2): a net header in front of each frame. With `ANY_LAYOUT` or
//! `VERSION_1` and room in the headroom, the header is written just before the data and one
//! descriptor covers both (DPDK's "can push"); otherwise a two-descriptor chain: the header from
//! this queue's header area (one per descriptor), then the data.
//!
//! The header is zero unless the queue has a checksum or segmentation offload (`CSUM`
//! negotiated): then it carries each packet's requests (`crate::offload`). Either way it is
//! written only where it differs from what the buffer holds already.
//!
//! A chained packet (`TxOffloads::MULTI_SEGS` on the queue; without it a chain is dropped and
//! counted in `oerrors`) is one descriptor chain: the header pushed into the first segment's
//! headroom where it fits, else its own descriptor, then one descriptor per segment holding data
//! (2.7.5, `VRING_DESC_F_NEXT`). Where `RING_INDIRECT_DESC` was negotiated, a chain of more than
//! [`DIRECT_MAX`] descriptors goes indirect (2.7.5.3): one ring descriptor pointing at a table of
//! them in memory this queue owns, one table per descriptor id, so a packet of many segments
//! takes one slot of the ring. A packet of more descriptors than the ring holds (2.7.5.3.1: no
//! chain, indirect table included, is longer than the queue) is dropped and counted; the port's
//! `nb_seg_max` keeps `tx_prepare` from passing one.
//!
//! Bookkeeping: a chain's head id holds the packet in `bufs[head]`, and `next[id]` is the next
//! descriptor of the chain as we wrote it (our own record, never the ring's, which the device
//! can write); the ring's own bookkeeping is the shared [`Virtqueue`]'s. Completed chains are
//! reclaimed lazily, when free descriptors run short, and their buffers freed with one bulk put.
//! Used entries naming no chain in flight are counted, never followed.
//!
//! With `IN_ORDER` (2.7.9) the device uses chains in the order they were made available, so
//! `used.idx` alone says which chains are done: reclaim takes the heads by position, from our
//! own record of the available ring, and never reads the used entries (DPDK's in-order path does
//! the same). The device's cache keeps those lines; reading them would pull each one to this CPU
//! and back, which is what costs most when the device polls from another core.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst, TxPrepareError};
use burst_mem::{Memzone, OlFlags, PacketBuf, PacketPool};

use crate::offload::{self, store_header, NetHdr};
use crate::spec::net_hdr;
use crate::spec::ring::{DESC_SIZE, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT};
use crate::stats::Extra;
use crate::virtqueue::Virtqueue;
use crate::vring::{write_desc, Vring};

/// No next descriptor.
const NONE: u16 = u16::MAX;

/// Reclaim when fewer than this many descriptors would be free after a burst.
const FREE_THRESH: u16 = 32;

/// Entries of an indirect table: the header and 63 segments (1 KiB).
pub(crate) const INDIRECT_ENTRIES: usize = 64;

/// The most segments a packet may have, short of the ring's own limit (`nb_seg_max`).
pub(crate) const TX_SEG_MAX: u16 = INDIRECT_ENTRIES as u16 - 1;

/// A chain of up to this many descriptors stays in the ring, where the device reads it with the
/// others; a longer one goes indirect when it can, leaving the ring's slots to other packets.
pub(crate) const DIRECT_MAX: usize = 4;

/// How a TX queue lays its packets out, from the negotiated features and the queue's offloads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxLayout {
    /// Net header bytes.
    pub hdr_len: usize,
    /// The header may share the data's descriptor (`ANY_LAYOUT` or `VERSION_1`).
    pub can_push: bool,
    /// `IN_ORDER` was negotiated: reclaim by position, without reading used entries.
    pub in_order: bool,
    /// `TxOffloads::MULTI_SEGS`: chained packets are sent, not dropped.
    pub multi_segs: bool,
    /// `CSUM` is negotiated: headers carry the packets' offload requests.
    pub offload: bool,
}

/// How one chained packet goes out.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Segments holding data: one descriptor each.
    segs: usize,
    /// The header goes in the first segment's headroom.
    push: bool,
    /// Through an indirect table.
    indirect: bool,
}

impl Plan {
    /// Descriptors of the chain (or entries of its table).
    fn entries(self) -> usize {
        self.segs + usize::from(!self.push)
    }

    /// Descriptors it takes from the ring.
    fn ring_descs(self) -> usize {
        if self.indirect {
            1
        } else {
            self.entries()
        }
    }
}

/// A TX queue's state.
pub(crate) struct TxQueue {
    pub(crate) vq: Virtqueue,
    /// `size` headers of `hdr_len` bytes, for the chains whose header has its own descriptor:
    /// all zero, or (with `offload`) written per packet.
    hdrs: Memzone,
    /// One indirect table of [`INDIRECT_ENTRIES`] per descriptor id, when chains may go
    /// indirect.
    indirect: Option<Memzone>,
    bufs: Vec<Option<PacketBuf>>,
    /// The next descriptor of each chain, as we wrote it; [`NONE`] for the last.
    next: Vec<u16>,
    done: Vec<PacketBuf>,
    /// A chained packet's descriptors (address, length) before they are written: room for a
    /// ring's worth, so sending one allocates nothing.
    pieces: Vec<(u64, u32)>,
    hdr_len: u32,
    can_push: bool,
    in_order: bool,
    multi_segs: bool,
    pub(crate) offload: bool,
    free_thresh: u16,
    /// Base address of `hdrs` as descriptors carry it (IOVA or VA).
    hdr_base: u64,
    /// Base address of `indirect` as descriptors carry it.
    ind_base: u64,
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
    /// headers and, for indirect chains, `indirect` (`size` tables of [`INDIRECT_ENTRIES`]).
    pub(crate) fn new(
        vq: Vring,
        hdrs: Memzone,
        indirect: Option<Memzone>,
        layout: TxLayout,
        counters: Arc<QueueCounters>,
    ) -> TxQueue {
        let n = usize::from(vq.size());
        assert!(hdrs.len() >= n * layout.hdr_len, "the header area holds one header per descriptor");
        assert!(
            indirect.as_ref().is_none_or(|z| z.len() >= n * INDIRECT_ENTRIES * DESC_SIZE),
            "one indirect table per descriptor"
        );
        // SAFETY: the memzone is ours, `hdrs.len()` bytes, and no device knows it yet.
        unsafe { std::ptr::write_bytes(hdrs.as_ptr(), 0, hdrs.len()) };
        let mut q = TxQueue {
            bufs: (0..n).map(|_| None).collect(),
            next: vec![NONE; n],
            done: Vec::with_capacity(n),
            pieces: Vec::with_capacity(n),
            hdr_len: layout.hdr_len as u32,
            can_push: layout.can_push,
            in_order: layout.in_order,
            multi_segs: layout.multi_segs,
            offload: layout.offload,
            free_thresh: FREE_THRESH.min(vq.size() / 4).max(1),
            hdr_base: 0,
            ind_base: 0,
            va: false,
            counters,
            extra: Arc::default(),
            hdrs,
            indirect,
            vq: Virtqueue::new(vq),
        };
        q.release();
        q
    }

    /// Takes every buffer back and clears the ring (the device must be reset); sets the header
    /// area's and the tables' addresses for [`TxQueue::va`].
    pub(crate) fn release(&mut self) {
        self.vq.reset();
        let mut bufs: Vec<PacketBuf> = self.bufs.iter_mut().filter_map(Option::take).collect();
        PacketPool::free_bulk(&mut bufs);
        self.next.fill(NONE);
        self.hdr_base = if self.va { self.hdrs.as_ptr() as u64 } else { self.hdrs.iova() };
        self.ind_base = match &self.indirect {
            Some(z) if self.va => z.as_ptr() as u64,
            Some(z) => z.iova(),
            None => 0,
        };
    }

    /// Frees the buffers of every chain the device has used. `MS`: chains may be longer than
    /// two descriptors (`MULTI_SEGS`); without it the loop is what it was before chains (a call
    /// in it, even a cold one, cost 2 instructions a packet in register moves).
    #[inline]
    fn reclaim<const MS: bool>(&mut self) {
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
                    // `id` < size: it named a buffer. The rest of its chain, from our record.
                    let second = std::mem::replace(&mut self.next[id as usize], NONE);
                    if second != NONE {
                        self.vq.free_desc(second);
                        if MS {
                            let third = std::mem::replace(&mut self.next[usize::from(second)], NONE);
                            if third != NONE {
                                self.free_chain(third);
                            }
                        }
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

    /// Gives back descriptor `id` and the rest of its chain, following our own record.
    #[cold]
    #[inline(never)]
    fn free_chain(&mut self, mut id: u16) {
        while id != NONE {
            self.vq.free_desc(id);
            // Our own ids: below the ring's size.
            id = std::mem::replace(&mut self.next[usize::from(id)], NONE);
        }
    }

    /// Descriptors a one-segment packet takes: one when the header can be pushed into its
    /// headroom, two otherwise.
    #[inline(always)]
    fn descs_one(&self, b: &PacketBuf) -> usize {
        if self.can_push && b.headroom() >= net_hdr::LEN_MRG {
            1
        } else {
            2
        }
    }

    /// How many buffers from the front of `bufs` fit in `free` descriptors (chains, which are
    /// dropped here, count as one-segment packets).
    #[inline]
    fn fit(&self, bufs: &[PacketBuf], free: usize) -> usize {
        if !self.can_push {
            return bufs.len().min(free / 2);
        }
        let (mut need, mut take) = (0usize, 0usize);
        for b in bufs {
            let d = self.descs_one(b);
            if need + d > free {
                break;
            }
            need += d;
            take += 1;
        }
        take
    }

    /// [`TxQueue::fit`] with chains sent (`MULTI_SEGS`): each takes its plan's descriptors, or
    /// none when it is dropped.
    #[cold]
    #[inline(never)]
    fn fit_chains(&self, bufs: &[PacketBuf], free: usize) -> usize {
        let (mut need, mut take) = (0usize, 0usize);
        for b in bufs {
            let d = if b.is_contiguous() && !b.is_empty() {
                self.descs_one(b)
            } else {
                self.plan(b).map_or(0, Plan::ring_descs)
            };
            if need + d > free {
                break;
            }
            need += d;
            take += 1;
        }
        take
    }

    /// How `b` goes out as a chain, or `None` when it cannot: empty, or more descriptors than
    /// the ring holds.
    fn plan(&self, b: &PacketBuf) -> Option<Plan> {
        if b.pkt_len() == 0 {
            return None;
        }
        let segs = b.segments().filter(|s| !s.is_empty()).count();
        let push = self.can_push && !b.is_empty() && b.headroom() >= net_hdr::LEN_MRG;
        let mut plan = Plan { segs, push, indirect: false };
        if plan.entries() > usize::from(self.vq.size()) {
            return None;
        }
        plan.indirect = self.indirect.is_some() && plan.entries() > DIRECT_MAX && plan.entries() <= INDIRECT_ENTRIES;
        Some(plan)
    }

    /// Takes what fits from the front of `bufs` (the burst body). `OL`: headers carry the
    /// packets' offload requests. `MS`: chains are sent (`MULTI_SEGS`); without it the loop
    /// over one-segment packets keeps the registers it had before chains existed (a call in it,
    /// even a cold one, cost 4 instructions a packet in spills).
    #[inline]
    pub(crate) fn burst<const VA: bool, const OL: bool, const MS: bool>(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        if bufs.is_empty() || self.vq.is_broken() {
            return 0;
        }
        let per = if self.can_push { 1 } else { 2 };
        if self.vq.free_descs() < bufs.len() * per + usize::from(self.free_thresh) {
            self.reclaim::<MS>();
            if self.vq.is_broken() {
                return 0;
            }
        }
        let take = if MS { self.fit_chains_reclaiming(bufs) } else { self.fit(bufs, self.vq.free_descs()) };
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
                if MS {
                    match self.post_chain::<VA, OL>(buf, slot) {
                        Ok(n) => {
                            slot = slot.wrapping_add(1);
                            sent += 1;
                            bytes += n;
                        }
                        Err(buf) => {
                            // Nothing to send: taken and freed, counted as an error.
                            dropped += 1;
                            self.done.push(buf);
                        }
                    }
                } else {
                    // Nothing to send, or a chain the queue does not take: taken and freed,
                    // counted as an error.
                    dropped += 1;
                    self.done.push(buf);
                }
                continue;
            }
            let base = if VA { buf.buf_addr() as u64 } else { buf.buf_iova() };
            let data = base + u64::from(buf.data_off());
            let head = if self.can_push && buf.headroom() >= net_hdr::LEN_MRG {
                // SAFETY: the 12 bytes before the data are headroom of a buffer we own
                // (`headroom() >= 12`), and the header's `hdr_len` (10 or 12) are the last of them.
                unsafe {
                    let at = buf.buf_addr().add(usize::from(buf.data_off()));
                    if OL {
                        store_header(at.sub(hdr_len as usize), NetHdr::for_tx(&buf), hdr_len as usize);
                    } else {
                        zero_header(at.sub(12));
                    }
                }
                let Some(id) = self.vq.alloc_desc() else { break };
                self.vq.set_desc(id, data - u64::from(hdr_len), len + hdr_len, 0, 0);
                id
            } else {
                let (Some(h), Some(d)) = (self.vq.alloc_desc(), self.vq.alloc_desc()) else { break };
                if OL {
                    // SAFETY: header `h` of the area (`h` < size, `size * hdr_len` bytes), which
                    // the device reads only while chain `h` is in flight, and it is not.
                    unsafe {
                        let p = self.hdrs.as_ptr().add(usize::from(h) * hdr_len as usize);
                        store_header(p, NetHdr::for_tx(&buf), hdr_len as usize);
                    }
                }
                let hdr = self.hdr_base + u64::from(h) * u64::from(hdr_len);
                self.vq.set_desc(h, hdr, hdr_len, VRING_DESC_F_NEXT, d);
                self.vq.set_desc(d, data, len, 0, 0);
                self.next[usize::from(h)] = d;
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

    /// [`TxQueue::fit_chains`], reclaiming first when not everything fits: a chain may need
    /// more descriptors than the burst's first estimate freed.
    #[cold]
    #[inline(never)]
    fn fit_chains_reclaiming(&mut self, bufs: &[PacketBuf]) -> usize {
        let take = self.fit_chains(bufs, self.vq.free_descs());
        if take == bufs.len() {
            return take;
        }
        self.reclaim::<true>();
        if self.vq.is_broken() {
            return 0;
        }
        self.fit_chains(bufs, self.vq.free_descs())
    }

    /// Posts the packet `buf`, a chain or an empty one-segment packet, at available-ring slot
    /// `slot`: its bytes, or the packet back when it cannot go (no `MULTI_SEGS`, empty, or more
    /// descriptors than the ring holds).
    #[cold]
    #[inline(never)]
    fn post_chain<const VA: bool, const OL: bool>(&mut self, buf: PacketBuf, slot: u16) -> Result<u64, PacketBuf> {
        let plan = match self.plan(&buf) {
            Some(p) if p.ring_descs() <= self.vq.free_descs() => p,
            _ => return Err(buf),
        };
        let Some(head) = self.vq.alloc_desc() else { return Err(buf) };
        let hdr_len = self.hdr_len as usize;
        let hdr = if OL { NetHdr::for_tx(&buf) } else { NetHdr::ZERO };
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.clear();
        if plan.push {
            // SAFETY: the first segment has `headroom() >= 12` and is ours; the header is the
            // `hdr_len` bytes just before its data.
            unsafe { store_header(buf.buf_addr().add(usize::from(buf.data_off()) - hdr_len), hdr, hdr_len) };
        } else {
            if OL {
                // SAFETY: header `head` of the area, not in flight (as in `burst`).
                unsafe { store_header(self.hdrs.as_ptr().add(usize::from(head) * hdr_len), hdr, hdr_len) };
            }
            pieces.push((self.hdr_base + u64::from(head) * hdr_len as u64, hdr_len as u32));
        }
        for (i, s) in buf.segments().filter(|s| !s.is_empty()).enumerate() {
            let addr = if VA { s.data_addr() as u64 } else { s.data_iova() };
            if i == 0 && plan.push {
                pieces.push((addr - hdr_len as u64, (s.len() + hdr_len) as u32));
            } else {
                pieces.push((addr, s.len() as u32));
            }
        }
        if plan.indirect {
            self.write_indirect(head, &pieces);
        } else {
            self.write_direct(head, &pieces);
        }
        self.pieces = pieces;
        self.vq.post_at(slot, head);
        let bytes = u64::from(buf.pkt_len());
        self.bufs[usize::from(head)] = Some(buf);
        Ok(bytes)
    }

    /// Writes `pieces` as a chain of ring descriptors from `head` (its others allocated here:
    /// the plan checked there are enough free).
    fn write_direct(&mut self, head: u16, pieces: &[(u64, u32)]) {
        let mut id = head;
        for (k, &(addr, len)) in pieces.iter().enumerate() {
            let next = if k + 1 < pieces.len() { self.vq.alloc_desc() } else { None };
            match next {
                Some(n) => {
                    self.vq.set_desc(id, addr, len, VRING_DESC_F_NEXT, n);
                    self.next[usize::from(id)] = n;
                    id = n;
                }
                None => self.vq.set_desc(id, addr, len, 0, 0),
            }
        }
    }

    /// Writes `pieces` into descriptor `head`'s indirect table and points `head` at it
    /// (2.7.5.3: the table's `next` fields index the table; no entry is itself indirect).
    fn write_indirect(&mut self, head: u16, pieces: &[(u64, u32)]) {
        let Some(zone) = &self.indirect else { return };
        let off = usize::from(head) * INDIRECT_ENTRIES * DESC_SIZE;
        for (k, &(addr, len)) in pieces.iter().enumerate() {
            let (flags, next) = if k + 1 < pieces.len() { (VRING_DESC_F_NEXT, k as u16 + 1) } else { (0, 0) };
            // SAFETY: table `head` (< size) of `size` tables of INDIRECT_ENTRIES, entry k <
            // INDIRECT_ENTRIES (the plan's bound): inside the memzone, 16-byte aligned; the
            // device reads it only while chain `head` is in flight, and it is not yet.
            unsafe { write_desc(zone.as_ptr().add(off + k * DESC_SIZE), addr, len, flags, next) };
        }
        let table = self.ind_base + off as u64;
        self.vq.set_desc(head, table, (pieces.len() * DESC_SIZE) as u32, VRING_DESC_F_INDIRECT, 0);
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
        let q = &mut self.q;
        match (q.va, q.offload, q.multi_segs) {
            (true, false, false) => q.burst::<true, false, false>(bufs),
            (false, false, false) => q.burst::<false, false, false>(bufs),
            (true, true, false) => q.burst::<true, true, false>(bufs),
            (false, true, false) => q.burst::<false, true, false>(bufs),
            (true, false, true) => q.burst::<true, false, true>(bufs),
            (false, false, true) => q.burst::<false, false, true>(bufs),
            (true, true, true) => q.burst::<true, true, true>(bufs),
            (false, true, true) => q.burst::<false, true, true>(bufs),
        }
    }

    /// The default fix-up (the pseudo-header's sum in the L4 checksum field, the IPv4 checksum
    /// zeroed), then, for segmentation, what virtio wants besides ([`offload::tso_fix_up`]).
    fn tx_prepare(&mut self, bufs: &mut [PacketBuf]) -> Result<(), TxPrepareError> {
        for (index, buf) in bufs.iter_mut().enumerate() {
            burst_ethdev::prepare::fix_up(buf)
                .and_then(
                    |()| {
                        if buf.ol_flags().contains(OlFlags::TX_TCP_SEG) {
                            offload::tso_fix_up(buf)
                        } else {
                            Ok(())
                        }
                    },
                )
                .map_err(|fault| TxPrepareError { index, fault })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
