//! Segments: the unit in which DMA memory is taken from and given back to the system.
//!
//! A segment list is one range of virtual address space per NUMA socket, reserved up front with
//! `PROT_NONE` so that memory added later lands right after what is there (DPDK 18.11's
//! "memseg lists"). A segment is one hugepage (or, with `--no-huge`, 2 MiB of 4 KiB pages) mapped
//! into that range at a fixed place, populated and locked so its physical pages never move.
//!
//! Hugetlbfs backing names each file `<prefix>map_<pid>_<instance>_<list>[_<segment>]` and holds
//! a shared `flock` on it for as long as the memory is used, so that a later process can tell a
//! file left by a crash (owner gone, no lock) from one that is in use.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::MemError;
use crate::hugepage::PageSize;
use crate::iova::{IovaMode, Pagemap};

/// Where segments come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// Files in a hugetlbfs mount: one per segment, or one per list with `single_file`.
    Hugetlbfs { dir: PathBuf, prefix: String, single_file: bool },
    /// Anonymous `MAP_HUGETLB` memory: no files at all.
    AnonHuge,
    /// Anonymous 4 KiB pages (`--no-huge`); IOVA as VA only.
    Small,
}

/// The IOVA a segment that is not mapped reports.
pub(crate) const UNMAPPED: u64 = u64::MAX;

/// One socket's reserved range of virtual addresses and the segments mapped into it.
pub(crate) struct SegmentList {
    pub socket: u32,
    pub base: usize,
    pub seg_size: usize,
    /// Each segment's IOVA, or [`UNMAPPED`].
    pub iovas: Box<[AtomicU64]>,
    page_size: PageSize,
    source: Source,
    name_stem: String,
    single_file: Option<(File, PathBuf)>,
    files: Vec<Option<(File, PathBuf)>>,
}

fn os_err(what: &'static str) -> MemError {
    MemError::Os { what, source: io::Error::last_os_error() }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MemError + 'a {
    move |source| MemError::Io { what, path: path.to_path_buf(), source }
}

/// Reserves `len` bytes of address space aligned to `align`, inaccessible until segments land.
fn reserve_va(len: usize, align: usize) -> Result<usize, MemError> {
    let span = len + align;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address of the kernel's choosing touches
    // no existing memory.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(os_err("reserving address space for DMA memory"));
    }
    let raw = raw as usize;
    let base = raw.next_multiple_of(align);
    // SAFETY: both ranges lie inside the mapping made above and are not used by anything else.
    unsafe {
        if base > raw {
            libc::munmap(raw as *mut libc::c_void, base - raw);
        }
        let end = base + len;
        if raw + span > end {
            libc::munmap(end as *mut libc::c_void, raw + span - end);
        }
    }
    Ok(base)
}

/// Puts an inaccessible reservation back over `[addr, addr + len)`.
fn unreserve_segment(addr: usize, len: usize) {
    // SAFETY: `addr..addr+len` is a segment inside a reservation this list owns; MAP_FIXED
    // replaces whatever was mapped there, which nothing else references once the segment is
    // released.
    let raw = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        tracing::error!("could not release the segment at {addr:#x}: {}", io::Error::last_os_error());
    }
}

/// Held while this process creates and locks a hugepage file, and while it looks for stale
/// ones: a file of our own pid is stale only if nobody holds its lock, and that test is only
/// meaningful between a creation and its `flock`, never in the middle.
static FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_locked(path: &Path) -> Result<File, MemError> {
    let _files = FILES.lock().unwrap_or_else(|p| p.into_inner());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("cannot create hugepage file", path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } != 0 {
        return Err(MemError::Io { what: "cannot lock", path: path.into(), source: io::Error::last_os_error() });
    }
    Ok(file)
}

/// Gives a hugepage to `file` at `offset`. ENOSPC means none was free.
fn fallocate(file: &File, offset: usize, len: usize, path: &Path) -> Result<(), FallocError> {
    // SAFETY: fallocate on a descriptor we own; it reads no memory of ours.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset as libc::off_t, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let source = io::Error::last_os_error();
    if source.raw_os_error() == Some(libc::ENOSPC) {
        Err(FallocError::NoSpace)
    } else {
        Err(FallocError::Other(MemError::Io { what: "cannot allocate a hugepage in", path: path.into(), source }))
    }
}

