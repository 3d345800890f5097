//! What every software port (net_null, net_ring; later af_packet and pcap) keeps instead of
//! programming a device: its address, filter modes and MTU, and its link. Drivers delegate their
//! [`crate::EthDev`] getters and setters for these to [`SoftSettings`].

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Mutex;

use crate::{Duplex, EthError, LinkStatus, MacAddr, PortId};

/// The MTU a port starts with (Ethernet's).
pub const DEFAULT_MTU: u16 = 1500;

/// A software port's link while started: 10 Gbps full duplex, fixed (DPDK's null and ring ports
/// report the same).
pub const LINK_UP: LinkStatus = LinkStatus { up: true, speed_mbps: 10_000, duplex: Duplex::Full, autoneg: false };

/// A software port's address when none is given: `02:62:75:00:00:PP`, locally administered,
/// `62:75` being "bu", `PP` the port's number (its low byte).
pub fn default_mac(port: PortId) -> MacAddr {
    MacAddr([0x02, 0x62, 0x75, 0x00, 0x00, port as u8])
}

/// A software port's link: [`LINK_UP`] while started, down otherwise (DPDK's null and ring
/// ports, `eth_dev_start`/`eth_dev_stop`).
pub fn link(started: bool) -> LinkStatus {
    if started {
        LINK_UP
    } else {
        LinkStatus::DOWN
    }
}

/// Writes, inside a software port's `impl EthDev`, the eight methods it answers from its
/// [`SoftSettings`] field: `mac`, `set_mac`, `set_promiscuous`, `promiscuous`,
/// `set_allmulticast`, `allmulticast`, `set_mtu` and `mtu`.
///
/// ```text
/// impl EthDev for NullDev {
///     burst_ethdev::soft_settings_methods!(settings);
///     // ... the rest
/// }
/// ```
#[macro_export]
macro_rules! soft_settings_methods {
    ($field:ident) => {
        fn mac(&self) -> $crate::MacAddr {
            self.$field.mac()
        }

        fn set_mac(&self, mac: $crate::MacAddr) -> Result<(), $crate::EthError> {
            self.$field.set_mac(mac)
        }

        fn set_promiscuous(&self, on: bool) -> Result<(), $crate::EthError> {
            self.$field.set_promiscuous(on)
        }

        fn promiscuous(&self) -> bool {
            self.$field.promiscuous()
        }

        fn set_allmulticast(&self, on: bool) -> Result<(), $crate::EthError> {
            self.$field.set_allmulticast(on)
        }

        fn allmulticast(&self) -> bool {
            self.$field.allmulticast()
        }

        fn set_mtu(&mut self, mtu: u16) -> Result<(), $crate::EthError> {
            self.$field.set_mtu(mtu)
        }

        fn mtu(&self) -> u16 {
            self.$field.mtu()
        }
    };
}

/// A software port's settings, readable and writable through `&self` while queues run.
#[derive(Debug)]
pub struct SoftSettings {
    port: PortId,
    mac: Mutex<MacAddr>,
    promiscuous: AtomicBool,
    allmulticast: AtomicBool,
    mtu: AtomicU16,
}

impl SoftSettings {
    /// Port `port` with address `mac`, filters off, MTU 1500.
    pub fn new(port: PortId, mac: MacAddr) -> SoftSettings {
        SoftSettings {
            port,
            mac: Mutex::new(mac),
            promiscuous: AtomicBool::new(false),
            allmulticast: AtomicBool::new(false),
            mtu: AtomicU16::new(DEFAULT_MTU),
        }
    }

    /// The address.
    pub fn mac(&self) -> MacAddr {
        *self.mac.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the address (a valid unicast one).
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), EthError> {
        if !mac.is_valid_unicast() {
            return Err(EthError::BadMac { port: self.port, mac });
        }
        *self.mac.lock().unwrap_or_else(|e| e.into_inner()) = mac;
        Ok(())
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        self.promiscuous.load(Ordering::Relaxed)
    }

    /// Promiscuous mode on or off (a software port has nothing to filter: it is remembered).
    pub fn set_promiscuous(&self, on: bool) -> Result<(), EthError> {
        self.promiscuous.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Whether all-multicast mode is on.
    pub fn allmulticast(&self) -> bool {
        self.allmulticast.load(Ordering::Relaxed)
    }

    /// All-multicast mode on or off.
    pub fn set_allmulticast(&self, on: bool) -> Result<(), EthError> {
        self.allmulticast.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// The MTU.
    pub fn mtu(&self) -> u16 {
        self.mtu.load(Ordering::Relaxed)
    }

    /// Sets the MTU (the port checked it against the device's range).
    pub fn set_mtu(&self, mtu: u16) -> Result<(), EthError> {
        self.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_kept_and_bad_addresses_refused() {
        let s = SoftSettings::new(4, default_mac(4));
        assert_eq!(s.mac().to_string(), "02:62:75:00:00:04");
        assert!(s.set_mac(MacAddr::BROADCAST).is_err());
        s.set_mac(MacAddr([2, 0, 0, 0, 0, 1])).unwrap();
        s.set_promiscuous(true).unwrap();
        s.set_mtu(9000).unwrap();
        assert_eq!(
            (s.mac(), s.promiscuous(), s.allmulticast(), s.mtu()),
            (MacAddr([2, 0, 0, 0, 0, 1]), true, false, 9000)
        );
    }
}
