//! The actions that change the machine: clear, unmount, mount (reserve is `SysRoot::reserve`).

use std::io;
use std::path::{Path, PathBuf};

use burst_mem::hugepage::{self, HugepageError, PageSize, SysRoot};

/// Everything `hugepages` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Hugepage(#[from] HugepageError),

    #[error(
        "{} already has a hugetlbfs mount for {mounted} pages, not {wanted}: unmount it first \
         (`hugepages --unmount --directory {}`) or choose another --directory",
        path.display(),
        path.display()
    )]
    MountedOther { path: PathBuf, mounted: PageSize, wanted: PageSize },

    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

/// `size` if the machine has it.
pub fn check_supported(root: &SysRoot, size: PageSize) -> Result<PageSize, HugepageError> {
    root.page_size(&size.to_string())
}

/// Sets every page size on every node to 0, like `dpdk-hugepages.py --clear`. Goes through them
/// all even if one fails (pages in use), then reports the first failure.
pub fn clear(root: &SysRoot) -> Result<(), HugepageError> {
    let mut first_error = None;
    for node in root.numa_nodes()? {
        for size in root.page_sizes()? {
            let result = match root.set_total(size, Some(node), 0) {
                Ok(0) => Ok(()),
                Ok(pages) => Err(HugepageError::InUse { size, node: Some(node), pages }),
                Err(HugepageError::NotRoot { .. }) => {
                    Err(HugepageError::NotRoot { what: "releasing hugepages", command: "hugepages --clear".to_owned() })
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Unmounts every hugetlbfs (latest first), or only those at `dir`. Nothing mounted is not an error.
pub fn unmount(root: &SysRoot, dir: Option<&Path>) -> Result<(), HugepageError> {
    let dir = dir.map(absolute);
    for m in root.mounts()?.iter().rev() {
        if dir.as_ref().is_none_or(|d| *d == m.path) {
            hugepage::unmount(&m.path)?;
        }
    }
    Ok(())
}

/// Mounts a hugetlbfs for `size` at `dir` unless one for `size` is there already.
pub fn mount(root: &SysRoot, dir: &Path, size: PageSize) -> Result<(), ToolError> {
    let dir = absolute(dir);
    match root.mounts()?.into_iter().find(|m| m.path == dir) {
        Some(m) if m.page_size == size => Ok(()),
        Some(m) => Err(ToolError::MountedOther { path: dir, mounted: m.page_size, wanted: size }),
        None => Ok(hugepage::mount(&dir, size)?),
    }
}

/// `dir` as `/proc/mounts` writes it: absolute, symlinks resolved (when it exists).
fn absolute(dir: &Path) -> PathBuf {
    dir.canonicalize().or_else(|_| std::path::absolute(dir)).unwrap_or_else(|_| dir.to_owned())
}
