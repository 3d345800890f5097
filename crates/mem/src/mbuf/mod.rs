//! Packet buffers (DPDK's `rte_mbuf`): a header, then headroom, then the data room, in one
//! mempool object of DMA memory.
//!
//! ```text
//! | header (128 B) | headroom (128 B default) | data room (2048 B default) |
//!                  ^ buf_addr / buf_iova       ^ buf_addr + data_off: the packet
//! ```
//!
//! A packet may be a chain of buffers (`rte_mbuf` chains): the first, the head, holds the
//! packet's metadata and its whole length (`pkt_len`) and the number of segments (`nb_segs`);
//! every segment holds its own `data_len` bytes and points at the `next`. [`PacketBuf`] is the
//! head; dropping it gives every segment back to its own pool. Chain operations are in `chain`.
//!
//! The fields RX and TX touch on every packet (buffer address and IOVA, data offset, lengths,
//! port, offload flags, VLAN tag, RSS hash, the pool, the next segment) are in the header's
//! first cache line, so allocating, filling and freeing a one-segment packet touches one line of
//! it; the TX offload lengths an application sets for a checksum or segmentation request are in
//! the second. A buffer in its pool always has no next segment and `nb_segs` 1 (freeing keeps
//! that true), so allocating one need not write them.

mod chain;
mod flags;

use std::ptr::NonNull;

use crate::error::MemError;
use crate::memory::Memory;
use crate::mempool::{self, Mempool, MempoolConfig, PoolInner};

pub use chain::{ChainBuilder, ChainError, Segment, Segments};
pub use flags::{CksumStatus, OlFlags, TxL4, TxOffload};

/// DPDK's RTE_PKTMBUF_HEADROOM.
pub const DEFAULT_HEADROOM: u16 = 128;
/// DPDK's RTE_MBUF_DEFAULT_DATAROOM.
pub const DEFAULT_DATA_ROOM: u16 = 2048;
/// Bytes of header in front of every buffer.
pub const HEADER_SIZE: usize = 128;

/// The header at the start of each buffer object. `repr(C)` so its layout is fixed: everything
/// the RX and TX paths touch, the pool pointer, the next segment and the sizes included, sits in
/// the first 64 bytes, so allocating, filling and freeing a one-segment buffer touches one cache
/// line of it (DPDK 22.11 keeps `pool` in its first line for the same reason).
#[repr(C, align(64))]
pub struct MbufHeader {
    buf_addr: *mut u8,
    buf_iova: u64,
    ol_flags: u64,
    pool: *const PoolInner,
    /// The whole packet's length (meaningful in the head only).
    pkt_len: u32,
    rss_hash: u32,
    packet_type: u32,
    data_off: u16,
    port: u16,
    /// This segment's length.
    data_len: u16,
    vlan_tci: u16,
    buf_len: u16,
    /// Segments in the packet (meaningful in the head only; 1 for every buffer in its pool).
    nb_segs: u16,
    /// The next segment; null for the last (and for every buffer in its pool). Last in the
    /// line: the fields a one-segment packet's RX and TX write keep the offsets they had before
    /// chains, which the compiler turns into the same few wide stores.
    next: *mut MbufHeader,
    // Second cache line: what TX offload requests need (set by the application, read by TX).
    tx_offload: TxOffload,
    vlan_tci_outer: u16,
    _pad1: [u8; PAD1],
}

/// The second line's unused bytes.
const PAD1: usize = 64 - std::mem::size_of::<TxOffload>() - 2;

const _: () = assert!(std::mem::size_of::<MbufHeader>() == HEADER_SIZE);
const _: () = assert!(std::mem::offset_of!(MbufHeader, next) + 8 <= 64);
const _: () = assert!(std::mem::offset_of!(MbufHeader, tx_offload) == 64);

/// A pool of packet buffers: a [`Mempool`] whose objects are formatted as buffers once, at
/// creation.
#[derive(Clone, Debug)]
pub struct PacketPool {
    pool: Mempool,
    data_room: u16,
    headroom: u16,
}

/// How to build a [`PacketPool`] (DPDK's `rte_pktmbuf_pool_create` arguments).
#[derive(Clone, Debug)]
pub struct PacketPoolConfig {
    /// The pool's name.
    pub name: String,
    /// How many buffers.
    pub count: usize,
    /// Per-lcore cache size.
    pub cache_size: usize,
    /// Bytes of data room after the headroom.
    pub data_room: u16,
    /// Bytes reserved in front of the data (for headers prepended later, or a driver's own).
    pub headroom: u16,
    /// The NUMA socket; `None` for the caller's.
    pub socket: Option<u32>,
}

