//! IO virtual addresses: what a device puts on the bus to reach our memory.
//!
//! - **IOVA as PA**: the device sees physical addresses, read from `/proc/self/pagemap` (needs
//!   CAP_SYS_ADMIN). Works without an IOMMU (UIO), but only memory that is physically contiguous
//!   is IOVA-contiguous.
//! - **IOVA as VA**: an IOMMU maps each segment at an IO address equal to its virtual address,
//!   through a [`DmaMapper`] (the VFIO container in `burst-pci`). Everything virtually contiguous
//!   is then IOVA-contiguous.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::str::FromStr;

use crate::error::MemError;

/// How devices address our memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IovaMode {
    /// IO address = physical address.
    Pa,
    /// IO address = process virtual address, through the IOMMU.
    Va,
}

impl fmt::Display for IovaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IovaMode::Pa => "pa",
            IovaMode::Va => "va",
        })
    }
}

/// The error for an `--iova-mode` value that is neither `pa` nor `va`.
#[derive(Debug, thiserror::Error)]
#[error("unknown IOVA mode {0:?}: use `pa` or `va`")]
pub struct BadIovaMode(pub String);

impl FromStr for IovaMode {
    type Err = BadIovaMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pa" => Ok(IovaMode::Pa),
            "va" => Ok(IovaMode::Va),
            _ => Err(BadIovaMode(s.to_string())),
        }
    }
}

/// Something that programs an IOMMU: told about every segment of DMA memory as it is added to
/// or removed from the process. The VFIO container implements it in `burst-pci`.
///
/// `map` and `unmap` are called with the memory's locks held: they must not call back into the
/// [`crate::Memory`] (reserve, drop a memzone, `iova_of`), or they deadlock.
pub trait DmaMapper: Send + Sync {
    /// Makes `len` bytes at virtual address `va` reachable by devices at `iova`.
    fn map(&self, va: usize, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

    /// Undoes a [`DmaMapper::map`] of the same range.
    fn unmap(&self, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Reads physical addresses of this process's pages from `/proc/self/pagemap`
/// (Documentation/admin-guide/mm/pagemap.rst: one little-endian u64 per 4 KiB page; bit 63
/// "present", bits 0-54 the page frame number, zeroed for readers without CAP_SYS_ADMIN).
pub struct Pagemap {
    file: File,
}

const PAGEMAP_PRESENT: u64 = 1 << 63;
const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;
const SMALL_PAGE: usize = 4096;

impl Pagemap {
    /// Opens this process's page map.
    pub fn open() -> Result<Self, MemError> {
        let path = "/proc/self/pagemap";
        let file =
            File::open(path).map_err(|source| MemError::Io { what: "cannot open", path: path.into(), source })?;
        Ok(Pagemap { file })
    }

    /// The physical address of the byte at `va`, which must be in a resident page.
    pub fn phys_addr(&self, va: usize) -> Result<u64, MemError> {
        let mut entry = [0u8; 8];
        let offset = (va / SMALL_PAGE * 8) as u64;
        self.file.read_exact_at(&mut entry, offset).map_err(|source| MemError::Io {
            what: "cannot read",
            path: "/proc/self/pagemap".into(),
            source,
        })?;
        let entry = u64::from_le_bytes(entry);
        if entry & PAGEMAP_PRESENT == 0 {
            return Err(MemError::PageNotPresent { va });
        }
        let pfn = entry & PAGEMAP_PFN_MASK;
        if pfn == 0 {
            return Err(MemError::PhysAddrHidden);
        }
        Ok(pfn * SMALL_PAGE as u64 + (va % SMALL_PAGE) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iova_mode_parses_both_spellings_and_rejects_others() {
        assert_eq!("pa".parse::<IovaMode>().unwrap(), IovaMode::Pa);
        assert_eq!("VA".parse::<IovaMode>().unwrap(), IovaMode::Va);
        let err = "dc".parse::<IovaMode>().unwrap_err().to_string();
        assert!(err.contains("use `pa` or `va`"), "{err}");
    }
}
