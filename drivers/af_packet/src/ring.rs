//! One socket's rings: the memory the kernel maps for `PACKET_RX_RING` and `PACKET_TX_RING`
//! (RX first, then TX, in one mapping: packet_mmap.rst, "Mapping and use of the circular
//! buffer"), frame by frame. The mapping is shared with the kernel, so it is only ever reached
//! through raw pointers: each frame's status word with atomics (the kernel's side is
//! `__packet_get_status`/`__packet_set_status`, with `smp_rmb`/`smp_wmb`), the rest with
//! volatile reads and writes and byte copies.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::tpacket::{Tpacket2Hdr, TpacketReq};

/// A mapping of the socket's rings, unmapped when dropped.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which frame is settled by the rings'
// protocol (one queue handle per ring), not by the thread that mapped it.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of socket `fd`'s rings.
    pub(crate) fn new(fd: libc::c_int, len: usize) -> std::io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the socket's rings, at an address the kernel picks.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }

    /// The mapping's first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once; no ring view outlives the socket that owns it.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One ring inside a [`Mapping`]: `frames` frames of `frame_size` bytes, `per_block` to a
/// block of `block_size` bytes (a block may end in unused bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring {
    base: *mut u8,
    frames: u32,
    frame_size: u32,
    per_block: u32,
    block_size: u32,
}

// SAFETY: a view into a `Mapping` that its socket keeps alive; see `Mapping`.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// The ring `req` describes, starting at `base`.
    ///
    /// # Safety
    /// `base` starts `req.tp_block_size * req.tp_block_nr` bytes of a live mapping of the
    /// socket's ring, and `req` is what the kernel accepted for it.
    pub(crate) unsafe fn new(base: *mut u8, req: &TpacketReq) -> Ring {
        Ring {
            base,
            frames: req.tp_frame_nr,
            frame_size: req.tp_frame_size,
            per_block: req.tp_block_size / req.tp_frame_size,
            block_size: req.tp_block_size,
        }
    }

    /// Bytes per frame.
    #[inline]
    pub(crate) fn frame_size(&self) -> usize {
        self.frame_size as usize
    }

    /// The index after `i`.
    #[inline]
    pub(crate) fn next(&self, i: u32) -> u32 {
        if i + 1 == self.frames {
            0
        } else {
            i + 1
        }
    }

    /// Frame `i`'s first byte (`i` below [`Ring::frames`]: the callers keep their index so).
    #[inline]
    pub(crate) fn frame(&self, i: u32) -> *mut u8 {
        debug_assert!(i < self.frames);
        let off = (i / self.per_block) as usize * self.block_size as usize
            + (i % self.per_block) as usize * self.frame_size as usize;
        // SAFETY: for i < frames the offset lies inside the ring (frames = per_block x blocks).
        unsafe { self.base.add(off) }
    }

    /// Frame `i`'s status word, as an atomic: the one field both sides hand the frame over with.
    #[inline]
    pub(crate) fn status(&self, i: u32) -> &AtomicU32 {
        // SAFETY: the frame's first four bytes, 4-aligned (frames are 16-aligned in a page-aligned
        // mapping), live as long as the mapping; only ever accessed atomically by either side.
        unsafe { AtomicU32::from_ptr(self.frame(i).cast()) }
    }

    /// Frame `i`'s header, read once with volatile loads after its status said it is ours.
    #[inline]
    pub(crate) fn header(&self, i: u32) -> Tpacket2Hdr {
        // SAFETY: 32 bytes at the frame's start, inside the ring, aligned; the kernel wrote them
        // before it set the status we loaded with acquire ordering.
        unsafe { std::ptr::read_volatile(self.frame(i).cast::<Tpacket2Hdr>()) }
    }

    /// Hands frame `i` back to the other side with `status`, after every access to its bytes.
    #[inline]
    pub(crate) fn release(&self, i: u32, status: u32) {
        self.status(i).store(status, Ordering::Release);
    }
}
