//! Packet types (DPDK's `RTE_PTYPE_*`, same values): what kind of L2, L3 and L4 header a packet
//! carries, as a driver or device knows it, in one 32-bit word a packet buffer holds; and
//! [`parse`], which finds them and the header lengths in a frame's bytes (`rte_net_get_ptype`
//! with its `hdr_lens`), or [`parse_head`] in a chained packet's first segment.
//!
//! Tunnels and inner headers are not parsed: their nibbles stay 0 (unknown).

use std::fmt;

use crate::{ipv4, ipv6, udp, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, TcpSegment};

/// A packet type: one nibble each for L2, L3 and L4 (and tunnel and inner headers, unused here).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketType(pub u32);

impl PacketType {
    /// Nothing known.
    pub const UNKNOWN: PacketType = PacketType(0);
    /// Ethernet II.
    pub const L2_ETHER: PacketType = PacketType(0x1);
    /// Ethernet with one VLAN tag.
    pub const L2_ETHER_VLAN: PacketType = PacketType(0x6);
    /// Ethernet with two VLAN tags (QinQ).
    pub const L2_ETHER_QINQ: PacketType = PacketType(0x7);
    /// The L2 nibble.
    pub const L2_MASK: PacketType = PacketType(0xf);
    /// IPv4 without options.
    pub const L3_IPV4: PacketType = PacketType(0x10);
    /// IPv4 with options.
    pub const L3_IPV4_EXT: PacketType = PacketType(0x30);
    /// IPv6 without extension headers.
    pub const L3_IPV6: PacketType = PacketType(0x40);
    /// IPv4, options not known.
    pub const L3_IPV4_EXT_UNKNOWN: PacketType = PacketType(0x90);
    /// IPv6, extension headers not known.
    pub const L3_IPV6_EXT_UNKNOWN: PacketType = PacketType(0xe0);
    /// The L3 nibble.
    pub const L3_MASK: PacketType = PacketType(0xf0);
    /// TCP.
    pub const L4_TCP: PacketType = PacketType(0x100);
    /// UDP.
    pub const L4_UDP: PacketType = PacketType(0x200);
    /// An IP fragment other than the first (no L4 header to read).
    pub const L4_FRAG: PacketType = PacketType(0x300);
    /// SCTP.
    pub const L4_SCTP: PacketType = PacketType(0x400);
    /// ICMP.
    pub const L4_ICMP: PacketType = PacketType(0x500);
    /// Not a fragment, and none of the L4 types above.
    pub const L4_NONFRAG: PacketType = PacketType(0x600);
    /// The L4 nibble.
    pub const L4_MASK: PacketType = PacketType(0xf00);

    /// The L2 nibble alone.
    pub fn l2(self) -> PacketType {
        PacketType(self.0 & Self::L2_MASK.0)
    }

    /// The L3 nibble alone.
    pub fn l3(self) -> PacketType {
        PacketType(self.0 & Self::L3_MASK.0)
    }

    /// The L4 nibble alone.
    pub fn l4(self) -> PacketType {
        PacketType(self.0 & Self::L4_MASK.0)
    }

    /// Whether the L3 header is IPv4 (with or without options).
    pub fn is_ipv4(self) -> bool {
        matches!(self.l3(), Self::L3_IPV4 | Self::L3_IPV4_EXT | Self::L3_IPV4_EXT_UNKNOWN)
    }

    /// Whether the L3 header is IPv6.
    pub fn is_ipv6(self) -> bool {
        matches!(self.l3(), Self::L3_IPV6 | Self::L3_IPV6_EXT_UNKNOWN)
    }
}

impl std::ops::BitOr for PacketType {
    type Output = PacketType;
    fn bitor(self, rhs: PacketType) -> PacketType {
        PacketType(self.0 | rhs.0)
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l2 = match self.l2() {
            Self::UNKNOWN => None,
            Self::L2_ETHER => Some("L2_ETHER"),
            Self::L2_ETHER_VLAN => Some("L2_ETHER_VLAN"),
            Self::L2_ETHER_QINQ => Some("L2_ETHER_QINQ"),
            _ => Some("L2_OTHER"),
        };
        let l3 = match self.l3() {
            Self::UNKNOWN => None,
            Self::L3_IPV4 => Some("L3_IPV4"),
            Self::L3_IPV4_EXT => Some("L3_IPV4_EXT"),
            Self::L3_IPV6 => Some("L3_IPV6"),
            Self::L3_IPV4_EXT_UNKNOWN => Some("L3_IPV4_EXT_UNKNOWN"),
            Self::L3_IPV6_EXT_UNKNOWN => Some("L3_IPV6_EXT_UNKNOWN"),
            _ => Some("L3_OTHER"),
        };
        let l4 = match self.l4() {
            Self::UNKNOWN => None,
            Self::L4_TCP => Some("L4_TCP"),
            Self::L4_UDP => Some("L4_UDP"),
            Self::L4_FRAG => Some("L4_FRAG"),
            Self::L4_SCTP => Some("L4_SCTP"),
            Self::L4_ICMP => Some("L4_ICMP"),
            Self::L4_NONFRAG => Some("L4_NONFRAG"),
            _ => Some("L4_OTHER"),
        };
        let words: Vec<&str> = [l2, l3, l4].into_iter().flatten().collect();
        if words.is_empty() {
            f.write_str("UNKNOWN")
        } else {
            f.write_str(&words.join(" "))
        }
    }
}