impl PacketPoolConfig {
    /// `count` buffers with DPDK's defaults: 2048 bytes of data room, 128 of headroom, a cache of
    /// 256.
    pub fn new(name: &str, count: usize) -> Self {
        PacketPoolConfig {
            name: name.to_string(),
            count,
            cache_size: mempool::DEFAULT_CACHE_SIZE,
            data_room: DEFAULT_DATA_ROOM,
            headroom: DEFAULT_HEADROOM,
            socket: None,
        }
    }
}

impl PacketPool {
    /// Creates the pool and writes every buffer's fixed fields (address, IOVA, size, pool).
    pub fn new(memory: &Memory, config: &PacketPoolConfig) -> Result<PacketPool, MemError> {
        let buf_len = config.headroom as usize + config.data_room as usize;
        if buf_len > u16::MAX as usize {
            return Err(MemError::BadRequest(format!(
                "packet pool {:?}: headroom + data room is {buf_len} bytes, more than 65535",
                config.name
            )));
        }
        let mp_config = MempoolConfig {
            name: config.name.clone(),
            count: config.count,
            elt_size: HEADER_SIZE + buf_len,
            cache_size: config.cache_size,
            socket: config.socket,
        };
        let pool = Mempool::new(memory, &mp_config)?;
        let mut objs = vec![NonNull::dangling(); config.count];
        // Fresh pool, no other user yet: every object is in it.
        assert!(pool.get_bulk(&mut objs), "a new pool hands out all its objects");
        for obj in &objs {
            let hdr = obj.as_ptr().cast::<MbufHeader>();
            // SAFETY: each object is `HEADER_SIZE + buf_len` bytes of our memory, cache-line
            // aligned, and nobody else has it; writing its header is initialising it.
            unsafe {
                let buf_addr = obj.as_ptr().add(HEADER_SIZE);
                let buf_iova = pool.iova_of(buf_addr).expect("objects lie inside the pool's memzone");
                hdr.write(MbufHeader {
                    buf_addr,
                    buf_iova,
                    data_off: config.headroom,
                    port: 0,
                    data_len: 0,
                    vlan_tci: 0,
                    pkt_len: 0,
                    rss_hash: 0,
                    ol_flags: 0,
                    packet_type: 0,
                    next: std::ptr::null_mut(),
                    pool: pool.inner_ptr(),
                    buf_len: buf_len as u16,
                    nb_segs: 1,
                    tx_offload: TxOffload::default(),
                    vlan_tci_outer: 0,
                    _pad1: [0; PAD1],
                });
            }
        }
        // SAFETY: these are this pool's objects, just taken and not used elsewhere.
        unsafe { pool.put_bulk(&objs) };
        Ok(PacketPool { pool, data_room: config.data_room, headroom: config.headroom })
    }

    /// One buffer, empty, with the default headroom; `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<PacketBuf> {
        let obj = self.pool.get()?;
        // SAFETY: a fresh object of a packet pool, formatted at creation.
        Some(unsafe { PacketBuf::from_obj(obj, self.headroom) })
    }

    /// Appends exactly `n` empty buffers to `out`, or none (returns false). `out` should have
    /// capacity for them already: then nothing is allocated, whatever `n` is.
    #[inline]
    pub fn alloc_bulk(&self, out: &mut Vec<PacketBuf>, n: usize) -> bool {
        self.alloc_bulk_as(out, n, 0, 0)
    }

    /// [`PacketPool::alloc_bulk`] for a port that makes its packets in place (`net_null`): each
    /// buffer comes out holding `len` bytes (clamped to the data room) received on `port`, with
    /// none of the work [`PacketBuf::set_len`] does for a buffer that may head a chain, since a
    /// fresh one never does.
    #[inline]
    pub fn alloc_bulk_received(&self, out: &mut Vec<PacketBuf>, n: usize, len: usize, port: u16) -> bool {
        self.alloc_bulk_as(out, n, len.min(usize::from(self.data_room)) as u16, port)
    }

    /// `alloc_bulk` whose buffers hold `len` bytes (at most the data room) from `port`.
    #[inline(always)]
    fn alloc_bulk_as(&self, out: &mut Vec<PacketBuf>, n: usize, len: u16, port: u16) -> bool {
        const CHUNK: usize = 64;
        let mut objs = [NonNull::<u8>::dangling(); CHUNK];
        if n > self.pool.capacity() {
            // More than the pool holds: fail before reserving room for a huge `n`.
            return false;
        }
        let start = out.len();
        out.reserve(n);
        let mut left = n;
        while left > 0 {
            let k = left.min(CHUNK);
            if !self.pool.get_bulk(&mut objs[..k]) {
                // All or nothing: the buffers this call already took go back.
                out.truncate(start);
                return false;
            }
            // SAFETY: fresh objects of a packet pool; `len` fits the data room (callers clamp).
            out.extend(objs[..k].iter().map(|&o| unsafe { PacketBuf::from_obj_as(o, self.headroom, len, port) }));
            left -= k;
        }
        true
    }

    /// Frees every buffer in `bufs` (emptying it) with one bulk put per pool run; a chained
    /// packet's segments each go back to their own pool.
    #[inline]
    pub fn free_bulk(bufs: &mut Vec<PacketBuf>) {
        const CHUNK: usize = 64;
        let mut objs = [NonNull::<u8>::dangling(); CHUNK];
        let mut pool: *const PoolInner = std::ptr::null();
        let mut n = 0;
        for buf in bufs.drain(..) {
            let raw = buf.into_raw();
            // SAFETY: a live buffer's header is initialised.
            if unsafe { !(*raw.as_ptr()).next.is_null() } {
                // A chain: its segments may come from other pools (rare; freed one by one).
                // SAFETY: the handle gave up the chain it owned.
                unsafe { chain::free_segments(raw) };
                continue;
            }
            // SAFETY: a live buffer's header is initialised and its pool field is fixed.
            let p = unsafe { (*raw.as_ptr()).pool };
            if n == CHUNK || (n > 0 && p != pool) {
                // SAFETY: the collected buffers are `pool`'s, released by their handles.
                unsafe { (*pool).put_bulk(&objs[..n]) };
                n = 0;
            }
            pool = p;
            objs[n] = raw.cast();
            n += 1;
        }
        if n > 0 {
            // SAFETY: as above.
            unsafe { (*pool).put_bulk(&objs[..n]) };
        }
    }

    /// The mempool underneath (for counts: `available`, `in_use`, `is_full`).
    pub fn mempool(&self) -> &Mempool {
        &self.pool
    }

    /// Bytes of data room per buffer.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Bytes of headroom per buffer.
    pub fn headroom(&self) -> u16 {
        self.headroom
    }
}

