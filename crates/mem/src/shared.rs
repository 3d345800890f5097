//! Sharing DMA memory with another process by file descriptor, as a vhost-user frontend must:
//! the backend maps the same hugetlbfs files and reads and writes our buffers in place.
//!
//! - [`Memory::shared_regions`](crate::Memory::shared_regions): the mapped memory now, as
//!   [`SharedRegion`]s (virtual address, length, file descriptor, offset in the file), with
//!   neighbouring segments of one file merged (with `--single-file-segments` a socket's memory
//!   is usually one region).
//! - [`MemoryListener`]: told of every segment as it is added (before any reservation can use
//!   it) or removed (before it is unmapped), so a frontend can send the backend a new memory
//!   table in time. [`RegionSet`] keeps the merged table such a listener needs.
//!
//! Anonymous memory (`--no-huge`, `--in-memory`) has no file to share: those calls fail with
//! [`MemError::NotShareable`](crate::MemError::NotShareable).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// Which file a segment lives in: device and inode, so two descriptors of one file compare
/// equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file behind `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> io::Result<FileId> {
        // SAFETY: fstat writes into the zeroed struct we pass; `fd` is open for the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FileId { dev: st.st_dev, ino: st.st_ino })
    }
}

/// One mapped segment, as another process could map it. The descriptor is borrowed for the
/// duration of a [`MemoryListener`] call: duplicate it (as [`RegionSet::insert`] does) to keep it.
#[derive(Clone, Copy, Debug)]
pub struct SharedSegment<'a> {
    /// Its virtual address in this process.
    pub va: usize,
    /// Its length (the segment size).
    pub len: usize,
    /// The file it is mapped from.
    pub fd: BorrowedFd<'a>,
    /// Where in that file it starts.
    pub offset: u64,
    /// Which file that is.
    pub file: FileId,
}

/// A run of memory another process can map: `len` bytes at `va` here are `len` bytes of the
/// file behind `fd` from `offset`. The descriptor is a duplicate this value owns (shared by
/// clones).
#[derive(Clone, Debug)]
pub struct SharedRegion {
    /// Virtual address in this process.
    pub va: usize,
    /// Length in bytes (a multiple of the page size).
    pub len: usize,
    /// The backing file.
    pub fd: Arc<OwnedFd>,
    /// Offset of `va`'s byte in the file.
    pub offset: u64,
}

impl PartialEq for SharedRegion {
    fn eq(&self, other: &Self) -> bool {
        self.va == other.va && self.len == other.len && self.offset == other.offset
    }
}

