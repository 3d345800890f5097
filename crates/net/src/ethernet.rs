//! Ethernet II framing (IEEE Std 802.3 clause 3.2.3 to 3.2.6, the EtherType of IEEE 802
//! clause 9.2), with at most one VLAN tag after the source address (IEEE Std 802.1Q-2018
//! clause 9.5).
//!
//! ```text
//!  0       6       12      14         18
//!  | dst   | src   | type  | payload ...               untagged
//!  | dst   | src   | TPID  | TCI type | payload ...    one 802.1Q or 802.1ad tag
//! ```
//!
//! Two views: [`EthernetAddrs`] covers only the two addresses (the 12 bytes a MAC rewrite
//! touches), [`EthernetFrame`] the whole header, tag included.

use std::fmt;

use crate::field;
use crate::{Error, Header, MacAddr, Tci, VlanTag};

/// Destination address offset.
const DST: usize = 0;
/// Source address offset.
const SRC: usize = 6;
/// The EtherType, or a tag's TPID.
const TYPE: usize = 12;
/// A tag's TCI.
const TCI: usize = 14;
/// The EtherType past a tag.
const INNER_TYPE: usize = 16;

/// Bytes of the two addresses.
pub const ADDRS_LEN: usize = 12;
/// Bytes of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Bytes a VLAN tag adds to the header.
pub const VLAN_TAG_LEN: usize = 4;

