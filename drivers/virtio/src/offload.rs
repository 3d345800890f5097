//! The net header's offload fields (virtio 1.2, 5.1.6), mapped to and from a packet's offload
//! flags as DPDK's virtio PMD maps them:
//!
//! - TX (5.1.6.2, DPDK's `virtqueue_xmit_offload`): a TCP or UDP checksum request becomes
//!   `VIRTIO_NET_HDR_F_NEEDS_CSUM` with `csum_start` = `l2_len + l3_len` and `csum_offset` the
//!   checksum field's place in the L4 header; a segmentation request (`TX_TCP_SEG`) also sets
//!   `gso_type` (TCPV4 or TCPV6), `gso_size` = `tso_segsz` and `hdr_len` = the three header
//!   lengths. The checksum field must hold the pseudo-header's sum: `tx_prepare` puts it there
//!   ([`tso_fix_up`] for segmentation).
//! - RX (5.1.6.4, DPDK's `virtio_rx_offload`): `NEEDS_CSUM` on a TCP, UDP or SCTP packet whose
//!   `csum_start` is within its headers means the data is valid and the checksum partial
//!   (`RX_L4_CKSUM_NONE`); on anything else the driver finishes the checksum itself where the
//!   header says. `DATA_VALID` on a known L4 packet is `RX_L4_CKSUM_GOOD`. A TCP `gso_type` is a
//!   coalesced packet (`RX_LRO`, its segment size in `tso_segsz`); another one (UDP, ECN) or a
//!   `gso_size` of 0 is dropped, as DPDK drops it. The IP checksum stays unknown: virtio says
//!   nothing of it.
//!
//! Every value the device wrote is untrusted: an offset past the packet is ignored, never
//! followed.

use burst_ethdev::TxFault;
use burst_mem::{CksumStatus, OlFlags, PacketBuf, TxL4};
use burst_net::{Checksum, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, PacketType, TcpSegment};

use crate::spec::net_hdr::*;

/// Where the TCP checksum field is in its header.
const TCP_CSUM_OFFSET: u16 = 16;
/// Where the UDP checksum field is in its header.
const UDP_CSUM_OFFSET: u16 = 6;

