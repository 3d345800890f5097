//! Descriptor memory: one IOVA-contiguous memzone of descriptors of one format `D` (the legacy
//! formats of SDM 3.2.3 and 3.3.3 are in `desc`), reached only through raw pointers with volatile
//! loads and stores, since the device reads and writes it behind our back.
//!
//! The one way to a descriptor is [`DescRing::desc`], which checks the index once and hands out
//! a [`Desc`]: a pointer to that descriptor, valid while it borrows the ring. The format's
//! accessors on `Desc<'_, D>` name its fields; nothing outside the format's file knows a byte
//! offset. A format is a `#[repr(C)]` layout ([`Descriptor`]); the parts the driver writes as one
//! 64-bit word, as the device reads them, are [`DescHalf`]s.

use std::marker::PhantomData;
use std::ptr::NonNull;

use burst_ethdev::EthError;
use burst_mem::{Memory, Memzone, MemzoneFlags, PacketBuf, PacketPool};
use burst_pci::Bar;

/// Ring bases must be 16-byte aligned and ring lengths multiples of 128 bytes (SDM 13.4.27,
/// 13.4.29); a 128-byte aligned base keeps every 8-descriptor block in its own cache lines.
const RING_ALIGN: usize = 128;

/// A descriptor format: the layout of one descriptor in a ring.
///
/// # Safety
///
/// The type is `#[repr(C)]`, a multiple of 8 bytes long, aligned to at most [`RING_ALIGN`] and
/// to its size, and made of integer fields only: every bit pattern the device may leave in it is
/// a valid value.
pub(crate) unsafe trait Descriptor {}

/// An 8-byte part of a descriptor that the driver (or, in tests, the device) writes as one
/// 64-bit word: one store instead of one per field.
///
/// # Safety
///
/// The type is `#[repr(C, align(8))]`, 8 bytes long, and made of integer fields with no padding
/// between them: its bytes are those of a `u64`, each one initialised.
pub(crate) unsafe trait DescHalf: Copy {
    /// The 64-bit word holding the same bytes as `self`, in memory order.
    #[inline(always)]
    fn to_bits(self) -> u64 {
        const { assert!(size_of::<Self>() == 8 && align_of::<Self>() == 8) };
        // SAFETY: `Self` is 8 bytes without padding (the trait's contract, the size checked
        // above), so reading a u64 from it reads 8 initialised bytes; any bits are a valid u64.
        unsafe { std::mem::transmute_copy::<Self, u64>(&self) }
    }
}

/// A ring of `len` descriptors of format `D` in DMA memory.
pub(crate) struct DescRing<D> {
    zone: Memzone,
    len: u16,
    _format: PhantomData<D>,
}

impl<D> std::fmt::Debug for DescRing<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DescRing").field("zone", &self.zone.name()).field("len", &self.len).finish()
    }
}

impl<D: Descriptor> DescRing<D> {
    /// Reserves and zeroes a ring of `len` descriptors (`len` > 0) called `name`.
    pub(crate) fn new(memory: &Memory, name: &str, len: u16, socket: Option<u32>) -> Result<DescRing<D>, EthError> {
        const { assert!(size_of::<D>() % 8 == 0 && align_of::<D>() <= RING_ALIGN) };
        let bytes = usize::from(len) * size_of::<D>();
        let zone = memory.reserve(name, bytes, socket, RING_ALIGN, MemzoneFlags::IOVA_CONTIG)?;
        // SAFETY: the memzone is `bytes` long, ours, and no device knows its address yet.
        unsafe { std::ptr::write_bytes(zone.as_ptr(), 0, bytes) };
        Ok(DescRing { zone, len, _format: PhantomData })
    }

    /// Descriptors in the ring.
    #[inline]
    pub(crate) fn len(&self) -> u16 {
        self.len
    }

    /// The ring's IOVA (RDBAL/RDBAH, TDBAL/TDBAH).
    pub(crate) fn iova(&self) -> u64 {
        self.zone.iova()
    }

    /// The ring's length in bytes (RDLEN/TDLEN).
    pub(crate) fn bytes(&self) -> u32 {
        u32::from(self.len) * size_of::<D>() as u32
    }

