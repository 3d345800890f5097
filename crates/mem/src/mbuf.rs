//! Packet buffers (DPDK's `rte_mbuf`): a header, then headroom, then the data room, in one
//! mempool object of DMA memory.
//!
//! ```text
//! | header (128 B) | headroom (128 B default) | data room (2048 B default) |
//!                  ^ buf_addr / buf_iova       ^ buf_addr + data_off: the packet
//! ```
//!
//! The fields RX and TX touch on every packet (buffer address and IOVA, data offset, lengths,
//! port, offload flags, VLAN tag, RSS hash) are in the header's first cache line; the pool and
//! the buffer's size, needed only to allocate and free, are in the second. One segment per
//! packet: chained buffers are not supported yet.

use std::ptr::NonNull;

use crate::error::MemError;
use crate::memory::Memory;
use crate::mempool::{self, Mempool, MempoolConfig, PoolInner};

/// DPDK's RTE_PKTMBUF_HEADROOM.
pub const DEFAULT_HEADROOM: u16 = 128;
/// DPDK's RTE_MBUF_DEFAULT_DATAROOM.
pub const DEFAULT_DATA_ROOM: u16 = 2048;
/// Bytes of header in front of every buffer.
pub const HEADER_SIZE: usize = 128;

/// Offload flags ([`PacketBuf::ol_flags`]), set by drivers on RX and read by them on TX.
pub mod ol_flags {
    /// RX: the RSS hash field is valid.
    pub const RX_RSS_HASH: u64 = 1 << 1;
    /// RX: the VLAN tag field holds the stripped tag.
    pub const RX_VLAN_STRIPPED: u64 = 1 << 6;
    /// RX: the IP checksum was checked and is good.
    pub const RX_IP_CKSUM_GOOD: u64 = 1 << 7;
    /// RX: the IP checksum is bad.
    pub const RX_IP_CKSUM_BAD: u64 = 1 << 4;
    /// RX: the L4 checksum was checked and is good.
    pub const RX_L4_CKSUM_GOOD: u64 = 1 << 8;
    /// RX: the L4 checksum is bad.
    pub const RX_L4_CKSUM_BAD: u64 = 1 << 3;
    /// TX: insert the VLAN tag field.
    pub const TX_VLAN: u64 = 1 << 57;
    /// TX: compute the IPv4 header checksum.
    pub const TX_IP_CKSUM: u64 = 1 << 54;
    /// TX: compute the TCP checksum.
    pub const TX_TCP_CKSUM: u64 = 1 << 52;
    /// TX: compute the UDP checksum.
    pub const TX_UDP_CKSUM: u64 = 3 << 52;
}

/// The header at the start of each buffer object. `repr(C)` so its layout is fixed: everything
/// the RX and TX paths touch, the pool pointer and sizes included, sits in the first 64 bytes, so
/// allocating, filling and freeing a buffer touches one cache line of it (DPDK 22.11 keeps
/// `pool` in its first line for the same reason).
#[repr(C, align(64))]
pub struct MbufHeader {
    buf_addr: *mut u8,
    buf_iova: u64,
    ol_flags: u64,
    pool: *const PoolInner,
    pkt_len: u32,
    rss_hash: u32,
    packet_type: u32,
    data_off: u16,
    port: u16,
    data_len: u16,
    vlan_tci: u16,
    buf_len: u16,
    headroom: u16,
    _pad0: [u8; 8],
    // Second cache line: free for driver or application use later (chains, timestamps).
    _pad1: [u8; 64],
}

