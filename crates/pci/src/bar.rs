//! A device's Base Address Register window (PCI 3.0, 6.2.5.1): where a driver reads and writes
//! the device's registers.
//!
//! - A **memory BAR** is mapped into the process with `mmap` (VFIO: the device file at the
//!   region's offset; UIO: sysfs `resourceN`) and accessed with `read_volatile`/`write_volatile`
//!   through raw pointers; no Rust reference into device memory ever exists.
//! - An **I/O-port BAR** cannot be mapped on x86: each access is a `pread`/`pwrite` of 1, 2 or 4
//!   bytes on a file at an offset (the VFIO region, or sysfs `resourceN`, which does `in`/`out`
//!   for us). A memory BAR VFIO will not let us map goes the same way.
//!
//! **Bounds**: every access is checked against the BAR's length and its own alignment. An access
//! outside is a driver bug (register offsets are constants), so it panics with the BAR, offset and
//! length in the message instead of touching memory outside the mapping. Drivers that want the
//! check out of their fast path take [`Bar::as_ptr`] and own the reasoning.
//!
//! Registers are little-endian (PCI is); values are converted, so this is right on any CPU.

use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::address::PciAddress;
use crate::config::{pread_exact, pwrite_all, SharedFd};

/// A BAR cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum BarError {
    /// The BAR index is not 0..=5, the BAR is not implemented, or it is the upper half of a
    /// 64-bit BAR.
    #[error(
        "{addr} has no BAR{index} (BARs are 0 to 5; a 64-bit BAR takes two slots and is opened by the \
         lower index); its BARs are: {present}"
    )]
    NoSuchBar {
        /// The device.
        addr: PciAddress,
        /// The index asked for.
        index: u8,
        /// The BARs that exist, for the message.
        present: String,
    },
    /// mmap (or opening the sysfs resource file) failed.
    #[error("mapping BAR{index} of {addr} ({len:#x} bytes) failed: {source}; run as root, and check that nothing else holds the device")]
    Map {
        /// The device.
        addr: PciAddress,
        /// The BAR.
        index: u8,
        /// Its length.
        len: u64,
        /// What the kernel said.
        source: std::io::Error,
    },
}

/// How the BAR's registers are reached.
enum Access {
    /// Mapped: `ptr` is the start of a `map_len`-byte shared mapping of device memory.
    Mmio { ptr: NonNull<u8>, map_len: usize },
    /// Through a file: register `r` is at file offset `base + r`.
    File { fd: SharedFd, base: u64 },
}

/// One BAR of an open device. Owns its mapping (unmapped on drop) and keeps the device open
/// while it lives.
pub struct Bar {
    addr: PciAddress,
    index: u8,
    len: usize,
    access: Access,
    /// The device the BAR belongs to: not closed before the BAR is gone.
    _owner: Option<Arc<dyn Send + Sync>>,
}

// SAFETY: the mapping is process-wide and lives as long as the Bar; the Bar hands out no
// references into it, only volatile copies of register values, which any thread may do.
unsafe impl Send for Bar {}
// SAFETY: as for Send: every access through `&Bar` is a single volatile load or store (or a
// pread/pwrite system call), and device registers tolerate concurrent accesses; ordering between
// threads is the driver's protocol, as with any MMIO.
unsafe impl Sync for Bar {}

impl std::fmt::Debug for Bar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bar")
            .field("addr", &self.addr)
            .field("index", &self.index)
            .field("len", &self.len)
            .field("mmio", &self.is_mmio())
            .finish()
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// A register width: u8, u16 or u32.
trait Reg: Copy {
    const SIZE: usize;
    fn from_le(bytes: &[u8]) -> Self;
    fn to_le(self, out: &mut [u8]);
    /// # Safety
    /// `p` must be valid for a volatile read of `Self::SIZE` bytes and aligned to it.
    unsafe fn load(p: *const u8) -> Self;
    /// # Safety
    /// `p` must be valid for a volatile write of `Self::SIZE` bytes and aligned to it.
    unsafe fn store(p: *mut u8, v: Self);
}

macro_rules! reg {
    ($t:ty) => {
        impl Reg for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("register width"))
            }
            fn to_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            unsafe fn load(p: *const u8) -> Self {
                // SAFETY: the caller guarantees `p` is valid and aligned for this width.
                <$t>::from_le(unsafe { p.cast::<$t>().read_volatile() })
            }
            unsafe fn store(p: *mut u8, v: Self) {
                // SAFETY: the caller guarantees `p` is valid and aligned for this width.
                unsafe { p.cast::<$t>().write_volatile(v.to_le()) }
            }
        }
    };
}
reg!(u8);
reg!(u16);
reg!(u32);

