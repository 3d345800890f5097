//! What every software port (net_null, net_ring; later af_packet and pcap) reports in place of
//! a device's: an address when none is given, and a link that follows start and stop. Their
//! settings live in the [`crate::Port`], as every port's do; a software port has nothing to
//! apply them to, so it keeps [`crate::EthDev`]'s default `apply_*` hooks.

use crate::{Duplex, LinkStatus, MacAddr, PortId};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_macs_carry_the_port_number() {
        assert_eq!(default_mac(0).to_string(), "02:62:75:00:00:00");
        assert_eq!(default_mac(0x1a).to_string(), "02:62:75:00:00:1a");
        assert!(default_mac(3).is_valid_unicast() && default_mac(3).is_local());
        assert_eq!((link(true), link(false)), (LINK_UP, LinkStatus::DOWN));
    }
}
