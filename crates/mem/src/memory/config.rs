//! [`MemConfig`]: how to set up DMA memory, as the runtime fills it from EAL-style options.

use std::path::PathBuf;

use crate::hugepage::{PageSize, SysRoot};
use crate::iova::IovaMode;
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
