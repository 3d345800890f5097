//! Dynamic DMA memory: segment lists per NUMA socket that grow a segment at a time when a
//! reservation needs room and give whole free segments back to the system (DPDK 18.11's model),
//! plus what `--socket-mem`/`-m` pre-reserve, which stays for the life of the process.
//!
//! One idea a file: `mod.rs` (the handle, its lists and its state under one lock), `config.rs`
//! (how to set it up), `free.rs` (the free byte ranges of a list), `grow.rs` (segments added and
//! given back), `place.rs` (where a memzone goes), `registry.rs` (the DMA mappers and memory
//! listeners told of every segment).

mod config;
mod free;
mod grow;
mod place;
mod registry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::MemError;
use crate::hugepage::PageSize;
use crate::iova::{IovaMode, Pagemap};
use crate::segment::{self, SegmentList, Source};

pub use config::MemConfig;
pub use registry::MapperId;

use free::FreeRanges;
use registry::Registry;

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

/// Everything about the memory that changes, under one lock: what is free, which segments are
/// in use, the memzones, and who is told of segments coming and going.
#[derive(Default)]
struct State {
    /// Per list: the byte ranges no memzone holds.
    free: Vec<FreeRanges>,
    /// Per list, per segment: how many reservations touch it, and whether it was pre-reserved.
    refs: Vec<Vec<u32>>,
    pinned: Vec<Vec<bool>>,
    zones: HashMap<String, ZoneInfo>,
    /// The DMA mappers and memory listeners.
    registry: Registry,
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
            free: lists.iter().map(|l| FreeRanges::new(l.len)).collect(),
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

    /// The IOVA of byte `offset` of list `li` (for memzones).
    pub(crate) fn iova_in_list(&self, li: usize, offset: usize) -> u64 {
        let cell = &self.inner.lists[li];
        let list = cell.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iova(offset / cell.seg_size) + (offset % cell.seg_size) as u64
    }
}
