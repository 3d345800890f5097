//! The UMEM carved from a packet pool (af_xdp.rst, "UMEM"): the pool's memzone, page-aligned,
//! registered with the kernel in unaligned chunk mode, one chunk per buffer. A fill entry is a
//! buffer's `buf_addr` as an offset into the UMEM, and its chunk is that buffer's `buf_len`
//! bytes: the kernel lands a frame [`XDP_PACKET_HEADROOM`] bytes in and never writes outside
//! the chunk, so the 128-byte header in front of each buffer is never the kernel's to touch.
//! An RX descriptor becomes the very `PacketBuf` that was posted: no copy.
//!
//! Every buffer the kernel holds is written down in a table, one word per object of the pool:
//! the address it was posted with (tagged as fill or TX). An address the kernel hands back is
//! taken only if it is exactly one written down, and the word is cleared with a
//! compare-and-swap, so a made-up, repeated or stale address can cost a frame but never make
//! the driver free memory it does not own or a buffer twice. What the table still holds when
//! the sockets close goes back to the pool ([`Umem::reclaim`]): no buffer is lost.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use burst_mem::mbuf::{MbufHeader, HEADER_SIZE};
use burst_mem::{PacketBuf, PacketPool};

use crate::if_xdp::{
    XdpDesc, XdpUmemReg, XDP_PACKET_HEADROOM, XDP_UMEM_MIN_CHUNK_SIZE, XDP_UMEM_UNALIGNED_CHUNK_FLAG,
    XSK_UNALIGNED_BUF_ADDR_MASK, XSK_UNALIGNED_BUF_OFFSET_SHIFT,
};
use crate::XdpError;

/// Marks a table word as a TX buffer (addresses are below 2^48).
const TX_TAG: u64 = 1 << 62;

/// A pool's memory as a UMEM, and the buffers the kernel holds.
pub(crate) struct Umem {
    pool: PacketPool,
    /// The UMEM's first byte: the pool's memzone, rounded down to a page.
    base: *mut u8,
    len: usize,
    /// Offset of object 0 from `base`.
    first: u64,
    stride: u64,
    count: u64,
    /// Bytes per buffer after its header: the chunk.
    chunk: u32,
    /// Per object: the address the kernel holds it under (0: not the kernel's).
    held: Box<[AtomicU64]>,
}

// SAFETY: `base` only locates objects of the pool; who owns each is settled by `held`, whose
// words are atomics, and by the buffers' own handles.
unsafe impl Send for Umem {}
// SAFETY: as above.
unsafe impl Sync for Umem {}

/// Why an RX descriptor yielded no buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RxRefused {
    /// Not an address the kernel was given for RX (or given back already): nothing was freed.
    NotHeld,
    /// A buffer of ours whose frame does not lie inside it: it went back to the pool.
    BadFrame,
}

impl Umem {
    /// The UMEM of `pool`'s memory. The pool's objects must lie back to back and its buffers be
    /// a valid chunk.
    pub(crate) fn new(pool: &PacketPool) -> Result<Umem, XdpError> {
        let mp = pool.mempool();
        let Some(stride) = mp.object_stride() else {
            return Err(XdpError::PoolLayout { pool: mp.name().to_string() });
        };
        let page = page_size();
        let chunk = usize::from(pool.headroom()) + usize::from(pool.data_room());
        if !(XDP_UMEM_MIN_CHUNK_SIZE..=page).contains(&chunk) || chunk < XDP_PACKET_HEADROOM + 64 {
            return Err(XdpError::ChunkSize { pool: mp.name().to_string(), chunk, page });
        }
        let zone = mp.memzone();
        let start = zone.as_ptr() as usize;
        let base = start & !(page - 1);
        let end = (start + mp.capacity() * stride).next_multiple_of(page);
        let held = (0..mp.capacity()).map(|_| AtomicU64::new(0)).collect();
        Ok(Umem {
            pool: pool.clone(),
            base: base as *mut u8,
            len: end - base,
            first: (start - base) as u64,
            stride: stride as u64,
            count: mp.capacity() as u64,
            chunk: chunk as u32,
            held,
        })
    }

