//! `tx_prepare` (DPDK's `rte_eth_tx_prepare`): before a burst goes to a queue with TX
//! offloads, each packet's requests are checked against what the queue has turned on and what
//! the device takes, and the packet is fixed up the way devices expect it. A device that
//! computes a TCP or UDP checksum (or segments TCP) sums from the L4 header to the end and
//! needs the pseudo-header's sum already in the checksum field (with no length for
//! segmentation, since it adds each segment's), and an IPv4 header checksum it fills needs the
//! field zeroed first: Intel's and virtio's convention alike (DPDK's
//! `rte_net_intel_cksum_prepare`, which both PMDs call).
//!
//! [`check`] is the part every queue does; [`fix_up`] is the default fix-up a driver's
//! [`crate::TxBurst::tx_prepare`] applies. Preparing stops at the first packet that cannot be
//! sent as asked; the packets before it are ready.

use burst_mem::{OlFlags, PacketBuf, TxL4};
use burst_net::{ipv4_pseudo_header, ipv6_pseudo_header, IpProtocol, Ipv4Packet, Ipv6Packet};

use crate::TxOffloads;

/// A packet of a burst that cannot be sent as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("packet {index} of the burst: {fault}")]
pub struct TxPrepareError {
    /// Its place in the burst: the packets before it are prepared.
    pub index: usize,
    /// What is wrong.
    pub fault: TxFault,
}

/// What is wrong with a packet's TX offload requests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxFault {
    /// A request for an offload the queue does not have on.
    #[error(
        "it asks for {flag}, but the queue does not have the {offload} offload on: turn it on in PortConf::tx_offloads \
         (or for the queue), or do the work in software"
    )]
    OffloadOff {
        /// The packet's flag (`tx_ip_cksum`).
        flag: &'static str,
        /// The offload it needs.
        offload: TxOffloads,
    },
    /// More segments than the device takes for one packet.
    #[error("it has {nb_segs} segments and the device takes at most {max} per packet: linearize() it")]
    TooManySegments {
        /// The packet's segments.
        nb_segs: u16,
        /// The device's limit.
        max: u16,
    },
    /// A checksum or segmentation request without the L3 type.
    #[error("it asks for a checksum or segmentation but says neither TX_IPV4 nor TX_IPV6: set the one it is")]
    NoL3Type,
    /// An IPv4 checksum request on a packet that is not IPv4.
    #[error("it asks for TX_IP_CKSUM, which is for IPv4 packets, without TX_IPV4")]
    IpCksumNotIpv4,
    /// Header lengths the request needs are not set.
    #[error(
        "its TX offload lengths are l2_len {l2_len}, l3_len {l3_len}, l4_len {l4_len}: a checksum request needs l2_len and \
         l3_len, segmentation an l4_len of 20 to 60 (its TCP header) too; set them with set_tx_offload"
    )]
    Lengths {
        /// The L2 header's length.
        l2_len: u8,
        /// The L3 header's length.
        l3_len: u16,
        /// The L4 header's length.
        l4_len: u8,
    },
    /// Segmentation without a segment size.
    #[error("it asks for TCP segmentation (TX_TCP_SEG) with tso_segsz 0: set the TCP payload bytes per segment")]
    NoSegmentSize,
    /// The headers the request needs are not all in the first segment.
    #[error(
        "its headers ({need} bytes from l2_len, l3_len and the L4 header) are not all in its first segment ({have} \
         bytes): prepend them to the first segment or linearize() the packet"
    )]
    HeadersSplit {
        /// Bytes of header needed.
        need: usize,
        /// Bytes in the first segment.
        have: usize,
    },
    /// The headers at the lengths given are not what the flags say.
    #[error("its {what} header at offset {offset} is not one (its TX flags and lengths say it is)")]
    BadHeader {
        /// The header that was expected.
        what: &'static str,
        /// Where it was looked for.
        offset: usize,
    },
    /// A limit of the device's that the packet is past (a driver's own check, from its
    /// [`crate::TxBurst::tx_prepare`]).
    #[error("its {what} is {value} and the device takes {min} to {max}: make it fit, or do that work in software")]
    DeviceLimit {
        /// What is out of range (`segment length`, `header length (l2_len + l3_len + l4_len)`).
        what: &'static str,
        /// Its value.
        value: usize,
        /// The least the device takes.
        min: usize,
        /// The most the device takes.
        max: usize,
    },
}