enum FallocError {
    NoSpace,
    Other(MemError),
}

/// Why a segment could not be added.
pub(crate) enum AddError {
    /// No free page of this size: the caller decides how to report it.
    NoFreePages,
    Failed(MemError),
}

impl From<MemError> for AddError {
    fn from(e: MemError) -> Self {
        AddError::Failed(e)
    }
}

impl SegmentList {
    /// Reserves address space for `count` segments of `page_size` on `socket`.
    pub fn new(
        socket: u32,
        index: usize,
        instance: u64,
        count: usize,
        page_size: PageSize,
        source: Source,
    ) -> Result<Self, MemError> {
        let seg_size = match source {
            Source::Small => 2 << 20,
            _ => page_size.bytes() as usize,
        };
        let base = reserve_va(count * seg_size, seg_size)?;
        let iovas = (0..count).map(|_| AtomicU64::new(UNMAPPED)).collect();
        let name_stem = format!("map_{}_{}_{}", std::process::id(), instance, index);
        Ok(SegmentList {
            socket,
            base,
            seg_size,
            iovas,
            page_size,
            source,
            name_stem,
            single_file: None,
            files: (0..count).map(|_| None).collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.iovas.len() * self.seg_size
    }

    pub fn is_mapped(&self, idx: usize) -> bool {
        self.iovas[idx].load(Ordering::Acquire) != UNMAPPED
    }

    pub fn iova(&self, idx: usize) -> u64 {
        self.iovas[idx].load(Ordering::Acquire)
    }

    pub fn addr(&self, idx: usize) -> usize {
        self.base + idx * self.seg_size
    }

    /// Maps segment `idx`: allocates its page, maps it at its fixed place, binds it to the
    /// list's NUMA node, locks it (which populates it) and records its IOVA.
    pub fn add(&mut self, idx: usize, mode: IovaMode, pagemap: Option<&Pagemap>, numa: bool) -> Result<u64, AddError> {
        let addr = self.addr(idx);
        let len = self.seg_size;
        let mapped = match &self.source {
            Source::Hugetlbfs { dir, prefix, single_file } => {
                let (fd, offset) = if *single_file {
                    if self.single_file.is_none() {
                        let path = dir.join(format!("{prefix}{}", self.name_stem));
                        self.single_file = Some((open_locked(&path)?, path));
                    }
                    let (file, path) = self.single_file.as_ref().expect("just set");
                    let _policy = numa.then(|| ThreadPolicy::bind(self.socket)).transpose()?;
                    match fallocate(file, idx * len, len, path) {
                        Ok(()) => {}
                        Err(FallocError::NoSpace) => return Err(AddError::NoFreePages),
                        Err(FallocError::Other(e)) => return Err(e.into()),
                    }
                    (file.as_raw_fd(), idx * len)
                } else {
                    let path = dir.join(format!("{prefix}{}_{idx}", self.name_stem));
                    let file = open_locked(&path)?;
                    let _policy = numa.then(|| ThreadPolicy::bind(self.socket)).transpose()?;
                    match fallocate(&file, 0, len, &path) {
                        Ok(()) => {}
                        Err(err) => {
                            let _ = std::fs::remove_file(&path);
                            return Err(match err {
                                FallocError::NoSpace => AddError::NoFreePages,
                                FallocError::Other(e) => e.into(),
                            });
                        }
                    }
                    let fd = file.as_raw_fd();
                    self.files[idx] = Some((file, path));
                    (fd, 0)
                };
                // SAFETY: `addr..addr+len` is inside this list's reservation and holds no other
                // mapping (segment `idx` is unmapped); MAP_FIXED replaces the PROT_NONE
                // placeholder there. The file range was just allocated, so touching it cannot
                // SIGBUS.
                unsafe {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED | libc::MAP_FIXED,
                        fd,
                        offset as libc::off_t,
                    )
                }
            }
            Source::AnonHuge => {
                let shift = self.page_size.bytes().trailing_zeros() as libc::c_int;
                // SAFETY: as above; an anonymous private hugetlb mapping reserves its page at
                // mmap time, so a later fault cannot SIGBUS.
                unsafe {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE
                            | libc::MAP_ANONYMOUS
                            | libc::MAP_FIXED
                            | libc::MAP_HUGETLB
                            | (shift << libc::MAP_HUGE_SHIFT),
                        -1,
                        0,
                    )
                }
            }
            Source::Small => {
                // SAFETY: as above, for ordinary anonymous memory.
                unsafe {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    )
                }
            }
        };
        if mapped == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            self.release_backing(idx);
            unreserve_segment(addr, len);
            if err.raw_os_error() == Some(libc::ENOMEM) && self.source == Source::AnonHuge {
                return Err(AddError::NoFreePages);
            }
            return Err(MemError::Os { what: "mapping a DMA segment", source: err }.into());
        }
        match self.pin(idx, mode, pagemap, numa) {
            Ok(iova) => {
                self.iovas[idx].store(iova, Ordering::Release);
                Ok(iova)
            }
            Err(e) => {
                self.release_backing(idx);
                unreserve_segment(addr, len);
                Err(e.into())
            }
        }
    }

    /// Binds a freshly mapped segment to its node, locks it and finds its IOVA.
    fn pin(&self, idx: usize, mode: IovaMode, pagemap: Option<&Pagemap>, numa: bool) -> Result<u64, MemError> {
        let addr = self.addr(idx);
        let len = self.seg_size;
        if numa {
            bind_to_node(addr, len, self.socket)?;
        }
        // SAFETY: the range was just mapped read-write by us; mlock faults every page in and
        // keeps it resident, so its physical address stays put.
        if unsafe { libc::mlock(addr as *const libc::c_void, len) } != 0 {
            return Err(MemError::Os {
                what: "locking DMA memory (raise `ulimit -l`, or run as root)",
                source: io::Error::last_os_error(),
            });
        }
        match mode {
            IovaMode::Va => Ok(addr as u64),
            IovaMode::Pa => {
                let pagemap = pagemap.expect("PA mode always opens the page map");
                // A hugepage is physically contiguous, so its first byte's address is enough.
                pagemap.phys_addr(addr)
            }
        }
    }

    fn release_backing(&mut self, idx: usize) {
        if let Some((file, path)) = self.files[idx].take() {
            let _ = std::fs::remove_file(&path);
            drop(file);
        } else if let Some((file, _)) = &self.single_file {
            let len = self.seg_size as libc::off_t;
            // SAFETY: punching a hole in our own file gives its page back to the system; nothing
            // maps that range any more.
            unsafe {
                libc::fallocate(
                    file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    idx as libc::off_t * len,
                    len,
                );
            }
        }
    }

    /// Gives segment `idx` back to the system.
    pub fn remove(&mut self, idx: usize) {
        self.iovas[idx].store(UNMAPPED, Ordering::Release);
        unreserve_segment(self.addr(idx), self.seg_size);
        self.release_backing(idx);
    }

    /// The file and offset mapped at segment `idx`, if it is mapped from a file (hugetlbfs
    /// backing); `None` for anonymous memory or an unmapped segment.
    pub fn backing(&self, idx: usize) -> Option<(BorrowedFd<'_>, u64)> {
        if !self.is_mapped(idx) {
            return None;
        }
        match (&self.single_file, &self.files[idx]) {
            (_, Some((file, _))) => Some((file.as_fd(), 0)),
            (Some((file, _)), None) => Some((file.as_fd(), (idx * self.seg_size) as u64)),
            (None, None) => None,
        }
    }

    /// The files backing this list (for a vhost-user frontend that shares them).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.single_file.iter().map(|(_, p)| p.clone()).collect();
        out.extend(self.files.iter().flatten().map(|(_, p)| p.clone()));
        out
    }
}

