//! Discovery: which page sizes and NUMA nodes the kernel has, and how many pages each holds.
//!
//! Files read (Documentation/admin-guide/mm/hugetlbpage.rst):
//! - `/sys/kernel/mm/hugepages/hugepages-<N>kB/{nr,free,resv,surplus}_hugepages`: system-wide counts;
//! - `/sys/devices/system/node/node<N>/hugepages/hugepages-<N>kB/{nr,free,surplus}_hugepages`: per node
//!   (the kernel keeps no per-node reserved count);
//! - `/sys/devices/system/node/online`: the online NUMA nodes (absent on kernels without NUMA);
//! - `/proc/meminfo`: `Hugepagesize:` (the default page size) and `MemTotal:`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{HugepageError, HugetlbMount, PageSize};

/// Where to find sysfs and procfs: `/sys` and `/proc` on the host, or a fake tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    sys: PathBuf,
    proc: PathBuf,
}

/// Page counts for one page size, system-wide or on one NUMA node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCounts {
    pub size: PageSize,
    /// `None`: system-wide.
    pub node: Option<u32>,
    /// Pages in the pool (`nr_hugepages`), surplus included.
    pub total: u64,
    /// Pages no process has faulted in yet (`free_hugepages`).
    pub free: u64,
    /// Pages promised to mappings but not yet faulted in (`resv_hugepages`); always 0 per node.
    pub reserved: u64,
    /// Pages allocated beyond `nr_hugepages` by overcommit (`surplus_hugepages`).
    pub surplus: u64,
}

/// Everything `hugepages --show` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugepageInfo {
    /// Page sizes the kernel supports, smallest first.
    pub sizes: Vec<PageSize>,
    pub default_size: PageSize,
    /// System-wide counts, one per size.
    pub system: Vec<PageCounts>,
    /// Per-node counts, node by node, one per size.
    pub nodes: Vec<PageCounts>,
    pub mounts: Vec<HugetlbMount>,
}

/// The most NUMA nodes a node list may name (Linux's MAX_NUMNODES is at most 1024).
const MAX_NODES: usize = 1 << 16;

impl SysRoot {
    /// The running kernel's `/sys` and `/proc`.
    pub fn host() -> Self {
        SysRoot::at("/")
    }

