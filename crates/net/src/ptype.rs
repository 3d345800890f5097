//! Packet types (DPDK's `RTE_PTYPE_*`, same values): what kind of L2, L3 and L4 header a packet
//! carries, as a driver or device knows it, in one 32-bit word a packet buffer holds; and
//! [`parse`], which finds them and the header lengths in a frame's bytes (`rte_net_get_ptype`
//! with its `hdr_lens`).
//!
//! Tunnels and inner headers are not parsed: their nibbles stay 0 (unknown).

use std::fmt;

use crate::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, TcpSegment};

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
    let mut lens = HeaderLens::default();
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return (PacketType::UNKNOWN, lens) };
    lens.l2 = eth.header_len();
    let mut ptype = match eth.vlan() {
        None => PacketType::L2_ETHER,
        Some(_) => PacketType::L2_ETHER_VLAN,
    };
    let (protocol, l4, more) = match eth.ethertype() {
        EtherType::IPV4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return (ptype, lens) };
            lens.l3 = ip.header_len();
            ptype = ptype | if ip.header_len() > 20 { PacketType::L3_IPV4_EXT } else { PacketType::L3_IPV4 };
            if ip.frag_offset() != 0 {
                return (ptype | PacketType::L4_FRAG, lens);
            }
            (ip.protocol(), &eth.payload()[ip.header_len()..ip.total_len() as usize], ip.more_frags())
        }
        EtherType::IPV6 => {
            let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else { return (ptype, lens) };
            lens.l3 = 40;
            ptype = ptype | PacketType::L3_IPV6;
            (ip.next_header(), &eth.payload()[40..40 + ip.payload().len()], false)
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
        IpProtocol::UDP if l4.len() >= 8 => {
            lens.l4 = 8;
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

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_lengths_fit(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_, lens) = parse(&bytes);
            prop_assert!(lens.l2 + lens.l3 + lens.l4 <= bytes.len());
        }
    }
}
