//! The kernel's AF_XDP interface, as include/uapi/linux/if_xdp.h defines it and
//! Documentation/networking/af_xdp.rst describes it. Only what this driver uses.

/// `AF_XDP` (include/linux/socket.h).
pub const AF_XDP: libc::c_int = 44;
/// `SOL_XDP`.
pub const SOL_XDP: libc::c_int = 283;

/// `sxdp_flags`: copy mode, whatever the driver can do.
pub const XDP_COPY: u16 = 1 << 1;
/// The kernel sets a ring's `XDP_RING_NEED_WAKEUP` flag when it needs a syscall to go on.
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// `xdp_umem_reg.flags`: chunks may start anywhere in the UMEM (a mempool's objects need not
/// be a power of two apart).
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// A ring's `flags` word: the kernel waits for a `sendto` (TX) or `recvfrom`/`poll` (fill).
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

/// Socket options.
pub const XDP_MMAP_OFFSETS: libc::c_int = 1;
/// The RX ring's size.
pub const XDP_RX_RING: libc::c_int = 2;
/// The TX ring's size.
pub const XDP_TX_RING: libc::c_int = 3;
/// Registers the UMEM.
pub const XDP_UMEM_REG: libc::c_int = 4;
/// The fill ring's size.
pub const XDP_UMEM_FILL_RING: libc::c_int = 5;
/// The completion ring's size.
pub const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
/// `struct xdp_statistics`.
pub const XDP_STATISTICS: libc::c_int = 7;

/// Where each ring is mapped from (`mmap`'s offset).
pub const XDP_PGOFF_RX_RING: i64 = 0;
/// The TX ring.
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
/// The fill ring.
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
/// The completion ring.
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// In unaligned chunk mode a descriptor's address carries an offset in its top 16 bits.
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;
/// The address part.
pub const XSK_UNALIGNED_BUF_ADDR_MASK: u64 = (1 << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;

/// The headroom the kernel leaves in front of a frame (`XDP_PACKET_HEADROOM`,
/// include/linux/netdevice.h's neighbour): an RX frame starts this far into its chunk.
pub const XDP_PACKET_HEADROOM: usize = 256;
/// The smallest chunk (`XDP_UMEM_MIN_CHUNK_SIZE`).
pub const XDP_UMEM_MIN_CHUNK_SIZE: usize = 2048;

/// Socket options for busy polling (include/uapi/asm-generic/socket.h).
pub const SO_BUSY_POLL: libc::c_int = 46;
/// Prefer busy polling over interrupts (Linux 5.11).
pub const SO_PREFER_BUSY_POLL: libc::c_int = 69;
/// Packets per busy poll.
pub const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `struct xdp_umem_reg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpUmemReg {
    /// Start of the UMEM, page-aligned.
    pub addr: u64,
    /// Its length.
    pub len: u64,
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// Headroom the kernel leaves in each chunk besides [`XDP_PACKET_HEADROOM`].
    pub headroom: u32,
    /// `XDP_UMEM_*` flags.
    pub flags: u32,
    /// TX metadata length (Linux 6.8); 0.
    pub tx_metadata_len: u32,
}

/// `struct xdp_ring_offset`: where a ring's parts lie in its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpRingOffset {
    /// The producer index (u32).
    pub producer: u64,
    /// The consumer index (u32).
    pub consumer: u64,
    /// The entries.
    pub desc: u64,
    /// The flags word (u32).
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpMmapOffsets {
    /// RX.
    pub rx: XdpRingOffset,
    /// TX.
    pub tx: XdpRingOffset,
    /// Fill.
    pub fr: XdpRingOffset,
    /// Completion.
    pub cr: XdpRingOffset,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockaddrXdp {
    /// `AF_XDP`.
    pub sxdp_family: u16,
    /// `XDP_*` bind flags.
    pub sxdp_flags: u16,
    /// The interface.
    pub sxdp_ifindex: u32,
    /// Its queue.
    pub sxdp_queue_id: u32,
    /// With `XDP_SHARED_UMEM`: the socket whose UMEM to share.
    pub sxdp_shared_umem_fd: u32,
}

/// `struct xdp_desc`: an RX or TX ring entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// Offset in the UMEM (unaligned mode: with the frame's offset in the top 16 bits on RX).
    pub addr: u64,
    /// Bytes.
    pub len: u32,
    /// Options (multi-buffer); 0.
    pub options: u32,
}

/// `struct xdp_statistics`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than invalid descriptors.
    pub rx_dropped: u64,
    /// Invalid fill descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame came.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}
