//! Descriptor memory: one IOVA-contiguous memzone of 16-byte legacy descriptors (SDM 3.2.3 for
//! RX, 3.3.3 for TX), reached only through raw pointers with volatile loads and stores, since
//! the device reads and writes it behind our back.

use burst_ethdev::EthError;
use burst_mem::{Memory, Memzone, MemzoneFlags, PacketBuf, PacketPool};
use burst_pci::Bar;

use crate::regs::DESC_SIZE;

/// Ring bases must be 16-byte aligned and ring lengths multiples of 128 bytes (SDM 13.4.27,
/// 13.4.29); a 128-byte aligned base keeps every 8-descriptor block in its own cache lines.
const RING_ALIGN: usize = 128;

/// A ring of `len` descriptors in DMA memory.
pub(crate) struct DescRing {
    zone: Memzone,
    len: u16,
}

impl std::fmt::Debug for DescRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DescRing").field("zone", &self.zone.name()).field("len", &self.len).finish()
    }
}

impl DescRing {
    /// Reserves and zeroes a ring of `len` descriptors (`len` > 0) called `name`.
    pub(crate) fn new(memory: &Memory, name: &str, len: u16, socket: Option<u32>) -> Result<DescRing, EthError> {
        let bytes = usize::from(len) * DESC_SIZE;
        let zone = memory.reserve(name, bytes, socket, RING_ALIGN, MemzoneFlags::IOVA_CONTIG)?;
        // SAFETY: the memzone is `bytes` long, ours, and no device knows its address yet.
        unsafe { std::ptr::write_bytes(zone.as_ptr(), 0, bytes) };
        Ok(DescRing { zone, len })
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
        u32::from(self.len) * DESC_SIZE as u32
    }

    /// Byte `off` of descriptor `i`. Indices are the driver's own, never the device's: one out of
    /// range is a driver bug, and stops here rather than touch memory outside the ring.
    #[inline]
    fn at(&self, i: u16, off: usize) -> *mut u8 {
        assert!(i < self.len && off < DESC_SIZE, "descriptor {i} byte {off} is outside a ring of {}", self.len);
        // SAFETY: i < len and off < 16, so the address is inside the `len * 16`-byte memzone.
        unsafe { self.zone.as_ptr().add(usize::from(i) * DESC_SIZE + off) }
    }

    /// A byte of descriptor `i` (status, errors), as the device last wrote it.
    #[inline]
    pub(crate) fn read_u8(&self, i: u16, off: usize) -> u8 {
        // SAFETY: `at` checked the address is inside the ring; a volatile load of device-shared
        // memory, no reference made.
        unsafe { self.at(i, off).read_volatile() }
    }

    /// A little-endian 16-bit field of descriptor `i` (`off` even).
    #[inline]
    pub(crate) fn read_u16(&self, i: u16, off: usize) -> u16 {
        let p = self.at(i, off & !1);
        // SAFETY: inside the ring (`at`), 2-byte aligned (the ring is 128-byte aligned and the
        // offset even).
        u16::from_le(unsafe { p.cast::<u16>().read_volatile() })
    }

    /// Writes a little-endian 64-bit half of descriptor `i` (`off` 0 or 8).
    #[inline]
    pub(crate) fn write_u64(&self, i: u16, off: usize, value: u64) {
        let p = self.at(i, off & !7);
        // SAFETY: inside the ring (`at`) and 8-byte aligned; a volatile store the device may
        // read at any time after the next tail write.
        unsafe { p.cast::<u64>().write_volatile(value.to_le()) }
    }

    /// Zeroes every descriptor, both halves (the device must be quiet).
    pub(crate) fn zero(&self) {
        for i in 0..self.len {
            self.write_u64(i, 0, 0);
            self.write_u64(i, 8, 0);
        }
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