/// An owned packet buffer. `Send`: it can move to another lcore. Dropping it returns it to its
/// pool.
pub struct PacketBuf {
    hdr: NonNull<MbufHeader>,
}

// SAFETY: the handle owns its buffer exclusively; the pool it returns to is thread-safe.
unsafe impl Send for PacketBuf {}
// SAFETY: `&PacketBuf` gives read-only access to the buffer's bytes and header.
unsafe impl Sync for PacketBuf {}

impl PacketBuf {
    /// # Safety
    /// `obj` is an object of a [`PacketPool`] that nobody else holds; `headroom` is that pool's.
    #[inline]
    unsafe fn from_obj(obj: NonNull<u8>, headroom: u16) -> PacketBuf {
        // SAFETY: the caller's promise; 0 bytes fit any buffer.
        unsafe { PacketBuf::from_obj_as(obj, headroom, 0, 0) }
    }

    /// # Safety
    /// As [`PacketBuf::from_obj`], and `len` is at most the pool's data room.
    #[inline(always)]
    unsafe fn from_obj_as(obj: NonNull<u8>, headroom: u16, len: u16, port: u16) -> PacketBuf {
        let hdr = obj.cast::<MbufHeader>();
        // SAFETY: the caller promises an exclusively held, formatted buffer. Its `next` is null
        // and its `nb_segs` 1: every buffer is put back in its pool that way.
        let h = unsafe { &mut *hdr.as_ptr() };
        h.data_off = headroom;
        h.data_len = len;
        h.pkt_len = u32::from(len);
        h.port = port;
        h.vlan_tci = 0;
        h.rss_hash = 0;
        h.ol_flags = 0;
        h.packet_type = 0;
        PacketBuf { hdr }
    }

    #[inline]
    fn h(&self) -> &MbufHeader {
        // SAFETY: the handle owns a formatted header for as long as it lives.
        unsafe { self.hdr.as_ref() }
    }

    #[inline]
    fn h_mut(&mut self) -> &mut MbufHeader {
        // SAFETY: as above, and `&mut self` makes the access exclusive.
        unsafe { self.hdr.as_mut() }
    }

    /// Gives up the handle without freeing the buffer (a driver does this when it hands the
    /// buffer to the device). Undo with [`PacketBuf::from_raw`].
    #[inline]
    pub fn into_raw(self) -> NonNull<MbufHeader> {
        let hdr = self.hdr;
        std::mem::forget(self);
        hdr
    }

    /// Takes back a buffer given up with [`PacketBuf::into_raw`].
    ///
    /// # Safety
    /// `hdr` came from `into_raw` and is taken back once.
    #[inline]
    pub unsafe fn from_raw(hdr: NonNull<MbufHeader>) -> PacketBuf {
        PacketBuf { hdr }
    }