/// The bytes a TCP header has (RFC 9293 3.1: data offset 5 to 15 words): what `l4_len` must be
/// for segmentation, whose devices repeat that many bytes in front of every segment.
const TCP_HEADER_LEN: std::ops::RangeInclusive<u8> = 20..=60;

/// The offload each TX request flag needs.
const NEEDS: [(OlFlags, &str, TxOffloads); 5] = [
    (OlFlags::TX_IP_CKSUM, "tx_ip_cksum", TxOffloads::IPV4_CKSUM),
    (OlFlags::TX_TCP_SEG, "tx_tcp_seg", TxOffloads::TCP_TSO),
    (OlFlags::TX_VLAN, "tx_vlan", TxOffloads::VLAN_INSERT),
    (OlFlags::TX_OUTER_IP_CKSUM, "tx_outer_ip_cksum", TxOffloads::OUTER_IPV4_CKSUM),
    (OlFlags::TX_OUTER_IPV4, "tx_outer_ipv4", TxOffloads::OUTER_IPV4_CKSUM),
];

/// Checks one packet's requests against the queue's `offloads` and the device's `nb_seg_max`.
pub fn check(buf: &PacketBuf, offloads: TxOffloads, nb_seg_max: u16) -> Result<(), TxFault> {
    let flags = buf.ol_flags() & OlFlags::TX_MASK;
    if buf.nb_segs() > 1 {
        if !offloads.contains(TxOffloads::MULTI_SEGS) {
            return Err(TxFault::OffloadOff { flag: "several segments", offload: TxOffloads::MULTI_SEGS });
        }
        if buf.nb_segs() > nb_seg_max {
            return Err(TxFault::TooManySegments { nb_segs: buf.nb_segs(), max: nb_seg_max });
        }
    }
    if flags.is_empty() {
        return Ok(());
    }
    for (flag, name, offload) in NEEDS {
        if flags.contains(flag) && !offloads.contains(offload) {
            return Err(TxFault::OffloadOff { flag: name, offload });
        }
    }
    let l4 = match flags.tx_l4() {
        TxL4::None => None,
        TxL4::Tcp => Some(("tx_tcp_cksum", TxOffloads::TCP_CKSUM)),
        TxL4::Udp => Some(("tx_udp_cksum", TxOffloads::UDP_CKSUM)),
        TxL4::Sctp => Some(("tx_sctp_cksum", TxOffloads::SCTP_CKSUM)),
    };
    if let Some((flag, offload)) = l4.filter(|(_, o)| !offloads.contains(*o)) {
        return Err(TxFault::OffloadOff { flag, offload });
    }
    let tso = flags.contains(OlFlags::TX_TCP_SEG);
    let needs_l3 = tso || l4.is_some() || flags.contains(OlFlags::TX_IP_CKSUM);
    if !needs_l3 {
        return Ok(());
    }
    let (v4, v6) = (flags.contains(OlFlags::TX_IPV4), flags.contains(OlFlags::TX_IPV6));
    if v4 == v6 {
        return Err(TxFault::NoL3Type);
    }
    if flags.contains(OlFlags::TX_IP_CKSUM) && !v4 {
        return Err(TxFault::IpCksumNotIpv4);
    }
    let t = buf.tx_offload();
    if t.l2_len == 0 || t.l3_len == 0 || (tso && !TCP_HEADER_LEN.contains(&t.l4_len)) {
        return Err(TxFault::Lengths { l2_len: t.l2_len, l3_len: t.l3_len, l4_len: t.l4_len });
    }
    if tso && t.tso_segsz == 0 {
        return Err(TxFault::NoSegmentSize);
    }
    let l4_hdr = match flags.tx_l4() {
        _ if tso => usize::from(t.l4_len),
        TxL4::Tcp => 20,
        TxL4::Udp => 8,
        TxL4::Sctp | TxL4::None => 0,
    };
    let need = usize::from(t.l2_len) + usize::from(t.l3_len) + l4_hdr;
    if need > buf.len() {
        return Err(TxFault::HeadersSplit { need, have: buf.len() });
    }
    Ok(())
}

