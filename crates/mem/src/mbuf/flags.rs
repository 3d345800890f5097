//! A packet's offload flags ([`OlFlags`], DPDK's `RTE_MBUF_F_*` in `rte_mbuf_core.h`, same
//! bits): what a driver found on RX (checksums checked, a VLAN tag stripped, an RSS hash
//! delivered) and what the application asks of the device on TX (checksums, segmentation, a VLAN
//! tag to insert). The TX offload lengths a request needs are [`TxOffload`].
//!
//! Two RX checksum verdicts are two bits each, as in DPDK: neither bit is "unknown" (the device
//! did not check), one is "bad" or "good", both are "none" (the checksum was not there to check,
//! or the packet's data is known valid without one). Read them through [`OlFlags::rx_ip_cksum`]
//! and [`OlFlags::rx_l4_cksum`]. The TX L4 checksum request is a two-bit field too:
//! [`OlFlags::tx_l4`].

use std::fmt;

bitflags::bitflags! {
    /// Offload flags: RX bits are set by the driver, TX bits by the application.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct OlFlags: u64 {
        /// RX: the packet had a VLAN tag; [`crate::PacketBuf::vlan_tci`] holds it.
        const RX_VLAN = 1 << 0;
        /// RX: [`crate::PacketBuf::rss_hash`] holds the device's RSS hash.
        const RX_RSS_HASH = 1 << 1;
        /// RX: the L4 checksum is bad (with [`OlFlags::RX_L4_CKSUM_GOOD`]: none).
        const RX_L4_CKSUM_BAD = 1 << 3;
        /// RX: the IP header checksum is bad (with [`OlFlags::RX_IP_CKSUM_GOOD`]: none).
        const RX_IP_CKSUM_BAD = 1 << 4;
        /// RX: the outer IP header checksum of a tunnelled packet is bad.
        const RX_OUTER_IP_CKSUM_BAD = 1 << 5;
        /// RX: the VLAN tag was stripped from the data into `vlan_tci` (with [`OlFlags::RX_VLAN`]).
        const RX_VLAN_STRIPPED = 1 << 6;
        /// RX: the IP header checksum is good.
        const RX_IP_CKSUM_GOOD = 1 << 7;
        /// RX: the L4 checksum is good.
        const RX_L4_CKSUM_GOOD = 1 << 8;
        /// RX: the packet is TCP segments the device coalesced (large receive offload); the
        /// segment size it saw is in [`TxOffload::tso_segsz`], as DPDK keeps it in `tso_segsz`.
        const RX_LRO = 1 << 16;

        /// TX: segment this TCP packet into `tso_segsz`-byte segments (TSO); implies the IP
        /// and TCP checksums.
        const TX_TCP_SEG = 1 << 50;
        /// TX: L4 checksum request, the field's low bit: TCP (with the high bit clear).
        const TX_TCP_CKSUM = 1 << 52;
        /// TX: L4 checksum request, the field's high bit: SCTP (with the low bit clear).
        const TX_SCTP_CKSUM = 2 << 52;
        /// TX: L4 checksum request, both bits: UDP.
        const TX_UDP_CKSUM = 3 << 52;
        /// TX: compute the IPv4 header checksum (with [`OlFlags::TX_IPV4`]).
        const TX_IP_CKSUM = 1 << 54;
        /// TX: the packet is IPv4 (needed by checksum and segmentation requests).
        const TX_IPV4 = 1 << 55;
        /// TX: the packet is IPv6 (needed by checksum and segmentation requests).
        const TX_IPV6 = 1 << 56;
        /// TX: insert [`crate::PacketBuf::vlan_tci`] as a VLAN tag.
        const TX_VLAN = 1 << 57;
        /// TX: compute the outer IPv4 header checksum of a tunnelled packet.
        const TX_OUTER_IP_CKSUM = 1 << 58;
        /// TX: the outer header of a tunnelled packet is IPv4.
        const TX_OUTER_IPV4 = 1 << 59;
        /// TX: the outer header of a tunnelled packet is IPv6.
        const TX_OUTER_IPV6 = 1 << 60;
    }
}

/// A received checksum's verdict (two bits of [`OlFlags`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CksumStatus {
    /// Not checked: nothing is known.
    Unknown,
    /// Checked and wrong.
    Bad,
    /// Checked and right.
    Good,
    /// No checksum to check, or the data is known valid without one.
    None,
}

