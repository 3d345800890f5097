//! burst-netif: a network interface of the kernel as the kernel-interface ports (`net_af_packet`,
//! `net_af_xdp`) see it, read and changed over rtnetlink.
//!
//! - [`Netlink`]: one `NETLINK_ROUTE` socket; [`Netlink::link_by_name`] and [`Netlink::link`]
//!   read an interface (`RTM_GETLINK`), [`Netlink::set_mtu`], [`Netlink::set_mac`] and
//!   [`Netlink::set_flags`] change it (`RTM_SETLINK`).
//! - [`Link`]: what the ports need of an interface: its index, address, MTU and its range,
//!   whether it is up and has a carrier, its queue counts, its drop counters and the XDP
//!   program attached to it.
//! - [`NetifError`]: what went wrong, in one line that says what to do.
//! - `testing` (feature `testing`): network namespaces and veth pairs for the drivers' host
//!   tests, made with `ip` and removed when dropped.
//!
//! The messages are built and parsed by `netlink-packet-route` (the rust-netlink project's, which
//! `rtnetlink` is built on) and sent on `netlink-sys`'s socket: nothing here lays out a netlink
//! message by hand. Everything is synchronous: the ports call it on the control path only.

mod error;
mod link;
mod netlink;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::NetifError;
pub use link::{Link, LinkDrops, XdpMode};
pub use netlink::Netlink;