impl fmt::Debug for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketType({self})")
    }
}

/// The header lengths [`parse`] found: what a TX offload request needs (`l2_len`, `l3_len`,
/// `l4_len`), 0 where a header was not found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderLens {
    /// Ethernet header with its tags.
    pub l2: usize,
    /// IP header with options (IPv6: the fixed header only).
    pub l3: usize,
    /// TCP header with options, or UDP's 8 bytes.
    pub l4: usize,
}

/// The packet type and header lengths of `frame`, as far as its bytes are well formed: a
/// header too short for what it claims ends the parse there, with what was found before it.
pub fn parse(frame: &[u8]) -> (PacketType, HeaderLens) {
    parse_head(frame, frame.len())
}

/// [`parse`] for a frame of `frame_len` bytes whose first bytes are `head`: the first segment
/// of a chained packet, whose headers `rte_net_get_ptype` reads the same way. The headers
/// must lie in `head`; the lengths they state (IPv4's total length, IPv6's payload length) are
/// held against `frame_len`, since the rest of the packet is in other segments.
pub fn parse_head(head: &[u8], frame_len: usize) -> (PacketType, HeaderLens) {
    let head = &head[..head.len().min(frame_len)];
    let mut lens = HeaderLens::default();
    let Ok(eth) = EthernetFrame::new_checked(head) else { return (PacketType::UNKNOWN, lens) };
    lens.l2 = eth.header_len();
    let mut ptype = match eth.vlan() {
        None => PacketType::L2_ETHER,
        Some(_) => PacketType::L2_ETHER_VLAN,
    };
    // The L3 packet: its bytes in `head`, and its length in the whole frame. The views'
    // `new_checked` would hold the stated lengths against `head`: the same checks are made
    // here against the frame.
    let (l3, l3_frame) = (eth.payload(), frame_len - lens.l2);
    let (protocol, l4, more) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_unchecked(l3);
            let (hl, total) = (ip.header_len(), usize::from(ip.total_len()));
            if l3.len() < ipv4::MIN_HEADER_LEN
                || ip.version() != 4
                || hl < ipv4::MIN_HEADER_LEN
                || hl > l3.len()
                || total < hl
                || total > l3_frame
            {
                return (ptype, lens);
            }
            lens.l3 = hl;
            ptype = ptype | if hl > ipv4::MIN_HEADER_LEN { PacketType::L3_IPV4_EXT } else { PacketType::L3_IPV4 };
            if ip.frag_offset() != 0 {
                return (ptype | PacketType::L4_FRAG, lens);
            }
            (ip.protocol(), &l3[hl..total.min(l3.len())], ip.more_frags())
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_unchecked(l3);
            let total = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            if l3.len() < ipv6::HEADER_LEN || ip.version() != 6 || total > l3_frame {
                return (ptype, lens);
            }
            lens.l3 = ipv6::HEADER_LEN;
            ptype = ptype | PacketType::L3_IPV6;
            (ip.next_header(), &l3[ipv6::HEADER_LEN..total.min(l3.len())], false)
        }
        _ => return (ptype, lens),
    };
    let l4_type = match protocol {
        IpProtocol::TCP => match TcpSegment::new_checked(l4) {
            Ok(tcp) => {
                lens.l4 = tcp.header_len();
                PacketType::L4_TCP
            }
            Err(_) => PacketType::UNKNOWN,
        },
        IpProtocol::UDP if l4.len() >= udp::HEADER_LEN => {
            lens.l4 = udp::HEADER_LEN;
            PacketType::L4_UDP
        }
        IpProtocol::ICMP | IpProtocol::ICMPV6 => PacketType::L4_ICMP,
        IpProtocol(132) => PacketType::L4_SCTP,
        _ if more => PacketType::L4_FRAG,
        _ => PacketType::L4_NONFRAG,
    };
    (ptype | l4_type, lens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    #[test]
    fn the_values_are_dpdks() {
        assert_eq!(
            (PacketType::L2_ETHER_VLAN.0, PacketType::L3_IPV4_EXT_UNKNOWN.0, PacketType::L4_UDP.0),
            (6, 0x90, 0x200)
        );
        assert_eq!(
            (PacketType::L2_ETHER | PacketType::L3_IPV4 | PacketType::L4_TCP).to_string(),
            "L2_ETHER L3_IPV4 L4_TCP"
        );
    }

    #[test]
    fn frames_built_by_etherparse_parse_to_their_types_and_lengths() {
        let eth = || PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut f = Vec::new();
        eth().ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64).udp(1, 2).write(&mut f, &[0; 10]).unwrap();
        assert_eq!(parse(&f), (PacketType(0x211), HeaderLens { l2: 14, l3: 20, l4: 8 }));
        f.clear();
        eth()
            .single_vlan(7.try_into().unwrap())
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut f, &[0; 5])
            .unwrap();
        assert_eq!(parse(&f), (PacketType(0x146), HeaderLens { l2: 18, l3: 40, l4: 20 }));
        f.clear();
        eth().ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64).icmpv4_echo_request(1, 1).write(&mut f, &[]).unwrap();
        assert_eq!(parse(&f).0, PacketType(0x511));
        assert_eq!(parse(&f[..20]), (PacketType::L2_ETHER, HeaderLens { l2: 14, l3: 0, l4: 0 }), "a cut IPv4 header");
        assert_eq!(parse(&[0u8; 10]).0, PacketType::UNKNOWN);
    }

    #[test]
    fn a_chains_first_segment_parses_as_the_whole_frame_would() {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64)
            .tcp(1, 2, 3, 4)
            .write(&mut f, &[9; 3000])
            .unwrap();
        let whole = parse(&f);
        assert_eq!(whole, (PacketType(0x111), HeaderLens { l2: 14, l3: 20, l4: 20 }));
        for cut in [54, 55, 2048] {
            assert_eq!(parse_head(&f[..cut], f.len()), whole, "first segment of {cut} bytes");
            assert_eq!(parse(&f[..cut]).0, PacketType::L2_ETHER, "alone, {cut} bytes are a cut IPv4 packet");
        }
        assert_eq!(parse_head(&f[..40], f.len()), (PacketType(0x11), HeaderLens { l2: 14, l3: 20, l4: 0 }));
        assert_eq!(parse_head(&f[..30], f.len()).0, PacketType::L2_ETHER, "the IPv4 header is not all there");
        assert_eq!(parse_head(&f[..100], f.len() - 1).0, PacketType::L2_ETHER, "the frame is shorter than IPv4 says");
        assert_eq!(parse_head(&f, 20).0, PacketType::L2_ETHER, "a head longer than the frame is cut to it");
        f.clear();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write(&mut f, &[7; 5000])
            .unwrap();
        assert_eq!(parse_head(&f[..62], f.len()), (PacketType(0x241), HeaderLens { l2: 14, l3: 40, l4: 8 }));
        assert_eq!(parse_head(&f[..62], f.len() - 1).0, PacketType::L2_ETHER);
    }

    proptest! {
        #[test]
        fn a_head_holding_the_headers_parses_as_the_whole(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            vlan: bool,
            v6: bool,
            tcp: bool,
            extra in 0usize..300,
        ) {
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let mut f = Vec::new();
            let written = match (vlan, v6, tcp) {
                (false, false, false) => eth.ipv4([1; 4], [2; 4], 9).udp(1, 2).write(&mut f, &payload),
                (false, false, true) => eth.ipv4([1; 4], [2; 4], 9).tcp(1, 2, 3, 4).write(&mut f, &payload),
                (false, true, false) => eth.ipv6([1; 16], [2; 16], 9).udp(1, 2).write(&mut f, &payload),
                (false, true, true) => eth.ipv6([1; 16], [2; 16], 9).tcp(1, 2, 3, 4).write(&mut f, &payload),
                (true, v6, tcp) => {
                    let tagged = eth.single_vlan(5.try_into().unwrap());
                    match (v6, tcp) {
                        (false, false) => tagged.ipv4([1; 4], [2; 4], 9).udp(1, 2).write(&mut f, &payload),
                        (false, true) => tagged.ipv4([1; 4], [2; 4], 9).tcp(1, 2, 3, 4).write(&mut f, &payload),
                        (true, false) => tagged.ipv6([1; 16], [2; 16], 9).udp(1, 2).write(&mut f, &payload),
                        (true, true) => tagged.ipv6([1; 16], [2; 16], 9).tcp(1, 2, 3, 4).write(&mut f, &payload),
                    }
                }
            };
            written.unwrap();
            let whole = parse(&f);
            let headers = whole.1.l2 + whole.1.l3 + whole.1.l4;
            let cut = (headers + extra).min(f.len());
            prop_assert_eq!(parse_head(&f[..cut], f.len()), whole);
        }

        #[test]
        fn any_bytes_parse_without_panic_and_lengths_fit(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_, lens) = parse(&bytes);
            prop_assert!(lens.l2 + lens.l3 + lens.l4 <= bytes.len());
        }
    }
}