/// An EtherType (IEEE 802 clause 9.2; IEEE's registry). Values below 0x0600 are an 802.3
/// length instead; a view reports them as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4 (RFC 894).
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP (RFC 826).
    pub const ARP: EtherType = EtherType(0x0806);
    /// A customer VLAN tag, 802.1Q's C-TAG.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// IPv6 (RFC 2464 section 3).
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// A service VLAN tag, 802.1ad's S-TAG (the outer tag of QinQ).
    pub const QINQ: EtherType = EtherType(0x88a8);

    /// True for the two tag protocol identifiers this crate reads a tag after.
    #[inline]
    pub const fn is_vlan_tpid(self) -> bool {
        self.0 == Self::VLAN.0 || self.0 == Self::QINQ.0
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({:#06x})", self.0)
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// The destination and source addresses that open every Ethernet frame: a view that needs only
/// their 12 bytes, for the rewrites of a forwarding loop (l2fwd, testpmd's mac and macswap).
/// Checked once, it reads and writes the addresses with no further test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetAddrs<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetAddrs<T> {
    /// A view of `buffer`, which must hold the two addresses ([`ADDRS_LEN`] bytes).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetAddrs<T>, Error> {
        field::need(buffer.as_ref(), Header::Ethernet, ADDRS_LEN)?;
        Ok(EthernetAddrs { buffer })
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        MacAddr(field::array(self.buffer.as_ref(), DST))
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        MacAddr(field::array(self.buffer.as_ref(), SRC))
    }
}

impl EthernetAddrs<[u8; ADDRS_LEN]> {
    /// Destination `dst` and source `src` as a value of their own: the addresses a forwarding
    /// loop writes into every frame, built once, then written with
    /// [`EthernetAddrs::copy_from`].
    #[inline]
    pub fn new(dst: MacAddr, src: MacAddr) -> EthernetAddrs<[u8; ADDRS_LEN]> {
        let mut buffer = [0; ADDRS_LEN];
        field::put(&mut buffer, DST, dst.0);
        field::put(&mut buffer, SRC, src.0);
        EthernetAddrs { buffer }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetAddrs<T> {
    /// Writes both addresses of `from`: one 12-byte copy (an 8-byte and a 4-byte store),
    /// where [`EthernetAddrs::set_dst`] and [`EthernetAddrs::set_src`] take two 6-byte ones
    /// and, in a loop, the compiler recomputes their halves for every frame.
    #[inline]
    pub fn copy_from(&mut self, from: &EthernetAddrs<[u8; ADDRS_LEN]>) {
        field::put(self.buffer.as_mut(), DST, from.buffer);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, mac: MacAddr) {
        field::put(self.buffer.as_mut(), DST, mac.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, mac: MacAddr) {
        field::put(self.buffer.as_mut(), SRC, mac.0);
    }

    /// Swaps destination and source (testpmd's macswap).
    ///
    /// As one 8-byte and one 4-byte load and store of the 12 bytes, where two 6-byte copies
    /// through a temporary take twice the moves: this is a forwarding loop's whole per-packet
    /// work in macswap. The 12 bytes are taken as one array, so that the one length test is
    /// the one `new_checked` made (two reads at offsets 0 and 8 left the compiler a second
    /// test it did not fold).
    #[inline]
    pub fn swap(&mut self) {
        let Some(h) = field::chunk_mut::<ADDRS_LEN>(self.buffer.as_mut(), DST) else { return };
        let x = u64::from_le_bytes(field::array(h, 0));
        let y = u32::from_le_bytes(field::array(h, 8));
        // Little-endian lanes: x holds bytes 0..8 (byte 0 lowest), y bytes 8..12. The new
        // bytes 0..8 are old 6, 7 (x >> 48), 8..11 (y << 16) and 0, 1 (x << 48); the new bytes
        // 8..12 are old 2..6 (x >> 16, cut to 32 bits).
        let lo = (x >> 48) | (u64::from(y) << 16) | (x << 48);
        let hi = (x >> 16) as u32;
        field::put(h, 0, lo.to_le_bytes());
        field::put(h, 8, hi.to_le_bytes());
    }
}

/// An Ethernet II frame: addresses, an optional 802.1Q or 802.1ad tag, the EtherType and the
/// payload. [`EthernetFrame::new_checked`] makes sure the header, tag included, is in the
/// buffer; the accessors then read it with no further test.
///
/// Only the first tag is parsed: a second one (QinQ's inner C-TAG) is what
/// [`EthernetFrame::ethertype`] reports as [`EtherType::VLAN`], at the start of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view of `buffer` that checks nothing, for writing a header into a buffer of the right
    /// size (set the EtherType before reading the payload). Nothing a view does panics on a
    /// short buffer: reads past its end give zeros, writes there are dropped.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// A view of `buffer`, which must hold the whole header: [`HEADER_LEN`] bytes, and the tag's
    /// [`VLAN_TAG_LEN`] more when the EtherType field holds a tag protocol identifier.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, Error> {
        let frame = EthernetFrame::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks what [`EthernetFrame::new_checked`] checks.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        field::need(b, Header::Ethernet, HEADER_LEN)?;
        if self.outer_type().is_vlan_tpid() {
            field::need(b, Header::Vlan, HEADER_LEN + VLAN_TAG_LEN)?;
        }
        Ok(())
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The two addresses, as their own view.
    #[inline]
    pub fn addrs(&self) -> EthernetAddrs<&[u8]> {
        EthernetAddrs { buffer: self.buffer.as_ref() }
    }

    /// Destination address.
    #[inline]
    pub fn dst(&self) -> MacAddr {
        self.addrs().dst()
    }

    /// Source address.
    #[inline]
    pub fn src(&self) -> MacAddr {
        self.addrs().src()
    }

    /// The field after the source address: the EtherType, or a tag's TPID.
    #[inline]
    fn outer_type(&self) -> EtherType {
        EtherType(field::u16_at(self.buffer.as_ref(), TYPE))
    }

    /// The VLAN tag, if the frame has one.
    #[inline]
    pub fn vlan(&self) -> Option<VlanTag> {
        let tpid = self.outer_type();
        tpid.is_vlan_tpid().then(|| VlanTag { tpid, tci: Tci(field::u16_at(self.buffer.as_ref(), TCI)) })
    }

    /// The EtherType of the payload: past the tag, if there is one.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        match self.outer_type() {
            t if t.is_vlan_tpid() => EtherType(field::u16_at(self.buffer.as_ref(), INNER_TYPE)),
            t => t,
        }
    }

    /// Bytes of the header: [`HEADER_LEN`], plus [`VLAN_TAG_LEN`] for a tagged frame.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.outer_type().is_vlan_tpid() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// What follows the header, to the end of the buffer (padding included: Ethernet has no
    /// length of its own; the next header's says where the packet ends).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        field::slice(b, self.header_len()..b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// The two addresses, as their own view, writable.
    #[inline]
    pub fn addrs_mut(&mut self) -> EthernetAddrs<&mut [u8]> {
        EthernetAddrs { buffer: self.buffer.as_mut() }
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.addrs_mut().set_dst(mac);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, mac: MacAddr) {
        self.addrs_mut().set_src(mac);
    }

    /// Sets the EtherType of the payload: past the tag on a tagged frame. On an untagged frame,
    /// writing a tag protocol identifier makes the next four bytes a tag: check the length
    /// again before reading it.
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        let at = if self.outer_type().is_vlan_tpid() { INNER_TYPE } else { TYPE };
        field::put_u16(self.buffer.as_mut(), at, t.0);
    }

    /// Sets the tag's TCI; [`Error::Untagged`] if the frame has no tag (adding one moves the
    /// payload, which a view does not do).
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: Tci) -> Result<(), Error> {
        if !self.outer_type().is_vlan_tpid() {
            return Err(Error::Untagged);
        }
        field::put_u16(self.buffer.as_mut(), TCI, tci.0);
        Ok(())
    }

    /// What follows the header, writable.
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
    use etherparse::{Ethernet2Header, SingleVlanHeader, VlanId, VlanPcp};
    use proptest::prelude::*;

    const A: MacAddr = MacAddr([2, 0x62, 0x75, 0, 0, 1]);
    const B: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn untagged(ether_type: u16, payload: &[u8]) -> Vec<u8> {
        let eth = Ethernet2Header { source: A.0, destination: B.0, ether_type: ether_type.into() };
        [&eth.to_bytes()[..], payload].concat()
    }

    #[test]
    fn short_buffers_are_refused_with_the_length_needed() {
        for len in 0..HEADER_LEN {
            let e = EthernetFrame::new_checked(&[0u8; 20][..len]).unwrap_err();
            assert_eq!(e, Error::Truncated { header: Header::Ethernet, need: 14, have: len });
        }
        let mut tagged = untagged(0x8100, &[0; 4]);
        for len in HEADER_LEN..HEADER_LEN + VLAN_TAG_LEN {
            let e = EthernetFrame::new_checked(&tagged[..len]).unwrap_err();
            assert_eq!(e, Error::Truncated { header: Header::Vlan, need: 18, have: len });
        }
        assert!(EthernetFrame::new_checked(&tagged[..]).is_ok());
        tagged[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert!(EthernetFrame::new_checked(&tagged[..14]).is_ok(), "untagged: 14 bytes are a header");
        assert!(EthernetAddrs::new_checked(&[0u8; 11][..]).is_err());
        assert!(EthernetAddrs::new_checked(&[0u8; 12][..]).is_ok());
    }

    #[test]
    fn an_untagged_frame() {
        let f = untagged(0x86dd, b"payload");
        let v = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((v.dst(), v.src(), v.ethertype(), v.vlan()), (B, A, EtherType::IPV6, None));
        assert_eq!((v.header_len(), v.payload()), (14, &b"payload"[..]));
    }

    #[test]
    fn a_tagged_frame_reads_past_its_tag() {
        for tpid in [0x8100u16, 0x88a8] {
            let tag = SingleVlanHeader {
                pcp: VlanPcp::try_new(6).unwrap(),
                drop_eligible_indicator: true,
                vlan_id: VlanId::try_new(1234).unwrap(),
                ether_type: 0x0800.into(),
            };
            let f = untagged(tpid, &[&tag.to_bytes()[..], b"ip"].concat());
            let v = EthernetFrame::new_checked(&f[..]).unwrap();
            assert_eq!(v.vlan(), Some(VlanTag { tpid: EtherType(tpid), tci: Tci::new(6, true, 1234) }));
            assert_eq!((v.ethertype(), v.header_len(), v.payload()), (EtherType::IPV4, 18, &b"ip"[..]));
        }
    }

    #[test]
    fn setters_on_a_tagged_frame_keep_the_tag() {
        let mut f = untagged(0x8100, &[0, 5, 0x08, 0x00, 1, 2]);
        let mut v = EthernetFrame::new_checked(&mut f[..]).unwrap();
        v.set_ethertype(EtherType::ARP);
        v.set_vlan_tci(Tci::new(1, false, 7)).unwrap();
        v.set_dst(A);
        v.set_src(B);
        v.payload_mut()[0] = 9;
        let (eth, rest) = Ethernet2Header::from_slice(&f).unwrap();
        assert_eq!((eth.destination, eth.source, eth.ether_type.0), (A.0, B.0, 0x8100));
        let (tag, rest) = SingleVlanHeader::from_slice(rest).unwrap();
        assert_eq!((tag.pcp.value(), tag.drop_eligible_indicator, tag.vlan_id.value()), (1, false, 7));
        assert_eq!((tag.ether_type.0, rest), (0x0806, &[9, 2][..]));
    }

    #[test]
    fn an_untagged_frame_has_no_tci_to_set() {
        let mut f = untagged(0x0800, &[]);
        let mut v = EthernetFrame::new_checked(&mut f[..]).unwrap();
        assert_eq!(v.set_vlan_tci(Tci(1)), Err(Error::Untagged));
        assert_eq!(f, untagged(0x0800, &[]), "a refused setter writes nothing");
    }

    #[test]
    fn a_value_of_addresses_is_copied_whole() {
        let value = EthernetAddrs::new(A, B);
        assert_eq!((value.dst(), value.src()), (A, B));
        let orig = untagged(0x0800, &[7; 50]);
        let mut f = orig.clone();
        EthernetAddrs::new_checked(&mut f[..]).unwrap().copy_from(&value);
        assert_eq!(&f[..12], &[A.0, B.0].concat()[..]);
        assert_eq!(&f[12..], &orig[12..]);
    }

    #[test]
    fn swap_and_set_touch_only_the_addresses() {
        let orig = untagged(0x0800, &[7; 50]);
        let mut f = orig.clone();
        let mut a = EthernetAddrs::new_checked(&mut f[..]).unwrap();
        a.swap();
        assert_eq!((a.dst(), a.src()), (A, B));
        assert_eq!(&f[12..], &orig[12..]);
        let mut a = EthernetAddrs::new_checked(&mut f[..12]).unwrap();
        a.set_dst(MacAddr::BROADCAST);
        a.set_src(MacAddr::ZERO);
        assert_eq!(&f[..12], &[[0xff; 6], [0; 6]].concat()[..]);
        assert_eq!(&f[12..], &orig[12..]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..40), mac: [u8; 6], t: u16, tci: u16) {
            if let Ok(v) = EthernetFrame::new_checked(&bytes[..]) {
                let _ = (v.dst(), v.src(), v.vlan(), v.ethertype(), v.payload());
                prop_assert_eq!(v.header_len() + v.payload().len(), bytes.len());
            }
            if let Ok(mut v) = EthernetFrame::new_checked(&mut bytes[..]) {
                v.set_dst(MacAddr(mac));
                v.set_src(MacAddr(mac));
                v.set_ethertype(EtherType(t));
                let _ = v.set_vlan_tci(Tci(tci));
                v.payload_mut().fill(0);
            }
            // Unchecked views of any length do not panic either.
            let mut v = EthernetFrame::new_unchecked(&mut bytes[..]);
            v.set_ethertype(EtherType(t));
            let _ = (v.vlan(), v.ethertype(), v.payload().len(), v.payload_mut().len());
            if let Ok(mut a) = EthernetAddrs::new_checked(&mut bytes[..]) {
                a.swap();
                a.set_dst(MacAddr(mac));
            }
        }

        #[test]
        fn reads_what_etherparse_writes(dst: [u8; 6], src: [u8; 6], t: u16, tag: Option<(bool, u8, bool, u16)>, payload in proptest::collection::vec(any::<u8>(), 0..20)) {
            let mut bytes = Ethernet2Header { source: src, destination: dst, ether_type: t.into() }.to_bytes().to_vec();
            let mut want_type = t;
            let mut want_tag = None;
            if let Some((qinq, pcp, dei, vid)) = tag {
                let tpid = if qinq { 0x88a8 } else { 0x8100 };
                bytes[12..14].copy_from_slice(&u16::to_be_bytes(tpid));
                let h = SingleVlanHeader {
                    pcp: VlanPcp::try_new(pcp & 7).unwrap(),
                    drop_eligible_indicator: dei,
                    vlan_id: VlanId::try_new(vid & 0xfff).unwrap(),
                    ether_type: t.into(),
                };
                bytes.extend_from_slice(&h.to_bytes());
                want_tag = Some(VlanTag { tpid: EtherType(tpid), tci: Tci::new(pcp, dei, vid) });
            } else if EtherType(t).is_vlan_tpid() {
                // An untagged frame cannot carry a TPID as its EtherType; etherparse's
                // generator may: leave that case to random_bytes_never_panic.
                want_type = 0x0800;
                bytes[12..14].copy_from_slice(&want_type.to_be_bytes());
            }
            bytes.extend_from_slice(&payload);
            let v = EthernetFrame::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!((v.dst(), v.src(), v.ethertype(), v.vlan()), (MacAddr(dst), MacAddr(src), EtherType(want_type), want_tag));
            prop_assert_eq!(v.payload(), &payload[..]);
        }

        #[test]
        fn etherparse_reads_what_the_view_writes(dst: [u8; 6], src: [u8; 6], t: u16, tci: Option<u16>, payload in proptest::collection::vec(any::<u8>(), 0..20)) {
            // An untagged frame whose EtherType is a TPID is a tagged one: the case above.
            prop_assume!(tci.is_some() || !EtherType(t).is_vlan_tpid());
            let tag_len = if tci.is_some() { VLAN_TAG_LEN } else { 0 };
            let mut bytes = vec![0u8; HEADER_LEN + tag_len + payload.len()];
            let mut v = EthernetFrame::new_unchecked(&mut bytes[..]);
            if let Some(tci) = tci {
                // The TPID is what makes a frame tagged; the view writes what follows it.
                v.set_ethertype(EtherType::VLAN);
                v.set_vlan_tci(Tci(tci)).unwrap();
            }
            v.set_dst(MacAddr(dst));
            v.set_src(MacAddr(src));
            v.set_ethertype(EtherType(t));
            v.payload_mut().copy_from_slice(&payload);
            let (eth, rest) = Ethernet2Header::from_slice(&bytes).unwrap();
            prop_assert_eq!((eth.destination, eth.source), (dst, src));
            let rest = match tci {
                Some(tci) => {
                    prop_assert_eq!(eth.ether_type.0, 0x8100);
                    let (tag, rest) = SingleVlanHeader::from_slice(rest).unwrap();
                    let tci = Tci(tci);
                    prop_assert_eq!((tag.pcp.value(), tag.drop_eligible_indicator, tag.vlan_id.value()), (tci.pcp(), tci.dei(), tci.vid()));
                    prop_assert_eq!(tag.ether_type.0, t);
                    rest
                }
                None => {
                    prop_assert_eq!(eth.ether_type.0, t);
                    rest
                }
            };
            prop_assert_eq!(rest, &payload[..]);
        }
    }
}