/// The header's first ten bytes: everything but `num_buffers`. Public for the test device
/// only (`testdev`, not an API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetHdr {
    /// `VIRTIO_NET_HDR_F_*`.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*`.
    pub gso_type: u8,
    /// Bytes of headers each segment repeats.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the checksum's sum starts.
    pub csum_start: u16,
    /// Where, after `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl NetHdr {
    /// No request, nothing to report.
    pub const ZERO: NetHdr =
        NetHdr { flags: 0, gso_type: VIRTIO_NET_HDR_GSO_NONE, hdr_len: 0, gso_size: 0, csum_start: 0, csum_offset: 0 };

    /// The header TX gives `buf`: its checksum and segmentation requests (5.1.6.2). An SCTP
    /// checksum request is not one virtio has: it is left out, as DPDK leaves it.
    #[inline]
    pub fn for_tx(buf: &PacketBuf) -> NetHdr {
        let f = buf.ol_flags();
        let tso = f.contains(OlFlags::TX_TCP_SEG);
        let csum_offset = match f.tx_l4() {
            _ if tso => TCP_CSUM_OFFSET,
            TxL4::Tcp => TCP_CSUM_OFFSET,
            TxL4::Udp => UDP_CSUM_OFFSET,
            TxL4::Sctp | TxL4::None => return NetHdr::ZERO,
        };
        let t = buf.tx_offload();
        // Lengths the application set: nonsense in them is the device's to refuse, never a
        // reason for us to panic.
        let csum_start = u16::from(t.l2_len).wrapping_add(t.l3_len);
        let mut h = NetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start, csum_offset, ..NetHdr::ZERO };
        if tso {
            h.gso_type = if f.contains(OlFlags::TX_IPV6) { VIRTIO_NET_HDR_GSO_TCPV6 } else { VIRTIO_NET_HDR_GSO_TCPV4 };
            h.gso_size = t.tso_segsz;
            h.hdr_len = csum_start.wrapping_add(u16::from(t.l4_len));
        }
        h
    }

    /// The header as the device reads it: 12 bytes, `num_buffers` 0 (the first `hdr_len` of
    /// them are used).
    #[inline]
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[FLAGS] = self.flags;
        b[GSO_TYPE] = self.gso_type;
        b[HDR_LEN..HDR_LEN + 2].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[GSO_SIZE..GSO_SIZE + 2].copy_from_slice(&self.gso_size.to_le_bytes());
        b[CSUM_START..CSUM_START + 2].copy_from_slice(&self.csum_start.to_le_bytes());
        b[CSUM_OFFSET..CSUM_OFFSET + 2].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }

    /// The header in `b` (its first ten bytes).
    pub fn from_bytes(b: &[u8; 10]) -> NetHdr {
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        NetHdr {
            flags: b[FLAGS],
            gso_type: b[GSO_TYPE],
            hdr_len: u16_at(HDR_LEN),
            gso_size: u16_at(GSO_SIZE),
            csum_start: u16_at(CSUM_START),
            csum_offset: u16_at(CSUM_OFFSET),
        }
    }

    /// The header the device wrote at `p`.
    ///
    /// # Safety
    /// `p` is valid for reads of 10 bytes that the device no longer writes (its buffer came
    /// back).
    #[inline]
    pub unsafe fn read(p: *const u8) -> NetHdr {
        // SAFETY: the caller's promise; an unaligned read of plain bytes.
        NetHdr::from_bytes(&unsafe { p.cast::<[u8; 10]>().read_unaligned() })
    }

    /// Nothing to say: no checksum flag, no segmentation.
    #[inline(always)]
    pub fn is_plain(self) -> bool {
        self.flags == 0 && self.gso_type == VIRTIO_NET_HDR_GSO_NONE
    }
}

/// Writes the first `len` bytes of `hdr` at `p`, unless they are there already: a buffer sent
/// before with the same request keeps its line shared with the device (as `zero_header` in
/// `tx.rs`, and DPDK's `ASSIGN_UNLESS_EQUAL`).
///
/// # Safety
/// `p` is valid for reads and writes of `len` (at most 12) bytes nothing else accesses now.
#[inline(always)]
pub(crate) unsafe fn store_header(p: *mut u8, hdr: NetHdr, len: usize) {
    let want = hdr.to_bytes();
    let len = len.min(want.len());
    // SAFETY: the caller's promise; unaligned accesses of our own memory.
    unsafe {
        let mut have = [0u8; 12];
        std::ptr::copy_nonoverlapping(p, have.as_mut_ptr(), len);
        if have[..len] != want[..len] {
            std::ptr::copy_nonoverlapping(want.as_ptr(), p, len);
        }
    }
}

/// Sets the RX offload flags of `pkt` from the header `h` its device wrote (see the module
/// docs). False: the packet must be dropped (a segmentation type the driver did not ask for).
#[cold]
#[inline(never)]
pub(crate) fn rx_offload(pkt: &mut PacketBuf, h: NetHdr) -> bool {
    let (ptype, hdrs) = headers(pkt.data());
    let l4_known = matches!(ptype.l4(), PacketType::L4_TCP | PacketType::L4_UDP | PacketType::L4_SCTP);
    let mut flags = OlFlags::empty();
    if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        if usize::from(h.csum_start) <= hdrs && l4_known {
            flags = flags.with_rx_l4_cksum(CksumStatus::None);
        } else {
            // A protocol the driver does not know (or a tunnel): the checksum is finished here,
            // where the device says it goes.
            finish_checksum(pkt, h.csum_start, h.csum_offset);
        }
    } else if h.flags & VIRTIO_NET_HDR_F_DATA_VALID != 0 && l4_known {
        flags = flags.with_rx_l4_cksum(CksumStatus::Good);
    }
    if h.gso_type != VIRTIO_NET_HDR_GSO_NONE {
        match h.gso_type {
            VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_TCPV6 if h.gso_size != 0 => {
                flags = (flags | OlFlags::RX_LRO).with_rx_l4_cksum(CksumStatus::None);
                let mut t = pkt.tx_offload();
                t.tso_segsz = h.gso_size;
                pkt.set_tx_offload(t);
            }
            _ => return false,
        }
    }
    pkt.set_ol_flags(flags);
    pkt.set_packet_type(ptype.0);
    true
}

