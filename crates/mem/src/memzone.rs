//! Memzones: named reservations of DMA memory, as drivers take them for descriptor rings and
//! mempools take them for their objects. Dropping a memzone gives its memory back; segments no
//! longer used by any memzone go back to the system.

use std::ptr::NonNull;

use crate::memory::{Memory, ZoneInfo};

/// Options for a memzone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemzoneFlags(u32);

impl MemzoneFlags {
    /// No constraint beyond virtual contiguity.
    pub const NONE: MemzoneFlags = MemzoneFlags(0);
    /// Contiguous in IOVA space too: what a device reading a descriptor ring needs. Always true
    /// in VA mode; in PA mode it needs physically contiguous pages (or a zone within one page).
    pub const IOVA_CONTIG: MemzoneFlags = MemzoneFlags(1);

    /// True when every flag in `other` is set.
    pub fn contains(self, other: MemzoneFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MemzoneFlags {
    type Output = MemzoneFlags;
    fn bitor(self, rhs: Self) -> Self {
        MemzoneFlags(self.0 | rhs.0)
    }
}

/// A named block of DMA memory. Reach it through [`Memzone::as_ptr`] with raw pointers (a device
/// may write to it at any time); its IOVA is what a device is told.
pub struct Memzone {
    memory: Memory,
    name: String,
    list: usize,
    offset: usize,
    info: ZoneInfo,
    ptr: NonNull<u8>,
}

// SAFETY: a memzone is a range of process memory owned by this handle; it holds no thread-bound
// state, and all access to the bytes goes through raw pointers whose users synchronise.
unsafe impl Send for Memzone {}
// SAFETY: as above; `&Memzone` only hands out its address and facts.
unsafe impl Sync for Memzone {}

impl Memzone {
    pub(crate) fn new(memory: Memory, name: String, list: usize, offset: usize, info: ZoneInfo) -> Self {
        let ptr = NonNull::new(info.addr as *mut u8).expect("memzones never start at address 0");
        Memzone { memory, name, list, offset, info, ptr }
    }

    /// The memzone's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.info.len
    }

    /// Never true: memzones have at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NUMA socket its memory is on.
    pub fn socket(&self) -> u32 {
        self.info.socket
    }

    /// The IOVA of its first byte.
    pub fn iova(&self) -> u64 {
        self.info.iova
    }

    /// Whether it was reserved IOVA-contiguous.
    pub fn is_iova_contig(&self) -> bool {
        self.info.iova_contig
    }

    /// The IOVA of byte `offset`, or `None` past the end.
    pub fn iova_at(&self, offset: usize) -> Option<u64> {
        (offset < self.info.len).then(|| self.memory.iova_in_list(self.list, self.offset + offset))
    }

    /// The memory this zone belongs to.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }
}

impl Drop for Memzone {
    fn drop(&mut self) {
        self.memory.release(&self.name, self.list, self.offset, self.info.len);
    }
}

impl std::fmt::Debug for Memzone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memzone").field("name", &self.name).field("info", &self.info).finish()
    }
}
