//! Ethernet MAC addresses (IEEE Std 802-2014 clause 8.2): 48 bits, the first octet's two low
//! bits the individual/group and universal/local flags.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address, printed and parsed as `02:00:00:00:00:01`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// The all-zero address (no address assigned).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The six bytes, first on the wire first.
    pub fn bytes(self) -> [u8; 6] {
        self.0
    }

    /// Group address: the I/G bit (bit 0 of the first byte) is set. Broadcast is one too.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }

    /// `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// A unicast address other than zero: what a port may be given (`rte_is_valid_assigned_ether_addr`).
    pub fn is_valid_unicast(self) -> bool {
        !self.is_multicast() && self != Self::ZERO
    }

    /// Locally administered: the U/L bit (bit 1 of the first byte) is set.
    pub fn is_local(self) -> bool {
        self.0[0] & 2 == 2
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address: write six hex bytes separated by ':' or '-', like 02:00:00:00:00:01")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(s: &str) -> Result<MacAddr, BadMac> {
        let bad = || BadMac(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let mac: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(mac.0, [2, 0, 0, 0, 0, 10]);
        assert_eq!(mac.to_string(), "02:00:00:00:00:0a");
        assert_eq!("52-54-00-B5-00-01".parse::<MacAddr>().unwrap().0, [0x52, 0x54, 0, 0xb5, 0, 1]);
        assert!(mac.is_local() && mac.is_valid_unicast());
        assert!(MacAddr::BROADCAST.is_multicast() && MacAddr::BROADCAST.is_broadcast());
    }

    #[test]
    fn rejects_malformed() {
        for s in
            ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "02:00:00:00:00:0g", "002:00:00:00:00:00", "02::00:00:00:00"]
        {
            let err = s.parse::<MacAddr>().unwrap_err();
            assert!(err.to_string().contains("not a MAC address"), "{s}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn display_round_trips(bytes: [u8; 6]) {
            let mac = MacAddr(bytes);
            proptest::prop_assert_eq!(mac.to_string().parse::<MacAddr>().unwrap(), mac);
        }
    }
}