/// The packet type of `d` (a packet's first segment) and the bytes of its L2, L3 and L4
/// headers together, as far as they are there: what `rte_net_get_ptype` tells DPDK's
/// `virtio_rx_offload`. Unlike `burst_net::ptype::parse` it reads the headers alone, so a
/// packet whose payload continues in other segments is typed too; IPv6 extension headers are
/// not followed (the L4 type is then unknown).
fn headers(d: &[u8]) -> (PacketType, usize) {
    let Ok(eth) = EthernetFrame::new_checked(d) else { return (PacketType::UNKNOWN, 0) };
    let l2 = eth.header_len();
    let mut ptype = if eth.vlan().is_some() { PacketType::L2_ETHER_VLAN } else { PacketType::L2_ETHER };
    let rest = eth.payload();
    let (protocol, l3, fragment) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_unchecked(rest);
            let hl = ip.header_len();
            if rest.len() < 20 || ip.version() != 4 || hl < 20 || hl > rest.len() {
                return (ptype, l2);
            }
            ptype = ptype | if hl > 20 { PacketType::L3_IPV4_EXT } else { PacketType::L3_IPV4 };
            (ip.protocol(), hl, ip.frag_offset() != 0)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_unchecked(rest);
            if rest.len() < 40 || ip.version() != 6 {
                return (ptype, l2);
            }
            ptype = ptype | PacketType::L3_IPV6;
            (ip.next_header(), 40, false)
        }
        _ => return (ptype, l2),
    };
    if fragment {
        return (ptype | PacketType::L4_FRAG, l2 + l3);
    }
    let l4 = &rest[l3..];
    let (l4_type, l4_len) = match protocol {
        IpProtocol::TCP => match TcpSegment::new_checked(l4) {
            Ok(tcp) => (PacketType::L4_TCP, tcp.header_len()),
            Err(_) => (PacketType::UNKNOWN, 0),
        },
        IpProtocol::UDP if l4.len() >= 8 => (PacketType::L4_UDP, 8),
        IpProtocol(132) if l4.len() >= 12 => (PacketType::L4_SCTP, 12),
        _ => (PacketType::UNKNOWN, 0),
    };
    (ptype | l4_type, l2 + l3 + l4_len)
}

/// Finishes a partial checksum: the sum of the packet from `start` to its end (across its
/// segments) goes at `start + offset`, if that is inside the first segment.
fn finish_checksum(pkt: &mut PacketBuf, start: u16, offset: u16) {
    let Some(value) = partial_checksum(pkt.segments().map(|s| s.data()), usize::from(start)) else { return };
    let at = usize::from(start) + usize::from(offset);
    if let Some(field) = pkt.data_mut().get_mut(at..at + 2) {
        field.copy_from_slice(&value.to_be_bytes());
    }
}

/// What a device that finishes a partial checksum stores (5.1.6.2): the complement of the sum of
/// the packet's bytes (`pieces`, in order) from `start` on, the pseudo-header's sum already in
/// the field. 0xffff is kept as it is (a UDP checksum of 0 would mean none), as DPDK does.
/// `None` when the packet ends before `start`.
pub(crate) fn partial_checksum<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, start: usize) -> Option<u16> {
    let (mut sum, mut at) = (Checksum::new(), 0usize);
    for d in pieces {
        if at + d.len() > start {
            sum = sum.add_bytes(&d[start.saturating_sub(at)..]);
        }
        at += d.len();
    }
    if start >= at {
        return None;
    }
    let raw = sum.sum();
    Some(if raw == 0xffff { raw } else { !raw })
}

