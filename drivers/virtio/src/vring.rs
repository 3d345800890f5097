//! A split virtqueue's memory (virtio 1.2, 2.7) in one IOVA-contiguous memzone, laid out with legacy's
//! alignment so every transport can take it (2.7.2): the descriptor table at offset 0
//! (4096-aligned), the available ring right after it, the used ring on the next 4096-byte
//! boundary.
//!
//! ```text
//! desc:  size x { addr u64, len u32, flags u16, next u16 }          (2.7.5)
//! avail: flags u16, idx u16, ring[size] u16, used_event u16         (2.7.6)
//! used:  flags u16, idx u16, ring[size] { id u32, len u32 }, avail_event u16   (2.7.8)
//! ```
//!
//! The device reads and writes this memory behind our back: every access is a volatile load or
//! store through a raw pointer, and every index is masked with `size - 1` (sizes are powers of
//! two), so no value the device writes can make an access leave the ring.

use burst_ethdev::EthError;
use burst_mem::barrier::{dma_rmb, dma_wmb, mb};
use burst_mem::{Memory, Memzone, MemzoneFlags};

use crate::spec::ring::{DESC_SIZE, LEGACY_ALIGN, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};
use crate::transport::QueueLayout;

/// Byte offsets of the three parts for a ring of `size` descriptors: (avail, used, total).
pub(crate) fn offsets(size: u16) -> (usize, usize, usize) {
    let n = usize::from(size);
    let avail = n * DESC_SIZE;
    let used = (avail + 6 + 2 * n).next_multiple_of(LEGACY_ALIGN);
    (avail, used, used + 6 + 8 * n)
}

/// Writes the descriptor at `p` (2.7.5): two volatile 8-byte stores, as the device may read the
/// table (the ring's, or an indirect one, 2.7.5.3) at any time.
///
/// # Safety
/// `p` is valid for writes of 16 bytes and 8-byte aligned, in memory the driver owns.
#[inline(always)]
pub(crate) unsafe fn write_desc(p: *mut u8, addr: u64, len: u32, flags: u16, next: u16) {
    let hi = u64::from(len) | u64::from(flags) << 32 | u64::from(next) << 48;
    // SAFETY: the caller's promise.
    unsafe {
        let p = p.cast::<u64>();
        p.write_volatile(addr.to_le());
        p.add(1).write_volatile(hi.to_le());
    }
}

/// Raw views of a split ring's three parts: the driver's accessors and, for the test device,
/// the device's. Holds no memory itself; whoever makes one keeps the memory alive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingView {
    desc: *mut u8,
    avail: *mut u8,
    used: *mut u8,
    mask: u16,
}

// SAFETY: the view is a set of addresses into DMA memory whose owner (a `Vring`, or a test
// device holding the layout of one) keeps it mapped; all accesses are volatile and any thread
// may make them.
unsafe impl Send for RingView {}

impl RingView {
    /// A view of the ring at `desc`/`avail`/`used` (virtual addresses) of `size` descriptors.
    ///
    /// # Safety
    /// The three parts must be mapped, aligned as [`offsets`] lays them out (desc 16-byte,
    /// avail and used 4-byte aligned), at least as long as a ring of `size` needs, for as long
    /// as the view is used; `size` is a power of two.
    pub(crate) unsafe fn new(desc: usize, avail: usize, used: usize, size: u16) -> RingView {
        debug_assert!(size.is_power_of_two());
        RingView { desc: desc as *mut u8, avail: avail as *mut u8, used: used as *mut u8, mask: size - 1 }
    }