    /// The registration (`XDP_UMEM_REG`): unaligned chunks of one buffer each, no headroom of
    /// the kernel's besides its own 256 bytes.
    pub(crate) fn reg(&self) -> XdpUmemReg {
        XdpUmemReg {
            addr: self.base as u64,
            len: self.len as u64,
            chunk_size: self.chunk,
            headroom: 0,
            flags: XDP_UMEM_UNALIGNED_CHUNK_FLAG,
            tx_metadata_len: 0,
        }
    }

    /// The pool the UMEM is made of.
    pub(crate) fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// The object an offset into the UMEM falls in.
    #[inline]
    fn object(&self, off: u64) -> Option<u64> {
        let k = off.checked_sub(self.first)? / self.stride;
        (k < self.count).then_some(k)
    }

    /// Object `k`'s `buf_addr` as an offset into the UMEM.
    #[inline]
    fn buf_off(&self, k: u64) -> u64 {
        self.first + k * self.stride + HEADER_SIZE as u64
    }

    /// Object `k`'s header.
    #[inline]
    fn header(&self, k: u64) -> NonNull<MbufHeader> {
        // SAFETY: k < count: the object lies inside the pool's memzone, inside the UMEM.
        let p = unsafe { self.base.add((self.first + k * self.stride) as usize) };
        // SAFETY: inside a live mapping: not null.
        unsafe { NonNull::new_unchecked(p.cast()) }
    }

    /// The object `buf` is, if it is one of this pool's.
    #[inline]
    fn object_of(&self, buf: &PacketBuf) -> Option<u64> {
        let off = (buf.buf_addr() as u64).checked_sub(self.base as u64 + HEADER_SIZE as u64)?;
        let k = self.object(off)?;
        (off == self.buf_off(k) - HEADER_SIZE as u64).then_some(k)
    }

    /// Hands `buf` (a fresh buffer of this pool) to the kernel for the fill ring; the entry to
    /// write.
    #[inline]
    pub(crate) fn give_fill(&self, buf: PacketBuf) -> u64 {
        let k =
            self.object_of(&buf).unwrap_or_else(|| unreachable!("the fill ring takes buffers of its own pool only"));
        let addr = self.buf_off(k);
        self.held[k as usize].store(addr, Ordering::Relaxed);
        let _ = buf.into_raw();
        addr
    }

    /// The buffer an RX descriptor names, with its frame in place: `addr`'s low 48 bits must be a
    /// fill address the kernel holds, and its offset and length must lie inside that buffer.
    #[inline]
    pub(crate) fn take_rx(&self, d: XdpDesc) -> Result<PacketBuf, RxRefused> {
        let addr = d.addr & XSK_UNALIGNED_BUF_ADDR_MASK;
        let off = (d.addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT) as usize;
        let k = addr.checked_sub(HEADER_SIZE as u64).and_then(|o| self.object(o)).ok_or(RxRefused::NotHeld)?;
        if self.held[k as usize].compare_exchange(addr, 0, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return Err(RxRefused::NotHeld);
        }
        // SAFETY: object k was posted for fill and the kernel gave it back just now (the word
        // was cleared by us alone): the buffer is ours again, taken back once.
        let mut buf = unsafe { PacketBuf::from_raw(self.header(k)) };
        if !buf.set_data_at(off, d.len as usize) {
            return Err(RxRefused::BadFrame);
        }
        Ok(buf)
    }

    /// Hands `buf` to the kernel for TX in place: the descriptor, or the buffer back when it is
    /// not one of this pool's or is a chain (the caller copies it into one that is).
    #[inline]
    pub(crate) fn give_tx(&self, buf: PacketBuf) -> Result<XdpDesc, PacketBuf> {
        let Some(k) = self.object_of(&buf).filter(|_| buf.is_contiguous()) else { return Err(buf) };
        let addr = self.buf_off(k) + u64::from(buf.data_off());
        let len = buf.len() as u32;
        self.held[k as usize].store(addr | TX_TAG, Ordering::Relaxed);
        let _ = buf.into_raw();
        Ok(XdpDesc { addr, len, options: 0 })
    }