/// Something that must know which memory can be shared, as it changes (a vhost-user frontend).
///
/// The calls are made with the memory's locks held, like [`crate::DmaMapper`]'s: they must not
/// call back into the [`crate::Memory`] (reserve, drop a memzone, `iova_of`, `shared_regions`),
/// or they deadlock. They may block briefly (a round trip to a backend).
pub trait MemoryListener: Send + Sync {
    /// `seg` was mapped; no reservation uses it yet. An error refuses the segment: the
    /// reservation that needed it fails with [`crate::MemError::DmaMap`] carrying the error.
    fn segment_added(&self, seg: &SharedSegment<'_>) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

    /// `seg` is about to be unmapped; nothing uses it any more.
    fn segment_removed(&self, seg: &SharedSegment<'_>);
}

/// Identifies a registered [`MemoryListener`] so it can be removed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerId(pub(crate) u64);

/// A set of segments kept as merged regions: what a [`MemoryListener`] needs to rebuild a
/// memory table after each change. Holds one duplicated descriptor per file.
#[derive(Debug, Default)]
pub struct RegionSet {
    /// By virtual address: length, offset in the file, the file.
    segments: BTreeMap<usize, (usize, u64, FileId)>,
    /// Per file: a descriptor and how many segments use it.
    files: HashMap<FileId, (Arc<OwnedFd>, usize)>,
}

impl RegionSet {
    /// An empty set.
    pub fn new() -> RegionSet {
        RegionSet::default()
    }

    /// Adds `seg`, duplicating its descriptor if its file is new to the set. A segment already
    /// in the set at the same address is replaced (its file's descriptor goes if no other
    /// segment uses it). On error (the duplication failed) the set is unchanged.
    pub fn insert(&mut self, seg: &SharedSegment<'_>) -> io::Result<()> {
        let entry = match self.files.entry(seg.file) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert((Arc::new(seg.fd.try_clone_to_owned()?), 0)),
        };
        // Count the new segment before removing the one it replaces: when both are in the same
        // file, that file's entry must not go.
        entry.1 += 1;
        self.remove(seg.va);
        self.segments.insert(seg.va, (seg.len, seg.offset, seg.file));
        Ok(())
    }

    /// Removes the segment at `va`, if there is one; the file's descriptor goes with its last
    /// segment.
    pub fn remove(&mut self, va: usize) {
        let Some((_, _, file)) = self.segments.remove(&va) else { return };
        if let Some(entry) = self.files.get_mut(&file) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.files.remove(&file);
            }
        }
    }

    /// Whether the set holds no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segments, merged: neighbours in memory that are neighbours in one file make one
    /// region. In address order.
    pub fn regions(&self) -> Vec<SharedRegion> {
        let mut out: Vec<(SharedRegion, FileId)> = Vec::new();
        for (&va, &(len, offset, file)) in &self.segments {
            if let Some((last, last_file)) = out.last_mut() {
                if *last_file == file && last.va + last.len == va && last.offset + last.len as u64 == offset {
                    last.len += len;
                    continue;
                }
            }
            let fd = Arc::clone(&self.files[&file].0);
            out.push((SharedRegion { va, len, fd, offset }, file));
        }
        out.into_iter().map(|(r, _)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn memfd(name: &str) -> OwnedFd {
        let name = std::ffi::CString::new(name).unwrap();
        // SAFETY: memfd_create reads a NUL-terminated name and returns a new descriptor or -1.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
        // SAFETY: `fd` was just returned to us and nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    }

    fn seg(fd: &OwnedFd, va: usize, offset: u64) -> SharedSegment<'_> {
        SharedSegment { va, len: 0x1000, fd: fd.as_fd(), offset, file: FileId::of(fd.as_fd()).unwrap() }
    }

    #[test]
    fn neighbours_in_one_file_merge_and_split_again() {
        let a = memfd("a");
        let mut set = RegionSet::new();
        set.insert(&seg(&a, 0x10000, 0)).unwrap();
        set.insert(&seg(&a, 0x11000, 0x1000)).unwrap();
        set.insert(&seg(&a, 0x12000, 0x2000)).unwrap();
        let r = set.regions();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].va, r[0].len, r[0].offset), (0x10000, 0x3000, 0));
        set.remove(0x11000);
        let r = set.regions();
        assert_eq!(
            r.iter().map(|r| (r.va, r.len, r.offset)).collect::<Vec<_>>(),
            [(0x10000, 0x1000, 0), (0x12000, 0x1000, 0x2000)]
        );
        set.remove(0x10000);
        set.remove(0x12000);
        assert!(set.is_empty() && set.files.is_empty(), "the duplicated descriptor goes with the last segment");
    }

    #[test]
    fn a_segment_inserted_again_replaces_itself() {
        let (a, b) = (memfd("a"), memfd("b"));
        let mut set = RegionSet::new();
        // The only segment of its file, inserted again (same address, same file).
        set.insert(&seg(&a, 0x10000, 0)).unwrap();
        set.insert(&seg(&a, 0x10000, 0)).unwrap();
        let r = set.regions();
        assert_eq!(r.iter().map(|r| (r.va, r.len, r.offset)).collect::<Vec<_>>(), [(0x10000, 0x1000, 0)]);
        let fa = FileId::of(a.as_fd()).unwrap();
        assert_eq!(set.files[&fa].1, 1, "counted once");
        // Replaced by a segment of another file: the first file's descriptor goes.
        set.insert(&seg(&b, 0x10000, 0x3000)).unwrap();
        assert_eq!(set.regions()[0].offset, 0x3000);
        assert!(!set.files.contains_key(&fa));
        set.remove(0x10000);
        assert!(set.is_empty() && set.files.is_empty());
    }

    #[test]
    fn different_files_or_offsets_do_not_merge() {
        let (a, b) = (memfd("a"), memfd("b"));
        let mut set = RegionSet::new();
        set.insert(&seg(&a, 0x10000, 0)).unwrap();
        set.insert(&seg(&b, 0x11000, 0x1000)).unwrap();
        set.insert(&seg(&b, 0x12000, 0x5000)).unwrap();
        assert_eq!(set.regions().len(), 3);
        assert_eq!(set.files.len(), 2, "one descriptor per file");
        let fa = FileId::of(a.as_fd()).unwrap();
        let dup = a.try_clone().unwrap();
        assert_eq!(FileId::of(dup.as_fd()).unwrap(), fa, "a duplicate is the same file");
    }
}
