//! Transmit: one descriptor per buffer, one TDT write per burst, and completed descriptors
//! reclaimed in batches by checking only the DD bit of a batch's last descriptor (the device
//! completes descriptors in order, SDM 3.3.1), as ixy does. Every descriptor has RS, so that
//! any of them can end a batch.
//!
//! A one-segment packet with no offload request is one legacy descriptor (3.3.3) with
//! EOP|IFCS|RS: the path every packet takes on a queue without TX offloads. The rest ([`plan`])
//! take one descriptor per non-empty segment, EOP on the last (3.3.3.1); a packet that asks for
//! a checksum or TCP segmentation goes in TCP/IP data descriptors (3.3.7, DEXT, POPTS IXSM and
//! TXSM, TSE) after a TCP/IP context descriptor (3.3.6) that says where the checksums start, go
//! and end and how to segment (3.5). The device keeps the last context for the packets after
//! it, so a context is written only when the parameters change (as DPDK's em caches its one
//! context). A VLAN tag to insert is VLE and the `special` field (3.3.3, with CTRL.VME).
//!
//! A packet's buffers are freed only when its last descriptor is done: the packet (its head,
//! which owns every segment) is kept in the slot of its last descriptor; the others hold nothing.
//!
//! Ring ownership: descriptors `clean .. tail` (wrapping) are in flight; at most `n - 1` are, since
//! TDH == TDT means "nothing to send". Only in-flight descriptors are ever read back.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst, TxFault, TxOffloads, TxPrepareError};
use burst_mem::{OlFlags, PacketBuf, PacketPool, TxL4};
use burst_pci::Bar;

use crate::desc::{TxContext, TxDesc};
use crate::regs::{
    TDT, TXC_MAX_PAYLEN, TXC_TUCMD_IP, TXC_TUCMD_TCP, TXD_CMD_EOP, TXD_CMD_IFCS, TXD_CMD_RS, TXD_CMD_TSE, TXD_CMD_VLE,
    TXD_MAX_LEN, TXD_POPTS_IXSM, TXD_POPTS_TXSM, TXD_STAT_DD,
};
use crate::ring::{distance, free_slots, wrap_add, DescRing, Doorbell};

/// The command byte of a one-buffer frame: end of packet, CRC added by the device, DD written
/// back.
const CMD: u8 = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;

/// Descriptors reclaimed at a time (ixy's `TX_CLEAN_BATCH`).
const CLEAN_BATCH: u16 = 32;

/// The TX flags this driver acts on: what takes a packet off the one-descriptor path.
const OFFLOAD_FLAGS: OlFlags =
    OlFlags::TX_IP_CKSUM.union(OlFlags::TX_L4_MASK).union(OlFlags::TX_TCP_SEG).union(OlFlags::TX_VLAN);

/// The TX offloads that make a queue read its packets' flags.
const FLAG_OFFLOADS: TxOffloads = TxOffloads::IPV4_CKSUM
    .union(TxOffloads::UDP_CKSUM)
    .union(TxOffloads::TCP_CKSUM)
    .union(TxOffloads::TCP_TSO)
    .union(TxOffloads::VLAN_INSERT);

/// How one packet goes out ([`plan`]): its descriptors and what they say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxPlan {
    /// The context its checksums or segmentation need.
    pub context: Option<TxContext>,
    /// The command of each data descriptor (EOP is added on the last).
    pub cmd: u8,
    /// POPTS of each data descriptor (extended ones only).
    pub popts: u8,
    /// The VLAN tag to insert (with VLE in `cmd`).
    pub special: u16,
    /// Non-empty segments: one data descriptor each.
    pub segs: u16,
}

/// A device limit `value` is outside of.
fn limit(what: &'static str, value: usize, min: usize, max: usize) -> TxFault {
    TxFault::DeviceLimit { what, value, min, max }
}

