//! burst-netif: a network interface of the kernel as the kernel-interface ports (`net_af_packet`,
//! `net_af_xdp`) see it, read and changed over rtnetlink.
//!
//! - [`Netlink`]: one `NETLINK_ROUTE` socket; [`Netlink::link_by_name`] and [`Netlink::link`]
//!   read an interface (`RTM_GETLINK`), [`Netlink::set_mtu`], [`Netlink::set_mac`] and
//!   [`Netlink::set_flags`] change it (`RTM_SETLINK`).
//! - [`Link`]: what the ports need of an interface: its index, address, MTU and its range,
//!   whether it is up and has a carrier, its queue counts, its drop counters and the XDP
//!   program attached to it.
//! - [`Iface`]: the interface a port holds: the port's settings applied to it, and put back as
//!   they were found when the port closes.
//! - [`NetifError`]: what went wrong, in one line that says what to do.
//!
//! The messages are built and parsed by `netlink-packet-route` (the rust-netlink project's, which
//! `rtnetlink` is built on) and sent on `netlink-sys`'s socket: nothing here lays out a netlink
//! message by hand. Everything is synchronous: the ports call it on the control path only.

mod error;
mod iface;
mod link;
mod netlink;

pub use error::NetifError;
pub use iface::{Iface, Setting};
pub use link::{Link, LinkDrops, XdpMode};
pub use netlink::Netlink;