/// `tx_prepare`'s part for a segmentation request, after the default fix-up (DPDK's
/// `virtio_tso_fix_cksum`): a virtio device segments as Linux's GSO does (QEMU and vhost hand
/// the packet to it, or work alike), taking the whole L4 length out of the seed and each
/// segment's in, so the seed must hold the pseudo-header with the length, which the Intel
/// convention of the default fix-up leaves out. The IPv4 header checksum is filled too, for a
/// device that updates it per segment rather than computing it again.
pub(crate) fn tso_fix_up(buf: &mut PacketBuf) -> Result<(), TxFault> {
    let t = buf.tx_offload();
    let (l2, l3) = (usize::from(t.l2_len), usize::from(t.l3_len));
    let l4_len = (buf.pkt_len() as usize).saturating_sub(l2 + l3) as u32;
    let v4 = buf.ol_flags().contains(OlFlags::TX_IPV4);
    let data = buf.data_mut();
    let bad = TxFault::BadHeader { what: "TCP", offset: l2 + l3 };
    if v4 {
        let ip = data.get_mut(l2..l2 + l3).ok_or(TxFault::BadHeader { what: "IPv4", offset: l2 })?;
        Ipv4Packet::new_unchecked(ip).fill_checksum();
    }
    let at = l2 + l3 + usize::from(TCP_CSUM_OFFSET);
    let field = data.get_mut(at..at + 2).ok_or(bad)?;
    let seed = u16::from_be_bytes([field[0], field[1]]);
    field.copy_from_slice(&add_ones_complement(seed, l4_len).to_be_bytes());
    Ok(())
}

