//! Dynamic DMA memory: segment lists per NUMA socket that grow a segment at a time when a
//! reservation needs room and give whole free segments back to the system (DPDK 18.11's model),
//! plus what `--socket-mem`/`-m` pre-reserve, which stays for the life of the process.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::MemError;
use crate::hugepage::{PageSize, SysRoot};
use crate::iova::{DmaMapper, IovaMode, Pagemap};
use crate::memzone::{Memzone, MemzoneFlags};
use crate::segment::{self, AddError, SegmentList, Source};
use crate::shared::{FileId, ListenerId, MemoryListener, RegionSet, SharedRegion, SharedSegment};
use crate::socket_mem::SocketMem;

/// How to set up DMA memory; the runtime fills it from EAL-style options.
#[derive(Clone, Debug)]
pub struct MemConfig {
    /// How devices will address the memory (decided by the runtime's IOVA-mode vote).
    pub iova_mode: IovaMode,
    /// `--no-huge`: 4 KiB anonymous pages; IOVA as VA only.
    pub no_huge: bool,
    /// Hugepage size; `None` is the system's default.
    pub page_size: Option<PageSize>,
    /// `--huge-dir`: the hugetlbfs mount for the files; `None` finds one of the right page size.
    pub huge_dir: Option<PathBuf>,
    /// Anonymous `MAP_HUGETLB` memory instead of hugetlbfs files (DPDK's `--in-memory`).
    pub anonymous: bool,
    /// `--file-prefix`: starts every hugepage file's name, so processes can share a mount.
    pub file_prefix: String,
    /// `--single-file-segments`: one file per segment list instead of one per page.
    pub single_file_segments: bool,
    /// `--socket-mem` / `-m`: memory reserved at start and kept.
    pub socket_mem: SocketMem,
    /// Address space set aside per socket: the most memory one socket can grow to.
    pub max_mem_per_socket: u64,
    /// Where sysfs and procfs are (the host's unless testing).
    pub sys: SysRoot,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            iova_mode: IovaMode::Pa,
            no_huge: false,
            page_size: None,
            huge_dir: None,
            anonymous: false,
            file_prefix: "burst".to_string(),
            single_file_segments: false,
            socket_mem: SocketMem::None,
            max_mem_per_socket: 32 << 30,
            sys: SysRoot::host(),
        }
    }
}

/// A handle on the process's DMA memory. Cheap to clone; the memory is released (segments
/// unmapped, files removed) when the last handle and the last memzone are gone.
#[derive(Clone)]
pub struct Memory {
    inner: Arc<Inner>,
}

struct Inner {
    mode: IovaMode,
    page_size: PageSize,
    lists: Vec<Arc<ListCell>>,
    pagemap: Option<Pagemap>,
    numa: bool,
    dir: Option<PathBuf>,
    /// Why another process cannot map this memory (anonymous memory), if it cannot.
    unshareable: Option<&'static str>,
    state: Mutex<State>,
}

/// A segment list and the bookkeeping that goes with it. The list's fixed facts (base, size,
/// IOVAs) are read without the lock; everything that changes is under `Inner::state`.
struct ListCell {
    socket: u32,
    base: usize,
    seg_size: usize,
    len: usize,
    list: Mutex<SegmentList>,
}

#[derive(Default)]
struct State {
    /// Per list: free byte ranges (offset -> length), coalesced.
    free: Vec<BTreeMap<usize, usize>>,
    /// Per list, per segment: how many reservations touch it, and whether it was pre-reserved.
    refs: Vec<Vec<u32>>,
    pinned: Vec<Vec<bool>>,
    zones: HashMap<String, ZoneInfo>,
    mappers: Vec<(u64, Arc<dyn DmaMapper>)>,
    next_mapper: u64,
    listeners: Vec<(u64, Arc<dyn MemoryListener>)>,
    next_listener: u64,
}

/// What [`Memory::memzone_info`] reports about a named reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Its virtual address.
    pub addr: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The IOVA of its first byte.
    pub iova: u64,
    /// The NUMA socket it lives on.
    pub socket: u32,
    /// Whether it was asked to be IOVA-contiguous.
    pub iova_contig: bool,
}

