//! The VLAN tag's contents (IEEE Std 802.1Q-2018 clause 9.6): its tag protocol identifier and
//! its tag control information. [`crate::EthernetFrame`] finds the tag and reads past it.

use std::fmt;

use crate::EtherType;

/// Tag control information (IEEE 802.1Q clause 9.6): priority code point (3 bits), drop
/// eligible indicator (1 bit) and VLAN identifier (12 bits), most significant first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tci(pub u16);

impl Tci {
    /// The largest VLAN identifier; 0xfff itself is reserved (802.1Q Table 9-2).
    pub const VID_MAX: u16 = 0x0fff;

    /// A TCI from its three fields; bits beyond each field's width are dropped.
    #[inline]
    pub const fn new(pcp: u8, dei: bool, vid: u16) -> Tci {
        Tci(((pcp as u16 & 0x7) << 13) | ((dei as u16) << 12) | (vid & Self::VID_MAX))
    }

    /// Priority code point, 0 to 7 (IEEE 802.1Q clause 6.9.3).
    #[inline]
    pub const fn pcp(self) -> u8 {
        (self.0 >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub const fn dei(self) -> bool {
        self.0 & 0x1000 != 0
    }

    /// VLAN identifier, 0 (priority tag: no VLAN) to 4094.
    #[inline]
    pub const fn vid(self) -> u16 {
        self.0 & Self::VID_MAX
    }
}

impl fmt::Debug for Tci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tci {{ pcp: {}, dei: {}, vid: {} }}", self.pcp(), self.dei(), self.vid())
    }
}

/// One VLAN tag as it sits between the source address and the EtherType: which kind of tag
/// ([`EtherType::VLAN`] for a customer tag, [`EtherType::QINQ`] for a service tag) and its TCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The tag protocol identifier, where an untagged frame has its EtherType.
    pub tpid: EtherType,
    /// The tag control information.
    pub tci: Tci,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tci_fields() {
        // PCP 5, DEI 1, VID 42.
        let t = Tci(0b1011_0000_0010_1010);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (5, true, 42));
        assert_eq!(Tci::new(5, true, 42), t);
        assert_eq!(Tci::new(0xff, false, 0xffff), Tci(0xefff), "oversized fields are cut to their width");
        assert_eq!(format!("{t:?}"), "Tci { pcp: 5, dei: true, vid: 42 }");
    }
}