/// Where the checksum field of the L4 header is: TCP's at 16, UDP's at 6.
fn l4_cksum_offset(tso: bool, l4: TxL4) -> Option<usize> {
    match l4 {
        _ if tso => Some(16),
        TxL4::Tcp => Some(16),
        TxL4::Udp => Some(6),
        TxL4::Sctp | TxL4::None => None,
    }
}

/// The fix-up most devices want, for a packet [`check`] passed: the IPv4 header checksum
/// zeroed when the device fills it, and the pseudo-header's sum in the TCP or UDP checksum field
/// when the device computes that checksum or segments (without the length for segmentation).
pub fn fix_up(buf: &mut PacketBuf) -> Result<(), TxFault> {
    let flags = buf.ol_flags();
    let tso = flags.contains(OlFlags::TX_TCP_SEG);
    let l4 = flags.tx_l4();
    let ip_cksum = flags.contains(OlFlags::TX_IP_CKSUM);
    let cksum_at = l4_cksum_offset(tso, l4);
    if !ip_cksum && cksum_at.is_none() {
        return Ok(());
    }
    let t = buf.tx_offload();
    let (l2, l3) = (usize::from(t.l2_len), usize::from(t.l3_len));
    let data = buf.data_mut();
    // `check` made sure the headers are in the first segment; the payload may be in others, so
    // the IP header is read on its own (its lengths are not held against this segment).
    let rest = data.get_mut(l2..).ok_or(TxFault::BadHeader { what: "L3", offset: l2 })?;
    let (ip_bytes, l4_bytes) = rest.split_at_mut(l3.min(rest.len()));
    let phdr = if flags.contains(OlFlags::TX_IPV4) {
        let mut ip = Ipv4Packet::new_unchecked(&mut ip_bytes[..]);
        // A device sums the IPv4 header over l3_len bytes (e1000's IPCSE): they must be the
        // header's own length, options included.
        if l3 < 20 || ip.version() != 4 || ip.header_len() != l3 {
            return Err(TxFault::BadHeader { what: "IPv4", offset: l2 });
        }
        if ip_cksum {
            ip.set_checksum(0);
        }
        let len = if tso { 0 } else { ip.total_len().saturating_sub(l3 as u16) };
        ipv4_pseudo_header(ip.src(), ip.dst(), ip.protocol(), len)
    } else {
        let ip = Ipv6Packet::new_unchecked(&ip_bytes[..]);
        if l3 < 40 || ip.version() != 6 {
            return Err(TxFault::BadHeader { what: "IPv6", offset: l2 });
        }
        // The L4 length: the payload's, less the extension headers l3_len covers past the fixed
        // header; their last one names the L4 protocol, which the request says.
        let len = if tso { 0 } else { u32::from(ip.payload_len()).saturating_sub(l3 as u32 - 40) };
        let next = if l3 == 40 {
            ip.next_header()
        } else if l4 == TxL4::Udp {
            IpProtocol::UDP
        } else {
            IpProtocol::TCP
        };
        ipv6_pseudo_header(ip.src(), ip.dst(), next, len)
    };
    if let Some(at) = cksum_at {
        let field = l4_bytes.get_mut(at..at + 2).ok_or(TxFault::BadHeader { what: "L4", offset: l2 + l3 })?;
        field.copy_from_slice(&phdr.sum().to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use burst_mem::testing::{memory, packet_pool};
    use burst_mem::TxOffload;
    use burst_net::Checksum;
    use etherparse::PacketBuilder;

    use super::*;

    fn udp_frame(pool: &burst_mem::PacketPool) -> PacketBuf {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000)
            .write(&mut f, &[0xab; 30])
            .unwrap();
        let mut b = pool.alloc().unwrap();
        assert!(b.set_data(&f));
        b
    }

    #[test]
    fn requests_need_their_offloads_and_their_lengths() {
        let mem = memory();
        let pool = packet_pool(&mem, 8);
        let mut b = udp_frame(&pool);
        let all = TxOffloads::all();
        assert_eq!(check(&b, TxOffloads::NONE, 1), Ok(()), "nothing asked, nothing needed");
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM);
        assert_eq!(
            check(&b, TxOffloads::IPV4_CKSUM, 1),
            Err(TxFault::OffloadOff { flag: "tx_udp_cksum", offload: TxOffloads::UDP_CKSUM })
        );
        assert!(matches!(check(&b, all, 1), Err(TxFault::Lengths { l2_len: 0, .. })));
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() });
        assert_eq!(check(&b, all, 1), Ok(()));
        b.set_ol_flags(OlFlags::TX_IP_CKSUM);
        assert_eq!(check(&b, all, 1), Err(TxFault::NoL3Type));
        b.set_ol_flags(OlFlags::TX_IPV6 | OlFlags::TX_IP_CKSUM);
        assert_eq!(check(&b, all, 1), Err(TxFault::IpCksumNotIpv4));
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
        assert!(matches!(check(&b, all, 1), Err(TxFault::Lengths { l4_len: 0, .. })));
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 0, ..TxOffload::default() });
        assert_eq!(check(&b, all, 1), Err(TxFault::NoSegmentSize));
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 60, tso_segsz: 1000, ..TxOffload::default() });
        assert_eq!(check(&b, all, 1), Err(TxFault::HeadersSplit { need: 94, have: 72 }));
        let mut tail = pool.alloc().unwrap();
        tail.set_len(10);
        b.set_ol_flags(OlFlags::empty());
        b.chain(tail).unwrap();
        assert!(matches!(
            check(&b, TxOffloads::NONE, 1),
            Err(TxFault::OffloadOff { offload: TxOffloads::MULTI_SEGS, .. })
        ));
        assert_eq!(check(&b, TxOffloads::MULTI_SEGS, 1), Err(TxFault::TooManySegments { nb_segs: 2, max: 1 }));
        // A segmentation request whose L4 header is shorter than TCP's 20 bytes (or longer than
        // its 60): the fix-up would write the checksum seed into the payload at offset 16 and
        // the device repeat a torn header in every segment.
        let tcp = OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG;
        let mut seg = pool.alloc().unwrap();
        seg.set_len(200);
        seg.set_ol_flags(tcp);
        for l4_len in [8u8, 19, 61, 255] {
            seg.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len, tso_segsz: 100, ..TxOffload::default() });
            assert_eq!(
                check(&seg, all, 1),
                Err(TxFault::Lengths { l2_len: 14, l3_len: 20, l4_len }),
                "l4_len {l4_len}"
            );
        }
        seg.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 100, ..TxOffload::default() });
        assert_eq!(check(&seg, all, 1), Ok(()));
        drop(seg);
        let e = TxPrepareError { index: 3, fault: TxFault::NoSegmentSize };
        assert!(e.to_string().starts_with("packet 3 of the burst: it asks for TCP segmentation"), "{e}");
    }

    #[test]
    fn the_fix_up_leaves_what_the_device_finishes_into_the_right_checksums() {
        let mem = memory();
        let pool = packet_pool(&mem, 8);
        let mut b = udp_frame(&pool);
        let want_udp = u16::from_be_bytes([b.data()[40], b.data()[41]]);
        b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM);
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() });
        fix_up(&mut b).unwrap();
        let d = b.data().to_vec();
        assert_eq!(&d[24..26], &[0, 0], "the IPv4 checksum zeroed for the device to fill");
        // The device's part: the checksum of the datagram from its start, the seed included.
        let device = Checksum::new().add_bytes(&d[34..]).finish();
        assert_eq!(device, want_udp, "seed + device sum = the real UDP checksum");
        // An l3_len that is not the IPv4 header's length (IHL 5 here): a device would sum the
        // UDP header into the IPv4 checksum and put the UDP checksum in the wrong place.
        let before = b.data().to_vec();
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: 24, ..TxOffload::default() });
        assert_eq!(fix_up(&mut b), Err(TxFault::BadHeader { what: "IPv4", offset: 14 }));
        assert_eq!(b.data(), &before[..], "nothing fixed up");
    }
}