/// Counts for tests and diagnostics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Segments mapped now, over all sockets.
    pub segments: usize,
    /// Bytes in them.
    pub bytes: u64,
    /// Of those, segments pre-reserved at start (never given back).
    pub pinned_segments: usize,
    /// Live memzones.
    pub memzones: usize,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("iova_mode", &self.inner.mode)
            .field("page_size", &self.inner.page_size)
            .field("sockets", &self.sockets())
            .finish()
    }
}

/// Identifies a registered [`DmaMapper`] so it can be removed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapperId(u64);

static INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const MAX_NAME: usize = 63;

impl Memory {
    /// Sets up DMA memory as `config` says: checks the page size and the hugetlbfs mount,
    /// removes files left by crashed processes with the same prefix, reserves address space per
    /// socket and maps what `socket_mem` asks for.
    pub fn new(config: MemConfig) -> Result<Memory, MemError> {
        if config.no_huge && config.iova_mode == IovaMode::Pa {
            return Err(MemError::NoHugeNeedsVa);
        }
        let page_size = if config.no_huge {
            PageSize::SIZE_4K
        } else {
            let supported = config.sys.page_sizes()?;
            let size = match config.page_size {
                Some(s) => s,
                None => config.sys.default_page_size()?,
            };
            if !supported.contains(&size) {
                return Err(crate::hugepage::HugepageError::UnknownPageSize {
                    asked: size.to_string(),
                    supported: supported.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
                }
                .into());
            }
            size
        };
        let (source, dir) = if config.no_huge {
            (Source::Small, None)
        } else if config.anonymous {
            (Source::AnonHuge, None)
        } else {
            let dir = match &config.huge_dir {
                Some(d) => d.clone(),
                None => config.sys.mount_for(page_size)?.path,
            };
            if !segment::is_hugetlbfs(&dir)? {
                return Err(MemError::BadRequest(format!(
                    "{} is not a hugetlbfs mount: give --huge-dir a hugetlbfs mount point, or run \
                     `hugepages --mount`",
                    dir.display()
                )));
            }
            segment::remove_stale_files(&dir, &config.file_prefix)?;
            let source = Source::Hugetlbfs {
                dir: dir.clone(),
                prefix: config.file_prefix.clone(),
                single_file: config.single_file_segments,
            };
            (source, Some(dir))
        };
        let sockets = config.sys.numa_nodes()?;
        let instance = INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seg_size = if config.no_huge { 2 << 20 } else { page_size.bytes() };
        let count = (config.max_mem_per_socket.div_ceil(seg_size)).max(1) as usize;
        let mut lists = Vec::new();
        for (index, &socket) in sockets.iter().enumerate() {
            let list = SegmentList::new(socket, index, instance, count, page_size, source.clone())?;
            lists.push(Arc::new(ListCell {
                socket,
                base: list.base,
                seg_size: list.seg_size,
                len: list.len(),
                list: Mutex::new(list),
            }));
        }
        let pagemap = match config.iova_mode {
            IovaMode::Pa => Some(Pagemap::open()?),
            IovaMode::Va => None,
        };
        let state = State {
            free: lists.iter().map(|l| BTreeMap::from([(0, l.len)])).collect(),
            refs: lists.iter().map(|_| vec![0; count]).collect(),
            pinned: lists.iter().map(|_| vec![false; count]).collect(),
            ..State::default()
        };
        let memory = Memory {
            inner: Arc::new(Inner {
                mode: config.iova_mode,
                page_size,
                lists,
                pagemap,
                numa: sockets.len() > 1,
                unshareable: if config.no_huge {
                    Some("--no-huge memory is anonymous 4 KiB pages")
                } else if config.anonymous {
                    Some("--in-memory hugepages are anonymous mappings")
                } else {
                    None
                },
                dir,
                state: Mutex::new(state),
            }),
        };
        memory.prereserve(&config.socket_mem, &sockets)?;
        Ok(memory)
    }

