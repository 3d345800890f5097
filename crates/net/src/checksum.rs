//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of
//! the data taken as big-endian 16-bit words, an odd last byte padded with a zero byte.
//!
//! [`Checksum`] is an accumulator, so that a checksum over pieces that are not contiguous in
//! memory is one sum: IPv4's header checksum (RFC 791 section 3.1) is one `add_bytes` of the
//! header; the TCP and UDP checksums are an `add_u16`/`add_u32` of each pseudo-header field
//! (RFC 9293 section 3.1, RFC 768, RFC 8200 section 8.1) and an `add_bytes` of the segment, on
//! the same accumulator.
//!
//! The sum is taken 32 bits at a time into a 64-bit accumulator and folded at the end (RFC 1071
//! section 2 (C) and (D): 2^16 is 1 modulo 2^16 - 1, so wider words and deferred carries give
//! the same sum, and byte order only needs care at the ends).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::{field, IpProtocol};

/// Bytes summed between two folds of the accumulator: 2^14 words of at most 2^32 - 1 each, plus
/// a folded sum below 2^33, stay far below 2^64.
const FOLD_EVERY: usize = 1 << 16;

/// A running one's complement sum, continued across [`Checksum::add_bytes`] calls as if their
/// data were one buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checksum {
    /// The sum so far, not yet folded to 16 bits.
    sum: u64,
    /// The data so far had an odd length: the next byte is the low half of a word.
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    #[inline]
    pub const fn new() -> Checksum {
        Checksum { sum: 0, odd: false }
    }

    /// Adds `data`, which follows the data added so far: after an odd-length piece, its first
    /// byte completes the last word.
    #[inline]
    #[must_use]
    pub fn add_bytes(mut self, mut data: &[u8]) -> Checksum {
        if self.odd {
            let Some((&low, rest)) = data.split_first() else { return self };
            self.sum += u64::from(low);
            self.odd = false;
            data = rest;
        }
        for block in data.chunks(FOLD_EVERY) {
            let words = block.chunks_exact(4);
            let tail = words.remainder();
            for w in words {
                self.sum += u64::from(field::u32_at(w, 0));
            }
            // 0 to 3 bytes left: a word, then a byte in the high half of the next one.
            if tail.len() >= 2 {
                self.sum += u64::from(field::u16_at(tail, 0));
            }
            if tail.len() % 2 == 1 {
                self.sum += u64::from(field::u8_at(tail, tail.len() - 1)) << 8;
                // Only the last block can be odd: every other one is FOLD_EVERY long.
                self.odd = true;
            }
            self.sum = fold32(self.sum);
        }
        self
    }

    /// Adds a 16-bit field, as its two bytes on the wire.
    #[inline]
    #[must_use]
    pub fn add_u16(self, v: u16) -> Checksum {
        self.add_bytes(&v.to_be_bytes())
    }

    /// Adds a 32-bit field (an IPv4 address, a length), as its four bytes on the wire.
    #[inline]
    #[must_use]
    pub fn add_u32(self, v: u32) -> Checksum {
        self.add_bytes(&v.to_be_bytes())
    }

    /// The one's complement sum folded to 16 bits (the end-around carries added back in). A
    /// header whose checksum field is right sums to `0xffff`.
    #[inline]
    pub fn sum(self) -> u16 {
        let mut s = fold32(self.sum);
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// What goes in the checksum field: the complement of [`Checksum::sum`], computed with the
    /// field itself set to zero.
    #[inline]
    pub fn finish(self) -> u16 {
        !self.sum()
    }
}

/// The IPv4 pseudo-header's sum (RFC 9293 section 3.1, RFC 768): source, destination, zero and
/// protocol, and the TCP or UDP length. Continue it with the segment's bytes for the full L4
/// checksum; a device that checksums TX packets is given its [`Checksum::sum`] in the L4 checksum
/// field (DPDK's `rte_ipv4_phdr_cksum`), with `l4_len` 0 for segmentation, where the device adds
/// each segment's length itself.
#[inline]
pub fn ipv4_pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, l4_len: u16) -> Checksum {
    Checksum::new().add_bytes(&src.octets()).add_bytes(&dst.octets()).add_u16(u16::from(protocol.0)).add_u16(l4_len)
}

/// The IPv6 pseudo-header's sum (RFC 8200 section 8.1): source, destination, the upper-layer
/// length as 32 bits, and the next header; as [`ipv4_pseudo_header`] otherwise
/// (`rte_ipv6_phdr_cksum`).
#[inline]
pub fn ipv6_pseudo_header(src: Ipv6Addr, dst: Ipv6Addr, next_header: IpProtocol, l4_len: u32) -> Checksum {
    Checksum::new().add_bytes(&src.octets()).add_bytes(&dst.octets()).add_u32(l4_len).add_u32(u32::from(next_header.0))
}