impl Drop for SegmentList {
    fn drop(&mut self) {
        for idx in 0..self.iovas.len() {
            if self.is_mapped(idx) {
                self.remove(idx);
            }
        }
        if let Some((_, path)) = self.single_file.take() {
            let _ = std::fs::remove_file(path);
        }
        // SAFETY: the whole reservation belongs to this list and nothing points into it any more
        // (every memzone holds the memory alive until it is dropped).
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len()) };
    }
}

const MPOL_DEFAULT: libc::c_long = 0;
const MPOL_BIND: libc::c_long = 2;

fn node_mask(node: u32) -> Result<[u64; 16], MemError> {
    let mut mask = [0u64; 16];
    if node as usize >= mask.len() * 64 {
        return Err(MemError::BadRequest(format!("NUMA node {node} is beyond the 1024 nodes supported")));
    }
    mask[node as usize / 64] |= 1 << (node % 64);
    Ok(mask)
}

/// The calling thread's memory policy bound to one node while it lives: hugetlbfs allocates a
/// page at `fallocate` under the thread's policy, before any mapping exists to `mbind`.
struct ThreadPolicy;

impl ThreadPolicy {
    fn bind(node: u32) -> Result<ThreadPolicy, MemError> {
        let mask = node_mask(node)?;
        // SAFETY: set_mempolicy reads `mask` (maxnode bits) and changes only this thread's policy.
        let rc = unsafe {
            libc::syscall(libc::SYS_set_mempolicy, MPOL_BIND, mask.as_ptr(), (mask.len() * 64) as libc::c_ulong)
        };
        if rc != 0 {
            return Err(os_err("binding this thread's memory policy to a NUMA node (set_mempolicy)"));
        }
        Ok(ThreadPolicy)
    }
}