    fn prereserve(&self, socket_mem: &SocketMem, sockets: &[u32]) -> Result<(), MemError> {
        let per_socket: Vec<(usize, u64)> = match socket_mem {
            SocketMem::None => return Ok(()),
            SocketMem::Total(bytes) => vec![(0, *bytes)],
            // Value i is for socket id i, as DPDK reads it (ids may have gaps).
            SocketMem::PerSocket(v) => {
                let mut out = Vec::new();
                for (id, &bytes) in v.iter().enumerate() {
                    match sockets.iter().position(|&s| s as usize == id) {
                        Some(li) => out.push((li, bytes)),
                        None if bytes == 0 => {}
                        None => return Err(MemError::UnknownSocket { socket: id as u32, available: sockets.to_vec() }),
                    }
                }
                out
            }
        };
        let mut st = self.lock();
        for (li, bytes) in per_socket {
            let cell = &self.inner.lists[li];
            let n = bytes.div_ceil(cell.seg_size as u64) as usize;
            if n > st.refs[li].len() {
                return Err(MemError::TooLarge { asked: bytes, limit: cell.len as u64 });
            }
            for idx in 0..n {
                self.add_segment(&mut st, li, idx, bytes - (idx * cell.seg_size) as u64)?;
                st.pinned[li][idx] = true;
            }
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The IOVA mode the memory was set up for.
    pub fn iova_mode(&self) -> IovaMode {
        self.inner.mode
    }

    /// The page size segments are made of (4K with `--no-huge`).
    pub fn page_size(&self) -> PageSize {
        self.inner.page_size
    }

    /// The segment size: the unit memory grows and shrinks by.
    pub fn segment_size(&self) -> usize {
        self.inner.lists[0].seg_size
    }

    /// The sockets that have memory.
    pub fn sockets(&self) -> Vec<u32> {
        self.inner.lists.iter().map(|l| l.socket).collect()
    }

    /// The hugetlbfs directory holding this memory's files, if it uses files.
    pub fn huge_dir(&self) -> Option<&std::path::Path> {
        self.inner.dir.as_deref()
    }

    /// The IOVA of the byte at `ptr`, if it lies in a mapped segment of this memory.
    pub fn iova_of(&self, ptr: *const u8) -> Option<u64> {
        let addr = ptr as usize;
        for cell in &self.inner.lists {
            if addr >= cell.base && addr < cell.base + cell.len {
                let idx = (addr - cell.base) / cell.seg_size;
                let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
                let iova = list.iova(idx);
                return (iova != segment::UNMAPPED).then(|| iova + ((addr - cell.base) % cell.seg_size) as u64);
            }
        }
        None
    }

    /// Segments mapped, bytes, memzones.
    pub fn stats(&self) -> MemStats {
        let st = self.lock();
        let mut stats = MemStats { memzones: st.zones.len(), ..MemStats::default() };
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if list.is_mapped(idx) {
                    stats.segments += 1;
                    stats.bytes += cell.seg_size as u64;
                    stats.pinned_segments += usize::from(st.pinned[li][idx]);
                }
            }
        }
        stats
    }

    /// The hugepage files behind this memory now (empty for anonymous memory).
    pub fn files(&self) -> Vec<PathBuf> {
        let _st = self.lock();
        self.inner.lists.iter().flat_map(|c| c.list.lock().unwrap_or_else(|p| p.into_inner()).files()).collect()
    }

    /// What is known of the memzone called `name`, if one is live.
    pub fn memzone_info(&self, name: &str) -> Option<ZoneInfo> {
        self.lock().zones.get(name).cloned()
    }

