//! What the modes write into frames: txonly's template and the MAC rewrites of `mac` and
//! `macswap` (DPDK 22.11 app/test-pmd/txonly.c, macfwd.c, macswap.h).

use std::net::Ipv4Addr;

use burst::net::{ethernet, ipv4, EtherType, EthernetAddrs, EthernetFrame, IpProtocol, Ipv4Packet, UdpDatagram};
use burst::MacAddr;

/// txonly's addresses and ports (testpmd's `tx_ip_src_addr`, `tx_ip_dst_addr`,
/// `tx_udp_src_port`, `tx_udp_dst_port`): 198.18.0.0/15 is the benchmarking range (RFC 2544).
pub const TX_IP_SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const TX_IP_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const TX_UDP_SRC_PORT: u16 = 9;
pub const TX_UDP_DST_PORT: u16 = 9;
/// testpmd's IP_DEFTTL.
const TTL: u8 = 64;

/// The frame txonly sends from a port: `len` bytes (without CRC) of Ethernet, IPv4 and UDP
/// headers and a zero payload, from `src` to `dst`. As testpmd: IPv4 checksum set, no DF bit,
/// identification 0, UDP checksum 0 ("no checksum"). Built once per stream, copied per packet.
/// `len` is at least [`crate::options::MIN_TXPKTS`] (checked with the options).
pub fn udp_template(src: MacAddr, dst: MacAddr, len: u16) -> Vec<u8> {
    const HEADERS: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    let udp_len = len.saturating_sub(HEADERS as u16);
    // A zeroed buffer holds every field testpmd leaves at 0; the views write the others.
    let mut frame = vec![0u8; usize::from(len)];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst(dst);
    eth.set_src(src);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_ihl((ipv4::MIN_HEADER_LEN / 4) as u8);
    ip.set_total_len(udp_len + ipv4::MIN_HEADER_LEN as u16);
    ip.set_ttl(TTL);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src(TX_IP_SRC);
    ip.set_dst(TX_IP_DST);
    ip.fill_checksum();
    let mut udp = UdpDatagram::new_unchecked(ip.payload_mut());
    udp.set_src_port(TX_UDP_SRC_PORT);
    udp.set_dst_port(TX_UDP_DST_PORT);
    udp.set_len(udp_len);
    frame
}

/// `mac` mode's rewrite: the destination and source of `addrs`, built once per stream. A runt
/// shorter than the two addresses (12 bytes) is left alone.
#[inline(always)]
pub fn set_macs(frame: &mut [u8], addrs: &EthernetAddrs<[u8; ethernet::ADDRS_LEN]>) {
    if let Ok(mut view) = EthernetAddrs::new_checked(frame) {
        view.copy_from(addrs);
    }
}

/// `macswap` mode's rewrite: the frame's destination and source swapped; a runt is left alone.
/// The cost is the frame's first cache line, which net_null never touched (testpmd's macswap
/// pays it too); the swap itself is two loads and two stores ([`EthernetAddrs::swap`]).
#[inline(always)]
pub fn swap_macs(frame: &mut [u8]) {
    if let Ok(mut addrs) = EthernetAddrs::new_checked(frame) {
        addrs.swap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{EtherType, IpNumber, NetSlice, SlicedPacket, TransportSlice};

    const A: MacAddr = MacAddr([2, 0x62, 0x75, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0]);

    #[test]
    fn the_template_is_testpmds_udp_frame() {
        for len in [42u16, 60, 64, 1514] {
            let f = udp_template(A, B, len);
            assert_eq!(f.len(), usize::from(len));
            let p = SlicedPacket::from_ethernet(&f).unwrap();
            let eth = p.link.unwrap().to_header().unwrap().ethernet2().unwrap();
            assert_eq!((eth.source, eth.destination, eth.ether_type), (A.0, B.0, EtherType::IPV4));
            let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
            let iph = ip.header().to_header();
            assert_eq!((iph.source, iph.destination), (TX_IP_SRC.octets(), TX_IP_DST.octets()));
            assert_eq!((iph.time_to_live, iph.protocol, iph.identification), (64, IpNumber::UDP, 0));
            assert!(!iph.dont_fragment);
            assert_eq!(usize::from(iph.total_len), usize::from(len) - 14);
            assert_eq!(iph.header_checksum, iph.calc_header_checksum());
            assert_ne!(iph.header_checksum, 0);
            let Some(TransportSlice::Udp(udp)) = p.transport else { panic!("not UDP") };
            assert_eq!((udp.source_port(), udp.destination_port(), udp.checksum()), (9, 9, 0));
            assert_eq!(usize::from(udp.length()), usize::from(len) - 34);
            assert!(udp.payload().iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn mac_rewrites_touch_only_the_addresses() {
        let mut f = udp_template(A, B, 64);
        let orig = f.clone();
        set_macs(&mut f, &EthernetAddrs::new(MacAddr([2, 0, 0, 0, 0, 9]), B));
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&f[6..12], &B.0);
        assert_eq!(&f[12..], &orig[12..]);
        let mut g = orig.clone();
        swap_macs(&mut g);
        assert_eq!((&g[..6], &g[6..12]), (&A.0[..], &B.0[..]));
        assert_eq!(&g[12..], &orig[12..]);
        let mut runt = [1u8, 2, 3];
        swap_macs(&mut runt);
        set_macs(&mut runt, &EthernetAddrs::new(MacAddr::ZERO, MacAddr::ZERO));
        assert_eq!(runt, [1, 2, 3]);
        // docs/pktgen.md: frames shorter than 12 bytes are forwarded untouched; 12 are not.
        let mut eleven = [7u8; 11];
        swap_macs(&mut eleven);
        set_macs(&mut eleven, &EthernetAddrs::new(MacAddr::ZERO, MacAddr::ZERO));
        assert_eq!(eleven, [7; 11]);
        let mut twelve: Vec<u8> = [A.0, B.0].concat();
        swap_macs(&mut twelve);
        assert_eq!(twelve, [B.0, A.0].concat());
        set_macs(&mut twelve, &EthernetAddrs::new(MacAddr::ZERO, MacAddr::BROADCAST));
        assert_eq!(twelve, [[0; 6], [0xff; 6]].concat());
    }

    #[test]
    fn the_template_is_byte_for_byte_what_etherparse_builds() {
        // testpmd's fields through etherparse, every other field at its default: the way the
        // template was built before burst-net.
        for len in [42u16, 60, 64, 1514] {
            let udp_len = len - 34;
            let eth = etherparse::Ethernet2Header { source: A.0, destination: B.0, ether_type: EtherType::IPV4 };
            let mut ip = etherparse::Ipv4Header {
                total_len: udp_len + 20,
                dont_fragment: false,
                time_to_live: 64,
                protocol: IpNumber::UDP,
                source: TX_IP_SRC.octets(),
                destination: TX_IP_DST.octets(),
                ..Default::default()
            };
            ip.header_checksum = ip.calc_header_checksum();
            let udp = etherparse::UdpHeader { source_port: 9, destination_port: 9, length: udp_len, checksum: 0 };
            let mut want = [&eth.to_bytes()[..], &ip.to_bytes()[..], &udp.to_bytes()[..]].concat();
            want.resize(usize::from(len), 0);
            assert_eq!(udp_template(A, B, len), want, "len {len}");
        }
    }
}
