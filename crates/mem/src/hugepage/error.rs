//! The one error type of [`crate::hugepage`]. Every message ends with what to do about it.

use std::io;
use std::path::PathBuf;

use super::PageSize;

/// What went wrong while discovering, reserving or mounting hugepages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HugepageError {
    /// A sysfs or procfs file could not be read or written.
    #[error("cannot access {}: {source}: {}", path.display(), io_hint(source))]
    Io { path: PathBuf, source: io::Error },

    /// The kernel has no hugetlb support (no `/sys/kernel/mm/hugepages`).
    #[error(
        "this kernel has no hugepage support ({} is missing): use a kernel built with CONFIG_HUGETLBFS, \
         or run without hugepages (--no-huge)",
        path.display()
    )]
    NoHugetlb { path: PathBuf },

    /// A page size that is malformed or that this machine does not have.
    #[error("unknown hugepage size `{asked}`: {}", supported_hint(supported))]
    UnknownPageSize {
        asked: String,
        /// The sizes this machine supports, as a list like `2M, 1G` (empty if unknown).
        supported: String,
    },

    /// A NUMA node that this machine does not have.
    #[error("NUMA node {node} does not exist: this machine has node(s) {}", join(online))]
    UnknownNode { node: u32, online: Vec<u32> },

    /// No hugetlbfs is mounted for this page size.
    #[error("no hugetlbfs mount for {size} pages: run {}", mount_hint(*size, *is_default))]
    NoMount {
        size: PageSize,
        /// Whether `size` is the system's default page size (it changes the suggested command).
        is_default: bool,
    },

    /// The kernel reserved fewer pages than asked for.
    #[error(
        "asked for {asked} {size} hugepages but the kernel reserved only {got}: memory is too fragmented \
         to find that many free {size} blocks now; free some memory and retry, reserve fewer, or reserve \
         them at boot (kernel arguments `hugepagesz={size} hugepages=N`)"
    )]
    NotEnough { size: PageSize, asked: u64, got: u64 },

    /// Pages that could not be released because processes still use them.
    #[error(
        "{pages} {size} hugepages{} are still in use and could not be released: stop the processes that map \
         them (files under the hugetlbfs mounts; see `hugepages --show`), remove those files, and retry",
        node.map(|n| format!(" on node {n}")).unwrap_or_default()
    )]
    InUse { size: PageSize, node: Option<u32>, pages: u64 },

    /// A reservation larger than the machine's memory (the kernel would try, and starve the machine).
    #[error(
        "refusing to reserve {asked_bytes} bytes of hugepages: this machine has only {mem_total_bytes} bytes \
         of memory; ask for less (e.g. `hugepages --reserve 1G`)"
    )]
    TooLarge { asked_bytes: u64, mem_total_bytes: u64 },

    /// A size string that [`super::parse_size`] does not accept.
    #[error(
        "bad size `{input}`: write a number of bytes with an optional K, M or G suffix \
         (4096, 1024K, 512M, 2G; KB/MB/GB and KiB/MiB/GiB also work)"
    )]
    BadSize { input: String },

    /// An operation that needs root (or CAP_SYS_ADMIN) was refused.
    #[error("{what} needs root: run as root or ask an admin to run `{command}`")]
    NotRoot { what: &'static str, command: String },

    /// A sysfs or procfs file whose content is not what the kernel writes.
    #[error(
        "cannot parse {}: {detail}: is this a real sysfs/procfs tree (check --sys-root) \
         and a Linux kernel with hugepage support?",
        path.display()
    )]
    Parse { path: PathBuf, detail: String },

    /// `mount(2)` of a hugetlbfs failed.
    #[error("cannot mount hugetlbfs for {size} pages at {}: {source}: {}", path.display(), mount_errno_hint(source))]
    Mount { path: PathBuf, size: PageSize, source: io::Error },

    /// `umount2(2)` of a hugetlbfs failed.
    #[error("cannot unmount {}: {source}: {}", path.display(), unmount_errno_hint(source, path))]
    Unmount { path: PathBuf, source: io::Error },

    /// [`super::unmount`] was pointed at something that is not a hugetlbfs mount.
    #[error(
        "{} is not a hugetlbfs mount: refusing to unmount it; `hugepages --show` lists the hugetlbfs mounts",
        path.display()
    )]
    NotHugetlbfs { path: PathBuf },

    /// The reservation lock file could not be opened or locked.
    #[error(
        "cannot lock {}: {source}: check that /tmp is writable, or remove a stale file there \
         that belongs to another user",
        path.display()
    )]
    Lock { path: PathBuf, source: io::Error },
}

fn io_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::NotFound => {
            "is sysfs mounted on /sys and procfs on /proc, and does this kernel support hugepages?"
        }
        io::ErrorKind::PermissionDenied => "run as root",
        _ if err.raw_os_error() == Some(libc::EROFS) => {
            "sysfs is read-only here (a container?): reserve hugepages on the host instead"
        }
        _ => "check that sysfs and procfs are mounted and readable",
    }
}

fn supported_hint(supported: &str) -> String {
    if supported.is_empty() {
        "write it as 2M or 1G (2MB, 2048kB, 1GB and 1048576kB also work)".to_owned()
    } else {
        format!("use one this machine supports: {supported} (forms like 2M, 2MB, 2048kB all work)")
    }
}

fn mount_hint(size: PageSize, is_default: bool) -> String {
    if is_default {
        format!("`hugepages --mount` (or mount -t hugetlbfs -o pagesize={size} nodev /dev/hugepages)")
    } else {
        format!(
            "`hugepages --mount --pagesize {size} --directory /dev/hugepages-{size}` \
             (or mount -t hugetlbfs -o pagesize={size} nodev /dev/hugepages-{size})"
        )
    }
}

fn mount_errno_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "run as root",
        Some(libc::ENODEV) => "this kernel has no hugetlbfs (CONFIG_HUGETLBFS)",
        Some(libc::EINVAL) => "the kernel does not support this page size; `hugepages --show` lists the sizes it has",
        Some(libc::ENOTDIR) => "the mount point must be a directory",
        _ => "check the directory and the page size",
    }
}

fn unmount_errno_hint(err: &io::Error, path: &std::path::Path) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => "run as root".to_owned(),
        Some(libc::EBUSY) => format!(
            "a process still has files open or mapped there: stop it (`fuser -vm {}` names it) and retry",
            path.display()
        ),
        Some(libc::EINVAL) => "it is not a mount point".to_owned(),
        Some(libc::ENOENT) => "it does not exist".to_owned(),
        _ => "check the path".to_owned(),
    }
}

fn join(nodes: &[u32]) -> String {
    let list: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    list.join(", ")
}

impl HugepageError {
    /// An [`HugepageError::UnknownPageSize`] for `asked`, listing `supported`.
    pub(crate) fn unknown_page_size(asked: impl Into<String>, supported: &[PageSize]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
        HugepageError::UnknownPageSize { asked: asked.into(), supported: list.join(", ") }
    }

    /// An [`HugepageError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        HugepageError::Io { path: path.into(), source }
    }

    /// A [`HugepageError::Parse`] for `path`.
    pub(crate) fn parse(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        HugepageError::Parse { path: path.into(), detail: detail.into() }
    }
}
