//! What a device is and can do ([`DevInfo`]), and what the application asks of it ([`PortConf`],
//! [`RxQueueConf`], [`TxQueueConf`]).

use std::fmt;

use std::sync::Arc;

use burst_mem::PacketPool;
use burst_pci::PciAddress;

use crate::QueueCounters;

/// Where a port's device lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceName {
    /// A PCI function, bound to vfio-pci or uio_pci_generic.
    Pci(PciAddress),
    /// A virtual device made from a `--vdev` string; the name is its first field (`net_null0`).
    Vdev(String),
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceName::Pci(addr) => write!(f, "{addr}"),
            DeviceName::Vdev(name) => f.write_str(name),
        }
    }
}

/// How many descriptors a queue may have (`rte_eth_desc_lim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescLimits {
    /// Fewest descriptors.
    pub min: u16,
    /// Most descriptors.
    pub max: u16,
    /// The count must be a multiple of this.
    pub align: u16,
    /// What a queue gets when the application asks for 0.
    pub default: u16,
    /// The most segments one packet may have on this queue (TX), or `u16::MAX` for no limit
    /// (`nb_seg_max`).
    pub nb_seg_max: u16,
}

impl DescLimits {
    /// No limit worth stating (software queues): 1..=65535, any count, 1024 by default, any
    /// number of segments.
    pub const ANY: DescLimits = DescLimits { min: 1, max: u16::MAX, align: 1, default: 1024, nb_seg_max: u16::MAX };

    /// The count a queue gets for a request of `n` (0 = the default), or `None` when `n` is out
    /// of range or misaligned.
    pub fn resolve(self, n: u16) -> Option<u16> {
        let n = if n == 0 { self.default } else { n };
        (n >= self.min && n <= self.max && n % self.align.max(1) == 0).then_some(n)
    }
}

bitflags::bitflags! {
    /// Receive offloads (`RTE_ETH_RX_OFFLOAD_*`, same bits), as capabilities and as requests.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RxOffloads: u64 {
        /// Strip the VLAN tag into the buffer's `vlan_tci` (`RX_VLAN_STRIPPED` set).
        const VLAN_STRIP = 1 << 0;
        /// Check IPv4 header checksums (`RX_IP_CKSUM_*` set).
        const IPV4_CKSUM = 1 << 1;
        /// Check UDP checksums (`RX_L4_CKSUM_*` set).
        const UDP_CKSUM = 1 << 2;
        /// Check TCP checksums (`RX_L4_CKSUM_*` set).
        const TCP_CKSUM = 1 << 3;
        /// Merge TCP segments (large receive offload).
        const TCP_LRO = 1 << 4;
        /// Strip both tags of a QinQ frame.
        const QINQ_STRIP = 1 << 5;
        /// Check a tunnel's outer IPv4 checksum.
        const OUTER_IPV4_CKSUM = 1 << 6;
        /// Drop frames of VLANs not in the VLAN filter.
        const VLAN_FILTER = 1 << 9;
        /// Receive frames larger than one buffer into a chain of buffers.
        const SCATTER = 1 << 13;
        /// Deliver a receive timestamp.
        const TIMESTAMP = 1 << 14;
        /// Leave the Ethernet CRC on received frames.
        const KEEP_CRC = 1 << 16;
        /// Check SCTP checksums.
        const SCTP_CKSUM = 1 << 17;
        /// Check a tunnel's outer UDP checksum.
        const OUTER_UDP_CKSUM = 1 << 18;
        /// Deliver the RSS hash in the buffer's `rss_hash` (`RX_RSS_HASH` set).
        const RSS_HASH = 1 << 19;
    }
}

bitflags::bitflags! {
    /// Transmit offloads (`RTE_ETH_TX_OFFLOAD_*`, same bits), as capabilities and as requests.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TxOffloads: u64 {
        /// Insert the buffer's `vlan_tci` as a VLAN tag (packets with `TX_VLAN`).
        const VLAN_INSERT = 1 << 0;
        /// Fill in IPv4 header checksums (packets with `TX_IP_CKSUM`).
        const IPV4_CKSUM = 1 << 1;
        /// Fill in UDP checksums (packets with `TX_UDP_CKSUM`).
        const UDP_CKSUM = 1 << 2;
        /// Fill in TCP checksums (packets with `TX_TCP_CKSUM`).
        const TCP_CKSUM = 1 << 3;
        /// Fill in SCTP checksums.
        const SCTP_CKSUM = 1 << 4;
        /// Segment TCP packets larger than the MTU (packets with `TX_TCP_SEG`).
        const TCP_TSO = 1 << 5;
        /// Segment UDP packets.
        const UDP_TSO = 1 << 6;
        /// Fill in a tunnel's outer IPv4 checksum.
        const OUTER_IPV4_CKSUM = 1 << 7;
        /// Insert two VLAN tags.
        const QINQ_INSERT = 1 << 8;
        /// Several lcores may send on one queue at once (never here: one handle per queue).
        const MT_LOCKFREE = 1 << 14;
        /// Send chained buffers.
        const MULTI_SEGS = 1 << 15;
        /// All buffers of a queue come from one pool and are not shared (`MBUF_FAST_FREE`).
        const MBUF_FAST_FREE = 1 << 16;
        /// Fill in a tunnel's outer UDP checksum.
        const OUTER_UDP_CKSUM = 1 << 20;
    }
}

