//! What the modes write into frames: txonly's template and the MAC rewrites of `mac` and
//! `macswap` (DPDK 22.11 app/test-pmd/txonly.c, macfwd.c, macswap.h).

use burst::MacAddr;
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, UdpHeader};

/// txonly's addresses and ports (testpmd's `tx_ip_src_addr`, `tx_ip_dst_addr`,
/// `tx_udp_src_port`, `tx_udp_dst_port`): 198.18.0.0/15 is the benchmarking range (RFC 2544).
pub const TX_IP_SRC: [u8; 4] = [198, 18, 0, 1];
pub const TX_IP_DST: [u8; 4] = [198, 18, 0, 2];
pub const TX_UDP_SRC_PORT: u16 = 9;
pub const TX_UDP_DST_PORT: u16 = 9;
/// testpmd's IP_DEFTTL.
const TTL: u8 = 64;

/// The frame txonly sends from a port: `len` bytes (without CRC) of Ethernet, IPv4 and UDP
/// headers and a zero payload, from `src` to `dst`. As testpmd: IPv4 checksum set, no DF bit,
/// identification 0, UDP checksum 0 ("no checksum"). Built once per stream, copied per packet.
/// `len` is at least [`crate::options::MIN_TXPKTS`] (checked with the options).
pub fn udp_template(src: MacAddr, dst: MacAddr, len: u16) -> Vec<u8> {
    let udp_len = len.saturating_sub((Ethernet2Header::LEN + Ipv4Header::MIN_LEN) as u16);
    let eth = Ethernet2Header { source: src.0, destination: dst.0, ether_type: EtherType::IPV4 };
    let mut ip = Ipv4Header {
        total_len: udp_len + Ipv4Header::MIN_LEN as u16,
        dont_fragment: false,
        time_to_live: TTL,
        protocol: IpNumber::UDP,
        source: TX_IP_SRC,
        destination: TX_IP_DST,
        ..Default::default()
    };
    ip.header_checksum = ip.calc_header_checksum();
    let udp =
        UdpHeader { source_port: TX_UDP_SRC_PORT, destination_port: TX_UDP_DST_PORT, length: udp_len, checksum: 0 };
    let mut frame = Vec::with_capacity(usize::from(len));
    frame.extend_from_slice(&eth.to_bytes());
    frame.extend_from_slice(&ip.to_bytes());
    frame.extend_from_slice(&udp.to_bytes());
    frame.resize(usize::from(len), 0);
    frame
}

/// `mac` mode's rewrite: destination then source, the first 12 bytes of the frame.
pub fn mac_header(src: MacAddr, dst: MacAddr) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[..6].copy_from_slice(&dst.0);
    h[6..].copy_from_slice(&src.0);
    h
}

/// Writes `header` (destination, source) over the frame's first 12 bytes; a runt shorter than
/// that is left alone.
#[inline(always)]
pub fn set_macs(frame: &mut [u8], header: &[u8; 12]) {
    if let Some(h) = frame.get_mut(..12) {
        h.copy_from_slice(header);
    }
}

/// Swaps the frame's destination and source MACs; a runt is left alone.
///
/// As two loads and two stores of the first 12 bytes (a u64 and a u32), where a slice swap
/// compiles to narrow moves through a stack copy. Either way the cost is the frame's first
/// cache line, which net_null never touched (testpmd's macswap pays it too).
#[inline(always)]
pub fn swap_macs(frame: &mut [u8]) {
    let Some(h) = frame.first_chunk_mut::<12>() else { return };
    let x = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    let y = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    // Bytes 6..12 then 0..6: b6 b7 | b8..b11 | b0 b1, and b2..b5.
    let lo = (x >> 48) | (u64::from(y) << 16) | (x << 48);
    let hi = (x >> 16) as u32;
    h[..8].copy_from_slice(&lo.to_le_bytes());
    h[8..].copy_from_slice(&hi.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

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
            assert_eq!((iph.source, iph.destination), (TX_IP_SRC, TX_IP_DST));
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
        set_macs(&mut f, &mac_header(B, MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&f[6..12], &B.0);
        assert_eq!(&f[12..], &orig[12..]);
        let mut g = orig.clone();
        swap_macs(&mut g);
        assert_eq!((&g[..6], &g[6..12]), (&A.0[..], &B.0[..]));
        assert_eq!(&g[12..], &orig[12..]);
        let mut runt = [1u8, 2, 3];
        swap_macs(&mut runt);
        set_macs(&mut runt, &[0; 12]);
        assert_eq!(runt, [1, 2, 3]);
    }
}