/// Checks `value` against `min..=max`.
fn within(what: &'static str, value: usize, min: usize, max: usize) -> Result<(), TxFault> {
    if value < min || value > max {
        return Err(limit(what, value, min, max));
    }
    Ok(())
}

/// How `buf` goes out, its TX flags read when `offloads` is on: the descriptors it takes and
/// the context it needs; or why the device cannot send it. Every length the device would be
/// given is checked here against what its fields hold (SDM 3.3.3, 3.3.6, 3.3.7): a segment at
/// most [`TXD_MAX_LEN`] bytes, a frame at most that too unless segmented, the context's byte
/// offsets in 8 bits, a segmented payload in PAYLEN's 20 bits, each segment's frame in
/// [`TXD_MAX_LEN`].
pub(crate) fn plan(buf: &PacketBuf, offloads: bool) -> Result<TxPlan, TxFault> {
    let flags = if offloads {
        buf.ol_flags() & OFFLOAD_FLAGS.union(OlFlags::TX_IPV4 | OlFlags::TX_IPV6)
    } else {
        OlFlags::empty()
    };
    let mut segs = 0u16;
    for s in buf.segments() {
        within("segment length", s.len(), 0, TXD_MAX_LEN)?;
        segs = segs.saturating_add(u16::from(!s.is_empty()));
    }
    let pkt_len = buf.pkt_len() as usize;
    let tso = flags.contains(OlFlags::TX_TCP_SEG);
    if !tso {
        within("length", pkt_len, 1, TXD_MAX_LEN)?;
    }
    let mut cmd = TXD_CMD_IFCS | TXD_CMD_RS;
    let mut special = 0;
    if flags.contains(OlFlags::TX_VLAN) {
        cmd |= TXD_CMD_VLE;
        special = buf.vlan_tci();
    }
    let ip_cksum = flags.contains(OlFlags::TX_IP_CKSUM);
    let l4 = flags.tx_l4();
    if !tso && !ip_cksum && l4 == TxL4::None {
        return Ok(TxPlan { context: None, cmd, popts: 0, special, segs });
    }
    let (v4, v6) = (flags.contains(OlFlags::TX_IPV4), flags.contains(OlFlags::TX_IPV6));
    if v4 == v6 {
        return Err(TxFault::NoL3Type);
    }
    let t = buf.tx_offload();
    let (l2, l3) = (usize::from(t.l2_len), usize::from(t.l3_len));
    if l2 == 0 || l3 == 0 || (tso && t.l4_len == 0) {
        return Err(TxFault::Lengths { l2_len: t.l2_len, l3_len: t.l3_len, l4_len: t.l4_len });
    }
    let l4_cksum_at = match l4 {
        _ if tso => 16,
        TxL4::Tcp => 16,
        TxL4::Udp => 6,
        TxL4::None => 0,
        TxL4::Sctp => {
            return Err(TxFault::OffloadOff { flag: "tx_sctp_cksum", offload: TxOffloads::SCTP_CKSUM });
        }
    };
    // IPCSO and TUCSO are 8-bit offsets from the frame's start.
    within("IPv4 checksum offset (l2_len + 10)", l2 + 10, 0, 255)?;
    within("L4 checksum offset (l2_len + l3_len + 16 for TCP, 6 for UDP)", l2 + l3 + l4_cksum_at, 0, 255)?;
    // TSO redoes the IPv4 header checksum of every segment.
    let ip_sum = v4 && (ip_cksum || tso);
    let mut ctx = TxContext {
        ipcss: l2 as u8,
        ipcso: if v4 { (l2 + 10) as u8 } else { 0 },
        ipcse: if ip_sum { (l2 + l3 - 1) as u16 } else { 0 },
        tucss: (l2 + l3) as u8,
        tucso: if l4_cksum_at == 0 { 0 } else { (l2 + l3 + l4_cksum_at) as u8 },
        tucse: 0,
        tucmd: if v4 { TXC_TUCMD_IP } else { 0 } | if l4 == TxL4::Tcp || tso { TXC_TUCMD_TCP } else { 0 },
        ..TxContext::default()
    };
    let mut popts = if ip_sum { TXD_POPTS_IXSM } else { 0 };
    if l4_cksum_at != 0 {
        popts |= TXD_POPTS_TXSM;
    }
    if tso {
        let hdrlen = l2 + l3 + usize::from(t.l4_len);
        let mss = usize::from(t.tso_segsz);
        if mss == 0 {
            return Err(TxFault::NoSegmentSize);
        }
        within("header length (l2_len + l3_len + l4_len)", hdrlen, 1, 255)?;
        within("TCP payload to segment", pkt_len.saturating_sub(hdrlen), 1, TXC_MAX_PAYLEN)?;
        within("segment frame length (headers + tso_segsz)", hdrlen + mss, 1, TXD_MAX_LEN)?;
        ctx.tucmd |= TXD_CMD_TSE;
        ctx.paylen = (pkt_len - hdrlen) as u32;
        ctx.hdrlen = hdrlen as u8;
        ctx.mss = mss as u16;
        cmd |= TXD_CMD_TSE;
    }
    Ok(TxPlan { context: Some(ctx), cmd, popts, special, segs })
}

