//! Receive: legacy descriptors (SDM 3.2.3) filled with mempool buffers, read back in bursts,
//! one RDT write per burst (SDM 3.2.6: software advances the tail past the descriptors it has
//! re-armed).
//!
//! A frame longer than one buffer fills several descriptors, EOP set on its last (SDM 3.2.3.1).
//! With `RxOffloads::SCATTER` their buffers become one chained packet, assembled in O(1) per
//! segment by a [`ChainBuilder`] that the ring keeps, so a frame may end in a later burst than
//! it began; without it such a frame is dropped whole. With VLAN strip or checksum offloads on,
//! the last descriptor's status, errors and special field become the packet's `ol_flags`,
//! `vlan_tci` and `packet_type` ([`rx_meta`], SDM 3.2.3.1-3.2.3.3). Which of the four is compiled
//! is chosen once per burst: a queue with neither pays for neither.
//!
//! Ring ownership: all `n` descriptors hold a buffer while the queue runs; RDT is the one
//! descriptor the device may not fill, so descriptors `next .. tail` (wrapping) are the device's
//! and the only ones this code reads. A DD bit anywhere else is never looked at, and the one
//! descriptor each tail move hands over is wiped first, so a DD written there early is not either.
//!
//! Write-backs are untrusted: a frame whose descriptors lie (a length of 0 or past the buffer,
//! more bytes than the device's longest frame, EOP never set) or that ends with an error is
//! dropped and counted once (`ierrors` and the xstat `rx_chain_errors`); its buffers go back to
//! the pool or to their descriptors, and the queue reads on from the next descriptor.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, RxOffloads, SlotGuard};
use burst_mem::{ChainBuilder, CksumStatus, OlFlags, PacketBuf, PacketPool};
use burst_net::PacketType;
use burst_pci::Bar;

use crate::desc::RxDesc;
use crate::regs::{
    RDT, RXD_ERR_FRAME, RXD_ERR_IPE, RXD_ERR_TCPE, RXD_STAT_DD, RXD_STAT_EOP, RXD_STAT_IPCS, RXD_STAT_IXSM,
    RXD_STAT_TCPCS, RXD_STAT_VP, RX_MAX_FRAME,
};
use crate::ring::{free_slots, prev, wrap_add, Desc, DescRing, Doorbell};
use crate::stats::{RxCount, RxCounters};

/// What one written-back descriptor means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxVerdict {
    /// A whole, good frame of this many bytes (within the buffer).
    Packet(usize),
    /// A frame to drop and count as an error: error bits, or a length of 0 or past the buffer.
    Bad,
    /// Part of a frame larger than one buffer (EOP clear).
    Partial,
}

/// Judges a descriptor the device marked done, as a frame of its own. Everything in it is
/// untrusted: the length is only believed when it fits the `room` bytes the device was given.
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

/// What a frame's last descriptor says of it (SDM 3.2.3.1-3.2.3.3), as DPDK reports it: a tag
/// the device stripped (VP: `RX_VLAN | RX_VLAN_STRIPPED`, the tag in `special`), and, unless
/// IXSM tells to ignore them, the checksum verdicts: IPCS with IPE for the IPv4 header, TCPCS
/// with TCPE for TCP or UDP. A checksum the device did not check stays unknown. The packet type
/// is known only as far as the device says: IPCS means an IPv4 header it recognised (with or
/// without options); TCPCS alone does not say TCP or UDP, nor IPv4 or IPv6 (3.2.9, table 3-5).
#[inline]
pub(crate) fn rx_meta(status: u8, errors: u8) -> (OlFlags, PacketType) {
    let mut flags = OlFlags::empty();
    let mut ptype = PacketType::UNKNOWN;
    if status & RXD_STAT_VP != 0 {
        flags |= OlFlags::RX_VLAN | OlFlags::RX_VLAN_STRIPPED;
    }
    if status & RXD_STAT_IXSM == 0 {
        let verdict = |bad: bool| if bad { CksumStatus::Bad } else { CksumStatus::Good };
        if status & RXD_STAT_IPCS != 0 {
            flags = flags.with_rx_ip_cksum(verdict(errors & RXD_ERR_IPE != 0));
            ptype = PacketType::L2_ETHER | PacketType::L3_IPV4_EXT_UNKNOWN;
        }
        if status & RXD_STAT_TCPCS != 0 {
            flags = flags.with_rx_l4_cksum(verdict(errors & RXD_ERR_TCPE != 0));
        }
    }
    (flags, ptype)
}

