//! burst-netbed: the test bed the kernel-interface ports (`net_af_packet`, `net_af_xdp`) are
//! tested on, on the host, for tests only (never a dependency of the product).
//!
//! - `ns.rs`: network namespaces ([`NetNs`]) and veth pairs ([`veth`]) made with iproute2's
//!   `ip` and removed when dropped, and [`RawSocket`]s at the far ends.
//! - [`stream`]: the mixed stream (60 to 1514 bytes, VLAN, IPv6, broadcast) and the check that
//!   a frame came through l2fwd byte for byte but for its address rewrite.
//! - [`l2fwd`]: a [`Bed`] of two veth pairs and l2fwd between two ports on them, the stream
//!   pushed through both ways.
//!
//! Every interface is made inside a namespace the test made: the host's own are never touched.
//! A test that cannot make them (not root, no `ip`) fails, saying what is missing.

pub mod l2fwd;
mod ns;
pub mod stream;

pub use l2fwd::{l2fwd_until_killed, Bed, Pumped, CHILD_ENV};
pub use ns::{require_root_and_ip, veth, without_caps, NetNs, RawSocket};
