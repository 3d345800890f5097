//! Fake sysfs/procfs trees, for testing code that takes a [`SysRoot`] without touching the host.
//!
//! ```
//! use burst_mem::hugepage::{fake::FakeSysTree, PageSize};
//! let tree = FakeSysTree::new()?;
//! tree.set_counts(PageSize::SIZE_2M, None, 4, 4)?;
//! assert_eq!(tree.sys_root().counts(PageSize::SIZE_2M, None).unwrap().free, 4);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{PageSize, SysRoot};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A temporary directory holding `sys/` and `proc/` the way the kernel lays them out; removed on drop.
#[derive(Debug)]
pub struct FakeSysTree {
    root: PathBuf,
}

impl FakeSysTree {
    /// An empty tree (no files at all).
    pub fn empty() -> io::Result<Self> {
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("burst-fake-sys-{}-{n}", std::process::id()));
            match fs::create_dir(&root) {
                Ok(()) => return Ok(FakeSysTree { root }),
                // Left by an earlier process with the same pid: try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A machine like the project's: one NUMA node, 2M (default) and 1G pages, none reserved,
    /// 24 GiB of memory, no hugetlbfs mounted.
    pub fn new() -> io::Result<Self> {
        FakeSysTree::with_nodes(&[0])
    }

    /// Like [`FakeSysTree::new`], with these NUMA nodes online.
    pub fn with_nodes(nodes: &[u32]) -> io::Result<Self> {
        let tree = FakeSysTree::empty()?;
        let online: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
        tree.write("sys/devices/system/node/online", format!("{}\n", online.join(",")))?;
        for size in [PageSize::SIZE_2M, PageSize::SIZE_1G] {
            let dir = format!("sys/kernel/mm/hugepages/{}", size.kib_dir_name());
            for file in
                ["nr_hugepages", "free_hugepages", "resv_hugepages", "surplus_hugepages", "nr_overcommit_hugepages"]
            {
                tree.write(&format!("{dir}/{file}"), "0\n")?;
            }
            for node in nodes {
                let dir = format!("sys/devices/system/node/node{node}/hugepages/{}", size.kib_dir_name());
                for file in ["nr_hugepages", "free_hugepages", "surplus_hugepages"] {
                    tree.write(&format!("{dir}/{file}"), "0\n")?;
                }
            }
        }
        tree.set_meminfo(PageSize::SIZE_2M, 24 << 30)?;
        tree.set_mounts("sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,relatime 0 0\n")?;
        Ok(tree)
    }

    /// The tree's top directory (holding `sys/` and `proc/`).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A [`SysRoot`] reading this tree.
    pub fn sys_root(&self) -> SysRoot {
        SysRoot::at(&self.root)
    }

    /// Writes `contents` to `rel` (relative to the tree), creating directories as needed.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, contents)
    }

    /// Reads `rel` (relative to the tree).
    pub fn read(&self, rel: &str) -> io::Result<String> {
        fs::read_to_string(self.root.join(rel))
    }

    /// Removes the file or directory `rel`.
    pub fn remove(&self, rel: &str) -> io::Result<()> {
        let path = self.root.join(rel);
        if path.is_dir() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        }
    }

    /// Sets `nr_hugepages` and `free_hugepages` for `size`, system-wide or on `node`.
    pub fn set_counts(&self, size: PageSize, node: Option<u32>, total: u64, free: u64) -> io::Result<()> {
        let dir = match node {
            None => format!("sys/kernel/mm/hugepages/{}", size.kib_dir_name()),
            Some(n) => format!("sys/devices/system/node/node{n}/hugepages/{}", size.kib_dir_name()),
        };
        self.write(&format!("{dir}/nr_hugepages"), format!("{total}\n"))?;
        self.write(&format!("{dir}/free_hugepages"), format!("{free}\n"))
    }

    /// Writes `/proc/meminfo` with this default page size and memory size.
    pub fn set_meminfo(&self, default_size: PageSize, mem_total_bytes: u64) -> io::Result<()> {
        let kib = mem_total_bytes / 1024;
        self.write(
            "proc/meminfo",
            format!(
                "MemTotal:       {kib} kB\nMemFree:        {kib} kB\nHugePages_Total:       0\n\
                 HugePages_Free:        0\nHugePages_Rsvd:        0\nHugePages_Surp:        0\n\
                 Hugepagesize:       {} kB\nHugetlb:               0 kB\n",
                default_size.kib()
            ),
        )
    }

    /// Writes `/proc/mounts`.
    pub fn set_mounts(&self, text: &str) -> io::Result<()> {
        self.write("proc/mounts", text)
    }
}

impl Drop for FakeSysTree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}
