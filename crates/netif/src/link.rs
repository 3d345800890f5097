//! [`Link`]: one interface as an `RTM_NEWLINK` answer describes it (rtnetlink(7), the kernel's
//! include/uapi/linux/if_link.h), reduced to what the ports use.

use burst_net::MacAddr;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage, LinkXdp, State, XdpAttached};

/// How an XDP program is attached (`XDP_ATTACHED_*` in if_link.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver (native, `XDP_FLAGS_DRV_MODE`).
    Driver,
    /// Generic, on the socket buffer (`XDP_FLAGS_SKB_MODE`).
    Skb,
    /// Offloaded to the NIC.
    Hardware,
    /// Several at once.
    Multiple,
}

impl std::fmt::Display for XdpMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpMode::Driver => "native",
            XdpMode::Skb => "generic (skb)",
            XdpMode::Hardware => "offloaded",
            XdpMode::Multiple => "several modes",
        })
    }
}

/// The interface's own drop counters (`IFLA_STATS64`, struct rtnl_link_stats64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkDrops {
    /// Received frames the kernel dropped (`rx_dropped`).
    pub rx_dropped: u64,
    /// Frames to send that the kernel dropped (`tx_dropped`).
    pub tx_dropped: u64,
    /// Frames the NIC missed for want of room (`rx_missed_errors`).
    pub rx_missed: u64,
    /// Received frames no protocol took (`rx_nohandler`).
    pub rx_nohandler: u64,
}

/// An interface, as the kernel described it in one answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its index (`ifindex`).
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its hardware address; `None` for an interface without a 6-byte one.
    pub mac: Option<MacAddr>,
    /// Its MTU.
    pub mtu: u32,
    /// The smallest MTU its driver takes (0 when it does not say).
    pub min_mtu: u32,
    /// The largest MTU its driver takes (0 when it does not say).
    pub max_mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Up with a carrier (`IFF_LOWER_UP`, operational state up or unknown).
    pub carrier: bool,
    /// Promiscuous: the flag set, or anyone holding a membership (`IFLA_PROMISCUITY` > 0).
    pub promisc: bool,
    /// All-multicast: the flag, or anyone's membership (`IFLA_ALLMULTI` > 0, Linux 6.0).
    pub allmulti: bool,
    /// RX queues the kernel made for it.
    pub rx_queues: u32,
    /// TX queues.
    pub tx_queues: u32,
    /// Its drop counters.
    pub drops: LinkDrops,
    /// The XDP program attached, its id and mode.
    pub xdp: Option<(u32, XdpMode)>,
}

impl Link {
    /// The parts of `msg` a port uses.
    pub fn from_message(msg: &LinkMessage) -> Link {
        let flags = msg.header.flags;
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            min_mtu: 0,
            max_mtu: 0,
            up: flags.contains(LinkFlags::Up),
            carrier: flags.contains(LinkFlags::LowerUp),
            promisc: flags.contains(LinkFlags::Promisc),
            allmulti: flags.contains(LinkFlags::Allmulti),
            rx_queues: 1,
            tx_queues: 1,
            drops: LinkDrops::default(),
            xdp: None,
        };
        let mut oper = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(MacAddr),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::MinMtu(m) => link.min_mtu = *m,
                LinkAttribute::MaxMtu(m) => link.max_mtu = *m,
                // The counts of everyone's requests (memberships included), which the flags in
                // the header do not show.
                LinkAttribute::Promiscuity(n) => link.promisc |= *n > 0,
                LinkAttribute::AllMulticast(n) => link.allmulti |= *n > 0,
                LinkAttribute::NumRxQueues(n) => link.rx_queues = *n,
                LinkAttribute::NumTxQueues(n) => link.tx_queues = *n,
                LinkAttribute::OperState(s) => oper = Some(*s),
                LinkAttribute::Stats64(s) => {
                    link.drops = LinkDrops {
                        rx_dropped: s.rx_dropped,
                        tx_dropped: s.tx_dropped,
                        rx_missed: s.rx_missed_errors,
                        rx_nohandler: s.rx_nohandler,
                    }
                }
                LinkAttribute::Xdp(xdp) => link.xdp = xdp_of(xdp),
                _ => {}
            }
        }
        // A carrier and an operational state that is up (or that the driver does not track,
        // as for loopback): RFC 2863's operStatus as rtnetlink(7) reports it.
        link.carrier &= matches!(oper, None | Some(State::Up) | Some(State::Unknown));
        link
    }

    /// Up with a carrier: frames can move.
    pub fn running(&self) -> bool {
        self.up && self.carrier
    }
}

fn xdp_of(attrs: &[LinkXdp]) -> Option<(u32, XdpMode)> {
    let mut mode = None;
    let mut id = 0;
    for a in attrs {
        match a {
            LinkXdp::Attached(XdpAttached::Driver) => mode = Some(XdpMode::Driver),
            LinkXdp::Attached(XdpAttached::SocketBuffer) => mode = Some(XdpMode::Skb),
            LinkXdp::Attached(XdpAttached::Hardware) => mode = Some(XdpMode::Hardware),
            LinkXdp::Attached(XdpAttached::Multiple) => mode = Some(XdpMode::Multiple),
            LinkXdp::ProgId(p) => id = *p,
            LinkXdp::DrvProgId(p) | LinkXdp::SkbProgId(p) | LinkXdp::HwProgId(p) if id == 0 => id = *p,
            _ => {}
        }
    }
    mode.map(|m| (id, m))
}