    /// Writes descriptor `i` (masked).
    #[inline]
    pub(crate) fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let i = usize::from(i & self.mask);
        // SAFETY: i < size, so the descriptor is inside the table, 16-byte aligned (the table is
        // 4096-aligned), in memory the device reads.
        unsafe { write_desc(self.desc.add(i * DESC_SIZE), addr, len, flags, next) }
    }

    /// Descriptor `i` (masked): addr, len, flags, next.
    #[inline]
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn desc(&self, i: u16) -> (u64, u32, u16, u16) {
        let i = usize::from(i & self.mask);
        // SAFETY: as in `set_desc`; volatile loads.
        let (addr, hi) = unsafe {
            let p = self.desc.add(i * DESC_SIZE).cast::<u64>();
            (u64::from_le(p.read_volatile()), u64::from_le(p.add(1).read_volatile()))
        };
        (addr, hi as u32, (hi >> 32) as u16, (hi >> 48) as u16)
    }

    #[inline]
    fn u16_at(base: *mut u8, off: usize) -> *mut u16 {
        // Callers pass offsets inside the part `base` starts (masked indices); dereferencing is
        // theirs to justify.
        base.wrapping_add(off).cast::<u16>()
    }

    /// Writes `avail.ring[slot]` (masked), unless it already holds `id`: when descriptors are
    /// reused in ring order (a device that completes in order, and
    /// [`crate::virtqueue::IdFifo`]), the entry is
    /// unchanged, and not writing it keeps the device's cached copy of the line valid (DPDK's
    /// `vq_update_avail_ring` does the same).
    #[inline]
    pub(crate) fn set_avail_ring(&self, slot: u16, id: u16) {
        let p = Self::u16_at(self.avail, 4 + 2 * usize::from(slot & self.mask));
        // SAFETY: inside the available ring, 2-byte aligned; only the driver writes it.
        unsafe {
            if p.read_volatile() != id.to_le() {
                p.write_volatile(id.to_le())
            }
        }
    }

    /// Publishes `avail.idx`: every descriptor and ring entry written before is visible to the
    /// device first (2.7.13: "the driver performs a suitable memory barrier").
    #[inline]
    pub(crate) fn publish_avail(&self, idx: u16) {
        dma_wmb();
        // SAFETY: `avail.idx` at offset 2 of the available ring.
        unsafe { Self::u16_at(self.avail, 2).write_volatile(idx.to_le()) }
    }

    /// Sets `avail.flags`.
    #[inline]
    pub(crate) fn set_avail_flags(&self, flags: u16) {
        // SAFETY: `avail.flags` at offset 0.
        unsafe { Self::u16_at(self.avail, 0).write_volatile(flags.to_le()) }
    }

    /// `used.idx` as the device last wrote it. Entries below it may be read only after a read
    /// barrier ([`RingView::used_idx_acquire`]).
    #[inline]
    pub(crate) fn used_idx(&self) -> u16 {
        // SAFETY: `used.idx` at offset 2 of the used ring.
        u16::from_le(unsafe { Self::u16_at(self.used, 2).read_volatile() })
    }

    /// `used.idx`, then a read barrier so the entries it covers are read after it (2.7.13:
    /// the device writes the used entries before `used.idx`).
    #[inline]
    pub(crate) fn used_idx_acquire(&self) -> u16 {
        let idx = self.used_idx();
        dma_rmb();
        idx
    }

    /// `used.ring[slot]` (masked): id and len, untrusted.
    #[inline]
    pub(crate) fn used_elem(&self, slot: u16) -> (u32, u32) {
        let off = 4 + 8 * usize::from(slot & self.mask);
        // SAFETY: inside the used ring, 4-byte aligned (the ring is 4096-aligned, off % 4 == 0).
        unsafe {
            let p = self.used.add(off).cast::<u32>();
            (u32::from_le(p.read_volatile()), u32::from_le(p.add(1).read_volatile()))
        }
    }

    /// Whether the device wants a notification now: a full barrier orders our `avail.idx` store
    /// before the load of `used.flags` (2.7.13.4), then `VRING_USED_F_NO_NOTIFY` decides.
    #[inline]
    pub(crate) fn needs_kick(&self) -> bool {
        mb();
        // SAFETY: `used.flags` at offset 0.
        let flags = u16::from_le(unsafe { Self::u16_at(self.used, 0).read_volatile() });
        flags & VRING_USED_F_NO_NOTIFY == 0
    }

    /// The view of the ring `layout` describes, through its virtual addresses (the test
    /// device's, and vhost-user's reading `used.idx` for a new back-end).
    ///
    /// # Safety
    /// As for [`RingView::new`].
    pub(crate) unsafe fn from_layout(layout: &QueueLayout) -> RingView {
        // SAFETY: the caller's promise.
        unsafe { RingView::new(layout.desc_va, layout.avail_va, layout.used_va, layout.size) }
    }

    // The device's side (the test device; a real device does this in its own process).

    /// `avail.idx` (device side), then a read barrier: the ring entries and descriptors it
    /// covers are read after it, as the driver wrote them before it.
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn avail_idx(&self) -> u16 {
        // SAFETY: `avail.idx` at offset 2.
        let idx = u16::from_le(unsafe { Self::u16_at(self.avail, 2).read_volatile() });
        dma_rmb();
        idx
    }

    /// `avail.flags` (device side).
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn avail_flags(&self) -> u16 {
        // SAFETY: `avail.flags` at offset 0.
        u16::from_le(unsafe { Self::u16_at(self.avail, 0).read_volatile() })
    }

    /// `avail.ring[slot]` (device side).
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn avail_ring(&self, slot: u16) -> u16 {
        let p = Self::u16_at(self.avail, 4 + 2 * usize::from(slot & self.mask));
        // SAFETY: inside the available ring.
        u16::from_le(unsafe { p.read_volatile() })
    }

    /// Writes `used.ring[slot]` (device side).
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn set_used_elem(&self, slot: u16, id: u32, len: u32) {
        let off = 4 + 8 * usize::from(slot & self.mask);
        // SAFETY: inside the used ring, 4-byte aligned.
        unsafe {
            let p = self.used.add(off).cast::<u32>();
            p.write_volatile(id.to_le());
            p.add(1).write_volatile(len.to_le());
        }
    }

    /// Publishes `used.idx` (device side): the used entries and the buffers written before are
    /// visible to the driver first.
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn set_used_idx(&self, idx: u16) {
        dma_wmb();
        // SAFETY: `used.idx` at offset 2.
        unsafe { Self::u16_at(self.used, 2).write_volatile(idx.to_le()) }
    }

    /// Sets `used.flags` (device side).
    #[cfg(any(test, feature = "testdev"))]
    pub(crate) fn set_used_flags(&self, flags: u16) {
        // SAFETY: `used.flags` at offset 0.
        unsafe { Self::u16_at(self.used, 0).write_volatile(flags.to_le()) }
    }
}