impl Bar {
    /// Maps `len` bytes of `fd` at `file_offset` (page-aligned) as BAR `index`.
    pub(crate) fn map(
        addr: PciAddress,
        index: u8,
        fd: RawFd,
        file_offset: u64,
        len: u64,
        owner: Option<Arc<dyn Send + Sync>>,
    ) -> Result<Bar, BarError> {
        let map_err = |source| BarError::Map { addr, index, len, source };
        let len_usize = usize::try_from(len).map_err(|_| map_err(std::io::Error::from_raw_os_error(libc::EFBIG)))?;
        if len_usize == 0 {
            return Err(map_err(std::io::Error::from_raw_os_error(libc::EINVAL)));
        }
        // The kernel maps whole pages; a BAR smaller than a page is mapped as its page (both
        // VFIO and sysfs allow that) and bounds-checked against its real length.
        let map_len = len_usize.next_multiple_of(page_size());
        let offset =
            libc::off_t::try_from(file_offset).map_err(|_| map_err(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
        // SAFETY: a new shared mapping at an address of the kernel's choosing: it replaces no
        // existing mapping. The memory behind it is device memory, reached only by volatile
        // accesses through raw pointers.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, offset)
        };
        if ptr == libc::MAP_FAILED {
            return Err(map_err(std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned a null mapping");
        Ok(Bar { addr, index, len: len_usize, access: Access::Mmio { ptr, map_len }, _owner: owner })
    }

    /// BAR `index` reached through `fd` at `base`, `len` bytes long.
    pub(crate) fn through_file(
        addr: PciAddress,
        index: u8,
        fd: SharedFd,
        base: u64,
        len: u64,
        owner: Option<Arc<dyn Send + Sync>>,
    ) -> Bar {
        Bar { addr, index, len: len as usize, access: Access::File { fd, base }, _owner: owner }
    }

    /// The BAR's index, 0 to 5.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a BAR has at least one register (kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the BAR is mapped into memory (memory BAR), rather than reached through system
    /// calls (I/O-port BAR, or a memory BAR the kernel would not let us map).
    pub fn is_mmio(&self) -> bool {
        matches!(self.access, Access::Mmio { .. })
    }

    /// The start of the mapping, for a driver's fast path; `None` when the BAR is not mapped.
    /// The pointer is valid for [`Bar::len`] bytes while the `Bar` lives; access it only with
    /// volatile reads and writes of naturally aligned registers.
    pub fn as_ptr(&self) -> Option<*mut u8> {
        match self.access {
            Access::Mmio { ptr, .. } => Some(ptr.as_ptr()),
            Access::File { .. } => None,
        }
    }

    /// Panics unless `size` bytes at `offset` lie inside the BAR and are aligned to `size`.
    #[inline]
    fn check(&self, offset: usize, size: usize) {
        let inside = offset.checked_add(size).is_some_and(|end| end <= self.len);
        if !inside || offset % size != 0 {
            bad_access(self.addr, self.index, offset, size, self.len);
        }
    }

    #[inline]
    fn read<T: Reg>(&self, offset: usize) -> T {
        self.check(offset, T::SIZE);
        match &self.access {
            // SAFETY: `check` put [offset, offset + SIZE) inside the BAR's length, which is inside
            // the live mapping, and made it aligned to SIZE (the mapping is page-aligned).
            Access::Mmio { ptr, .. } => unsafe { T::load(ptr.as_ptr().add(offset)) },
            Access::File { fd, base } => {
                let mut buf = [0u8; 4];
                let buf = &mut buf[..T::SIZE];
                if let Err(e) = pread_exact(fd.as_raw_fd(), buf, base + offset as u64) {
                    // What hardware returns for a read nobody answers (a master abort).
                    tracing::error!(addr = %self.addr, bar = self.index, offset, "register read failed: {e}");
                    buf.fill(0xff);
                }
                T::from_le(buf)
            }
        }
    }

    #[inline]
    fn write<T: Reg>(&self, offset: usize, value: T) {
        self.check(offset, T::SIZE);
        match &self.access {
            // SAFETY: as in `read`: in bounds of the live mapping and aligned.
            Access::Mmio { ptr, .. } => unsafe { T::store(ptr.as_ptr().add(offset), value) },
            Access::File { fd, base } => {
                let mut buf = [0u8; 4];
                let buf = &mut buf[..T::SIZE];
                value.to_le(buf);
                if let Err(e) = pwrite_all(fd.as_raw_fd(), buf, base + offset as u64) {
                    tracing::error!(addr = %self.addr, bar = self.index, offset, "register write failed: {e}");
                }
            }
        }
    }

    /// Reads the 8-bit register at `offset`. Panics if it is outside the BAR.
    #[inline]
    pub fn read8(&self, offset: usize) -> u8 {
        self.read(offset)
    }

    /// Reads the 16-bit register at `offset` (2-byte aligned). Panics if it is outside the BAR.
    #[inline]
    pub fn read16(&self, offset: usize) -> u16 {
        self.read(offset)
    }

    /// Reads the 32-bit register at `offset` (4-byte aligned). Panics if it is outside the BAR.
    #[inline]
    pub fn read32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Writes the 8-bit register at `offset`. Panics if it is outside the BAR.
    #[inline]
    pub fn write8(&self, offset: usize, value: u8) {
        self.write(offset, value)
    }

    /// Writes the 16-bit register at `offset` (2-byte aligned). Panics if it is outside the BAR.
    #[inline]
    pub fn write16(&self, offset: usize, value: u16) {
        self.write(offset, value)
    }

    /// Writes the 32-bit register at `offset` (4-byte aligned). Panics if it is outside the BAR.
    #[inline]
    pub fn write32(&self, offset: usize, value: u32) {
        self.write(offset, value)
    }
}

#[cold]
#[inline(never)]
fn bad_access(addr: PciAddress, index: u8, offset: usize, size: usize, len: usize) -> ! {
    panic!(
        "{size}-byte register access at offset {offset:#x} of BAR{index} of {addr} is outside the \
         BAR ({len:#x} bytes) or not {size}-byte aligned: a driver bug"
    )
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Access::Mmio { ptr, map_len } = self.access {
            // SAFETY: `ptr`/`map_len` are exactly the mapping made in `Bar::map`, and nothing
            // refers into it once the Bar is gone (it never lent out references).
            if unsafe { libc::munmap(ptr.as_ptr().cast(), map_len) } != 0 {
                tracing::warn!(addr = %self.addr, bar = self.index, "munmap of a BAR failed: {}", std::io::Error::last_os_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;

    fn addr() -> PciAddress {
        "0000:00:02.0".parse().unwrap()
    }

    fn temp_file(len: usize, tag: &str) -> File {
        let path = std::env::temp_dir().join(format!("burst-pci-bar-{}-{tag}", std::process::id()));
        let mut f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(&vec![0u8; len]).unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn mapped_bar_reads_and_writes_little_endian_registers() {
        // A file stands in for device memory: the same mmap, the same volatile accesses.
        let mut f = temp_file(8192, "mmio");
        let bar = Bar::map(addr(), 0, f.as_raw_fd(), 4096, 0x100, None).unwrap();
        assert!(bar.is_mmio() && bar.as_ptr().is_some());
        assert_eq!((bar.index(), bar.len()), (0, 0x100));
        bar.write32(0x10, 0x1122_3344);
        bar.write16(0x20, 0xabcd);
        bar.write8(0xff, 0x5a);
        assert_eq!(bar.read32(0x10), 0x1122_3344);
        assert_eq!(bar.read8(0x10), 0x44, "little-endian");
        assert_eq!(bar.read16(0x12), 0x1122);
        assert_eq!(bar.read16(0x20), 0xabcd);
        assert_eq!(bar.read8(0xff), 0x5a);
        drop(bar);
        let mut back = vec![0u8; 8192];
        f.rewind().unwrap();
        f.read_exact(&mut back).unwrap();
        assert_eq!(&back[4096 + 0x10..4096 + 0x14], &[0x44, 0x33, 0x22, 0x11]);
    }

    #[test]
    fn file_bar_reads_and_writes_through_the_descriptor() {
        let f = temp_file(64, "port");
        let bar = Bar::through_file(addr(), 1, Arc::new(f), 32, 32, None);
        assert!(!bar.is_mmio() && bar.as_ptr().is_none());
        bar.write32(4, 0xdead_beef);
        bar.write16(0x1e, 0x0102);
        assert_eq!(bar.read32(4), 0xdead_beef);
        assert_eq!(bar.read8(7), 0xde);
        assert_eq!(bar.read16(0x1e), 0x0102);
    }

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let err = std::panic::catch_unwind(f).unwrap_err();
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn accesses_outside_the_bar_panic_without_touching_memory() {
        let f = temp_file(4096, "bounds");
        let bar = Bar::map(addr(), 2, f.as_raw_fd(), 0, 0x20, None).unwrap();
        let bar = std::panic::AssertUnwindSafe(bar);
        // The page behind the BAR is mapped, but the BAR ends at 0x20: refused.
        let msg = panic_message(|| {
            bar.read32(0x20);
        });
        assert!(msg.contains("offset 0x20 of BAR2 of 0000:00:02.0") && msg.contains("driver bug"), "{msg}");
        assert!(!panic_message(|| bar.write32(0x1e, 0)).is_empty(), "straddles the end");
        assert!(!panic_message(|| bar.write16(usize::MAX, 0)).is_empty(), "overflowing offset");
        assert!(panic_message(|| bar.write32(0x2, 0)).contains("aligned"));
        assert_eq!(bar.read32(0x1c), 0, "the last register is fine");
    }
}