/// What became of a packet the one-descriptor path did not take.
enum Post {
    /// Its descriptors are written.
    Sent,
    /// The device cannot send it: freed, to be counted.
    Dropped,
    /// It needs more descriptors than are free now: handed back.
    NoRoom(PacketBuf),
}

/// A TX queue's state.
pub(crate) struct TxRing {
    ring: DescRing<TxDesc>,
    /// The packet whose last descriptor each slot is.
    bufs: Vec<Option<PacketBuf>>,
    /// Next descriptor to fill (TDT as last written).
    tail: u16,
    /// Oldest descriptor not yet reclaimed.
    clean: u16,
    /// Descriptors reclaimed at a time: [`CLEAN_BATCH`], or less on a small ring.
    batch: u16,
    /// Reclaimed buffers on their way back to the pool (capacity `batch`, kept).
    done: Vec<PacketBuf>,
    /// Checksum, segmentation or VLAN insertion is on: packets' TX flags are read.
    offloads: bool,
    /// The context the device holds: the last one written since the queue started.
    context: Option<TxContext>,
    /// Packets taken from a burst that did not fit after all, on their way back to the caller
    /// (capacity: the ring's length, kept).
    spill: Vec<PacketBuf>,
    /// The port's counters for this queue: packets the device cannot send (`errors`).
    counters: Arc<QueueCounters>,
}