    /// The packet's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let h = self.h();
        // SAFETY: data_off + data_len <= buf_len always holds (every setter checks it), and the
        // buffer is ours.
        unsafe { std::slice::from_raw_parts(h.buf_addr.add(h.data_off as usize), h.data_len as usize) }
    }

    /// The packet's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let h = self.h();
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(h.buf_addr.add(h.data_off as usize), h.data_len as usize) }
    }

    /// Bytes of data in this segment, the first (`rte_pktmbuf_data_len`): what [`PacketBuf::data`]
    /// holds. The whole packet's length is [`PacketBuf::pkt_len`]; the two differ only for a
    /// chain.
    #[inline]
    pub fn len(&self) -> usize {
        self.h().data_len as usize
    }

    /// True when the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.h().data_len == 0
    }

    /// The packet's length over all its segments (`rte_pktmbuf_pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.h().pkt_len
    }

    /// How many segments the packet has (1 unless it is a chain).
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.h().nb_segs
    }

    /// Whether the packet is one segment: the fast path every driver checks first.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.h().next.is_null()
    }

    /// Offset of the data from the start of the buffer.
    #[inline]
    pub fn data_off(&self) -> u16 {
        self.h().data_off
    }

    /// Room in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.h().data_off as usize
    }

    /// Room after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let h = self.h();
        h.buf_len as usize - h.data_off as usize - h.data_len as usize
    }

    /// The whole buffer's size (headroom + data room).
    #[inline]
    pub fn buf_len(&self) -> usize {
        self.h().buf_len as usize
    }

    /// The buffer's start address.
    #[inline]
    pub fn buf_addr(&self) -> *mut u8 {
        self.h().buf_addr
    }

    /// The IOVA of the buffer's start.
    #[inline]
    pub fn buf_iova(&self) -> u64 {
        self.h().buf_iova
    }

    /// The IOVA of the packet's first byte: what a TX descriptor points at.
    #[inline]
    pub fn data_iova(&self) -> u64 {
        let h = self.h();
        h.buf_iova + h.data_off as u64
    }

    /// The input port (set on RX).
    #[inline]
    pub fn port(&self) -> u16 {
        self.h().port
    }

    /// Sets the input port.
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.h_mut().port = port;
    }

    /// The RSS hash (valid when `ol_flags` has [`OlFlags::RX_RSS_HASH`]).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        self.h().rss_hash
    }

    /// Sets the RSS hash.
    #[inline]
    pub fn set_rss_hash(&mut self, hash: u32) {
        self.h_mut().rss_hash = hash;
    }

    /// Offload flags: what RX found, what TX is asked to do.
    #[inline]
    pub fn ol_flags(&self) -> OlFlags {
        OlFlags::from_bits_retain(self.h().ol_flags)
    }

    /// Sets the offload flags.
    #[inline]
    pub fn set_ol_flags(&mut self, flags: OlFlags) {
        self.h_mut().ol_flags = flags.bits();
    }

    /// The header lengths and segment size a TX offload request needs.
    #[inline]
    pub fn tx_offload(&self) -> TxOffload {
        self.h().tx_offload
    }

    /// Sets the header lengths and segment size for a TX offload request.
    #[inline]
    pub fn set_tx_offload(&mut self, tx: TxOffload) {
        self.h_mut().tx_offload = tx;
    }

    /// The VLAN tag (stripped on RX, to insert on TX).
    #[inline]
    pub fn vlan_tci(&self) -> u16 {
        self.h().vlan_tci
    }

    /// Sets the VLAN tag.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) {
        self.h_mut().vlan_tci = tci;
    }

    /// The outer VLAN tag of a QinQ packet (stripped on RX, to insert on TX).
    #[inline]
    pub fn vlan_tci_outer(&self) -> u16 {
        self.h().vlan_tci_outer
    }

    /// Sets the outer VLAN tag.
    #[inline]
    pub fn set_vlan_tci_outer(&mut self, tci: u16) {
        self.h_mut().vlan_tci_outer = tci;
    }

    /// The packet type a driver recognised, DPDK's `RTE_PTYPE_*` bits (0: unknown;
    /// `burst_net::PacketType` names them).
    #[inline]
    pub fn packet_type(&self) -> u32 {
        self.h().packet_type
    }

    /// Sets the packet type.
    #[inline]
    pub fn set_packet_type(&mut self, ptype: u32) {
        self.h_mut().packet_type = ptype;
    }
}

impl Drop for PacketBuf {
    #[inline]
    fn drop(&mut self) {
        let h = self.h();
        if h.next.is_null() {
            // SAFETY: a buffer's pool is never freed while buffers are out (`Mempool`'s drop
            // leaks it instead), and this handle owned the object; a one-segment packet leaves
            // `next` null and `nb_segs` 1, as its pool wants it.
            unsafe { mempool::put_one(h.pool, self.hdr.cast()) };
        } else {
            // SAFETY: this handle owns the head and, through it, every segment of the chain.
            unsafe { chain::free_segments(self.hdr) };
        }
    }
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .field("data_off", &self.data_off())
            .field("port", &self.port())
            .finish()
    }
}