/// Folds a 64-bit sum to at most 33 bits without changing it modulo 2^16 - 1.
#[inline(always)]
fn fold32(s: u64) -> u64 {
    (s & 0xffff_ffff) + (s >> 32)
}

/// The Internet checksum of `data`: what its checksum field holds when it was zero while summing.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Checksum::new().add_bytes(data).finish()
}

/// True when `data`, its checksum field included, sums to `0xffff` (RFC 1071 section 1: the
/// receiver's check).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    Checksum::new().add_bytes(data).sum() == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, a 16-bit word at a time with the carry folded at once: the oracle for
    /// the wide, deferred version.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc_1071_section_3_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (one's complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add_bytes(&data).sum(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn an_ipv4_header_from_the_wire() {
        // A UDP packet's header, 192.168.0.1 to 192.168.0.199, checksum field b861: the check
        // passes, and recomputing with the field zeroed gives it back.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(verify(&h));
        h[10..12].fill(0);
        assert_eq!(checksum(&h), 0xb861);
        assert!(!verify(&h));
    }

    #[test]
    fn a_udp_checksum_over_the_ipv4_pseudo_header() {
        // The UDP datagram of the header above (192.168.0.1:68 to 192.168.0.199:67, 95 bytes of
        // header and payload): its checksum is the pseudo-header's sum continued over the
        // datagram, as etherparse computes it.
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 0, 199);
        let payload = [0x5au8; 87];
        let udp = etherparse::UdpHeader::with_ipv4_checksum(
            68,
            67,
            &etherparse::Ipv4Header::new(87, 64, etherparse::IpNumber::UDP, src.octets(), dst.octets()).unwrap(),
            &payload,
        )
        .unwrap();
        let mut dgram = udp.to_bytes().to_vec();
        dgram[6..8].fill(0);
        dgram.extend_from_slice(&payload);
        let sum = ipv4_pseudo_header(src, dst, IpProtocol::UDP, 95).add_bytes(&dgram).finish();
        assert_eq!(sum, udp.checksum);
        // What a device is given: the pseudo-header's sum, which it continues over the datagram.
        let seed = ipv4_pseudo_header(src, dst, IpProtocol::UDP, 95).sum();
        dgram[6..8].copy_from_slice(&seed.to_be_bytes());
        assert_eq!(checksum(&dgram), udp.checksum);
    }

    #[test]
    fn a_tcp_checksum_over_the_ipv6_pseudo_header() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let payload = [7u8; 33];
        let ip = etherparse::Ipv6Header {
            payload_length: 53,
            next_header: etherparse::IpNumber::TCP,
            hop_limit: 64,
            source: src.octets(),
            destination: dst.octets(),
            ..Default::default()
        };
        let tcp = etherparse::TcpHeader::new(1000, 2000, 7, 512);
        let want = tcp.calc_checksum_ipv6(&ip, &payload).unwrap();
        let mut seg = tcp.to_bytes().to_vec();
        seg[16..18].fill(0);
        seg.extend_from_slice(&payload);
        assert_eq!(ipv6_pseudo_header(src, dst, IpProtocol::TCP, 53).add_bytes(&seg).finish(), want);
    }

    #[test]
    fn empty_and_zero_data_give_all_ones() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0; 7]), 0xffff);
        assert!(!verify(&[0; 4]), "all zeros is not a valid checksummed header");
    }

    #[test]
    fn a_large_buffer_does_not_overflow() {
        let data = vec![0xffu8; 3 * FOLD_EVERY + 3];
        assert_eq!(checksum(&data), reference(&data));
    }

    proptest! {
        #[test]
        fn matches_the_definition(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert_eq!(checksum(&data), reference(&data));
        }

        #[test]
        fn pieces_sum_as_the_whole(data in proptest::collection::vec(any::<u8>(), 0..300), cuts in proptest::collection::vec(0usize..300, 0..5)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut acc = Checksum::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                acc = acc.add_bytes(&data[from..c]);
                from = c;
            }
            prop_assert_eq!(acc.finish(), checksum(&data));
        }

        #[test]
        fn fields_sum_as_their_bytes(a: u16, b: u32, lead in proptest::collection::vec(any::<u8>(), 0..3)) {
            let mut bytes = lead.clone();
            bytes.extend_from_slice(&a.to_be_bytes());
            bytes.extend_from_slice(&b.to_be_bytes());
            prop_assert_eq!(Checksum::new().add_bytes(&lead).add_u16(a).add_u32(b).finish(), checksum(&bytes));
        }

        #[test]
        fn a_filled_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 2..100), at in 0usize..50) {
            // Put the field at an even offset, as every header does.
            let at = (at * 2).min((data.len() - 2) & !1);
            data[at..at + 2].fill(0);
            let c = checksum(&data);
            data[at..at + 2].copy_from_slice(&c.to_be_bytes());
            prop_assert!(verify(&data));
        }
    }
}