/// `seed + n` in ones' complement arithmetic, `n` as two 16-bit words.
pub(crate) fn add_ones_complement(seed: u16, n: u32) -> u16 {
    let mut s = u32::from(seed) + (n >> 16) + (n & 0xffff);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests {
    use burst_mem::testing::{memory, packet_pool};
    use burst_mem::TxOffload;
    use burst_net::checksum;
    use etherparse::PacketBuilder;

    use super::*;

    fn tcp_frame(payload: usize) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, 7, 4096)
            .write(&mut f, &vec![0x5a; payload])
            .unwrap();
        f
    }

    #[test]
    fn tx_headers_follow_the_requests() {
        let mem = memory();
        let pool = packet_pool(&mem, 8);
        let mut b = pool.alloc().unwrap();
        assert!(b.set_data(&tcp_frame(100)));
        assert_eq!(NetHdr::for_tx(&b), NetHdr::ZERO, "no request");
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 1400, ..TxOffload::default() });
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_CKSUM);
        let h = NetHdr::for_tx(&b);
        assert_eq!((h.flags, h.csum_start, h.csum_offset, h.gso_type), (1, 34, 16, 0));
        b.set_ol_flags(OlFlags::TX_IPV6 | OlFlags::TX_UDP_CKSUM);
        assert_eq!(NetHdr::for_tx(&b).csum_offset, 6);
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
        let h = NetHdr::for_tx(&b);
        assert_eq!((h.gso_type, h.gso_size, h.hdr_len, h.csum_offset), (VIRTIO_NET_HDR_GSO_TCPV4, 1400, 54, 16));
        b.set_ol_flags(OlFlags::TX_IPV6 | OlFlags::TX_TCP_SEG);
        assert_eq!(NetHdr::for_tx(&b).gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_SCTP_CKSUM);
        assert_eq!(NetHdr::for_tx(&b), NetHdr::ZERO, "virtio has no SCTP request");
        let bytes = h.to_bytes();
        assert_eq!(NetHdr::from_bytes(bytes[..10].try_into().unwrap()), h);
        assert_eq!(&bytes[10..], &[0, 0], "num_buffers 0 on TX");
    }

    #[test]
    fn rx_flags_as_dpdk_sets_them() {
        let mem = memory();
        let pool = packet_pool(&mem, 8);
        let frame = tcp_frame(100);
        let mut b = pool.alloc().unwrap();
        let hdr = |flags, start, offset| NetHdr { flags, csum_start: start, csum_offset: offset, ..NetHdr::ZERO };
        assert!(b.set_data(&frame));
        assert!(rx_offload(&mut b, hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16)));
        assert_eq!(b.ol_flags().rx_l4_cksum(), CksumStatus::None, "partial: data valid");
        assert_eq!(b.ol_flags().rx_ip_cksum(), CksumStatus::Unknown);
        assert_eq!(PacketType(b.packet_type()), PacketType::L2_ETHER | PacketType::L3_IPV4 | PacketType::L4_TCP);
        assert_eq!(b.data(), frame.as_slice(), "nothing written");
        assert!(rx_offload(&mut b, hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 0)));
        assert_eq!(b.ol_flags().rx_l4_cksum(), CksumStatus::Good);
        let gso = NetHdr { gso_type: VIRTIO_NET_HDR_GSO_TCPV4, gso_size: 1448, ..hdr(1, 34, 16) };
        assert!(rx_offload(&mut b, gso));
        assert!(b.ol_flags().contains(OlFlags::RX_LRO));
        assert_eq!((b.ol_flags().rx_l4_cksum(), b.tx_offload().tso_segsz), (CksumStatus::None, 1448));
        for bad in [
            NetHdr { gso_size: 0, ..gso },
            NetHdr { gso_type: VIRTIO_NET_HDR_GSO_UDP, ..gso },
            NetHdr { gso_type: VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, ..gso },
        ] {
            assert!(!rx_offload(&mut b, bad), "{bad:?} is dropped");
        }
        // Not a protocol the driver knows: the checksum is finished where the device says.
        let mut f = frame.clone();
        f[23] = 253; // an experimental IP protocol, the TCP bytes now opaque
        f[50..52].fill(0); // where the device's partial sum would be: here, none
        assert!(b.set_data(&f));
        assert!(rx_offload(&mut b, hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 34, 16)));
        assert_eq!(b.ol_flags().rx_l4_cksum(), CksumStatus::Unknown);
        assert!(checksum::verify(&b.data()[34..]), "the sum from csum_start on now checks");
        // Offsets past the packet are ignored.
        assert!(b.set_data(&f));
        assert!(rx_offload(&mut b, hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 60000, 16)));
        assert!(rx_offload(&mut b, hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, 150, 60000)));
        assert_eq!(b.data(), f.as_slice());
    }

    #[test]
    fn headers_of_a_truncated_first_segment_are_typed() {
        let f = tcp_frame(3000);
        let (ptype, lens) = headers(&f[..200]);
        assert_eq!((ptype.l4(), lens), (PacketType::L4_TCP, 54));
        assert_eq!(headers(&f[..40]).0.l4(), PacketType::UNKNOWN);
        assert_eq!(headers(&[0u8; 5]), (PacketType::UNKNOWN, 0));
    }

    #[test]
    fn the_tso_seed_holds_the_whole_l4_length() {
        let mem = memory();
        let pool = packet_pool(&mem, 8);
        let mut b = pool.alloc().unwrap();
        let mut f = tcp_frame(1000);
        f[24..26].fill(0xee); // a wrong IPv4 checksum, to be filled
        assert!(b.set_data(&f));
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 500, ..TxOffload::default() });
        burst_ethdev::prepare::fix_up(&mut b).unwrap();
        tso_fix_up(&mut b).unwrap();
        let d = b.data();
        assert!(checksum::verify(&d[14..34]), "the IPv4 header checksum is filled");
        // The seed with the length: the device's sum over the segment makes the real checksum.
        let want = u16::from_be_bytes([f[50], f[51]]);
        let mut zeroed = d[34..].to_vec();
        let seed = u16::from_be_bytes([zeroed[16], zeroed[17]]);
        zeroed[16..18].fill(0);
        let phdr = burst_net::ipv4_pseudo_header([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), IpProtocol::TCP, 1020);
        assert_eq!(seed, phdr.sum());
        assert_eq!(Checksum::new().add_u16(seed).add_bytes(&zeroed).finish(), want);
    }
}