    /// Descriptor `i`. Indices are the driver's own, never the device's: one out of range is a
    /// driver bug, and stops here rather than touch memory outside the ring.
    #[inline]
    pub(crate) fn desc(&self, i: u16) -> Desc<'_, D> {
        assert!(i < self.len, "descriptor {i} is outside a ring of {}", self.len);
        // SAFETY: i < len, so the descriptor lies inside the `len * size_of::<D>()`-byte
        // memzone, and the memzone's pointer is not null.
        let ptr = unsafe { NonNull::new_unchecked(self.zone.as_ptr().cast::<D>().add(usize::from(i))) };
        Desc { ptr, _ring: PhantomData }
    }

    /// Zeroes every descriptor (the device must be quiet).
    pub(crate) fn zero(&self) {
        let words = self.zone.as_ptr().cast::<u64>();
        for k in 0..usize::from(self.len) * size_of::<D>() / 8 {
            // SAFETY: word k lies inside the ring's bytes (a whole number of 8-byte words), and
            // the 128-byte aligned ring keeps it aligned; a volatile store, no reference made.
            unsafe { words.add(k).write_volatile(0) };
        }
    }
}

/// One descriptor of a ring, its index checked: the format's accessors read and write its
/// fields with volatile loads and stores. It borrows the ring, so the memory outlives it.
pub(crate) struct Desc<'r, D> {
    ptr: NonNull<D>,
    _ring: PhantomData<&'r DescRing<D>>,
}

impl<D> Clone for Desc<'_, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D> Copy for Desc<'_, D> {}

impl<D> Desc<'_, D> {
    /// The descriptor: valid for volatile loads and stores of its fields while the handle
    /// lives. Never make a reference from it: the device writes it behind our back.
    #[inline(always)]
    pub(crate) fn as_ptr(self) -> *mut D {
        self.ptr.as_ptr()
    }
}

/// Gives every buffer held in `slots` back to its pool, with one bulk put per pool run.
pub(crate) fn free_slots(slots: &mut [Option<PacketBuf>]) {
    let mut bufs: Vec<PacketBuf> = slots.iter_mut().filter_map(Option::take).collect();
    PacketPool::free_bulk(&mut bufs);
}

/// Where the burst functions write their tail register: the device's BAR, or a recorder in
/// tests.
pub(crate) trait Doorbell {
    /// Writes `value` to the 32-bit register at `reg`.
    fn ring_tail(&self, reg: usize, value: u32);
}

impl Doorbell for Bar {
    #[inline]
    fn ring_tail(&self, reg: usize, value: u32) {
        self.write32(reg, value);
    }
}

/// `i + k` around a ring of `n` (`i < n`, `k <= n`).
#[inline]
pub(crate) fn wrap_add(i: u16, k: u16, n: u16) -> u16 {
    let s = u32::from(i) + u32::from(k);
    let n = u32::from(n);
    (if s >= n { s - n } else { s }) as u16
}

/// The index before `i` in a ring of `n`.
#[inline]
pub(crate) fn prev(i: u16, n: u16) -> u16 {
    if i == 0 {
        n - 1
    } else {
        i - 1
    }
}

/// Steps from `from` forward to `to` in a ring of `n` (both `< n`).
#[inline]
pub(crate) fn distance(from: u16, to: u16, n: u16) -> u16 {
    if to >= from {
        to - from
    } else {
        n - from + to
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn indices_wrap_at_the_ring_end() {
        assert_eq!(wrap_add(7, 1, 8), 0);
        assert_eq!(wrap_add(5, 8, 8), 5);
        assert_eq!(prev(0, 8), 7);
        assert_eq!(prev(3, 8), 2);
        assert_eq!(distance(6, 2, 8), 4);
        assert_eq!(distance(2, 2, 8), 0);
    }

    proptest! {
        #[test]
        fn ring_arithmetic_agrees_with_modular_arithmetic(n in 1u16..=4096, i in 0u16..4096, k in 0u16..=4096) {
            let i = i % n;
            let k = k % (n + 1);
            let j = wrap_add(i, k, n);
            prop_assert!(j < n);
            prop_assert_eq!(u32::from(j), (u32::from(i) + u32::from(k)) % u32::from(n));
            prop_assert_eq!(distance(i, j, n), k % n);
            prop_assert_eq!(wrap_add(prev(i, n), 1, n), i);
        }
    }
}