    /// The buffer a completion entry names, if it is a TX address the kernel holds.
    #[inline]
    pub(crate) fn take_completion(&self, addr: u64) -> Option<PacketBuf> {
        let k = self.object(addr)?;
        self.held[k as usize].compare_exchange(addr | TX_TAG, 0, Ordering::Relaxed, Ordering::Relaxed).ok()?;
        // SAFETY: object k was posted for TX and completed just now, the word cleared by us.
        Some(unsafe { PacketBuf::from_raw(self.header(k)) })
    }

    /// Takes back every buffer the kernel still holds. Only once the sockets using the UMEM
    /// are closed: the kernel no longer touches any of them.
    pub(crate) fn reclaim(&self) -> usize {
        let mut n = 0;
        for (k, word) in self.held.iter().enumerate() {
            if word.swap(0, Ordering::Relaxed) != 0 {
                // SAFETY: the kernel held object k and has let go of everything (closed sockets);
                // the word's swap makes this the one taking it back.
                drop(unsafe { PacketBuf::from_raw(self.header(k as u64)) });
                n += 1;
            }
        }
        n
    }
}

/// The page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_mem::testing::{memory, unique_name};
    use burst_mem::PacketPoolConfig;
    use proptest::prelude::*;

    fn pool(n: usize) -> PacketPool {
        let mut cfg = PacketPoolConfig::new(&unique_name("umem"), n);
        cfg.cache_size = 0;
        PacketPool::new(&memory(), &cfg).unwrap()
    }

    #[test]
    fn a_posted_buffer_comes_back_once_as_itself_with_its_frame_in_place() {
        let p = pool(16);
        let u = Umem::new(&p).unwrap();
        let buf = p.alloc().unwrap();
        let at = buf.buf_addr();
        let addr = u.give_fill(buf);
        assert_eq!(p.mempool().in_use(), 1, "the kernel holds it");
        let d = XdpDesc { addr: addr | (256 << 48), len: 60, options: 0 };
        let got = u.take_rx(d).unwrap();
        assert_eq!((got.buf_addr(), got.data_off(), got.len()), (at, 256, 60));
        assert_eq!(u.take_rx(d).unwrap_err(), RxRefused::NotHeld, "not twice");
        let tx = u.give_tx(got).unwrap();
        assert_eq!(tx.addr, addr + 256);
        assert!(u.take_completion(addr).is_none(), "a fill address is no TX completion");
        assert!(u.take_completion(tx.addr).is_some());
        assert!(u.take_completion(tx.addr).is_none());
        assert!(p.mempool().is_full());
    }

    #[test]
    fn a_frame_reaching_outside_its_buffer_is_refused_and_the_buffer_goes_back() {
        let p = pool(4);
        let u = Umem::new(&p).unwrap();
        let addr = u.give_fill(p.alloc().unwrap());
        let chunk = u64::from(u.chunk);
        let d = XdpDesc { addr: addr | ((chunk - 59) << 48), len: 60, options: 0 };
        assert_eq!(u.take_rx(d).unwrap_err(), RxRefused::BadFrame);
        assert!(p.mempool().is_full());
    }

    proptest! {
        /// Whatever the kernel hands back, only buffers it holds come out, each once, and the
        /// rest come back at reclaim: the pool is whole at the end.
        #[test]
        fn made_up_descriptors_never_free_what_the_kernel_does_not_hold(
            posts in 1usize..16, junk in proptest::collection::vec((any::<u64>(), any::<u32>(), 0u8..4), 0..64),
        ) {
            let p = pool(16);
            let u = Umem::new(&p).unwrap();
            let addrs: Vec<u64> = (0..posts).map(|_| u.give_fill(p.alloc().unwrap())).collect();
            let mut out = Vec::new();
            for (i, (a, len, how)) in junk.iter().enumerate() {
                let addr = match how {
                    0 => *a,
                    1 => addrs[i % posts] | (a & 0xffff_0000_0000_0000),
                    2 => addrs[i % posts].wrapping_add(a % 512),
                    _ => addrs[i % posts] + 256,
                };
                if let Ok(b) = u.take_rx(XdpDesc { addr, len: *len, options: 0 }) {
                    prop_assert!(b.data_off() as usize + b.len() <= b.buf_len());
                    out.push(b);
                }
                let _ = u.take_completion(*a);
            }
            drop(out);
            u.reclaim();
            prop_assert!(p.mempool().is_full());
        }
    }
}