macro_rules! offload_text {
    ($name:ident) => {
        impl $name {
            /// No offload.
            pub const NONE: $name = $name::empty();

            /// The flags of `self` missing from `capa`.
            pub fn missing_from(self, capa: $name) -> $name {
                self - capa
            }

            /// The flag called `name` as testpmd prints it (`vlan_strip`, `tcp_cksum`), in any case.
            pub fn from_testpmd_name(name: &str) -> Option<$name> {
                $name::all().iter_names().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, f)| f)
            }
        }

        impl fmt::Display for $name {
            /// testpmd's names, space separated (`vlan_strip ipv4_cksum`); `none` when empty,
            /// bits with no name in hex.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.is_empty() {
                    return f.write_str("none");
                }
                let mut words: Vec<String> = self.iter_names().map(|(n, _)| n.to_lowercase()).collect();
                let unknown = *self - $name::all();
                if !unknown.is_empty() {
                    words.push(format!("{:#x}", unknown.bits()));
                }
                f.write_str(&words.join(" "))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

offload_text!(RxOffloads);
offload_text!(TxOffloads);

impl RxOffloads {
    /// The three checksum checks (`RTE_ETH_RX_OFFLOAD_CHECKSUM`).
    pub const CHECKSUM: RxOffloads = RxOffloads::IPV4_CKSUM.union(RxOffloads::UDP_CKSUM).union(RxOffloads::TCP_CKSUM);
}

/// What a device is and what it supports (`rte_eth_dev_info`).
#[derive(Clone, Debug)]
pub struct DevInfo {
    /// The driver's name (`net_e1000_em`, `net_null`).
    pub driver: &'static str,
    /// The device: PCI address or virtual device name.
    pub device: DeviceName,
    /// Most RX queues.
    pub max_rx_queues: u16,
    /// Most TX queues.
    pub max_tx_queues: u16,
    /// RX descriptor limits.
    pub rx_desc_lim: DescLimits,
    /// TX descriptor limits.
    pub tx_desc_lim: DescLimits,
    /// RX offloads the device can do, per port or per queue (the per-queue ones included, as
    /// DPDK counts them).
    pub rx_offload_capa: RxOffloads,
    /// RX offloads the device can turn on for one queue and not the others.
    pub rx_queue_offload_capa: RxOffloads,
    /// TX offloads the device can do, per port or per queue.
    pub tx_offload_capa: TxOffloads,
    /// TX offloads the device can turn on for one queue and not the others.
    pub tx_queue_offload_capa: TxOffloads,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU (jumbo frames where the device has them).
    pub max_mtu: u16,
    /// Largest frame the device receives, Ethernet header and CRC included.
    pub max_rx_pktlen: u32,
    /// Smallest RX buffer (data room) the device accepts.
    pub min_rx_bufsize: u32,
    /// The NUMA socket the device is attached to, if known.
    pub socket: Option<u32>,
}

impl DevInfo {
    /// Info for a software device of `driver` called `device`: many queues, any descriptor count,
    /// MTU 68..=65535 (the caller adjusts what differs).
    pub fn software(driver: &'static str, device: DeviceName, queues: u16) -> DevInfo {
        DevInfo {
            driver,
            device,
            max_rx_queues: queues,
            max_tx_queues: queues,
            rx_desc_lim: DescLimits::ANY,
            tx_desc_lim: DescLimits::ANY,
            rx_offload_capa: RxOffloads::NONE,
            rx_queue_offload_capa: RxOffloads::NONE,
            tx_offload_capa: TxOffloads::NONE,
            tx_queue_offload_capa: TxOffloads::NONE,
            min_mtu: 68,
            max_mtu: u16::MAX,
            max_rx_pktlen: u32::from(u16::MAX) + 18,
            min_rx_bufsize: 0,
            socket: None,
        }
    }
}

/// Link duplex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duplex {
    /// Half duplex.
    Half,
    /// Full duplex.
    Full,
}

/// A port's link (`rte_eth_link`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when unknown or down.
    pub speed_mbps: u32,
    /// Duplex.
    pub duplex: Duplex,
    /// Speed and duplex were negotiated.
    pub autoneg: bool,
}