    /// Registers an IOMMU programmer: every mapped segment is mapped through it now, and every
    /// segment added or removed later is too. On failure nothing stays mapped through it.
    pub fn add_dma_mapper(&self, mapper: Arc<dyn DmaMapper>) -> Result<MapperId, MemError> {
        let mut st = self.lock();
        let mut done: Vec<(u64, usize)> = Vec::new();
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if !list.is_mapped(idx) {
                    continue;
                }
                let (va, iova) = (list.addr(idx), list.iova(idx));
                if let Err(source) = mapper.map(va, iova, cell.seg_size) {
                    for (iova, len) in done {
                        let _ = mapper.unmap(iova, len);
                    }
                    return Err(MemError::DmaMap { va, len: cell.seg_size, source });
                }
                done.push((iova, cell.seg_size));
            }
        }
        let id = st.next_mapper;
        st.next_mapper += 1;
        st.mappers.push((id, mapper));
        Ok(MapperId(id))
    }

    /// Unregisters a mapper, unmapping every segment from it.
    pub fn remove_dma_mapper(&self, id: MapperId) {
        let mut st = self.lock();
        let Some(pos) = st.mappers.iter().position(|(i, _)| *i == id.0) else { return };
        let (_, mapper) = st.mappers.remove(pos);
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if list.is_mapped(idx) {
                    if let Err(e) = mapper.unmap(list.iova(idx), cell.seg_size) {
                        tracing::warn!("DMA unmap of segment at {:#x} failed: {e}", list.addr(idx));
                    }
                }
            }
        }
    }

    /// The mapped memory as regions another process can map (a vhost-user backend): one per run
    /// of segments that are neighbours both in memory and in one file, in address order. With
    /// `--single-file-segments` that is one region per socket's run of mapped segments; with a
    /// file per page it is one region per page.
    ///
    /// Fails for anonymous memory (`--no-huge`, `--in-memory`), which has no file to share.
    pub fn shared_regions(&self) -> Result<Vec<SharedRegion>, MemError> {
        self.check_shareable()?;
        let _st = self.lock();
        let mut set = RegionSet::new();
        for cell in &self.inner.lists {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..list.iovas.len() {
                if list.is_mapped(idx) {
                    let seg = shared_segment(&list, idx)?;
                    set.insert(&seg)
                        .map_err(|source| MemError::Os { what: "duplicating a hugepage file descriptor", source })?;
                }
            }
        }
        Ok(set.regions())
    }

    fn check_shareable(&self) -> Result<(), MemError> {
        match self.inner.unshareable {
            Some(why) => Err(MemError::NotShareable { why }),
            None => Ok(()),
        }
    }

    /// Registers a listener for the shareable memory: it is told of every segment mapped now
    /// (before this returns) and of every segment added or removed later, synchronously, with
    /// the memory's locks held (see [`MemoryListener`]). If it refuses a segment mapped now,
    /// it is told of the removal of those it took, and registering fails.
    ///
    /// Fails for anonymous memory (`--no-huge`, `--in-memory`).
    pub fn add_memory_listener(&self, listener: Arc<dyn MemoryListener>) -> Result<ListenerId, MemError> {
        self.check_shareable()?;
        let mut st = self.lock();
        let mut done: Vec<(usize, usize)> = Vec::new();
        let mut failure = None;
        'lists: for (li, cell) in self.inner.lists.iter().enumerate() {
            let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..list.iovas.len() {
                if !list.is_mapped(idx) {
                    continue;
                }
                let outcome = shared_segment(&list, idx).and_then(|seg| {
                    listener.segment_added(&seg).map_err(|source| MemError::DmaMap { va: seg.va, len: seg.len, source })
                });
                match outcome {
                    Ok(()) => done.push((li, idx)),
                    Err(e) => {
                        failure = Some(e);
                        break 'lists;
                    }
                }
            }
        }
        if let Some(e) = failure {
            for (li, idx) in done {
                let list = self.inner.lists[li].list.lock().unwrap_or_else(|p| p.into_inner());
                if let Ok(seg) = shared_segment(&list, idx) {
                    listener.segment_removed(&seg);
                }
            }
            return Err(e);
        }
        let id = st.next_listener;
        st.next_listener += 1;
        st.listeners.push((id, listener));
        Ok(ListenerId(id))
    }

    /// Unregisters a listener. It is not told of the segments still mapped.
    pub fn remove_memory_listener(&self, id: ListenerId) {
        let mut st = self.lock();
        st.listeners.retain(|(i, _)| *i != id.0);
    }

    /// Maps segment `idx` of list `li` and tells every DMA mapper about it.
    fn add_segment(&self, st: &mut State, li: usize, idx: usize, needed: u64) -> Result<u64, MemError> {
        let cell = &self.inner.lists[li];
        let mut list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        let iova = match list.add(idx, self.inner.mode, self.inner.pagemap.as_ref(), self.inner.numa) {
            Ok(iova) => iova,
            Err(AddError::Failed(e)) => return Err(e),
            Err(AddError::NoFreePages) => {
                let suggest = suggest_reservation(needed, self.inner.page_size);
                let node_hint = if self.inner.numa { format!(" --node {}", cell.socket) } else { String::new() };
                return Err(MemError::NoFreeHugepages {
                    size: self.inner.page_size,
                    socket: cell.socket,
                    needed,
                    suggest,
                    node_hint,
                });
            }
        };
        let va = list.addr(idx);
        for (n, (_, mapper)) in st.mappers.iter().enumerate() {
            if let Err(source) = mapper.map(va, iova, cell.seg_size) {
                for (_, m) in &st.mappers[..n] {
                    let _ = m.unmap(iova, cell.seg_size);
                }
                list.remove(idx);
                return Err(MemError::DmaMap { va, len: cell.seg_size, source });
            }
        }
        if !st.listeners.is_empty() {
            let refused = match shared_segment(&list, idx) {
                Ok(seg) => {
                    let mut refused = None;
                    for (n, (_, listener)) in st.listeners.iter().enumerate() {
                        if let Err(source) = listener.segment_added(&seg) {
                            for (_, l) in &st.listeners[..n] {
                                l.segment_removed(&seg);
                            }
                            refused = Some(MemError::DmaMap { va, len: cell.seg_size, source });
                            break;
                        }
                    }
                    refused
                }
                Err(e) => Some(e),
            };
            if let Some(e) = refused {
                for (_, m) in &st.mappers {
                    let _ = m.unmap(iova, cell.seg_size);
                }
                list.remove(idx);
                return Err(e);
            }
        }
        tracing::debug!(socket = cell.socket, va, iova, "added a DMA segment");
        Ok(iova)
    }

    /// Gives back every segment that no reservation touches and that was not pre-reserved.
    fn trim(&self, st: &mut State) {
        for (li, cell) in self.inner.lists.iter().enumerate() {
            let mut list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
            for idx in 0..st.refs[li].len() {
                if st.refs[li][idx] == 0 && !st.pinned[li][idx] && list.is_mapped(idx) {
                    if !st.listeners.is_empty() {
                        match shared_segment(&list, idx) {
                            Ok(seg) => st.listeners.iter().for_each(|(_, l)| l.segment_removed(&seg)),
                            Err(e) => tracing::warn!("cannot describe the segment at {:#x}: {e}", list.addr(idx)),
                        }
                    }
                    for (_, mapper) in &st.mappers {
                        if let Err(e) = mapper.unmap(list.iova(idx), cell.seg_size) {
                            tracing::warn!("DMA unmap of segment at {:#x} failed: {e}", list.addr(idx));
                        }
                    }
                    list.remove(idx);
                    tracing::debug!(socket = cell.socket, "gave a DMA segment back");
                }
            }
        }
    }

    /// Reserves a named, aligned block of DMA memory on `socket` (`None`: the calling thread's
    /// socket first, then any). With [`MemzoneFlags::IOVA_CONTIG`] the block is contiguous in
    /// IOVA space too, as hardware descriptor rings need.
    pub fn reserve(
        &self,
        name: &str,
        len: usize,
        socket: Option<u32>,
        align: usize,
        flags: MemzoneFlags,
    ) -> Result<Memzone, MemError> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(MemError::BadName { name: name.to_string() });
        }
        if len == 0 {
            return Err(MemError::BadRequest(format!("memzone {name:?}: size 0")));
        }
        let align = align.max(64);
        if !align.is_power_of_two() {
            return Err(MemError::BadRequest(format!("memzone {name:?}: alignment {align} is not a power of two")));
        }
        let limit = self.inner.lists[0].len;
        if len > limit {
            return Err(MemError::TooLarge { asked: len as u64, limit: limit as u64 });
        }
        if align > limit {
            return Err(MemError::BadRequest(format!(
                "memzone {name:?}: alignment {align} is larger than a socket's memory"
            )));
        }
        let order = self.socket_order(socket)?;
        let mut st = self.lock();
        if st.zones.contains_key(name) {
            return Err(MemError::MemzoneExists { name: name.to_string() });
        }
        let contig = flags.contains(MemzoneFlags::IOVA_CONTIG);
        let mut best_run = 0u64;
        let mut result = Err(MemError::TooLarge { asked: len as u64, limit: self.inner.lists[0].len as u64 });
        for li in order {
            match self.place(&mut st, li, len, align, contig, &mut best_run) {
                Ok(Some(offset)) => {
                    result = Ok((li, offset));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    result = Err(e);
                    if socket.is_some() {
                        break;
                    }
                }
            }
        }
        let outcome = match result {
            Ok((li, offset)) => {
                let cell = &self.inner.lists[li];
                let addr = cell.base + offset;
                let iova = {
                    let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
                    list.iova(offset / cell.seg_size) + (offset % cell.seg_size) as u64
                };
                let info = ZoneInfo { addr, len, iova, socket: cell.socket, iova_contig: contig };
                st.zones.insert(name.to_string(), info.clone());
                Ok(Memzone::new(self.clone(), name.to_string(), li, offset, info))
            }
            Err(MemError::NoFreeHugepages { .. }) | Err(MemError::TooLarge { .. })
                if contig && self.inner.mode == IovaMode::Pa && len > self.segment_size() =>
            {
                let found = (0..self.inner.lists.len()).map(|li| self.longest_run(li)).fold(best_run, u64::max);
                Err(MemError::NotEnoughContiguous {
                    name: name.to_string(),
                    asked: len as u64,
                    found,
                    size: self.inner.page_size,
                })
            }
            Err(e) => Err(e),
        };
        self.trim(&mut st);
        outcome
    }

    /// The longest physically contiguous run of mapped segments in list `li`, in bytes.
    fn longest_run(&self, li: usize) -> u64 {
        let cell = &self.inner.lists[li];
        let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        let (mut best, mut run, mut prev) = (0u64, 0u64, None::<u64>);
        for idx in 0..list.iovas.len() {
            let iova = list.iova(idx);
            if iova == segment::UNMAPPED {
                prev = None;
                run = 0;
                continue;
            }
            run = if prev == Some(iova.wrapping_sub(cell.seg_size as u64)) { run + 1 } else { 1 };
            prev = Some(iova);
            best = best.max(run * cell.seg_size as u64);
        }
        best
    }

    fn socket_order(&self, socket: Option<u32>) -> Result<Vec<usize>, MemError> {
        let sockets = self.sockets();
        match socket {
            Some(s) => match sockets.iter().position(|&x| x == s) {
                Some(li) => Ok(vec![li]),
                None => Err(MemError::UnknownSocket { socket: s, available: sockets }),
            },
            None => {
                let here = current_node();
                let mut order: Vec<usize> = (0..sockets.len()).collect();
                order.sort_by_key(|&li| sockets[li] != here);
                Ok(order)
            }
        }
    }

    /// First fit in list `li`: maps segments as the candidate range needs them and, for an
    /// IOVA-contiguous request in PA mode, slides past physical discontinuities.
    fn place(
        &self,
        st: &mut State,
        li: usize,
        len: usize,
        align: usize,
        contig: bool,
        best_run: &mut u64,
    ) -> Result<Option<usize>, MemError> {
        let cell = Arc::clone(&self.inner.lists[li]);
        let seg = cell.seg_size;
        let check_phys = contig && self.inner.mode == IovaMode::Pa;
        let ranges: Vec<(usize, usize)> = st.free[li].iter().map(|(&o, &l)| (o, l)).collect();
        // Out of pages for one range, a later one may still fit in segments already mapped.
        let mut no_pages = None;
        'range: for (off, flen) in ranges {
            let end = off + flen;
            let mut start = off.next_multiple_of(align);
            'candidate: while start + len <= end {
                let first = start / seg;
                let last = (start + len - 1) / seg;
                for idx in first..=last {
                    let mapped = cell.list.lock().unwrap_or_else(|p| p.into_inner()).is_mapped(idx);
                    if !mapped {
                        let needed = (start + len).saturating_sub(idx * seg) as u64;
                        match self.add_segment(st, li, idx, needed) {
                            Ok(_) => {}
                            Err(e @ MemError::NoFreeHugepages { .. }) => {
                                no_pages.get_or_insert(e);
                                continue 'range;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                if check_phys {
                    let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
                    for idx in first..last {
                        if list.iova(idx + 1) != list.iova(idx) + seg as u64 {
                            *best_run = (*best_run).max(((idx + 1) * seg - start) as u64);
                            start = ((idx + 1) * seg).next_multiple_of(align);
                            continue 'candidate;
                        }
                    }
                    *best_run = (*best_run).max(len as u64);
                }
                take_range(&mut st.free[li], off, flen, start, len);
                for idx in first..=last {
                    st.refs[li][idx] += 1;
                }
                return Ok(Some(start));
            }
        }
        match no_pages {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Returns a memzone's range to the free list (called by `Memzone`'s drop).
    pub(crate) fn release(&self, name: &str, li: usize, offset: usize, len: usize) {
        let mut st = self.lock();
        st.zones.remove(name);
        give_range(&mut st.free[li], offset, len);
        let seg = self.inner.lists[li].seg_size;
        for idx in offset / seg..=(offset + len - 1) / seg {
            st.refs[li][idx] -= 1;
        }
        self.trim(&mut st);
    }

    /// The IOVA of byte `offset` of list `li` (for memzones).
    pub(crate) fn iova_in_list(&self, li: usize, offset: usize) -> u64 {
        let cell = &self.inner.lists[li];
        let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iova(offset / cell.seg_size) + (offset % cell.seg_size) as u64
    }
}

/// Segment `idx` of `list` as a [`MemoryListener`] sees it.
fn shared_segment(list: &SegmentList, idx: usize) -> Result<SharedSegment<'_>, MemError> {
    let (fd, offset) =
        list.backing(idx).ok_or(MemError::NotShareable { why: "the segment is not mapped from a hugetlbfs file" })?;
    let file = FileId::of(fd).map_err(|source| MemError::Os { what: "fstat of a hugepage file", source })?;
    Ok(SharedSegment { va: list.addr(idx), len: list.seg_size, fd, offset, file })
}