impl Drop for ThreadPolicy {
    fn drop(&mut self) {
        // SAFETY: back to the default policy; no mask is read.
        unsafe { libc::syscall(libc::SYS_set_mempolicy, MPOL_DEFAULT, std::ptr::null::<u64>(), 0 as libc::c_ulong) };
    }
}

/// `mbind(MPOL_BIND)` to one node, before the pages are faulted in.
fn bind_to_node(addr: usize, len: usize, node: u32) -> Result<(), MemError> {
    let mask = node_mask(node)?;
    // SAFETY: mbind reads `mask` (maxnode bits) and changes the policy of our own mapping.
    let rc = unsafe {
        libc::syscall(libc::SYS_mbind, addr, len, MPOL_BIND, mask.as_ptr(), (mask.len() * 64) as libc::c_ulong, 0)
    };
    if rc != 0 {
        return Err(os_err("binding DMA memory to its NUMA node (mbind)"));
    }
    Ok(())
}

/// Removes hugepage files in `dir` with our `prefix` whose owner is gone: nobody holds a lock
/// on the file, and the pid in its name is not a live process, or is ours (a process before us
/// with the same pid, as after a container restart). Returns what it removed.
pub fn remove_stale_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, MemError> {
    let stem = format!("{prefix}map_");
    let me = std::process::id();
    let mut removed = Vec::new();
    let _files = FILES.lock().unwrap_or_else(|p| p.into_inner());
    let entries = std::fs::read_dir(dir).map_err(io_err("cannot list", dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&stem)) else { continue };
        let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        // Another live process may be between creating a file and locking it.
        if pid != me && process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else { continue };
        // SAFETY: flock on a descriptor we own.
        let unlocked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if unlocked && std::fs::remove_file(&path).is_ok() {
            tracing::info!("removed stale hugepage file {}", path.display());
            removed.push(path);
        }
    }
    Ok(removed)
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// True when `dir` is on a hugetlbfs mount (checked before creating files there).
pub fn is_hugetlbfs(dir: &Path) -> Result<bool, MemError> {
    const HUGETLBFS_MAGIC: libc::c_long = 0x958458f6;
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| MemError::BadRequest(format!("{} contains a NUL byte", dir.display())))?;
    // SAFETY: statfs writes into the zeroed struct we pass; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(MemError::Io { what: "cannot stat", path: dir.into(), source: io::Error::last_os_error() });
    }
    Ok(st.f_type as libc::c_long == HUGETLBFS_MAGIC)
}
