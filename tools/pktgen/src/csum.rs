//! The `csum` mode's work on one packet (testpmd's checksum forwarding engine, DPDK 26.07
//! app/test-pmd/csumonly.c: `pkt_burst_checksum_forward` and `process_inner_cksums`).
//!
//! For each packet received: find its headers ([`ptype::parse_head`], in its first segment);
//! count a bad IPv4 header checksum and a bad TCP or UDP checksum as received, from the RX
//! checksum flags where the port checked them and by computing them where it did not; then for
//! TX have each checksum computed again, by the device where the TX queue has the offload on
//! (`ol_flags` and the `TxOffload` lengths, which `tx_prepare` finishes), else here. A frame with
//! no IPv4 or IPv6 header goes out as it came, counted.
//!
//! As testpmd: a UDP checksum of 0 ("none", RFC 768) is left as it is; L4 protocols other than
//! TCP and UDP get their IPv4 header checksum only; tunnels, SCTP, TSO and GSO are not handled.
//! Not as testpmd: it counts only what the RX flags say, so on a port that does not check
//! checksums it counts nothing, where here those packets are checked in software; and it
//! recomputes a first fragment's L4 checksum over that fragment alone, where here fragments get
//! their IPv4 header checksum only.
//! Headers must lie in the first segment of a chain (testpmd writes them there too); the L4
//! checksum covers every segment.

use burst::mem::{CksumStatus, OlFlags, TxL4, TxOffload};
use burst::net::{ipv4_pseudo_header, ipv6_pseudo_header, ptype, Checksum, Ipv4Packet, Ipv6Packet, PacketType};
use burst::{PacketBuf, TxOffloads};

/// Where the checksum field is in a UDP header (RFC 768).
const UDP_CKSUM_AT: usize = 6;
/// Where the checksum field is in a TCP header (RFC 9293 section 3.1).
const TCP_CKSUM_AT: usize = 16;

/// Which checksums the TX queue's device computes; the others are computed here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCsum {
    /// IPv4 header checksums (`RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`).
    pub ip: bool,
    /// UDP checksums (`RTE_ETH_TX_OFFLOAD_UDP_CKSUM`).
    pub udp: bool,
    /// TCP checksums (`RTE_ETH_TX_OFFLOAD_TCP_CKSUM`).
    pub tcp: bool,
}

impl TxCsum {
    /// What a TX queue with `offloads` on computes.
    pub fn from_offloads(offloads: TxOffloads) -> TxCsum {
        TxCsum {
            ip: offloads.contains(TxOffloads::IPV4_CKSUM),
            udp: offloads.contains(TxOffloads::UDP_CKSUM),
            tcp: offloads.contains(TxOffloads::TCP_CKSUM),
        }
    }
}

/// What one packet showed as received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its IPv4 header checksum was bad.
    pub bad_ip: bool,
    /// Its TCP or UDP checksum was bad.
    pub bad_l4: bool,
    /// No IPv4 or IPv6 header was found: the packet was left as it came.
    pub unparsed: bool,
}

