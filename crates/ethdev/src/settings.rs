//! [`PortSettings`]: what a port holds for its device once, the way DPDK keeps it in
//! `rte_eth_dev_data` (`mac_addrs[0]`, `promiscuous`, `all_multicast`, `mtu`), and the frame
//! arithmetic that goes with the MTU.

use crate::{DevInfo, MacAddr};

/// The MTU a port starts with (Ethernet's).
pub const DEFAULT_MTU: u16 = 1500;

/// Ethernet header and CRC: what a frame adds to its MTU when the device says nothing more
/// (DPDK's `RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN`).
pub const ETHER_OVERHEAD: u32 = 18;

/// The settings a port applies to its device. [`crate::Port`] keeps them; drivers are handed
/// them and never keep a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSettings {
    /// The port's address (`rte_eth_dev_default_mac_addr_set`).
    pub mac: MacAddr,
    /// Every unicast frame is received, whatever its destination.
    pub promiscuous: bool,
    /// Every multicast frame is received.
    pub allmulticast: bool,
    /// The largest IP packet a frame carries: the frame is this plus [`frame_overhead`].
    pub mtu: u16,
}

impl PortSettings {
    /// A fresh port's settings: address `mac`, filters off, MTU 1500.
    pub fn new(mac: MacAddr) -> PortSettings {
        PortSettings { mac, promiscuous: false, allmulticast: false, mtu: DEFAULT_MTU }
    }

    /// The largest frame the MTU allows on a device described by `info`, CRC included.
    pub fn max_frame(&self, info: &DevInfo) -> u32 {
        u32::from(self.mtu) + frame_overhead(info)
    }
}

/// What a device's frames carry around the MTU (Ethernet header, CRC, and whatever the device
/// also counts, a VLAN tag on virtio): `max_rx_pktlen - max_mtu` when the device states both, as
/// DPDK's `eth_dev_get_overhead_len` derives it, else [`ETHER_OVERHEAD`].
pub fn frame_overhead(info: &DevInfo) -> u32 {
    if info.max_mtu != u16::MAX && info.max_rx_pktlen > u32::from(info.max_mtu) {
        info.max_rx_pktlen - u32::from(info.max_mtu)
    } else {
        ETHER_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeviceName;

    #[test]
    fn the_overhead_comes_from_the_device_limits() {
        let mut info = DevInfo::software("x", DeviceName::Vdev("x0".into()), 1);
        assert_eq!(frame_overhead(&info), 18, "no stated maximum MTU");
        info.max_mtu = 16110;
        info.max_rx_pktlen = 16128;
        assert_eq!(frame_overhead(&info), 18);
        info.max_mtu = 9000;
        info.max_rx_pktlen = 9022;
        assert_eq!(frame_overhead(&info), 22, "virtio counts a VLAN tag too");
        let s = PortSettings::new(MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!((s.mtu, s.max_frame(&info)), (1500, 1522));
    }
}
