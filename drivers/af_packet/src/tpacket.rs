//! The kernel's PACKET_MMAP interface, as include/uapi/linux/if_packet.h defines it and
//! Documentation/networking/packet_mmap.rst describes it: socket options, the ring request, the
//! TPACKET_V2 frame header and its status bits. Only what this driver uses.

/// `SOL_PACKET` socket options (if_packet.h).
pub const PACKET_RX_RING: libc::c_int = 5;
/// Counters since the last read (`struct tpacket_stats`): reading them zeroes them.
pub const PACKET_STATISTICS: libc::c_int = 6;
/// Which frame header the rings use.
pub const PACKET_VERSION: libc::c_int = 10;
/// The TX ring.
pub const PACKET_TX_RING: libc::c_int = 13;
/// A malformed TX frame is skipped instead of stopping the ring.
pub const PACKET_LOSS: libc::c_int = 14;
/// Joins a fanout group: the group's sockets share the interface's frames.
pub const PACKET_FANOUT: libc::c_int = 18;
/// TX goes straight to the driver, past the qdisc layer.
pub const PACKET_QDISC_BYPASS: libc::c_int = 20;
/// Frames this host sends are not received back (Linux 4.20).
pub const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// `tpacket_versions`: TPACKET_V2, fixed-size frames with 32-bit timestamps in ns and VLAN ids.
pub const TPACKET_V2: libc::c_int = 1;

/// `PACKET_FANOUT` modes (if_packet.h), with the flags in the same 16 bits.
pub const PACKET_FANOUT_HASH: u32 = 0;
/// Round robin.
pub const PACKET_FANOUT_LB: u32 = 1;
/// By the CPU the frame arrived on.
pub const PACKET_FANOUT_CPU: u32 = 2;
/// Fill one socket, then the next.
pub const PACKET_FANOUT_ROLLOVER: u32 = 3;
/// Random.
pub const PACKET_FANOUT_RND: u32 = 4;
/// By the NIC's RX queue.
pub const PACKET_FANOUT_QM: u32 = 5;
/// A full socket passes its frame on to the next.
pub const PACKET_FANOUT_FLAG_ROLLOVER: u32 = 0x1000;
/// The kernel picks a group id no one else has (Linux 4.?, `fanout_add`).
pub const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
/// IP fragments are put back together before the hash, so a flow stays on one socket.
pub const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;

/// `tp_status` on RX: the frame is the kernel's to fill.
pub const TP_STATUS_KERNEL: u32 = 0;
/// RX: the frame holds a packet for user space.
pub const TP_STATUS_USER: u32 = 1 << 0;
/// RX: `tp_vlan_tci` holds the VLAN tag the kernel took off the frame.
pub const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
/// RX: `tp_vlan_tpid` holds that tag's TPID.
pub const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// TX: filled, for the kernel to send.
pub const TP_STATUS_SEND_REQUEST: u32 = 1 << 0;
/// TX: the kernel is sending the frame. With neither bit the frame is free
/// (`TP_STATUS_AVAILABLE`; with `PACKET_LOSS` a malformed one is made free again too).
pub const TP_STATUS_SENDING: u32 = 1 << 1;
/// TX timestamp bits the kernel may leave in a free frame's status (DPDK masks them too).
pub const TP_STATUS_TS_MASK: u32 = (1 << 29) | (1 << 30) | (1 << 31);

/// `TPACKET_ALIGNMENT`: frames and the data in them are aligned to this.
pub const TPACKET_ALIGNMENT: usize = 16;

/// `struct tpacket_req`: the geometry of one ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpacketReq {
    /// Bytes per block: a multiple of the page size, a run of whole frames.
    pub tp_block_size: u32,
    /// Blocks.
    pub tp_block_nr: u32,
    /// Bytes per frame, a multiple of [`TPACKET_ALIGNMENT`].
    pub tp_frame_size: u32,
    /// Frames: frames per block times blocks.
    pub tp_frame_nr: u32,
}

/// `struct tpacket2_hdr`: the head of every frame of a TPACKET_V2 ring. Written by the kernel
/// on RX (untrusted), by us on TX; reached through raw pointers only (see `ring.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tpacket2Hdr {
    /// Who owns the frame and what it holds (`TP_STATUS_*`).
    pub tp_status: u32,
    /// The packet's length on the wire (without a VLAN tag the kernel took off).
    pub tp_len: u32,
    /// Bytes of it in the frame.
    pub tp_snaplen: u32,
    /// Offset of the packet's first byte from the frame's start.
    pub tp_mac: u16,
    /// Offset of its network header.
    pub tp_net: u16,
    /// Arrival time, seconds.
    pub tp_sec: u32,
    /// Arrival time, nanoseconds.
    pub tp_nsec: u32,
    /// The VLAN tag taken off (with `TP_STATUS_VLAN_VALID`).
    pub tp_vlan_tci: u16,
    /// Its TPID (with `TP_STATUS_VLAN_TPID_VALID`).
    pub tp_vlan_tpid: u16,
    /// Padding.
    pub tp_padding: [u8; 4],
}

const _: () = assert!(std::mem::size_of::<Tpacket2Hdr>() == 32);

/// Where a TX frame's packet starts: `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`, the
/// header aligned (packet_mmap.rst, "TX ring"; the kernel's `tpacket_parse_header`).
pub const TX_DATA_OFFSET: usize = 32;

/// Where the kernel puts an RX packet's first byte (`tpacket_rcv`'s `macoff` for a raw socket
/// and a 14-byte Ethernet header: `TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14`), used only to size
/// frames; each frame's own `tp_mac` is what is read, and checked.
pub const RX_DATA_OFFSET: usize = 66;

/// `struct tpacket_stats`: frames the socket received and dropped since the last read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpacketStats {
    /// Frames that reached the socket (dropped ones included).
    pub tp_packets: u32,
    /// Frames dropped because the RX ring was full.
    pub tp_drops: u32,
}