/// Splits `[start, start+len)` out of the free range at `off`.
fn take_range(free: &mut BTreeMap<usize, usize>, off: usize, flen: usize, start: usize, len: usize) {
    free.remove(&off);
    if start > off {
        free.insert(off, start - off);
    }
    let end = off + flen;
    if start + len < end {
        free.insert(start + len, end - start - len);
    }
}

/// Puts `[off, off+len)` back, merging with its neighbours.
fn give_range(free: &mut BTreeMap<usize, usize>, mut off: usize, mut len: usize) {
    if let Some((&prev, &plen)) = free.range(..off).next_back() {
        if prev + plen == off {
            free.remove(&prev);
            off = prev;
            len += plen;
        }
    }
    if let Some(&nlen) = free.get(&(off + len)) {
        free.remove(&(off + len));
        len += nlen;
    }
    free.insert(off, len);
}

fn suggest_reservation(needed: u64, size: PageSize) -> String {
    let bytes = needed.max(size.bytes()).next_multiple_of(size.bytes());
    let mib = bytes.div_ceil(1 << 20).max(2);
    let pagesize = if size == PageSize::SIZE_2M { String::new() } else { format!(" --pagesize {size}") };
    if mib % 1024 == 0 {
        format!("{}G{pagesize}", mib / 1024)
    } else {
        format!("{mib}M{pagesize}")
    }
}