impl LinkStatus {
    /// Down, speed unknown.
    pub const DOWN: LinkStatus = LinkStatus { up: false, speed_mbps: 0, duplex: Duplex::Full, autoneg: false };

    /// Up at `speed_mbps`, full duplex.
    pub fn up(speed_mbps: u32) -> LinkStatus {
        LinkStatus { up: true, speed_mbps, duplex: Duplex::Full, autoneg: true }
    }
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.up {
            return f.write_str("down");
        }
        let duplex = match self.duplex {
            Duplex::Full => "full-duplex",
            Duplex::Half => "half-duplex",
        };
        match self.speed_mbps {
            0 => write!(f, "up, speed unknown, {duplex}"),
            s if s % 1000 == 0 => write!(f, "up, {} Gbps, {duplex}", s / 1000),
            s => write!(f, "up, {s} Mbps, {duplex}"),
        }
    }
}

/// How the application configures a port (`rte_eth_conf` and the queue counts).
#[derive(Clone, Debug, Default)]
pub struct PortConf {
    /// RX queues to set up (at least one of RX and TX must be non-zero).
    pub nb_rx_queues: u16,
    /// TX queues to set up.
    pub nb_tx_queues: u16,
    /// RX offloads wanted on every queue (each must be in the device's capabilities).
    pub rx_offloads: RxOffloads,
    /// TX offloads wanted.
    pub tx_offloads: TxOffloads,
    /// The MTU to start with; `None` keeps the device's (1500 by default).
    pub mtu: Option<u16>,
}

impl PortConf {
    /// `rx` RX queues and `tx` TX queues, no offloads, default MTU.
    pub fn queues(rx: u16, tx: u16) -> PortConf {
        PortConf { nb_rx_queues: rx, nb_tx_queues: tx, ..PortConf::default() }
    }
}

/// An RX queue's settings (`rte_eth_rx_queue_setup`).
#[derive(Clone, Debug)]
pub struct RxQueueConf {
    /// Descriptors, already checked against the device's limits (0 was turned into the default).
    pub nb_desc: u16,
    /// Where received packets' buffers come from.
    pub pool: PacketPool,
    /// The offloads on for this queue: the port's and the queue's own, checked against the
    /// device's capabilities.
    pub offloads: RxOffloads,
    /// NUMA socket for the ring; `None` for the device's.
    pub socket: Option<u32>,
    /// Where the queue counts what it receives (packets, bytes, errors, missed, failed
    /// allocations): the port's counters for this queue, read by [`crate::Port::stats`].
    pub counters: Arc<QueueCounters>,
}

/// A TX queue's settings (`rte_eth_tx_queue_setup`).
#[derive(Clone, Debug)]
pub struct TxQueueConf {
    /// Descriptors, already checked against the device's limits.
    pub nb_desc: u16,
    /// NUMA socket for the ring; `None` for the device's.
    pub socket: Option<u32>,
    /// The offloads on for this queue: the port's and the queue's own.
    pub offloads: TxOffloads,
    /// Where the queue counts what it sends (packets, bytes, errors).
    pub counters: Arc<QueueCounters>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_limits_resolve_defaults_and_reject_misfits() {
        let lim = DescLimits { min: 32, max: 4096, align: 8, default: 256, nb_seg_max: 40 };
        assert_eq!(lim.resolve(0), Some(256));
        assert_eq!(lim.resolve(512), Some(512));
        assert_eq!(lim.resolve(16), None);
        assert_eq!(lim.resolve(8192), None);
        assert_eq!(lim.resolve(100), None);
    }

    #[test]
    fn offloads_print_their_names() {
        assert_eq!((RxOffloads::VLAN_STRIP | RxOffloads::RSS_HASH).to_string(), "vlan_strip rss_hash");
        assert_eq!(RxOffloads::NONE.to_string(), "none");
        assert_eq!(TxOffloads::from_bits_retain(1 << 40).to_string(), "0x10000000000");
        assert_eq!(TxOffloads::from_testpmd_name("TCP_TSO"), Some(TxOffloads::TCP_TSO));
        assert_eq!(RxOffloads::from_testpmd_name("scatter"), Some(RxOffloads::SCATTER));
        let want = RxOffloads::VLAN_STRIP | RxOffloads::IPV4_CKSUM;
        assert_eq!(want.missing_from(RxOffloads::IPV4_CKSUM), RxOffloads::VLAN_STRIP);
    }

    #[test]
    fn link_prints_like_testpmd() {
        assert_eq!(LinkStatus::up(10_000).to_string(), "up, 10 Gbps, full-duplex");
        assert_eq!(LinkStatus::up(100).to_string(), "up, 100 Mbps, full-duplex");
        assert_eq!(LinkStatus::DOWN.to_string(), "down");
    }
}
