//! The UDP header (RFC 768).
//!
//! ```text
//!  0        1        2        3
//!  | source port     | dest port       |
//!  | length          | checksum        |
//! ```
//!
//! The checksum covers a pseudo-header of the IP layer's addresses (RFC 768; RFC 8200 section
//! 8.1 for IPv6), which this view does not see: [`UdpDatagram::set_checksum`] writes what the
//! caller computed with [`crate::Checksum`], or 0 ("no checksum", IPv4 only).

use crate::field;
use crate::{Error, Header};

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const LENGTH: usize = 4;
const CHECKSUM: usize = 6;

/// Bytes of the header.
pub const HEADER_LEN: usize = 8;

/// A UDP datagram: header and payload. [`UdpDatagram::new_checked`] makes sure that the length
/// field covers the header and fits the buffer (which may hold more: Ethernet padding); the
/// accessors then read the header with no further test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// A view of `buffer` that checks nothing, for writing a header into a buffer of the right
    /// size. Nothing a view does panics on a short buffer: reads past its end give zeros,
    /// writes there are dropped.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> UdpDatagram<T> {
        UdpDatagram { buffer }
    }

    /// A view of `buffer`, checked as the type says.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpDatagram<T>, Error> {
        let datagram = UdpDatagram::new_unchecked(buffer);
        datagram.check_len()?;
        Ok(datagram)
    }

    /// Checks what [`UdpDatagram::new_checked`] checks (again, after the length changed).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        field::need(b, Header::Udp, HEADER_LEN)?;
        if usize::from(self.len()) < HEADER_LEN {
            return Err(Error::UdpLen { length: self.len() });
        }
        field::need(b, Header::Udp, usize::from(self.len()))
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), DST_PORT)
    }

    /// The length field: bytes of header and payload.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // A header's field, not a container's size.
    pub fn len(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), LENGTH)
    }

    /// The checksum field (0: none sent).
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), CHECKSUM)
    }

    /// The payload: from the header to the length field's end.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::slice(self.buffer.as_ref(), HEADER_LEN..usize::from(self.len()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        field::put_u16(self.buffer.as_mut(), SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        field::put_u16(self.buffer.as_mut(), DST_PORT, port);
    }

    /// Sets the length field. The payload's end moves with it: check again before reading it.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        field::put_u16(self.buffer.as_mut(), LENGTH, len);
    }

    /// Sets the checksum field as it is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let to = usize::from(self.len());
        field::slice_mut(self.buffer.as_mut(), HEADER_LEN..to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::UdpHeader;
    use proptest::prelude::*;

    #[test]
    fn the_length_field_is_checked() {
        let b = [0, 9, 0, 53, 0, 10, 0xab, 0xcd, 1, 2, 0, 0];
        let d = UdpDatagram::new_checked(&b[..]).unwrap();
        assert_eq!((d.src_port(), d.dst_port(), d.len(), d.checksum()), (9, 53, 10, 0xabcd));
        assert_eq!(d.payload(), &[1, 2], "padding past the length is not payload");
        let e = |b: &[u8]| UdpDatagram::new_checked(b).unwrap_err();
        assert_eq!(e(&b[..7]), Error::Truncated { header: Header::Udp, need: 8, have: 7 });
        assert_eq!(e(&b[..9]), Error::Truncated { header: Header::Udp, need: 10, have: 9 });
        for short in [0u8, 7] {
            let mut c = b;
            c[5] = short;
            assert_eq!(e(&c), Error::UdpLen { length: u16::from(short) });
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..20), len: u16) {
            if let Ok(d) = UdpDatagram::new_checked(&bytes[..]) {
                let _ = (d.src_port(), d.dst_port(), d.checksum());
                prop_assert_eq!(d.payload().len() + HEADER_LEN, usize::from(d.len()));
            }
            let mut d = UdpDatagram::new_unchecked(&mut bytes[..]);
            d.set_len(len);
            d.set_checksum(len);
            let _ = (d.payload().len(), d.payload_mut().len());
        }

        #[test]
        fn reads_what_etherparse_writes(src: u16, dst: u16, checksum: u16, payload in proptest::collection::vec(any::<u8>(), 0..30), padding in 0usize..6) {
            let h = UdpHeader { source_port: src, destination_port: dst, length: (HEADER_LEN + payload.len()) as u16, checksum };
            let b = [&h.to_bytes()[..], &payload, &vec![0xee; padding]].concat();
            let d = UdpDatagram::new_checked(&b[..]).unwrap();
            prop_assert_eq!((d.src_port(), d.dst_port(), d.len(), d.checksum()), (src, dst, h.length, checksum));
            prop_assert_eq!(d.payload(), &payload[..]);
        }

        #[test]
        fn etherparse_reads_what_the_view_writes(src: u16, dst: u16, checksum: u16, payload in proptest::collection::vec(any::<u8>(), 0..30)) {
            let len = (HEADER_LEN + payload.len()) as u16;
            let mut b = vec![0u8; usize::from(len)];
            let mut d = UdpDatagram::new_unchecked(&mut b[..]);
            d.set_src_port(src);
            d.set_dst_port(dst);
            d.set_len(len);
            d.set_checksum(checksum);
            d.payload_mut().copy_from_slice(&payload);
            let (h, rest) = UdpHeader::from_slice(&b).unwrap();
            prop_assert_eq!(h, UdpHeader { source_port: src, destination_port: dst, length: len, checksum });
            prop_assert_eq!(rest, &payload[..]);
        }
    }
}