/// The NUMA node of the CPU this thread runs on now.
fn current_node() -> u32 {
    let mut cpu = 0u32;
    let mut node = 0u32;
    // SAFETY: getcpu writes two u32s we own; the third argument is unused and may be null.
    let rc = unsafe { libc::syscall(libc::SYS_getcpu, &mut cpu, &mut node, std::ptr::null_mut::<libc::c_void>()) };
    if rc == 0 {
        node
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ranges_split_and_merge_back() {
        let mut free = BTreeMap::from([(0, 1000)]);
        take_range(&mut free, 0, 1000, 128, 64);
        assert_eq!(free, BTreeMap::from([(0, 128), (192, 808)]));
        take_range(&mut free, 192, 808, 192, 100);
        assert_eq!(free, BTreeMap::from([(0, 128), (292, 708)]));
        give_range(&mut free, 128, 64);
        assert_eq!(free, BTreeMap::from([(0, 192), (292, 708)]));
        give_range(&mut free, 192, 100);
        assert_eq!(free, BTreeMap::from([(0, 1000)]));
    }

    #[test]
    fn reservation_suggestions_are_whole_pages() {
        assert_eq!(suggest_reservation(1, PageSize::SIZE_2M), "2M");
        assert_eq!(suggest_reservation(3 << 20, PageSize::SIZE_2M), "4M");
        assert_eq!(suggest_reservation(1 << 20, PageSize::SIZE_1G), "1G --pagesize 1G");
    }
}