/// The L4 checksum a packet asks the device to compute on TX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxL4 {
    /// None.
    None,
    /// TCP.
    Tcp,
    /// SCTP.
    Sctp,
    /// UDP.
    Udp,
}

impl OlFlags {
    /// The RX IP checksum bits.
    pub const RX_IP_CKSUM_MASK: OlFlags = OlFlags::RX_IP_CKSUM_BAD.union(OlFlags::RX_IP_CKSUM_GOOD);
    /// The RX L4 checksum bits.
    pub const RX_L4_CKSUM_MASK: OlFlags = OlFlags::RX_L4_CKSUM_BAD.union(OlFlags::RX_L4_CKSUM_GOOD);
    /// The TX L4 checksum request field.
    pub const TX_L4_MASK: OlFlags = OlFlags::TX_UDP_CKSUM;
    /// Every TX bit: what a driver reads on TX.
    pub const TX_MASK: OlFlags = OlFlags::from_bits_retain(0xffff_0000_0000_0000 | (0xffff << 32));

    fn verdict(self, bad: OlFlags, good: OlFlags) -> CksumStatus {
        match (self.contains(bad), self.contains(good)) {
            (false, false) => CksumStatus::Unknown,
            (true, false) => CksumStatus::Bad,
            (false, true) => CksumStatus::Good,
            (true, true) => CksumStatus::None,
        }
    }

    /// What RX found of the IP header checksum.
    pub fn rx_ip_cksum(self) -> CksumStatus {
        self.verdict(OlFlags::RX_IP_CKSUM_BAD, OlFlags::RX_IP_CKSUM_GOOD)
    }

    /// What RX found of the L4 checksum.
    pub fn rx_l4_cksum(self) -> CksumStatus {
        self.verdict(OlFlags::RX_L4_CKSUM_BAD, OlFlags::RX_L4_CKSUM_GOOD)
    }

    /// `self` with the IP checksum verdict set to `status`.
    pub fn with_rx_ip_cksum(self, status: CksumStatus) -> OlFlags {
        (self - OlFlags::RX_IP_CKSUM_MASK) | Self::bits_of(status, OlFlags::RX_IP_CKSUM_BAD, OlFlags::RX_IP_CKSUM_GOOD)
    }

    /// `self` with the L4 checksum verdict set to `status`.
    pub fn with_rx_l4_cksum(self, status: CksumStatus) -> OlFlags {
        (self - OlFlags::RX_L4_CKSUM_MASK) | Self::bits_of(status, OlFlags::RX_L4_CKSUM_BAD, OlFlags::RX_L4_CKSUM_GOOD)
    }

    fn bits_of(status: CksumStatus, bad: OlFlags, good: OlFlags) -> OlFlags {
        match status {
            CksumStatus::Unknown => OlFlags::empty(),
            CksumStatus::Bad => bad,
            CksumStatus::Good => good,
            CksumStatus::None => bad | good,
        }
    }

    /// The L4 checksum requested on TX.
    pub fn tx_l4(self) -> TxL4 {
        match (self & OlFlags::TX_L4_MASK).bits() >> 52 {
            0 => TxL4::None,
            1 => TxL4::Tcp,
            2 => TxL4::Sctp,
            _ => TxL4::Udp,
        }
    }

    /// `self` with the TX L4 checksum request set to `l4`.
    pub fn with_tx_l4(self, l4: TxL4) -> OlFlags {
        let field = match l4 {
            TxL4::None => OlFlags::empty(),
            TxL4::Tcp => OlFlags::TX_TCP_CKSUM,
            TxL4::Sctp => OlFlags::TX_SCTP_CKSUM,
            TxL4::Udp => OlFlags::TX_UDP_CKSUM,
        };
        (self - OlFlags::TX_L4_MASK) | field
    }
}

impl fmt::Debug for OlFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OlFlags({self})")
    }
}

