//! An AF_XDP ring (af_xdp.rst, "Rings"): a power-of-two array of entries between a producer
//! and a consumer index, mapped from the socket, shared with the kernel. The indices are
//! reached with atomics as the kernel's ring protocol asks (libxdp's `xsk_ring_prod__submit`
//! and `xsk_ring_cons__peek`: load-acquire of the other side's index, store-release of one's
//! own), the entries with volatile reads and writes. Each side keeps cached copies of both
//! indices so that a burst touches the shared ones once.
//!
//! The kernel's index is untrusted: however far it claims to be, no more than the ring's size
//! is ever read, and every entry read is judged by the caller.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::if_xdp::{XdpRingOffset, XDP_RING_NEED_WAKEUP};

/// A mapping of one ring, unmapped when dropped.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once, after every pointer into it is gone (they live
        // in the same `XskRing`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One ring, entries of type `T` (`u64` addresses for fill and completion, [`crate::if_xdp::XdpDesc`]
/// for RX and TX).
#[derive(Debug)]
pub(crate) struct XskRing<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    size: u32,
    cached_prod: u32,
    cached_cons: u32,
    _map: Mapping,
}

// SAFETY: the ring is plain shared memory; one queue handle at a time uses it.
unsafe impl<T> Send for XskRing<T> {}