const _: () = assert!(std::mem::size_of::<MbufHeader>() == HEADER_SIZE);
const _: () = assert!(std::mem::offset_of!(MbufHeader, headroom) + 2 <= 64);

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
                    _pad0: [0; 8],
                    pool: pool.inner_ptr(),
                    buf_len: buf_len as u16,
                    headroom: config.headroom,
                    _pad1: [0; 64],
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
        Some(unsafe { PacketBuf::from_obj(obj) })
    }

    /// Appends exactly `n` empty buffers to `out`, or none (returns false). `out` should have
    /// capacity for them already: then nothing is allocated, whatever `n` is.
    #[inline]
    pub fn alloc_bulk(&self, out: &mut Vec<PacketBuf>, n: usize) -> bool {
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
            // SAFETY: fresh objects of a packet pool.
            out.extend(objs[..k].iter().map(|&o| unsafe { PacketBuf::from_obj(o) }));
            left -= k;
        }
        true
    }

    /// Frees every buffer in `bufs` (emptying it) with one bulk put per pool run.
    #[inline]
    pub fn free_bulk(bufs: &mut Vec<PacketBuf>) {
        const CHUNK: usize = 64;
        let mut objs = [NonNull::<u8>::dangling(); CHUNK];
        let mut pool: *const PoolInner = std::ptr::null();
        let mut n = 0;
        for buf in bufs.drain(..) {
            let raw = buf.into_raw();
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
    /// `obj` is an object of a [`PacketPool`] that nobody else holds.
    #[inline]
    unsafe fn from_obj(obj: NonNull<u8>) -> PacketBuf {
        let hdr = obj.cast::<MbufHeader>();
        // SAFETY: the caller promises an exclusively held, formatted buffer.
        let h = unsafe { &mut *hdr.as_ptr() };
        h.data_off = h.headroom;
        h.data_len = 0;
        h.pkt_len = 0;
        h.port = 0;
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

    /// Bytes in the packet.
    #[inline]
    pub fn len(&self) -> usize {
        self.h().data_len as usize
    }

    /// True for an empty packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.h().data_len == 0
    }

    /// The packet length over all segments (one segment today, so equal to [`PacketBuf::len`]).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.h().pkt_len
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

    /// Grows the packet at the front by `n` bytes and returns them; `None` if the headroom is
    /// too small.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.h_mut();
        if n > h.data_off as usize {
            return None;
        }
        h.data_off -= n as u16;
        h.data_len += n as u16;
        h.pkt_len += n as u32;
        Some(&mut self.data_mut()[..n])
    }

    /// Grows the packet at the end by `n` bytes and returns them; `None` if the tailroom is too
    /// small.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let h = self.h_mut();
        let old = h.data_len as usize;
        h.data_len += n as u16;
        h.pkt_len += n as u32;
        Some(&mut self.data_mut()[old..])
    }

    /// Removes `n` bytes from the front; `None` (and no change) if the packet is shorter.
    pub fn adj(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.h_mut();
        if n > h.data_len as usize {
            return None;
        }
        h.data_off += n as u16;
        h.data_len -= n as u16;
        h.pkt_len -= n as u32;
        Some(self.data_mut())
    }

    /// Removes `n` bytes from the end; false (and no change) if the packet is shorter.
    pub fn trim(&mut self, n: usize) -> bool {
        let h = self.h_mut();
        if n > h.data_len as usize {
            return false;
        }
        h.data_len -= n as u16;
        h.pkt_len -= n as u32;
        true
    }

    /// Sets the packet's length (a driver does this on RX), clamped to the room after the data
    /// offset: a device-written length is untrusted. Returns the length set.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> usize {
        let h = self.h_mut();
        let room = h.buf_len as usize - h.data_off as usize;
        let len = len.min(room);
        h.data_len = len as u16;
        h.pkt_len = len as u32;
        len
    }

    /// Copies `bytes` in as the whole packet; false if they do not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        let h = self.h_mut();
        if bytes.len() > h.buf_len as usize - h.data_off as usize {
            return false;
        }
        self.set_len(bytes.len());
        self.data_mut().copy_from_slice(bytes);
        true
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

    /// The RSS hash (valid when `ol_flags` has [`ol_flags::RX_RSS_HASH`]).
    #[inline]
    pub fn rss_hash(&self) -> u32 {
        self.h().rss_hash
    }

    /// Sets the RSS hash.
    #[inline]
    pub fn set_rss_hash(&mut self, hash: u32) {
        self.h_mut().rss_hash = hash;
    }

    /// Offload flags (see [`ol_flags`]).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.h().ol_flags
    }

    /// Sets the offload flags.
    #[inline]
    pub fn set_ol_flags(&mut self, flags: u64) {
        self.h_mut().ol_flags = flags;
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

    /// The packet type a driver recognised (0: unknown).
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
        let pool = self.h().pool;
        // SAFETY: a buffer's pool is never freed while buffers are out (`Mempool`'s drop leaks
        // it instead), and this handle owned the object.
        unsafe { mempool::put_one(pool, self.hdr.cast()) };
    }
}

impl std::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("len", &self.len())
            .field("data_off", &self.data_off())
            .field("port", &self.port())
            .finish()
    }
}