impl fmt::Display for OlFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        // The two-bit fields as one word each, the rest by name.
        let mut words: Vec<String> = Vec::new();
        let fields = OlFlags::RX_IP_CKSUM_MASK | OlFlags::RX_L4_CKSUM_MASK | OlFlags::TX_L4_MASK;
        if self.intersects(OlFlags::RX_IP_CKSUM_MASK) {
            words.push(format!("rx_ip_cksum_{:?}", self.rx_ip_cksum()).to_lowercase());
        }
        if self.intersects(OlFlags::RX_L4_CKSUM_MASK) {
            words.push(format!("rx_l4_cksum_{:?}", self.rx_l4_cksum()).to_lowercase());
        }
        if self.intersects(OlFlags::TX_L4_MASK) {
            words.push(format!("tx_{:?}_cksum", self.tx_l4()).to_lowercase());
        }
        for (name, flag) in (*self - fields).iter_names() {
            let _ = flag;
            words.push(name.to_lowercase());
        }
        let unknown = *self - OlFlags::all();
        if !unknown.is_empty() {
            words.push(format!("{:#x}", unknown.bits()));
        }
        f.write_str(&words.join(" "))
    }
}

/// What a TX offload request needs to know of the packet's headers (DPDK's `tx_offload` word):
/// the lengths of its L2, L3 and L4 headers, the segment size for TSO, and the outer header
/// lengths of a tunnelled packet. Set by the application with the TX flags that need them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// Bytes of the L2 header (Ethernet and any VLAN tag; the inner one of a tunnel).
    pub l2_len: u8,
    /// Bytes of the L3 header (IPv4 with options, IPv6 with extension headers).
    pub l3_len: u16,
    /// Bytes of the L4 header (TCP with options): needed for TSO.
    pub l4_len: u8,
    /// The TCP payload bytes of each segment TSO makes.
    pub tso_segsz: u16,
    /// Bytes of a tunnel's outer L2 header.
    pub outer_l2_len: u8,
    /// Bytes of a tunnel's outer L3 header.
    pub outer_l3_len: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bits_are_dpdks() {
        assert_eq!(OlFlags::RX_RSS_HASH.bits(), 1 << 1);
        assert_eq!(OlFlags::RX_VLAN_STRIPPED.bits(), 1 << 6);
        assert_eq!(OlFlags::RX_IP_CKSUM_MASK.bits(), (1 << 4) | (1 << 7));
        assert_eq!(OlFlags::RX_L4_CKSUM_MASK.bits(), (1 << 3) | (1 << 8));
        assert_eq!(OlFlags::RX_LRO.bits(), 1 << 16);
        assert_eq!(OlFlags::TX_TCP_SEG.bits(), 1 << 50);
        assert_eq!(OlFlags::TX_UDP_CKSUM.bits(), 3 << 52);
        assert_eq!(OlFlags::TX_IP_CKSUM.bits(), 1 << 54);
        assert_eq!(OlFlags::TX_VLAN.bits(), 1 << 57);
        assert!(OlFlags::TX_MASK.contains(OlFlags::TX_TCP_SEG | OlFlags::TX_OUTER_IPV6 | OlFlags::TX_UDP_CKSUM));
        assert!(!OlFlags::TX_MASK.intersects(OlFlags::RX_RSS_HASH | OlFlags::RX_L4_CKSUM_MASK));
    }

    #[test]
    fn checksum_verdicts_and_requests_round_trip() {
        for status in [CksumStatus::Unknown, CksumStatus::Bad, CksumStatus::Good, CksumStatus::None] {
            let f = OlFlags::RX_RSS_HASH.with_rx_ip_cksum(status).with_rx_l4_cksum(CksumStatus::Good);
            assert_eq!((f.rx_ip_cksum(), f.rx_l4_cksum()), (status, CksumStatus::Good));
            assert!(f.contains(OlFlags::RX_RSS_HASH));
        }
        for l4 in [TxL4::None, TxL4::Tcp, TxL4::Sctp, TxL4::Udp] {
            let f = (OlFlags::TX_IPV4 | OlFlags::TX_UDP_CKSUM).with_tx_l4(l4);
            assert_eq!(f.tx_l4(), l4);
            assert!(f.contains(OlFlags::TX_IPV4));
        }
    }

    #[test]
    fn flags_print_as_words() {
        assert_eq!(OlFlags::empty().to_string(), "none");
        let f = OlFlags::RX_RSS_HASH.with_rx_ip_cksum(CksumStatus::Good).with_rx_l4_cksum(CksumStatus::Bad);
        assert_eq!(f.to_string(), "rx_ip_cksum_good rx_l4_cksum_bad rx_rss_hash");
        assert_eq!((OlFlags::TX_IPV4 | OlFlags::TX_UDP_CKSUM).to_string(), "tx_udp_cksum tx_ipv4");
    }
}
