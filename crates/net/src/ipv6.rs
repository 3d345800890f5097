//! IPv6's fixed header (RFC 8200 section 3). Extension headers are not parsed: the payload is
//! what follows the fixed 40 bytes, and [`Ipv6Packet::next_header`] says what it starts with.
//!
//! ```text
//!  0        1        2        3
//!  |ver| traffic class | flow label  |
//!  | payload length  | next  | hops  |
//!  | source address (16 bytes)       |
//!  | destination address (16 bytes)  |
//! ```

use std::net::Ipv6Addr;

use crate::field;
use crate::{Error, Header, IpProtocol};

/// Version, traffic class and flow label, in one 32-bit word.
const VER_TC_FLOW: usize = 0;
const PAYLOAD_LEN: usize = 4;
const NEXT_HEADER: usize = 6;
const HOP_LIMIT: usize = 7;
const SRC: usize = 8;
const DST: usize = 24;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 40;

/// An IPv6 packet: the fixed header and what follows. [`Ipv6Packet::new_checked`] makes sure
/// that the version is 6 and that the header and the payload length fit the buffer (which may
/// hold more: Ethernet pads short frames); the accessors then read the header with no further
/// test. A jumbogram (payload length 0 and a Jumbo Payload option, RFC 2675) reads as an
/// empty payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view of `buffer` that checks nothing, for writing a header into a buffer of the right
    /// size. Nothing a view does panics on a short buffer: reads past its end give zeros,
    /// writes there are dropped.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// A view of `buffer`, checked as the type says.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, Error> {
        let packet = Ipv6Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks what [`Ipv6Packet::new_checked`] checks (again, after the payload length changed).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        field::need(b, Header::Ipv6, HEADER_LEN)?;
        if self.version() != 6 {
            return Err(Error::Version { header: Header::Ipv6, found: self.version(), want: 6 });
        }
        field::need(b, Header::Ipv6, HEADER_LEN + usize::from(self.payload_len()))
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn first_word(&self) -> u32 {
        field::u32_at(self.buffer.as_ref(), VER_TC_FLOW)
    }

    /// The version field: 6 in a checked view.
    #[inline]
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN, as in IPv4: RFC 2474, RFC 3168).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// Flow label (20 bits; RFC 6437).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), PAYLOAD_LEN)
    }

    /// What follows the fixed header: an extension header or the upper-layer protocol.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(field::u8_at(self.buffer.as_ref(), NEXT_HEADER))
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), HOP_LIMIT)
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(field::array::<16>(self.buffer.as_ref(), SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(field::array::<16>(self.buffer.as_ref(), DST))
    }

    /// The payload length's bytes after the fixed header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::slice(self.buffer.as_ref(), HEADER_LEN..HEADER_LEN + usize::from(self.payload_len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_first_word(&mut self, mask: u32, v: u32) {
        let w = (self.first_word() & !mask) | (v & mask);
        field::put_u32(self.buffer.as_mut(), VER_TC_FLOW, w);
    }

    /// Sets the version field (the low 4 bits of `v`).
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        self.set_first_word(0xf000_0000, u32::from(v) << 28);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, v: u8) {
        self.set_first_word(0x0ff0_0000, u32::from(v) << 20);
    }

    /// Sets the flow label (the low 20 bits of `v`).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        self.set_first_word(0x000f_ffff, v);
    }

    /// Sets the payload length. The payload's end moves with it: check again before reading it.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        field::put_u16(self.buffer.as_mut(), PAYLOAD_LEN, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, p: IpProtocol) {
        field::put_u8(self.buffer.as_mut(), NEXT_HEADER, p.0);
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        field::put_u8(self.buffer.as_mut(), HOP_LIMIT, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        field::put(self.buffer.as_mut(), SRC, a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        field::put(self.buffer.as_mut(), DST, a.octets());
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let to = HEADER_LEN + usize::from(self.payload_len());
        field::slice_mut(self.buffer.as_mut(), HEADER_LEN..to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6FlowLabel, Ipv6Header};
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = Ipv6Header> {
        (any::<u8>(), 0u32..(1 << 20), 0u16..64, any::<u8>(), any::<u8>(), any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(tc, flow, len, next, hops, src, dst)| Ipv6Header {
                traffic_class: tc,
                flow_label: Ipv6FlowLabel::try_new(flow).unwrap(),
                payload_length: len,
                next_header: IpNumber(next),
                hop_limit: hops,
                source: src,
                destination: dst,
            })
    }

    #[test]
    fn version_and_lengths_are_checked() {
        let h = Ipv6Header { payload_length: 4, ..Default::default() };
        let b = [&h.to_bytes()[..], &[1, 2, 3, 4, 0, 0]].concat();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), &[1, 2, 3, 4], "the padding past the payload length is not payload");
        let e = |b: &[u8]| Ipv6Packet::new_checked(b).unwrap_err();
        assert_eq!(e(&b[..39]), Error::Truncated { header: Header::Ipv6, need: 40, have: 39 });
        assert_eq!(e(&b[..43]), Error::Truncated { header: Header::Ipv6, need: 44, have: 43 });
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(e(&v4), Error::Version { header: Header::Ipv6, found: 4, want: 6 });
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..70), len: u16, w: u32) {
            if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
                let _ = (p.traffic_class(), p.flow_label(), p.next_header(), p.hop_limit(), p.src(), p.dst());
                prop_assert_eq!(p.payload().len(), usize::from(p.payload_len()));
            }
            let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
            p.set_payload_len(len);
            p.set_flow_label(w);
            let _ = (p.payload().len(), p.payload_mut().len(), p.src());
        }

        #[test]
        fn reads_what_etherparse_writes(h in header(), padding in 0usize..8) {
            let mut b = h.to_bytes().to_vec();
            b.extend((0..usize::from(h.payload_length) + padding).map(|i| i as u8));
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, h.traffic_class, h.flow_label.value()));
            prop_assert_eq!((p.payload_len(), p.next_header(), p.hop_limit()), (h.payload_length, IpProtocol(h.next_header.0), h.hop_limit));
            prop_assert_eq!((p.src(), p.dst()), (h.source_addr(), h.destination_addr()));
            prop_assert_eq!(p.payload(), &b[40..40 + usize::from(h.payload_length)]);
        }

        #[test]
        fn etherparse_reads_what_the_view_writes(h in header()) {
            let mut b = vec![0u8; HEADER_LEN + usize::from(h.payload_length)];
            let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
            p.set_version(6);
            p.set_traffic_class(h.traffic_class);
            p.set_flow_label(h.flow_label.value());
            p.set_payload_len(h.payload_length);
            p.set_next_header(IpProtocol(h.next_header.0));
            p.set_hop_limit(h.hop_limit);
            p.set_src(h.source_addr());
            p.set_dst(h.destination_addr());
            let (parsed, rest) = Ipv6Header::from_slice(&b).unwrap();
            prop_assert_eq!(rest.len(), usize::from(h.payload_length));
            prop_assert_eq!(parsed, h);
        }
    }
}
