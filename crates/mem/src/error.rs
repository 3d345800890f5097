//! The memory layer's errors. Each message says what went wrong and what to do about it.

use std::path::PathBuf;

use crate::hugepage::{HugepageError, PageSize};

/// What can go wrong while setting up or growing DMA memory.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// Finding, reserving or mounting hugepages failed.
    #[error(transparent)]
    Hugepage(#[from] HugepageError),

    /// The kernel had no free hugepage of the size asked for.
    #[error(
        "no free {size} hugepages on socket {socket} ({needed} more bytes needed): \
         run `hugepages --reserve {suggest}`{node_hint}, or ask for less memory"
    )]
    NoFreeHugepages {
        /// The page size that ran out.
        size: PageSize,
        /// The NUMA socket the memory was for.
        socket: u32,
        /// How many bytes the request still needed.
        needed: u64,
        /// A reservation that would be enough, for the message.
        suggest: String,
        /// ` --node N` when the machine has several nodes.
        node_hint: String,
    },

    /// `--no-huge` memory was asked for together with IOVA as PA.
    #[error(
        "--no-huge memory lives in 4 KiB pages whose physical addresses the kernel may change: \
         it works with IOVA as VA only; use --iova-mode=va (vfio-pci with an IOMMU) or drop --no-huge"
    )]
    NoHugeNeedsVa,

    /// `/proc/self/pagemap` hid the physical frame numbers.
    #[error(
        "cannot read physical addresses from /proc/self/pagemap: the frame numbers read as 0, \
         which means this process lacks CAP_SYS_ADMIN; run as root, or use --iova-mode=va \
         with devices bound to vfio-pci"
    )]
    PhysAddrHidden,

    /// A page that should be resident was not.
    #[error("page at {va:#x} is not resident although it was populated and locked; this is a bug")]
    PageNotPresent {
        /// The page's virtual address.
        va: usize,
    },

    /// An IOVA-contiguous reservation could not be satisfied in PA mode.
    #[error(
        "memzone {name:?} needs {asked} IOVA-contiguous bytes but the largest physically contiguous \
         run found in {size} pages was {found} bytes: reserve hugepages early (at boot, \
         `hugepages=N` on the kernel command line), use 1G pages (`--pagesize 1G`), or use \
         --iova-mode=va with vfio-pci"
    )]
    NotEnoughContiguous {
        /// The memzone's name.
        name: String,
        /// Bytes asked for.
        asked: u64,
        /// The longest contiguous run seen.
        found: u64,
        /// The page size searched.
        size: PageSize,
    },

    /// A request larger than the virtual space set aside for its socket.
    #[error(
        "{asked} bytes do not fit in what is left of the {limit} bytes of address space set aside \
         per socket: free other memzones, or raise `MemConfig::max_mem_per_socket`"
    )]
    TooLarge {
        /// Bytes asked for.
        asked: u64,
        /// The per-socket limit.
        limit: u64,
    },

    /// A `--socket-mem` or `-m` value that does not parse.
    #[error(
        "bad memory amount {input:?}: {reason}; give megabytes per socket, e.g. `--socket-mem 1024,0` \
         or `-m 512`"
    )]
    BadSocketMem {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A socket that this machine does not have.
    #[error("there is no NUMA socket {socket}: this machine has {available:?}")]
    UnknownSocket {
        /// The socket asked for.
        socket: u32,
        /// The sockets that exist.
        available: Vec<u32>,
    },

    /// A memzone name that is already taken.
    #[error("a memzone named {name:?} already exists: pick another name or drop the old one first")]
    MemzoneExists {
        /// The name.
        name: String,
    },

    /// A memzone name that is empty or too long.
    #[error("bad memzone name {name:?}: names are 1 to 63 bytes")]
    BadName {
        /// The name.
        name: String,
    },

    /// Alignment that is not a power of two, or a zero size.
    #[error("bad reservation: {0}")]
    BadRequest(String),

    /// A DMA mapper refused a segment.
    #[error("mapping {len} bytes at {va:#x} for DMA failed: {source}")]
    DmaMap {
        /// Virtual address of the segment.
        va: usize,
        /// Its length.
        len: usize,
        /// The mapper's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Memory another process should map (a vhost-user backend) has no file behind it.
    #[error(
        "DMA memory cannot be shared with another process: {why}; virtio-user and other vhost-user \
         frontends need hugepages in hugetlbfs files: drop --no-huge and --in-memory, and add \
         --single-file-segments so that few files (at most 8 regions) cover the memory"
    )]
    NotShareable {
        /// What kind of memory it is.
        why: &'static str,
    },

    /// A system call on a file failed.
    #[error("{what} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A system call on memory failed.
    #[error("{what} failed: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}
