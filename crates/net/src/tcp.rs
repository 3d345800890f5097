//! The TCP header, options included (RFC 9293 section 3.1).
//!
//! ```text
//!  0        1        2        3
//!  | source port     | dest port       |
//!  | sequence number                   |
//!  | acknowledgment number             |
//!  |off|rsv| flags  | window           |
//!  | checksum        | urgent pointer  |
//!  | options (data offset - 5 words)   |
//! ```
//!
//! TCP has no length field: the segment ends where the IP payload does, so a view is made over
//! exactly that (`Ipv4Packet::payload`). The options are bytes; their kinds are not parsed.
//! The checksum covers a pseudo-header the view does not see (RFC 9293 section 3.1):
//! [`TcpSegment::set_checksum`] writes what the caller computed with [`crate::Checksum`].

use std::fmt;

use crate::field;
use crate::{Error, Header};

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ: usize = 4;
const ACK: usize = 8;
/// Data offset in the high 4 bits; the low 4 are reserved.
const OFFSET: usize = 12;
const FLAGS: usize = 13;
const WINDOW: usize = 14;
const CHECKSUM: usize = 16;
const URGENT: usize = 18;

/// Bytes of a header without options (data offset 5).
pub const MIN_HEADER_LEN: usize = 20;

/// The control bits (RFC 9293 section 3.1; CWR and ECE from RFC 3168 section 6.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// The acknowledgment number is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// The urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo.
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced.
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True when every bit of `other` is set here.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;

    #[inline]
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let set: Vec<&str> = NAMES.iter().enumerate().filter(|(i, _)| self.0 >> i & 1 == 1).map(|(_, n)| *n).collect();
        write!(f, "TcpFlags({})", set.join("|"))
    }
}