/// Judges `buf`'s checksums as received and readies them for TX on a queue that computes
/// `tx`: computed here, or asked of the device through `ol_flags` and the TX offload lengths.
pub fn process(buf: &mut PacketBuf, tx: TxCsum) -> Seen {
    let (ptype, lens) = ptype::parse_head(buf.data(), buf.pkt_len() as usize);
    let v4 = ptype.is_ipv4();
    if !v4 && !ptype.is_ipv6() {
        return Seen { unparsed: true, ..Seen::default() };
    }
    let rx = buf.ol_flags();
    let mut seen = Seen::default();
    let (l2, l3) = (lens.l2, lens.l3);
    let mut flags = if v4 { OlFlags::TX_IPV4 } else { OlFlags::TX_IPV6 };
    // The L3 header (in the first segment: parse_head found it there), its payload's length
    // and the pseudo-header's sum.
    let ip_bytes = &mut buf.data_mut()[l2..l2 + l3];
    let (l4_len, phdr, fragment) = if v4 {
        let mut ip = Ipv4Packet::new_unchecked(ip_bytes);
        seen.bad_ip = judge(rx.rx_ip_cksum(), || ip.verify_checksum());
        if tx.ip {
            flags |= OlFlags::TX_IP_CKSUM;
        } else {
            ip.fill_checksum();
        }
        let l4_len = ip.total_len() - l3 as u16;
        // A first fragment holds the L4 header but not all the bytes its checksum covers.
        let fragment = ip.more_frags() || ip.frag_offset() != 0;
        (usize::from(l4_len), ipv4_pseudo_header(ip.src(), ip.dst(), ip.protocol(), l4_len), fragment)
    } else {
        let ip = Ipv6Packet::new_unchecked(&*ip_bytes);
        let l4_len = ip.payload_len();
        (usize::from(l4_len), ipv6_pseudo_header(ip.src(), ip.dst(), ip.next_header(), u32::from(l4_len)), false)
    };
    let l4 = match ptype.l4() {
        _ if fragment => None,
        PacketType::L4_UDP => Some((TxL4::Udp, UDP_CKSUM_AT, tx.udp)),
        PacketType::L4_TCP => Some((TxL4::Tcp, TCP_CKSUM_AT, tx.tcp)),
        _ => None,
    };
    if let Some((proto, at, offloaded)) = l4 {
        let (l4_off, field) = (l2 + l3, l2 + l3 + at);
        let data = buf.data();
        let old = u16::from_be_bytes([data[field], data[field + 1]]);
        let verdict = rx.rx_l4_cksum();
        if proto == TxL4::Udp && old == 0 {
            // No checksum: fine over IPv4 (RFC 768), not over IPv6 (RFC 8200 section 8.1).
            // Either way testpmd sends it on as it is.
            seen.bad_l4 = judge(verdict, || v4);
        } else {
            if verdict == CksumStatus::Unknown || !offloaded {
                let sum = l4_sum(buf, phdr, l4_off, l4_len, field);
                // The field, added to the sum of everything else, makes the complement of 0.
                seen.bad_l4 = judge(verdict, || Checksum::new().add_u16(sum.sum()).add_u16(old).sum() == 0xffff);
                if !offloaded {
                    // UDP sends a computed 0 as 0xffff: 0 means no checksum (RFC 768).
                    let c = match sum.finish() {
                        0 if proto == TxL4::Udp => 0xffff,
                        c => c,
                    };
                    buf.data_mut()[field..field + 2].copy_from_slice(&c.to_be_bytes());
                }
            } else {
                seen.bad_l4 = verdict == CksumStatus::Bad;
            }
            if offloaded {
                flags = flags.with_tx_l4(proto);
            }
        }
    }
    // testpmd fills the lengths whatever it asks, and replaces every flag.
    buf.set_tx_offload(TxOffload {
        l2_len: l2 as u8,
        l3_len: l3 as u16,
        l4_len: lens.l4 as u8,
        ..TxOffload::default()
    });
    buf.set_ol_flags(flags);
    seen
}

/// Whether a checksum was bad: as RX's `verdict` says where the port checked, else as `good`
/// finds it.
fn judge(verdict: CksumStatus, good: impl FnOnce() -> bool) -> bool {
    match verdict {
        CksumStatus::Bad => true,
        CksumStatus::Good | CksumStatus::None => false,
        CksumStatus::Unknown => !good(),
    }
}

