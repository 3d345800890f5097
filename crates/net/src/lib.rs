//! burst-net: packet headers and nothing else (DPDK's `lib/net`). Zero-copy views over any
//! `T: AsRef<[u8]>` (and `AsMut<[u8]>` to write), after smoltcp's `wire` module: a view's
//! `new_checked` validates the lengths once, at the boundary, and returns a typed [`Error`];
//! after that its accessors and setters are plain loads and stores that cannot fail, and none
//! of them panics, whatever the bytes.
//!
//! ```
//! use burst_net::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpDatagram};
//!
//! # let mut frame = vec![0u8; 60];
//! # frame[12..14].copy_from_slice(&[0x08, 0x00]);
//! # frame[14..24].copy_from_slice(&[0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17]);
//! # frame[34..40].copy_from_slice(&[0, 9, 0, 9, 0, 10]);
//! let eth = EthernetFrame::new_checked(&frame[..])?;
//! if eth.ethertype() == EtherType::IPV4 {
//!     let ip = Ipv4Packet::new_checked(eth.payload())?;
//!     if ip.protocol() == IpProtocol::UDP {
//!         let udp = UdpDatagram::new_checked(ip.payload())?;
//!         assert_eq!((udp.dst_port(), udp.payload().len()), (9, 2));
//!     }
//! }
//! # Ok::<(), burst_net::Error>(())
//! ```
//!
//! # What it implements
//!
//! - [`ethernet`]: Ethernet II ([`EthernetFrame`]) with one 802.1Q or 802.1ad VLAN tag
//!   ([`VlanTag`], [`Tci`]), and [`EthernetAddrs`], a view of the two addresses alone for the
//!   MAC rewrites of a forwarding loop.
//! - [`ipv4`]: the IPv4 header with its options ([`Ipv4Packet`]): version, IHL against the
//!   buffer and the total length, total length against the buffer; the header checksum.
//! - [`ipv6`]: IPv6's fixed header ([`Ipv6Packet`]): version, payload length against the
//!   buffer.
//! - [`tcp`]: the TCP header with its options ([`TcpSegment`]): data offset against the buffer.
//! - [`udp`]: the UDP header ([`UdpDatagram`]): length against the buffer.
//! - [`checksum`]: the Internet checksum (RFC 1071) as an accumulator ([`Checksum`]), so that a
//!   pseudo-header and a segment that are not contiguous sum as one; the IPv4 and IPv6
//!   pseudo-headers ([`ipv4_pseudo_header`], [`ipv6_pseudo_header`]), whose sum is also what a
//!   device that checksums TX packets is given.
//! - [`ptype`]: packet types as DPDK's `RTE_PTYPE_*` ([`PacketType`]) and [`ptype::parse`], which
//!   finds a frame's L2/L3/L4 types and header lengths ([`ptype::parse_head`] in a chained
//!   packet's first segment).
//! - [`mac`]: Ethernet addresses ([`MacAddr`]), parsed and printed as `02:00:00:00:00:01`.
//!
//! # What it does not
//!
//! - No stack: nothing here answers ARP, reassembles fragments, or keeps state.
//! - No "repr" types (smoltcp's `Ipv4Repr`): a header is read and written in place, field by
//!   field.
//! - The views check lengths and versions, not meaning: an EtherType below 0x0600 (an 802.3
//!   length), a reserved flag, a fragment offset past 64 KiB, a TCP segment with SYN and FIN
//!   are all read as they are. Checksums are verified only when asked.
//! - One VLAN tag: of a QinQ frame's two tags the view parses the outer one, and reports the
//!   inner one's TPID as the EtherType.
//! - IPv4 options and TCP options are bytes; their kinds are not parsed. IPv6 extension
//!   headers are not followed: the payload starts after the fixed header. Jumbograms (RFC 2675)
//!   and TSO-style total lengths of 0 are refused or read as empty.
//! - No incremental checksum update (RFC 1624).
//! - ARP, ICMP, GRE, VXLAN and the rest of DPDK's `lib/net` are not here yet.
//!
//! # On a forwarding loop's hot path
//!
//! A checked view costs nothing per packet when the compiler folds every accessor's bounds test
//! into the one `new_checked` made; `benches/rewrite.rs` counts the instructions against the
//! raw-offset code the views replaced. What it took:
//!
//! - Check what the work needs and no more: a MAC rewrite takes [`EthernetAddrs`] (12 bytes, one
//!   length test); [`EthernetFrame::new_checked`] also reads the EtherType to find a tag, about
//!   7 instructions a frame more.
//! - Take adjacent fields as one array: [`EthernetAddrs::swap`] reads the 12 bytes through one
//!   `&mut [u8; 12]`; read at offsets 0 and 8 separately, they left a second length test
//!   unfolded.
//! - Build what every frame gets once: pktgen's `mac` mode writes an [`EthernetAddrs::new`] value
//!   with [`EthernetAddrs::copy_from`] (two stores); with `set_dst` and `set_src` the compiler
//!   recomputed the addresses' halves for every frame, 4 instructions a packet.
//!
//! # A short buffer
//!
//! `new_unchecked` exists for writing a header into a buffer of the right size; `check_len`
//! checks again after a length field was changed. A view that was never checked, or whose
//! lengths no longer match its buffer, still does not panic: reads past the end give zeros,
//! writes there are dropped, a payload that does not fit is empty.

pub mod checksum;
pub mod error;
pub mod ethernet;
mod field;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mac;
pub mod ptype;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use checksum::{ipv4_pseudo_header, ipv6_pseudo_header, Checksum};
pub use error::{Error, Header};
pub use ethernet::{EtherType, EthernetAddrs, EthernetFrame};
pub use ip::IpProtocol;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use mac::MacAddr;
pub use ptype::{HeaderLens, PacketType};
pub use tcp::{TcpFlags, TcpSegment};
pub use udp::UdpDatagram;
pub use vlan::{Tci, VlanTag};
