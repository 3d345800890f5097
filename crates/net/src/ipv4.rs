//! The IPv4 header, options included (RFC 791 section 3.1; the type-of-service byte as DSCP
//! and ECN, RFC 2474 section 3 and RFC 3168 section 5).
//!
//! ```text
//!  0        1        2        3
//!  |ver|IHL | DSCP|E| total length    |
//!  | identification  |flg| frag offset |
//!  | TTL    | proto  | header checksum |
//!  | source address                    |
//!  | destination address               |
//!  | options (IHL - 5 words) ...       |
//! ```

use std::net::Ipv4Addr;

use crate::checksum;
use crate::field;
use crate::{Error, Header, IpProtocol};

const VER_IHL: usize = 0;
const DSCP_ECN: usize = 1;
const TOTAL_LEN: usize = 2;
const IDENT: usize = 4;
const FLAGS_FRAG: usize = 6;
const TTL: usize = 8;
const PROTOCOL: usize = 9;
const CHECKSUM: usize = 10;
const SRC: usize = 12;
const DST: usize = 16;

/// The Don't Fragment flag, in the 16 bits at `FLAGS_FRAG`.
const DF: u16 = 0x4000;
/// The More Fragments flag.
const MF: u16 = 0x2000;
/// The fragment offset, in 8-byte units.
const FRAG_OFFSET: u16 = 0x1fff;

/// Bytes of a header without options (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;
/// Bytes of the longest header (IHL 15: 40 bytes of options).
pub const MAX_HEADER_LEN: usize = 60;