/// A split virtqueue's memory: the memzone and the view into it.
pub(crate) struct Vring {
    zone: Memzone,
    view: RingView,
    index: u16,
    size: u16,
}

impl std::fmt::Debug for Vring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vring")
            .field("zone", &self.zone.name())
            .field("index", &self.index)
            .field("size", &self.size)
            .finish()
    }
}

impl Vring {
    /// Reserves and zeroes queue `index`'s ring of `size` descriptors (a power of two).
    pub(crate) fn new(
        memory: &Memory,
        name: &str,
        index: u16,
        size: u16,
        socket: Option<u32>,
    ) -> Result<Vring, EthError> {
        assert!(size.is_power_of_two(), "virtqueue sizes are powers of two (checked by the caller)");
        let (avail, used, total) = offsets(size);
        let zone = memory.reserve(name, total, socket, LEGACY_ALIGN, MemzoneFlags::IOVA_CONTIG)?;
        let base = zone.as_ptr() as usize;
        // SAFETY: the memzone is `total` bytes, 4096-aligned, laid out by `offsets`, and lives
        // as long as `self` (the view is never handed out beyond it).
        let view = unsafe { RingView::new(base, base + avail, base + used, size) };
        let ring = Vring { zone, view, index, size };
        ring.clear();
        Ok(ring)
    }

    /// Zeroes the ring and sets `VRING_AVAIL_F_NO_INTERRUPT` (we poll). The device must be
    /// reset (not using the queue).
    pub(crate) fn clear(&self) {
        // SAFETY: the whole memzone is ours and the device does not use it now.
        unsafe { std::ptr::write_bytes(self.zone.as_ptr(), 0, self.zone.len()) };
        self.view.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
    }

    /// The accessors.
    #[inline]
    pub(crate) fn view(&self) -> &RingView {
        &self.view
    }

    /// Descriptors in the ring.
    #[inline]
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// The virtqueue's index.
    pub(crate) fn index(&self) -> u16 {
        self.index
    }

    /// Where the parts are, for [`crate::transport::Transport::setup_queue`].
    pub(crate) fn layout(&self) -> QueueLayout {
        let (avail, used, _) = offsets(self.size);
        let (iova, va) = (self.zone.iova(), self.zone.as_ptr() as usize);
        QueueLayout {
            index: self.index,
            size: self.size,
            desc_iova: iova,
            avail_iova: iova + avail as u64,
            used_iova: iova + used as u64,
            desc_va: va,
            avail_va: va + avail,
            used_va: va + used,
        }
    }
}

/// The ring size for a queue whose device takes at most `max` descriptors, when `nb_desc` were
/// asked for: the device's size when it cannot be changed, else `nb_desc` rounded up to a power
/// of two and clamped to `max` (DPDK's virtio also uses the device's size). `None`: no usable
/// size (no queue, or a fixed size that is not a power of two).
pub(crate) fn ring_size(max: u16, settable: bool, nb_desc: u16) -> Option<u16> {
    if max == 0 {
        return None;
    }
    let max = max.min(crate::spec::ring::MAX_QUEUE_SIZE);
    if !settable {
        return max.is_power_of_two().then_some(max);
    }
    // The largest power of two not above max.
    let cap = 1u16 << (15 - max.leading_zeros().min(15));
    let want = nb_desc.max(1).checked_next_power_of_two().unwrap_or(cap);
    Some(want.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_follows_legacy_alignment() {
        assert_eq!(offsets(256), (4096, 8192, 8192 + 6 + 2048));
        let (avail, used, _) = offsets(1024);
        assert_eq!((avail, used), (16384, 16384 + 4096));
        let (_, used, _) = offsets(8);
        assert_eq!(used, 4096);
    }

    #[test]
    fn ring_sizes_follow_the_device() {
        assert_eq!(ring_size(256, false, 1024), Some(256));
        assert_eq!(ring_size(256, false, 32), Some(256));
        assert_eq!(ring_size(0, true, 32), None);
        assert_eq!(ring_size(1000, false, 32), None);
        assert_eq!(ring_size(1024, true, 100), Some(128));
        assert_eq!(ring_size(1024, true, 4096), Some(1024));
        assert_eq!(ring_size(1000, true, 4096), Some(512));
        assert_eq!(ring_size(u16::MAX, true, u16::MAX), Some(32768));
    }
}