/// A TCP segment: header, options and payload. [`TcpSegment::new_checked`] makes sure the data
/// offset covers the fixed header and fits the buffer; the accessors then read the header with
/// no further test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// A view of `buffer` that checks nothing, for writing a header into a buffer of the right
    /// size: set the data offset before reading options or payload. Nothing a view does panics
    /// on a short buffer: reads past its end give zeros, writes there are dropped.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> TcpSegment<T> {
        TcpSegment { buffer }
    }

    /// A view of `buffer`, checked as the type says.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpSegment<T>, Error> {
        let segment = TcpSegment::new_unchecked(buffer);
        segment.check_len()?;
        Ok(segment)
    }

    /// Checks what [`TcpSegment::new_checked`] checks (again, after the data offset changed).
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        field::need(b, Header::Tcp, MIN_HEADER_LEN)?;
        if self.header_len() < MIN_HEADER_LEN {
            return Err(Error::TcpDataOffset { offset: self.data_offset() });
        }
        field::need(b, Header::Tcp, self.header_len())
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

    /// Sequence number.
    #[inline]
    pub fn seq(&self) -> u32 {
        field::u32_at(self.buffer.as_ref(), SEQ)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack(&self) -> u32 {
        field::u32_at(self.buffer.as_ref(), ACK)
    }

    /// Data offset, in 32-bit words.
    #[inline]
    pub fn data_offset(&self) -> u8 {
        field::u8_at(self.buffer.as_ref(), OFFSET) >> 4
    }

    /// Bytes of the header, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(field::u8_at(self.buffer.as_ref(), FLAGS))
    }

    /// Window.
    #[inline]
    pub fn window(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), WINDOW)
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        field::u16_at(self.buffer.as_ref(), URGENT)
    }

    /// The options, as bytes (the header past its fixed 20).
    #[inline]
    pub fn options(&self) -> &[u8] {
        field::slice(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    /// The payload: the rest of the buffer after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        field::slice(b, self.header_len()..b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq(&mut self, v: u32) {
        field::put_u32(self.buffer.as_mut(), SEQ, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack(&mut self, v: u32) {
        field::put_u32(self.buffer.as_mut(), ACK, v);
    }

    /// Sets the data offset, in 32-bit words (the low 4 bits of `words`); the reserved bits
    /// beside it are left as they are. The payload moves with it: check again before reading.
    #[inline]
    pub fn set_data_offset(&mut self, words: u8) {
        field::put_bits(self.buffer.as_mut(), OFFSET, 0xf0, words << 4);
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        field::put_u8(self.buffer.as_mut(), FLAGS, flags.0);
    }

    /// Sets the window.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), WINDOW, v);
    }

    /// Sets the checksum field as it is.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        field::put_u16(self.buffer.as_mut(), URGENT, v);
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
        let from = self.header_len();
        let b = self.buffer.as_mut();
        let to = b.len();
        field::slice_mut(b, from..to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{TcpHeader, TcpOptions};
    use proptest::prelude::*;

    fn header() -> impl Strategy<Value = TcpHeader> {
        (
            (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>(), any::<u8>()),
            (any::<u16>(), any::<u16>(), any::<u16>()),
            (0usize..=10).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)),
        )
            .prop_map(|((src, dst, seq, ack, flags), (window, checksum, urgent), options)| {
                let bit = |i: u8| flags >> i & 1 == 1;
                TcpHeader {
                    source_port: src,
                    destination_port: dst,
                    sequence_number: seq,
                    acknowledgment_number: ack,
                    ns: false,
                    fin: bit(0),
                    syn: bit(1),
                    rst: bit(2),
                    psh: bit(3),
                    ack: bit(4),
                    urg: bit(5),
                    ece: bit(6),
                    cwr: bit(7),
                    window_size: window,
                    checksum,
                    urgent_pointer: urgent,
                    options: TcpOptions::try_from_slice(&options).unwrap(),
                }
            })
    }

    /// The flags byte etherparse's fields stand for.
    fn flags_of(h: &TcpHeader) -> TcpFlags {
        let bits = [h.fin, h.syn, h.rst, h.psh, h.ack, h.urg, h.ece, h.cwr];
        TcpFlags(bits.iter().enumerate().map(|(i, &on)| u8::from(on) << i).sum())
    }

    #[test]
    fn the_data_offset_is_checked() {
        let mut b = TcpHeader::new(1, 2, 3, 4).to_bytes().to_vec();
        b.extend_from_slice(b"data");
        let s = TcpSegment::new_checked(&b[..]).unwrap();
        assert_eq!((s.header_len(), s.payload()), (20, &b"data"[..]));
        let e = |b: &[u8]| TcpSegment::new_checked(b).unwrap_err();
        assert_eq!(e(&b[..19]), Error::Truncated { header: Header::Tcp, need: 20, have: 19 });
        b[12] = 0x40;
        assert_eq!(e(&b), Error::TcpDataOffset { offset: 4 });
        b[12] = 0x60;
        let s = TcpSegment::new_checked(&b[..]).unwrap();
        assert_eq!((s.options(), s.payload()), (&b"data"[..], &[][..]));
        b[12] = 0x70;
        assert_eq!(e(&b), Error::Truncated { header: Header::Tcp, need: 28, have: 24 });
    }

    #[test]
    fn flags_print_by_name() {
        let f = TcpFlags::SYN | TcpFlags::ACK;
        assert!(f.contains(TcpFlags::ACK) && !f.contains(TcpFlags::FIN | TcpFlags::ACK));
        assert_eq!(format!("{f:?}"), "TcpFlags(SYN|ACK)");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..70), v: u8) {
            if let Ok(s) = TcpSegment::new_checked(&bytes[..]) {
                let _ = (s.src_port(), s.dst_port(), s.seq(), s.ack(), s.flags(), s.window(), s.checksum(), s.urgent());
                prop_assert_eq!(s.header_len() + s.payload().len(), bytes.len());
            }
            let mut s = TcpSegment::new_unchecked(&mut bytes[..]);
            s.set_data_offset(v);
            s.set_urgent(u16::from(v));
            let _ = (s.options().len(), s.payload().len(), s.options_mut().len(), s.payload_mut().len());
        }

        #[test]
        fn reads_what_etherparse_writes(h in header(), payload in proptest::collection::vec(any::<u8>(), 0..20)) {
            let b = [&h.to_bytes()[..], &payload].concat();
            let s = TcpSegment::new_checked(&b[..]).unwrap();
            prop_assert_eq!((s.src_port(), s.dst_port(), s.seq(), s.ack()), (h.source_port, h.destination_port, h.sequence_number, h.acknowledgment_number));
            prop_assert_eq!((s.data_offset(), s.flags(), s.window()), (h.data_offset(), flags_of(&h), h.window_size));
            prop_assert_eq!((s.checksum(), s.urgent()), (h.checksum, h.urgent_pointer));
            prop_assert_eq!((s.options(), s.payload()), (h.options.as_slice(), &payload[..]));
        }

        #[test]
        fn etherparse_reads_what_the_view_writes(h in header(), payload in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut b = vec![0u8; h.header_len() + payload.len()];
            let mut s = TcpSegment::new_unchecked(&mut b[..]);
            s.set_src_port(h.source_port);
            s.set_dst_port(h.destination_port);
            s.set_seq(h.sequence_number);
            s.set_ack(h.acknowledgment_number);
            s.set_data_offset(h.data_offset());
            s.set_flags(flags_of(&h));
            s.set_window(h.window_size);
            s.set_checksum(h.checksum);
            s.set_urgent(h.urgent_pointer);
            s.options_mut().copy_from_slice(h.options.as_slice());
            s.payload_mut().copy_from_slice(&payload);
            let (parsed, rest) = TcpHeader::from_slice(&b).unwrap();
            prop_assert_eq!(parsed, h);
            prop_assert_eq!(rest, &payload[..]);
        }
    }
}