    /// A tree holding `sys/` and `proc/` under `root` (a fake one, in tests).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        SysRoot { sys: root.join("sys"), proc: root.join("proc") }
    }

    /// The sysfs directory (`/sys` on the host).
    pub fn sys_path(&self) -> &Path {
        &self.sys
    }

    /// The procfs directory (`/proc` on the host).
    pub fn proc_path(&self) -> &Path {
        &self.proc
    }

    pub(crate) fn hugepages_dir(&self) -> PathBuf {
        self.sys.join("kernel/mm/hugepages")
    }

    fn node_root(&self) -> PathBuf {
        self.sys.join("devices/system/node")
    }

    /// The page sizes the kernel supports, smallest first.
    pub fn page_sizes(&self) -> Result<Vec<PageSize>, HugepageError> {
        let dir = self.hugepages_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(HugepageError::NoHugetlb { path: dir }),
            Err(e) => return Err(HugepageError::io(dir, e)),
        };
        let mut sizes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| HugepageError::io(&dir, e))?;
            if let Some(size) = entry.file_name().to_str().and_then(PageSize::from_kib_dir_name) {
                sizes.push(size);
            }
        }
        sizes.sort();
        Ok(sizes)
    }

    /// `s` as a page size this machine supports (`2M`, `1GB`, `2048kB`, ...).
    pub fn page_size(&self, s: &str) -> Result<PageSize, HugepageError> {
        let supported = self.page_sizes()?;
        match s.parse::<PageSize>() {
            Ok(size) if supported.contains(&size) => Ok(size),
            _ => Err(HugepageError::unknown_page_size(s, &supported)),
        }
    }

    /// The default hugepage size (`Hugepagesize:` in `/proc/meminfo`).
    pub fn default_page_size(&self) -> Result<PageSize, HugepageError> {
        let path = self.proc.join("meminfo");
        let kib = self.meminfo_kib("Hugepagesize")?;
        kib.checked_mul(1024)
            .and_then(PageSize::from_bytes)
            .ok_or_else(|| HugepageError::parse(path, format!("`Hugepagesize: {kib} kB` is not a page size")))
    }

    /// The machine's memory in bytes (`MemTotal:` in `/proc/meminfo`).
    pub fn mem_total(&self) -> Result<u64, HugepageError> {
        let kib = self.meminfo_kib("MemTotal")?;
        Ok(kib.saturating_mul(1024))
    }

    /// The value of `key:` in `/proc/meminfo`, in kB.
    fn meminfo_kib(&self, key: &str) -> Result<u64, HugepageError> {
        let path = self.proc.join("meminfo");
        let text = read_text(&path)?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(':')))
            .ok_or_else(|| HugepageError::parse(&path, format!("no `{key}:` line")))?;
        let value = line.trim();
        value
            .strip_suffix("kB")
            .unwrap_or(value)
            .trim()
            .parse::<u64>()
            .map_err(|_| HugepageError::parse(&path, format!("`{key}: {value}` is not a number of kB")))
    }

    /// The online NUMA nodes (`/sys/devices/system/node/online`); `[0]` on a kernel without NUMA.
    pub fn numa_nodes(&self) -> Result<Vec<u32>, HugepageError> {
        let root = self.node_root();
        if !root.is_dir() {
            return Ok(vec![0]);
        }
        let path = root.join("online");
        let text = read_text(&path)?;
        parse_node_list(text.trim()).map_err(|detail| HugepageError::parse(path, detail))
    }

    /// Counts for `size`, system-wide (`node` = `None`) or on one NUMA node.
    pub fn counts(&self, size: PageSize, node: Option<u32>) -> Result<PageCounts, HugepageError> {
        let dir = self.size_dir(size, node)?;
        let per_node = node.is_some() && dir.starts_with(self.node_root());
        Ok(PageCounts {
            size,
            node,
            total: read_u64(&dir.join("nr_hugepages"))?,
            free: read_u64(&dir.join("free_hugepages"))?,
            reserved: if per_node { 0 } else { read_u64(&dir.join("resv_hugepages"))? },
            surplus: read_u64(&dir.join("surplus_hugepages"))?,
        })
    }

    /// The sysfs directory holding `size`'s counts, system-wide or on `node`.
    ///
    /// A kernel without NUMA has no node directories: node 0 is then the whole system.
    pub(crate) fn size_dir(&self, size: PageSize, node: Option<u32>) -> Result<PathBuf, HugepageError> {
        let system = self.hugepages_dir().join(size.kib_dir_name());
        if !system.is_dir() {
            return Err(HugepageError::unknown_page_size(size.to_string(), &self.page_sizes()?));
        }
        let Some(node) = node else { return Ok(system) };
        let node_root = self.node_root();
        if !node_root.is_dir() {
            return match node {
                0 => Ok(system),
                _ => Err(HugepageError::UnknownNode { node, online: vec![0] }),
            };
        }
        let node_dir = node_root.join(format!("node{node}"));
        if !node_dir.is_dir() {
            return Err(HugepageError::UnknownNode { node, online: self.numa_nodes()? });
        }
        Ok(node_dir.join("hugepages").join(size.kib_dir_name()))
    }

    /// Sizes, counts (system-wide and per node) and hugetlbfs mounts, in one go.
    pub fn info(&self) -> Result<HugepageInfo, HugepageError> {
        let sizes = self.page_sizes()?;
        let system = sizes.iter().map(|&s| self.counts(s, None)).collect::<Result<Vec<_>, _>>()?;
        let mut nodes = Vec::new();
        for node in self.numa_nodes()? {
            for &size in &sizes {
                nodes.push(self.counts(size, Some(node))?);
            }
        }
        Ok(HugepageInfo { default_size: self.default_page_size()?, sizes, system, nodes, mounts: self.mounts()? })
    }
}

/// Reads a whole sysfs/procfs file.
pub(crate) fn read_text(path: &Path) -> Result<String, HugepageError> {
    fs::read_to_string(path).map_err(|e| HugepageError::io(path, e))
}

/// Reads a sysfs file holding one decimal number.
pub(crate) fn read_u64(path: &Path) -> Result<u64, HugepageError> {
    let text = read_text(path)?;
    let value = text.trim();
    value.parse::<u64>().map_err(|_| HugepageError::parse(path, format!("`{value}` is not a page count")))
}