/// What one descriptor of a frame over several did ([`RxRing::segment`]).
enum Step {
    /// It joined the frame being assembled.
    More,
    /// It ended the frame: here is the packet.
    Done(PacketBuf),
    /// The frame is dropped (counted once).
    Dropped,
    /// Its part of the frame was dropped already, or it is the rest of a dropped frame.
    Skipped,
    /// No fresh buffer: the descriptor stays unread, the frame waits for the next burst.
    NoBuffer,
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
    /// Inside a frame being dropped: the rest of it, up to its EOP, is dropped too.
    discarding: bool,
    /// `RxOffloads::SCATTER`: a frame over several descriptors becomes a chain.
    scatter: bool,
    /// VLAN strip or a checksum offload is on: the last descriptor's status becomes metadata.
    meta: bool,
    /// The frame being assembled (with scatter), across bursts.
    chain: ChainBuilder,
    /// The port's counters for this queue: frames dropped (`errors`), failed allocations.
    counters: Arc<QueueCounters>,
    /// The driver's own counters (xstats).
    own: Arc<RxCounters>,
}

impl RxRing {
    /// A stopped queue on `ring`, to be filled from `pool` with `bsize`-byte buffers, with
    /// `offloads` on, counting into `counters` and `own`.
    pub(crate) fn new(
        ring: DescRing<RxDesc>,
        pool: PacketPool,
        bsize: usize,
        offloads: RxOffloads,
        counters: Arc<QueueCounters>,
        own: Arc<RxCounters>,
    ) -> RxRing {
        let n = usize::from(ring.len());
        RxRing {
            ring,
            pool,
            bufs: (0..n).map(|_| None).collect(),
            bsize,
            next: 0,
            tail: 0,
            discarding: false,
            scatter: offloads.contains(RxOffloads::SCATTER),
            meta: offloads.intersects(RxOffloads::VLAN_STRIP | RxOffloads::CHECKSUM),
            chain: ChainBuilder::new(),
            counters,
            own,
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
        Ok(())
    }

    /// RDT for a freshly armed ring.
    pub(crate) fn tail(&self) -> u16 {
        self.tail
    }

    /// Gives every buffer back to its pool (a frame half assembled included) and zeroes the
    /// descriptors. The device must be quiet (RCTL.EN clear).
    pub(crate) fn release(&mut self) {
        self.ring.zero();
        free_slots(&mut self.bufs);
        drop(self.chain.take());
        self.next = 0;
        self.tail = 0;
        self.discarding = false;
    }

    /// Receives up to `max` packets into `out` (RX burst body); RDT is written once if any
    /// descriptor was re-armed.
    pub(crate) fn burst(&mut self, bar: &impl Doorbell, out: &mut Vec<PacketBuf>, max: usize, port: u16) -> usize {
        match (self.scatter, self.meta) {
            (false, false) => self.burst_as::<false, false>(bar, out, max, port),
            (false, true) => self.burst_as::<false, true>(bar, out, max, port),
            (true, false) => self.burst_as::<true, false>(bar, out, max, port),
            (true, true) => self.burst_as::<true, true>(bar, out, max, port),
        }
    }

    /// The burst, compiled for one combination of scatter and metadata.
    #[inline(always)]
    fn burst_as<const SCATTER: bool, const META: bool>(
        &mut self,
        bar: &impl Doorbell,
        out: &mut Vec<PacketBuf>,
        max: usize,
        port: u16,
    ) -> usize {
        let n = self.ring.len();
        let mut i = self.next;
        let (mut got, mut bytes, mut bad, mut nombuf) = (0usize, 0u64, 0u64, 0u64);
        // Frames over several descriptors dropped, checksums found bad: rarely anything.
        let (mut chain_errors, mut cksum_bad) = (0u64, [0u64; 2]);
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
            // Read before the descriptor is re-armed, which clears it.
            let special = if META { desc.special() } else { 0 };
            let eop = status & RXD_STAT_EOP != 0;
            if eop && !self.discarding && (!SCATTER || self.chain.is_empty()) {
                // A frame in one descriptor.
                match classify(status, errors, length, self.bsize) {
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
                            if META {
                                describe(&mut buf, status, errors, special, &mut cksum_bad);
                            }
                            out.push(buf);
                            got += 1;
                            bytes += len as u64;
                        }
                    }
                    RxVerdict::Bad | RxVerdict::Partial => {
                        bad += 1;
                        self.rearm(desc, i);
                    }
                }
            } else if SCATTER {
                match self.segment(i, status, errors, length) {
                    Step::More | Step::Skipped => {}
                    Step::Done(mut pkt) => {
                        pkt.set_port(port);
                        if META {
                            describe(&mut pkt, status, errors, special, &mut cksum_bad);
                        }
                        bytes += u64::from(pkt.pkt_len());
                        got += 1;
                        out.push(pkt);
                    }
                    Step::Dropped => {
                        bad += 1;
                        chain_errors += 1;
                    }
                    Step::NoBuffer => {
                        nombuf += 1;
                        break;
                    }
                }
            } else {
                // Without scatter a frame over several descriptors is dropped whole, and counts
                // once, at its EOP.
                if eop {
                    bad += 1;
                    chain_errors += 1;
                }
                self.discarding = !eop;
                self.rearm(desc, i);
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
            // Chain errors are some of the frames dropped.
            if chain_errors > 0 {
                self.own.add(RxCount::ChainErrors, chain_errors);
            }
        }
        if nombuf > 0 {
            self.counters.add_nombuf(nombuf);
        }
        if META {
            for (what, n) in [(RxCount::IpCksumBad, cksum_bad[0]), (RxCount::L4CksumBad, cksum_bad[1])] {
                if n > 0 {
                    self.own.add(what, n);
                }
            }
        }
        got
    }

    /// Gives descriptor `i` its own buffer again: the frame in it was dropped.
    #[inline]
    fn rearm(&self, desc: Desc<'_, RxDesc>, i: u16) {
        if let Some(buf) = &self.bufs[usize::from(i)] {
            desc.arm(buf.data_iova());
        }
    }

    /// Descriptor `i` of a frame over several (scatter on): its buffer joins the chain, and the
    /// chain is the packet at EOP; or the frame is dropped, if this descriptor cannot be
    /// believed.
    fn segment(&mut self, i: u16, status: u8, errors: u8, length: u16) -> Step {
        let eop = status & RXD_STAT_EOP != 0;
        if self.discarding {
            // The rest of a frame already dropped and counted.
            self.discarding = !eop;
            self.rearm(self.ring.desc(i), i);
            return Step::Skipped;
        }
        let len = usize::from(length);
        // Every segment holds 1 to `bsize` bytes (the device fills a buffer before it takes the
        // next, 3.2.3), the frame at most the device's longest (13.4.22), and its errors are
        // read at its end (3.2.3.2).
        let believable = len != 0
            && len <= self.bsize
            && self.chain.pkt_len() as usize + len <= RX_MAX_FRAME
            && (!eop || errors & RXD_ERR_FRAME == 0);
        if !believable {
            return self.drop_frame(i, eop);
        }
        let Some(fresh) = self.pool.alloc() else { return Step::NoBuffer };
        let desc = self.ring.desc(i);
        desc.arm(fresh.data_iova());
        let Some(mut buf) = self.bufs[usize::from(i)].replace(fresh) else { return Step::Skipped };
        buf.set_data_len(len);
        if let Err((seg, _)) = self.chain.push(buf) {
            // More segments or bytes than a packet counts: cannot happen within RX_MAX_FRAME,
            // and costs the frame if it did.
            drop(seg);
            return self.drop_frame(i, eop);
        }
        if !eop {
            return Step::More;
        }
        self.chain.take().map_or(Step::Skipped, Step::Done)
    }

    /// Drops the frame being assembled (its segments back to the pool), re-arms descriptor `i`
    /// with its own buffer, and drops the rest of the frame unless `i` was its last.
    #[cold]
    fn drop_frame(&mut self, i: u16, eop: bool) -> Step {
        drop(self.chain.take());
        self.discarding = !eop;
        self.rearm(self.ring.desc(i), i);
        Step::Dropped
    }
}

/// Gives `pkt` what the frame's last descriptor says of it ([`rx_meta`], the stripped tag in
/// `special`); a checksum the device found bad is delivered with its flag, and counted in
/// `bad` (IP, L4), as DPDK's em does.
#[inline]
fn describe(pkt: &mut PacketBuf, status: u8, errors: u8, special: u16, bad: &mut [u64; 2]) {
    let (flags, ptype) = rx_meta(status, errors);
    if flags.contains(OlFlags::RX_VLAN) {
        pkt.set_vlan_tci(special);
    }
    bad[0] += u64::from(flags.rx_ip_cksum() == CksumStatus::Bad);
    bad[1] += u64::from(flags.rx_l4_cksum() == CksumStatus::Bad);
    pkt.set_ol_flags(flags);
    pkt.set_packet_type(ptype.0);
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
mod tests;