impl TxRing {
    /// A stopped queue on `ring` with `offloads` on, counting into `counters`.
    pub(crate) fn new(ring: DescRing<TxDesc>, offloads: TxOffloads, counters: Arc<QueueCounters>) -> TxRing {
        let n = ring.len();
        let batch = CLEAN_BATCH.min(n / 4).max(1);
        TxRing {
            bufs: (0..n).map(|_| None).collect(),
            ring,
            tail: 0,
            clean: 0,
            batch,
            done: Vec::with_capacity(usize::from(batch)),
            offloads: offloads.intersects(FLAG_OFFLOADS),
            context: None,
            spill: Vec::with_capacity(usize::from(n)),
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

    /// Gives every buffer back and zeroes the ring; TDH = TDT = 0 afterwards, and the next
    /// offload request writes its context anew. The device must be quiet (TCTL.EN clear).
    pub(crate) fn release(&mut self) {
        self.ring.zero();
        free_slots(&mut self.bufs);
        self.tail = 0;
        self.clean = 0;
        self.context = None;
    }

    /// Frees the buffers of whole batches the device is done with.
    #[inline(always)]
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
        if self.offloads {
            self.burst_as::<true>(bar, bufs)
        } else {
            self.burst_as::<false>(bar, bufs)
        }
    }

    /// The burst, compiled with or without a look at each packet's TX flags. Packets that
    /// take one legacy descriptor go through a loop with no call in it; from the first that
    /// does not (or that the device cannot send), the rest of the burst is
    /// [`TxRing::post_rest`]'s.
    #[inline(always)]
    fn burst_as<const OFFLOADS: bool>(&mut self, bar: &impl Doorbell, bufs: &mut Vec<PacketBuf>) -> usize {
        self.reclaim();
        let n = self.ring.len();
        let room = n - 1 - self.in_flight();
        // At most one packet per free descriptor; a packet that takes more gives back from the
        // end what no longer fits.
        let take = usize::from(room).min(bufs.len());
        if take == 0 {
            return 0;
        }
        let mut dropped = 0u64;
        let mut tail = self.tail;
        let mut drain = bufs.drain(..take);
        let other = loop {
            let Some(buf) = drain.next() else { break None };
            let len = buf.len();
            // 1 to TXD_MAX_LEN bytes in one segment, nothing asked: one legacy descriptor.
            if len.wrapping_sub(1) >= TXD_MAX_LEN
                || !buf.is_contiguous()
                || (OFFLOADS && buf.ol_flags().intersects(OFFLOAD_FLAGS))
            {
                break Some(buf);
            }
            let desc = self.ring.desc(tail);
            desc.set_buffer(buf.data_iova());
            desc.set_command(len as u16, CMD, 0);
            self.bufs[usize::from(tail)] = Some(buf);
            tail = wrap_add(tail, 1, n);
        };
        let mut from_end = 0;
        if let Some(buf) = other {
            let left = room - distance(self.tail, tail, n);
            let (d, e) = self.post_rest(buf, &mut drain, OFFLOADS, &mut tail, left);
            dropped += d;
            from_end = e;
        }
        drop(drain);
        let spilled = self.spill.len();
        if spilled > 0 {
            self.give_back(bufs, from_end);
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
        take - spilled
    }

    /// The rest of a burst from `first`, a packet the one-descriptor loop did not take, on:
    /// each packet posted ([`TxRing::post`]) or dropped, until one does not fit in the `left`
    /// descriptors free; it and those after it go to `spill`, as do, from the end, those that
    /// would no longer have a descriptor each. Returns the packets dropped and how many went to
    /// `spill` from the end.
    #[cold]
    #[inline(never)]
    fn post_rest(
        &mut self,
        first: PacketBuf,
        drain: &mut std::vec::Drain<'_, PacketBuf>,
        offloads: bool,
        tail: &mut u16,
        left: u16,
    ) -> (u64, usize) {
        let n = self.ring.len();
        let (mut dropped, mut from_end) = (0u64, 0usize);
        let start = *tail;
        let mut next = Some(first);
        // Descriptors still free with the tail at `t`.
        let free = |t: u16| left - distance(start, t, n);
        while let Some(buf) = next.take() {
            match self.post(buf, offloads, tail, free(*tail)) {
                Post::Sent => {}
                Post::Dropped => dropped += 1,
                Post::NoRoom(buf) => {
                    // This one and every one after it go back, in order.
                    self.spill.push(buf);
                    self.spill.extend(drain.by_ref());
                    break;
                }
            }
            // Whatever is left of the burst must still fit one descriptor each.
            while drain.len() > usize::from(free(*tail)) {
                if let Some(b) = drain.next_back() {
                    self.spill.push(b);
                    from_end += 1;
                }
            }
            next = drain.next();
        }
        (dropped, from_end)
    }

    /// Puts the packets in `spill` back at the front of `bufs`, in their order: the first
    /// `from_end` were taken from the end of the burst, last first; the rest, in order, from
    /// where the burst stopped. No allocation: `bufs` held them all a moment ago.
    #[cold]
    fn give_back(&mut self, bufs: &mut Vec<PacketBuf>, from_end: usize) {
        self.spill[..from_end].reverse();
        self.spill.rotate_left(from_end);
        let k = self.spill.len();
        bufs.append(&mut self.spill);
        bufs.rotate_right(k);
    }

    /// Writes the descriptors of a packet the one-descriptor path does not take ([`plan`]),
    /// from `tail` on, with `left` descriptors free.
    #[inline(never)]
    fn post(&mut self, buf: PacketBuf, offloads: bool, tail: &mut u16, left: u16) -> Post {
        let Ok(plan) = plan(&buf, offloads) else { return Post::Dropped };
        let n = self.ring.len();
        let context = plan.context.filter(|c| self.context != Some(*c));
        let need = usize::from(plan.segs) + usize::from(context.is_some());
        if need > usize::from(n - 1) {
            // More descriptors than the ring ever has free.
            return Post::Dropped;
        }
        if need > usize::from(left) {
            return Post::NoRoom(buf);
        }
        let mut t = *tail;
        if let Some(c) = context {
            self.ring.desc(t).set_context(&c);
            self.context = Some(c);
            t = wrap_add(t, 1, n);
        }
        let mut last = t;
        for (k, seg) in buf.segments().filter(|s| !s.is_empty()).enumerate() {
            let cmd = if k + 1 == usize::from(plan.segs) { plan.cmd | TXD_CMD_EOP } else { plan.cmd };
            let desc = self.ring.desc(t);
            // Segments are at most TXD_MAX_LEN bytes (`plan` checked).
            let len = seg.len() as u16;
            if plan.context.is_some() {
                desc.set_data(seg.data_iova(), len, cmd, plan.popts, plan.special);
            } else {
                desc.set_buffer(seg.data_iova());
                desc.set_command(len, cmd, plan.special);
            }
            last = t;
            t = wrap_add(t, 1, n);
        }
        self.bufs[usize::from(last)] = Some(buf);
        *tail = t;
        Post::Sent
    }

    /// `tx_prepare` for this device: the device's limits ([`plan`]) checked before the packet
    /// is changed, then the default fix-up, which leaves what SDM 3.3.6 asks: the IPv4 header
    /// checksum zeroed (the device sums the header and stores the sum at IPCSO) and the
    /// pseudo-header's sum in the TCP/UDP checksum field (the device sums from TUCSS on, the
    /// field included), without the length for TSO (the device adds each segment's, 3.5).
    pub(crate) fn prepare(&self, bufs: &mut [PacketBuf]) -> Result<(), TxPrepareError> {
        for (index, buf) in bufs.iter_mut().enumerate() {
            let err = |fault| TxPrepareError { index, fault };
            let plan = plan(buf, self.offloads).map_err(err)?;
            // `post` drops a packet whose descriptors (a context's included) outnumber what the
            // ring ever has free: refused here instead, where the caller still holds it.
            let most = usize::from(self.ring.len() - 1) - usize::from(plan.context.is_some());
            within("segments (a descriptor each)", usize::from(plan.segs), 1, most).map_err(err)?;
            burst_ethdev::prepare::fix_up(buf).map_err(err)?;
            // The device redoes the IPv4 header checksum of every TSO segment (IXSM, its length
            // and identification change), asked or not: the field must start at 0 (DPDK asks
            // the application to set TX_IP_CKSUM with TSO over IPv4; this covers its absence).
            if let Some(c) = plan.context.filter(|c| c.ipcse != 0) {
                let at = usize::from(c.ipcso);
                if let Some(field) = buf.data_mut().get_mut(at..at + 2) {
                    field.fill(0);
                }
            }
        }
        Ok(())
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

    fn tx_prepare(&mut self, bufs: &mut [PacketBuf]) -> Result<(), TxPrepareError> {
        self.ring.prepare(bufs)
    }
}

#[cfg(test)]
mod tests;