/// Parses a kernel node list: `0`, `0-3`, `0,2-3` (Documentation/ABI/stable/sysfs-devices-node).
fn parse_node_list(s: &str) -> Result<Vec<u32>, String> {
    let mut nodes = Vec::new();
    for part in s.split(',') {
        let bad = || format!("`{s}` is not a node list like 0 or 0-3 or 0,2-3");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().map_err(|_| bad())?, b.trim().parse::<u32>().map_err(|_| bad())?),
            None => {
                let n = part.trim().parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if last < first || nodes.len() + (last - first) as usize >= MAX_NODES {
            return Err(bad());
        }
        nodes.extend(first..=last);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepage::fake::FakeSysTree;

    #[test]
    fn node_lists() {
        assert_eq!(parse_node_list("0").unwrap(), vec![0]);
        assert_eq!(parse_node_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_node_list("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_node_list("2-3,0").unwrap(), vec![0, 2, 3]);
        for bad in ["", "a", "3-1", "0,", "-1", "0-", "0-4294967295", "1--2"] {
            assert!(parse_node_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_listed_smallest_first_and_strays_ignored() {
        let tree = FakeSysTree::new().unwrap();
        tree.write("sys/kernel/mm/hugepages/not-a-size/nr_hugepages", "0").unwrap();
        let root = tree.sys_root();
        assert_eq!(root.page_sizes().unwrap(), vec![PageSize::SIZE_2M, PageSize::SIZE_1G]);
        assert_eq!(root.page_size("1GB").unwrap(), PageSize::SIZE_1G);
        assert_eq!(root.page_size("2048kB").unwrap(), PageSize::SIZE_2M);
    }

    #[test]
    fn a_size_the_machine_lacks_is_refused_with_the_ones_it_has() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        for asked in ["4M", "16G", "3M", "lots"] {
            let err = root.page_size(asked).unwrap_err();
            let HugepageError::UnknownPageSize { asked: a, supported } = &err else { panic!("{err:?}") };
            assert_eq!(a, asked);
            assert_eq!(supported, "2M, 1G");
            assert!(err.to_string().contains("2M, 1G"), "{err}");
        }
        let four_m = PageSize::from_bytes(4 << 20).unwrap();
        assert!(matches!(root.counts(four_m, None), Err(HugepageError::UnknownPageSize { .. })));
    }

    #[test]
    fn no_hugepage_dir_means_no_hugetlb_support() {
        let tree = FakeSysTree::new().unwrap();
        tree.remove("sys/kernel/mm/hugepages").unwrap();
        let err = tree.sys_root().page_sizes().unwrap_err();
        assert!(matches!(err, HugepageError::NoHugetlb { .. }), "{err:?}");
        assert!(err.to_string().contains("CONFIG_HUGETLBFS"), "{err}");
    }

    #[test]
    fn default_size_comes_from_meminfo() {
        let tree = FakeSysTree::new().unwrap();
        assert_eq!(tree.sys_root().default_page_size().unwrap(), PageSize::SIZE_2M);
        tree.set_meminfo(PageSize::SIZE_1G, 8 << 30).unwrap();
        assert_eq!(tree.sys_root().default_page_size().unwrap(), PageSize::SIZE_1G);
        assert_eq!(tree.sys_root().mem_total().unwrap(), 8 << 30);
    }

    #[test]
    fn malformed_meminfo_is_an_error_not_a_panic() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        for text in ["", "MemTotal: 100 kB\n", "Hugepagesize: lots kB\n", "Hugepagesize: 3000 kB\n", "Hugepagesize:\n"]
        {
            tree.write("proc/meminfo", text).unwrap();
            let err = root.default_page_size().unwrap_err();
            assert!(matches!(err, HugepageError::Parse { .. }), "{text:?}: {err:?}");
        }
        tree.write("proc/meminfo", &[0xff, 0xfe][..]).unwrap();
        assert!(matches!(root.default_page_size(), Err(HugepageError::Io { .. })));
    }

    #[test]
    fn system_and_node_counts() {
        let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
        tree.set_counts(PageSize::SIZE_2M, None, 6, 5).unwrap();
        tree.write("sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "2\n").unwrap();
        tree.write("sys/kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages", "1\n").unwrap();
        tree.set_counts(PageSize::SIZE_2M, Some(0), 4, 4).unwrap();
        tree.set_counts(PageSize::SIZE_2M, Some(1), 2, 1).unwrap();
        tree.set_counts(PageSize::SIZE_1G, Some(1), 1, 0).unwrap();
        let root = tree.sys_root();

        let system = root.counts(PageSize::SIZE_2M, None).unwrap();
        assert_eq!(
            system,
            PageCounts { size: PageSize::SIZE_2M, node: None, total: 6, free: 5, reserved: 2, surplus: 1 }
        );
        let node1 = root.counts(PageSize::SIZE_2M, Some(1)).unwrap();
        assert_eq!(
            node1,
            PageCounts { size: PageSize::SIZE_2M, node: Some(1), total: 2, free: 1, reserved: 0, surplus: 0 }
        );
        assert_eq!(root.counts(PageSize::SIZE_1G, Some(1)).unwrap().total, 1);
        assert_eq!(root.numa_nodes().unwrap(), vec![0, 1]);

        let err = root.counts(PageSize::SIZE_2M, Some(7)).unwrap_err();
        assert!(matches!(err, HugepageError::UnknownNode { node: 7, ref online } if online == &vec![0, 1]), "{err:?}");
        assert!(err.to_string().contains("node(s) 0, 1"), "{err}");
    }

    #[test]
    fn node_list_forms() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        for (text, nodes) in [("0\n", vec![0]), ("0-3\n", vec![0, 1, 2, 3]), ("0,2-3\n", vec![0, 2, 3])] {
            tree.write("sys/devices/system/node/online", text).unwrap();
            assert_eq!(root.numa_nodes().unwrap(), nodes);
        }
        tree.write("sys/devices/system/node/online", "zero\n").unwrap();
        assert!(matches!(root.numa_nodes(), Err(HugepageError::Parse { .. })));
    }

    #[test]
    fn without_numa_node_0_is_the_whole_system() {
        let tree = FakeSysTree::new().unwrap();
        tree.remove("sys/devices/system/node").unwrap();
        tree.set_counts(PageSize::SIZE_2M, None, 3, 2).unwrap();
        let root = tree.sys_root();
        assert_eq!(root.numa_nodes().unwrap(), vec![0]);
        let node0 = root.counts(PageSize::SIZE_2M, Some(0)).unwrap();
        assert_eq!((node0.node, node0.total, node0.free), (Some(0), 3, 2));
        assert!(matches!(root.counts(PageSize::SIZE_2M, Some(1)), Err(HugepageError::UnknownNode { node: 1, .. })));
    }

    #[test]
    fn malformed_count_files_are_errors_not_panics() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        let nr = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
        for text in ["", "-1", "lots", "99999999999999999999999"] {
            tree.write(nr, text).unwrap();
            let err = root.counts(PageSize::SIZE_2M, None).unwrap_err();
            assert!(matches!(err, HugepageError::Parse { .. }), "{text:?}: {err:?}");
            assert!(err.to_string().contains("nr_hugepages"), "{err}");
        }
        tree.remove(nr).unwrap();
        let err = root.counts(PageSize::SIZE_2M, None).unwrap_err();
        assert!(matches!(err, HugepageError::Io { .. }), "{err:?}");
    }

    #[test]
    fn info_gathers_everything() {
        let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
        tree.set_counts(PageSize::SIZE_2M, None, 4, 4).unwrap();
        tree.set_mounts("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n").unwrap();
        let info = tree.sys_root().info().unwrap();
        assert_eq!(info.sizes, vec![PageSize::SIZE_2M, PageSize::SIZE_1G]);
        assert_eq!(info.default_size, PageSize::SIZE_2M);
        assert_eq!(info.system.len(), 2);
        assert_eq!(info.system[0].total, 4);
        let nodes: Vec<(Option<u32>, PageSize)> = info.nodes.iter().map(|c| (c.node, c.size)).collect();
        assert_eq!(
            nodes,
            vec![
                (Some(0), PageSize::SIZE_2M),
                (Some(0), PageSize::SIZE_1G),
                (Some(1), PageSize::SIZE_2M),
                (Some(1), PageSize::SIZE_1G)
            ]
        );
        assert_eq!(info.mounts, vec![HugetlbMount { path: "/dev/hugepages".into(), page_size: PageSize::SIZE_2M }]);
    }
}