impl<T: Copy> XskRing<T> {
    /// Maps the ring of `size` entries (a power of two) at `pgoff` of socket `fd`, laid out as
    /// `off` says.
    pub(crate) fn map(fd: libc::c_int, pgoff: i64, off: &XdpRingOffset, size: u32) -> std::io::Result<XskRing<T>> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring at the offset the kernel defines
        // for it; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = ptr.cast::<u8>();
        let field = |o: u64| -> Result<*mut u8, std::io::Error> {
            if o as usize + 4 > len || o % 4 != 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "ring offset outside its mapping"));
            }
            // SAFETY: inside the mapping (checked just above).
            Ok(unsafe { base.add(o as usize) })
        };
        let map = Mapping { ptr: base, len };
        let (p, c, f) = (field(off.producer)?, field(off.consumer)?, field(off.flags)?);
        if off.desc as usize % std::mem::align_of::<T>() != 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "ring entries misaligned"));
        }
        // SAFETY: the entries start at `off.desc`, `size` of them fit the mapping (its length).
        let entries = unsafe { base.add(off.desc as usize) }.cast::<T>();
        let mut ring = XskRing {
            producer: p.cast(),
            consumer: c.cast(),
            flags: f.cast(),
            entries,
            mask: size - 1,
            size,
            cached_prod: 0,
            cached_cons: 0,
            _map: map,
        };
        // A producer starts with the whole ring free (libxdp's `cached_cons = *consumer + size`
        // trick is the same arithmetic); a consumer with nothing to read.
        ring.cached_prod = ring.prod_index().load(Ordering::Relaxed);
        ring.cached_cons = ring.cons_index().load(Ordering::Relaxed);
        Ok(ring)
    }

    fn prod_index(&self) -> &AtomicU32 {
        // SAFETY: a 4-aligned u32 inside the live mapping, only ever accessed atomically.
        unsafe { &*self.producer }
    }

    fn cons_index(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    /// Entries in the ring.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Whether the kernel asks for a syscall to go on with this ring.
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as `prod_index`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    // --- producer side (fill, TX) ---

    /// Free entries, up to `want`: the consumer's index is read only when the cached view has
    /// too few.
    #[inline]
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let mut free = self.size.wrapping_sub(self.cached_prod.wrapping_sub(self.cached_cons));
        if free < want {
            self.cached_cons = self.cons_index().load(Ordering::Acquire);
            free = self.size.wrapping_sub(self.cached_prod.wrapping_sub(self.cached_cons));
        }
        // A kernel index ahead of ours claims more than the ring, on the cached view too: clamp.
        free.min(self.size).min(want)
    }

    /// Writes entry `i` after the last submitted one (`i` below what [`XskRing::free`] gave).
    #[inline]
    pub(crate) fn write(&mut self, i: u32, v: T) {
        let at = (self.cached_prod.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `at <= mask`, inside the entries; a free entry is ours to write.
        unsafe { std::ptr::write_volatile(self.entries.add(at), v) };
    }

    /// Publishes `n` written entries (store-release: the entries before the index).
    #[inline]
    pub(crate) fn submit(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.prod_index().store(self.cached_prod, Ordering::Release);
    }

    /// Entries submitted that the kernel has not consumed yet.
    #[inline]
    pub(crate) fn outstanding(&mut self) -> u32 {
        self.cached_cons = self.cons_index().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons).min(self.size)
    }

    // --- consumer side (RX, completion) ---

    /// Entries ready to read, up to `want` (load-acquire of the kernel's index, only when the
    /// cached view is empty).
    #[inline]
    pub(crate) fn ready(&mut self, want: u32) -> u32 {
        let mut n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n == 0 {
            self.cached_prod = self.prod_index().load(Ordering::Acquire);
            n = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        // A kernel index that ran ahead stays ahead of the cached view too: never more than the
        // ring holds.
        n.min(self.size).min(want)
    }

    /// Entry `i` after the last released one (`i` below what [`XskRing::ready`] gave).
    #[inline]
    pub(crate) fn read(&self, i: u32) -> T {
        let at = (self.cached_cons.wrapping_add(i) & self.mask) as usize;
        // SAFETY: `at <= mask`, inside the entries; the kernel wrote it before publishing its
        // index, which we loaded with acquire ordering.
        unsafe { std::ptr::read_volatile(self.entries.add(at)) }
    }

    /// Hands `n` read entries back (store-release: our reads before the index).
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        self.cached_cons = self.cached_cons.wrapping_add(n);
        self.cons_index().store(self.cached_cons, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A ring of `size` u64 entries over a memfd, as the socket's mapping would be, and a second
    /// mapping of the same memory through which the test plays the kernel.
    fn fake(size: u32) -> (XskRing<u64>, *mut u32, OwnedFd) {
        // SAFETY: memfd_create with a NUL-terminated name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"ring".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizes the memfd.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 1 << 16) }, 0);
        let off = XdpRingOffset { producer: 0, consumer: 64, desc: 192, flags: 128 };
        let ring = XskRing::<u64>::map(fd.as_raw_fd(), 0, &off, size).unwrap();
        // SAFETY: a shared mapping of the same memfd; leaked for the test's life.
        let kernel = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(kernel, libc::MAP_FAILED);
        (ring, kernel.cast(), fd)
    }

    proptest! {
        /// However the kernel moves its indices (backwards, far ahead, wrapping), a consumer is
        /// never told of more entries than the ring holds, nor a producer of more room.
        #[test]
        fn kernel_indices_never_claim_more_than_the_ring(
            steps in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<bool>()), 1..40),
        ) {
            let size = 8;
            let (mut cons, kernel, _fd) = fake(size);
            let (mut prod, kernel2, _fd2) = fake(size);
            for (idx, want, take) in steps {
                // SAFETY: the producer word of the fake ring's shared page.
                unsafe { std::ptr::write_volatile(kernel, idx) };
                let n = cons.ready(want);
                prop_assert!(n <= size, "ready said {n}");
                if take {
                    cons.release(n);
                }
                // SAFETY: the consumer word of the other fake ring.
                unsafe { std::ptr::write_volatile(kernel2.add(16), idx) };
                let room = prod.free(want);
                prop_assert!(room <= size, "free said {room}");
                if take {
                    for i in 0..room {
                        prod.write(i, 0);
                    }
                    prod.submit(room);
                }
                prop_assert!(prod.outstanding() <= size);
            }
        }
    }
}