/// An IPv4 packet: header, options and payload. [`Ipv4Packet::new_checked`] makes sure that the
/// version is 4, that the IHL covers the fixed header and fits the buffer, and that the total
/// length covers the header and fits the buffer (which may hold more: Ethernet pads short
/// frames); the accessors then read the header with no further test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view of `buffer` that checks nothing, for writing a header into a buffer of the right
    /// size: set version, IHL and total length before reading options or payload. Nothing a
    /// view does panics on a short or inconsistent buffer: reads past its end give zeros,
    /// writes there are dropped.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// A view of `buffer`, checked as the type says.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, Error> {
        let packet = Ipv4Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks what [`Ipv4Packet::new_checked`] checks (again, after a length field changed).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        field::need(b, Header::Ipv4, MIN_HEADER_LEN)?;
        if self.version() != 4 {
            return Err(Error::Version { header: Header::Ipv4, found: self.version(), want: 4 });
        }
        if self.header_len() < MIN_HEADER_LEN {
            return Err(Error::Ipv4HeaderLen { ihl: self.ihl() });
        }
        field::need(b, Header::Ipv4, self.header_len())?;
        if usize::from(self.total_len()) < self.header_len() {
            return Err(Error::Ipv4TotalLen { total_len: self.total_len(), header_len: self.header_len() });
        }
        field::need(b, Header::Ipv4, usize::from(self.total_len()))
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field: 4 in a checked view.
    #[inline]
    pub fn version(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), VER_IHL) >> 4
    }

    /// Internet header length, in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), VER_IHL) & 0x0f
    }

    /// Bytes of the header, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Differentiated services code point (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), DSCP_ECN) >> 2
    }

    /// Explicit congestion notification (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), DSCP_ECN) & 0x03
    }

    /// Bytes of header and payload.
    #[inline]
    pub fn total_len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), TOTAL_LEN)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), IDENT)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        field::u16_at(self.buffer.as_ref(), FLAGS_FRAG) & DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        field::u16_at(self.buffer.as_ref(), FLAGS_FRAG) & MF != 0
    }

    /// Fragment offset, in 8-byte units as the field holds it.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), FLAGS_FRAG) & FRAG_OFFSET
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), TTL)
    }

    /// The payload's protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(field::u8_at(self.buffer.as_ref(), PROTOCOL))
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array::<4>(self.buffer.as_ref(), SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::array::<4>(self.buffer.as_ref(), DST))
    }

    /// The options, as bytes (the header past its fixed 20).
    #[inline]
    pub fn options(&self) -> &[u8] {
        field::slice(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    /// The payload: from the end of the header to the total length (Ethernet's padding, past
    /// it, is not part of it).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::slice(self.buffer.as_ref(), self.header_len()..usize::from(self.total_len()))
    }

    /// True when the header, options included, sums to all ones (RFC 791 section 3.1, "Header
    /// Checksum").
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(field::slice(self.buffer.as_ref(), 0..self.header_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version field.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        field::put_bits(self.buffer.as_mut(), VER_IHL, 0xf0, v << 4);
    }

    /// Sets the IHL, in 32-bit words (the low 4 bits of `words`). The options and payload move
    /// with it: check again before reading them.
    #[inline]
    pub fn set_ihl(&mut self, words: u8) {
        field::put_bits(self.buffer.as_mut(), VER_IHL, 0x0f, words);
    }

    /// Sets the DSCP (the low 6 bits of `v`).
    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        field::put_bits(self.buffer.as_mut(), DSCP_ECN, 0xfc, v << 2);
    }

    /// Sets the ECN field (the low 2 bits of `v`).
    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        field::put_bits(self.buffer.as_mut(), DSCP_ECN, 0x03, v);
    }

    /// Sets the total length. The payload's end moves with it: check again before reading it.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        field::put_u16(self.buffer.as_mut(), TOTAL_LEN, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), IDENT, v);
    }

    /// Sets the bits of `mask` in the flags-and-offset field to those of `v`.
    #[inline]
    fn set_flags_frag(&mut self, mask: u16, v: u16) {
        let old = field::u16_at(self.buffer.as_ref(), FLAGS_FRAG);
        field::put_u16(self.buffer.as_mut(), FLAGS_FRAG, (old & !mask) | (v & mask));
    }

    /// Sets Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flags_frag(DF, if on { DF } else { 0 });
    }

    /// Sets More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flags_frag(MF, if on { MF } else { 0 });
    }

    /// Sets the fragment offset, in 8-byte units (the low 13 bits of `units`).
    #[inline]
    pub fn set_frag_offset(&mut self, units: u16) {
        self.set_flags_frag(FRAG_OFFSET, units);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        field::put_u8(self.buffer.as_mut(), TTL, v);
    }

    /// Sets the payload's protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: IpProtocol) {
        field::put_u8(self.buffer.as_mut(), PROTOCOL, p.0);
    }

    /// Sets the header checksum field as it is; [`Ipv4Packet::fill_checksum`] computes it.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        field::put(self.buffer.as_mut(), SRC, a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        field::put(self.buffer.as_mut(), DST, a.octets());
    }

    /// Computes the header checksum over the header as it stands (options included) and
    /// writes it: the last thing to do after setting the other fields.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(field::slice(self.buffer.as_ref(), 0..self.header_len()));
        self.set_checksum(sum);
    }

    /// The options, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let to = self.header_len();
        field::slice_mut(self.buffer.as_mut(), MIN_HEADER_LEN..to)
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        field::slice_mut(self.buffer.as_mut(), range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv4Options};
    use proptest::prelude::*;

    /// An etherparse header, its options a whole number of words, its total length covering
    /// `payload_len` bytes; checksum filled.
    fn header() -> impl Strategy<Value = (Ipv4Header, usize)> {
        (
            (0u8..64, 0u8..4, any::<u16>(), any::<bool>(), any::<bool>(), 0u16..8192),
            (any::<u8>(), any::<u8>(), any::<[u8; 4]>(), any::<[u8; 4]>()),
            (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)),
            0usize..40,
        )
            .prop_map(|((dscp, ecn, ident, df, mf, frag), (ttl, proto, src, dst), options, payload_len)| {
                let mut h = Ipv4Header {
                    dscp: Ipv4Dscp::try_new(dscp).unwrap(),
                    ecn: Ipv4Ecn::try_new(ecn).unwrap(),
                    identification: ident,
                    dont_fragment: df,
                    more_fragments: mf,
                    fragment_offset: IpFragOffset::try_new(frag).unwrap(),
                    time_to_live: ttl,
                    protocol: IpNumber(proto),
                    source: src,
                    destination: dst,
                    options: Ipv4Options::try_from(&options[..]).unwrap(),
                    ..Default::default()
                };
                h.set_payload_len(payload_len).unwrap();
                h.header_checksum = h.calc_header_checksum();
                (h, payload_len)
            })
    }

    fn packet(h: &Ipv4Header, payload_len: usize, padding: usize) -> Vec<u8> {
        let mut b = h.to_bytes().to_vec();
        b.extend((0..payload_len + padding).map(|i| i as u8));
        b
    }

    #[test]
    fn each_length_check_in_turn() {
        // Total length 28, in a buffer of 40 (Ethernet padding).
        let good = packet(&Ipv4Header { total_len: 28, ..Default::default() }, 8, 12);
        assert!(Ipv4Packet::new_checked(&good[..]).is_ok());
        let e = |b: &[u8]| Ipv4Packet::new_checked(b).unwrap_err();
        assert_eq!(e(&good[..19]), Error::Truncated { header: Header::Ipv4, need: 20, have: 19 });
        let mut b = good.clone();
        b[0] = 0x65;
        assert_eq!(e(&b), Error::Version { header: Header::Ipv4, found: 6, want: 4 });
        b[0] = 0x44;
        assert_eq!(e(&b), Error::Ipv4HeaderLen { ihl: 4 });
        b[0] = 0x47;
        let p = Ipv4Packet::new_checked(&b[..]).expect("28 bytes hold IHL 7 and a total length of 28");
        assert_eq!((p.options().len(), p.payload().len()), (8, 0));
        b[0] = 0x48;
        assert_eq!(e(&b), Error::Ipv4TotalLen { total_len: 28, header_len: 32 });
        b[0] = 0x4f;
        assert_eq!(e(&b), Error::Truncated { header: Header::Ipv4, need: 60, have: 40 });
        assert_eq!(e(&good[..27]), Error::Truncated { header: Header::Ipv4, need: 28, have: 27 });
    }

    #[test]
    fn padding_past_the_total_length_is_not_payload() {
        let h = Ipv4Header { total_len: 23, ..Default::default() };
        let b = packet(&h, 3, 5);
        let v = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!((v.payload(), v.options()), (&[0, 1, 2][..], &[][..]));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..80), v: u8, w: u16, a: [u8; 4]) {
            if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = (p.dscp(), p.ecn(), p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset(), p.ttl());
                let _ = (p.protocol(), p.checksum(), p.src(), p.dst(), p.verify_checksum());
                prop_assert_eq!(p.options().len() + MIN_HEADER_LEN + p.payload().len(), usize::from(p.total_len()));
            }
            // Setters on any buffer, and reads after a length field went wrong, do not panic.
            let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
            p.set_ihl(v);
            p.set_total_len(w);
            p.set_src(a.into());
            p.set_frag_offset(w);
            p.fill_checksum();
            let _ = (p.options_mut().len(), p.payload_mut().len(), p.payload().len(), p.verify_checksum());
        }

        #[test]
        fn reads_what_etherparse_writes((h, payload_len) in header(), padding in 0usize..8) {
            let b = packet(&h, payload_len, padding);
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!((p.version(), p.ihl(), p.header_len()), (4, h.ihl(), h.header_len()));
            prop_assert_eq!((p.dscp(), p.ecn()), (h.dscp.value(), h.ecn.value()));
            prop_assert_eq!((p.total_len(), p.ident()), (h.total_len, h.identification));
            prop_assert_eq!((p.dont_frag(), p.more_frags(), p.frag_offset()), (h.dont_fragment, h.more_fragments, h.fragment_offset.value()));
            prop_assert_eq!((p.ttl(), p.protocol(), p.checksum()), (h.time_to_live, IpProtocol(h.protocol.0), h.header_checksum));
            prop_assert_eq!((p.src(), p.dst()), (Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination)));
            prop_assert_eq!(p.options(), h.options.as_slice());
            prop_assert_eq!(p.payload(), &b[h.header_len()..h.header_len() + payload_len]);
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn etherparse_reads_what_the_view_writes((h, payload_len) in header()) {
            let mut b = vec![0u8; h.header_len() + payload_len];
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_version(4);
            p.set_ihl(h.ihl());
            p.set_dscp(h.dscp.value());
            p.set_ecn(h.ecn.value());
            p.set_total_len(h.total_len);
            p.set_ident(h.identification);
            p.set_dont_frag(h.dont_fragment);
            p.set_more_frags(h.more_fragments);
            p.set_frag_offset(h.fragment_offset.value());
            p.set_ttl(h.time_to_live);
            p.set_protocol(IpProtocol(h.protocol.0));
            p.set_src(h.source.into());
            p.set_dst(h.destination.into());
            p.options_mut().copy_from_slice(h.options.as_slice());
            p.fill_checksum();
            let (parsed, rest) = Ipv4Header::from_slice(&b).unwrap();
            prop_assert_eq!(parsed, h);
            prop_assert_eq!(rest.len(), payload_len);
        }

        #[test]
        fn a_changed_byte_fails_the_checksum((h, _) in header(), at in 0usize..60, flip in 1u8..=255) {
            let mut b = h.to_bytes().to_vec();
            let at = at % b.len();
            b[at] ^= flip;
            // Bytes that change the lengths may make the view refuse the buffer instead.
            if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
                prop_assert!(!p.verify_checksum(), "byte {} changed by {:#x}", at, flip);
            }
        }
    }
}