/// The pseudo-header's sum `phdr` continued over the packet's `len` bytes from `from`, across
/// its segments, without the two bytes of the checksum field at `field` (in the first segment,
/// at an even distance from `from`, so the words after it keep their places in the sum).
fn l4_sum(buf: &PacketBuf, phdr: Checksum, from: usize, len: usize, field: usize) -> Checksum {
    let end = from + len;
    let mut sum = phdr;
    // Where the segment's first byte is in the packet.
    let mut at = 0;
    for seg in buf.segments() {
        let data = seg.data();
        let (lo, hi) = (from.max(at), end.min(at + data.len()));
        if lo < hi {
            let part = &data[lo - at..hi - at];
            sum = if (lo..hi).contains(&field) {
                let cut = field - lo;
                sum.add_bytes(&part[..cut]).add_bytes(part.get(cut + 2..).unwrap_or_default())
            } else {
                sum.add_bytes(part)
            };
        }
        at += data.len();
        if at >= end {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_mem::testing::{memory, packet_pool};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn tcp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, 7, 512)
            .write(&mut f, payload)
            .unwrap();
        f
    }

    /// The TCP checksum etherparse computes for `frame`.
    fn tcp_cksum_of(frame: &[u8]) -> u16 {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else { panic!("IPv4") };
        let Some(TransportSlice::Tcp(tcp)) = &p.transport else { panic!("TCP") };
        tcp.to_header().calc_checksum_ipv4(&ip.header().to_header(), tcp.payload()).unwrap()
    }

    #[test]
    fn a_broken_tcp_checksum_is_counted_and_fixed_across_segments() {
        let mem = memory();
        let pool = packet_pool(&mem, 16);
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7) as u8).collect();
        let good = tcp_frame(&payload);
        let mut bad = good.clone();
        bad[50] ^= 0x5a; // the TCP checksum's high byte
        bad[24] ^= 0x01; // the IPv4 header checksum's high byte
                         // Split unevenly, odd lengths included: 61 bytes of headers and payload, then 999, then
                         // the rest.
        let mut chain = burst::mem::ChainBuilder::new();
        for piece in [&bad[..61], &bad[61..1060], &bad[1060..]] {
            let mut seg = pool.alloc().unwrap();
            assert!(seg.set_data(piece));
            chain.push(seg).unwrap();
        }
        let mut buf = chain.take().unwrap();
        let seen = process(&mut buf, TxCsum::default());
        assert_eq!(seen, Seen { bad_ip: true, bad_l4: true, unparsed: false });
        let mut out = vec![0u8; good.len()];
        assert_eq!(buf.read(0, &mut out).unwrap(), &good[..], "both checksums computed again");
        assert_eq!(tcp_cksum_of(&good), u16::from_be_bytes([good[50], good[51]]));
        assert_eq!(buf.ol_flags(), OlFlags::TX_IPV4, "nothing asked of the device");
        assert_eq!(
            buf.tx_offload(),
            TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, ..TxOffload::default() },
            "the lengths filled as testpmd does"
        );
        // The same packet again is good.
        assert_eq!(process(&mut buf, TxCsum::default()), Seen::default());
        drop(buf);
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn with_the_offloads_on_the_device_is_asked_and_rx_flags_are_believed() {
        let mem = memory();
        let pool = packet_pool(&mem, 4);
        let frame = tcp_frame(&[1, 2, 3]);
        let mut buf = pool.alloc().unwrap();
        assert!(buf.set_data(&frame));
        // The port said the good checksums were bad: counted, not computed.
        buf.set_ol_flags(OlFlags::empty().with_rx_ip_cksum(CksumStatus::Bad).with_rx_l4_cksum(CksumStatus::Bad));
        let seen = process(&mut buf, TxCsum { ip: true, udp: true, tcp: true });
        assert_eq!(seen, Seen { bad_ip: true, bad_l4: true, unparsed: false });
        assert_eq!(buf.ol_flags(), OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_TCP_CKSUM);
        assert_eq!(buf.data(), &frame[..], "the device fills the checksums (tx_prepare readies them)");
        let mut broken = frame.clone();
        broken[51] ^= 1;
        assert!(buf.set_data(&broken));
        buf.set_ol_flags(OlFlags::empty().with_rx_ip_cksum(CksumStatus::Good).with_rx_l4_cksum(CksumStatus::Good));
        assert_eq!(process(&mut buf, TxCsum { ip: true, udp: true, tcp: true }), Seen::default());
    }

    #[test]
    fn udp_without_a_checksum_and_frames_that_are_not_ip_go_out_untouched() {
        let mem = memory();
        let pool = packet_pool(&mem, 4);
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(9, 9)
            .write(&mut f, &[0; 18])
            .unwrap();
        f[40..42].fill(0);
        let mut buf = pool.alloc().unwrap();
        assert!(buf.set_data(&f));
        assert_eq!(process(&mut buf, TxCsum::default()), Seen::default());
        assert_eq!(buf.data(), &f[..], "a UDP checksum of 0 stays 0 (testpmd)");
        // A first fragment (MF set) keeps its UDP checksum: it covers bytes the fragment lacks.
        let mut frag = f.clone();
        frag[40..42].copy_from_slice(&[0x12, 0x34]);
        frag[20] |= 0x20;
        let mut ip = Ipv4Packet::new_unchecked(&mut frag[14..34]);
        ip.fill_checksum();
        assert!(buf.set_data(&frag));
        assert_eq!(process(&mut buf, TxCsum::default()), Seen::default());
        assert_eq!(buf.data(), &frag[..]);
        for junk in [&[0xffu8; 5][..], &[0u8; 60][..], &f[..30]] {
            assert!(buf.set_data(junk));
            buf.set_ol_flags(OlFlags::RX_RSS_HASH);
            assert_eq!(process(&mut buf, TxCsum::default()), Seen { unparsed: true, ..Seen::default() });
            assert_eq!((buf.data(), buf.ol_flags()), (junk, OlFlags::RX_RSS_HASH), "as it came");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any bytes, cut anywhere: csum never panics, and a packet it parsed as IPv4 leaves with
        /// its header checksum right. Every segment goes back to the pool.
        #[test]
        fn hostile_frames_in_any_segments_never_panic(
            tcp in proptest::bool::ANY,
            v6 in proptest::bool::ANY,
            payload_len in 0usize..600,
            flips in proptest::collection::vec((0usize..700, 0u8..=255), 0..6),
            cuts in proptest::collection::btree_set(1usize..700, 0..4),
            rx_bad in proptest::bool::ANY,
        ) {
            let mem = memory();
            let pool = packet_pool(&mem, 8);
            let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let b = if v6 { b.ipv6([1; 16], [2; 16], 64) } else { b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64) };
            let payload = vec![0xa5; payload_len];
            let mut f = Vec::new();
            if tcp {
                b.tcp(1, 2, 3, 4).write(&mut f, &payload).unwrap();
            } else {
                b.udp(1, 2).write(&mut f, &payload).unwrap();
            }
            for (at, v) in flips {
                if let Some(byte) = f.get_mut(at) {
                    *byte = v;
                }
            }
            let mut chain = burst::mem::ChainBuilder::new();
            let mut at = 0;
            for end in cuts.into_iter().filter(|&c| c < f.len()).chain([f.len()]) {
                let mut seg = pool.alloc().unwrap();
                proptest::prop_assert!(seg.set_data(&f[at..end]));
                chain.push(seg).unwrap();
                at = end;
            }
            let mut buf = chain.take().unwrap();
            if rx_bad {
                buf.set_ol_flags(OlFlags::empty().with_rx_ip_cksum(CksumStatus::Bad));
            }
            let first = process(&mut buf, TxCsum::default());
            let (ptype, lens) = ptype::parse_head(buf.data(), buf.pkt_len() as usize);
            if !first.unparsed && ptype.is_ipv4() {
                let ip = Ipv4Packet::new_unchecked(&buf.data()[lens.l2..lens.l2 + lens.l3]);
                proptest::prop_assert!(ip.verify_checksum());
            }
            let _ = process(&mut buf, TxCsum { ip: true, udp: true, tcp: true });
            drop(buf);
            proptest::prop_assert!(pool.mempool().is_full());
        }
    }
}
