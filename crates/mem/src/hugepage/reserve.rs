//! Reserving hugepages: writing `nr_hugepages`, and a lock and a guard for tests and tools that
//! share one machine.
//!
//! Writing `nr_hugepages` asks the kernel to grow or shrink the pool; it allocates what it can and
//! the file then reads back what it got (Documentation/admin-guide/mm/hugetlbpage.rst). Pages in
//! use are never taken away: shrinking below them leaves them as surplus until they are freed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::sysfs::read_u64;
use super::{format_size, HugepageError, PageSize, SysRoot};

/// The lock file [`reservation_lock`] takes.
pub const RESERVATION_LOCK_PATH: &str = "/tmp/burst-hugepages.lock";

impl SysRoot {
    /// Sets the pool of `size` pages, system-wide or on `node`, to `pages` (writes `nr_hugepages`).
    /// Returns the pool size read back: the kernel may give fewer when memory is fragmented, and
    /// keeps pages in use when asked to shrink below them.
    pub fn set_total(&self, size: PageSize, node: Option<u32>, pages: u64) -> Result<u64, HugepageError> {
        let path = self.size_dir(size, node)?.join("nr_hugepages");
        write_count(&path, pages).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => {
                HugepageError::NotRoot { what: "reserving hugepages", command: reserve_command(size, node, pages) }
            }
            _ => HugepageError::io(&path, e),
        })?;
        let got = read_u64(&path)?;
        tracing::debug!(%size, ?node, asked = pages, got, "set nr_hugepages");
        Ok(got)
    }

    /// Sets the pool of `size` pages to hold `bytes` (rounded up to whole pages), like
    /// `dpdk-hugepages.py --reserve`: the pool is set to that, not grown by it. Returns the pages
    /// now in the pool. When the kernel gives fewer, the pages it gave stay reserved and the error
    /// says how many.
    pub fn reserve(&self, bytes: u64, size: PageSize, node: Option<u32>) -> Result<u64, HugepageError> {
        let pages = size.pages_for(bytes);
        let asked_bytes = pages.saturating_mul(size.bytes());
        // The kernel would try to take every free page before giving up: refuse the impossible.
        let mem_total_bytes = self.mem_total()?;
        if asked_bytes > mem_total_bytes {
            return Err(HugepageError::TooLarge { asked_bytes, mem_total_bytes });
        }
        let got = self.set_total(size, node, pages)?;
        if got < pages {
            return Err(HugepageError::NotEnough { size, asked: pages, got });
        }
        Ok(got)
    }
}

/// Writes a count to a sysfs file in one `write(2)`, as sysfs wants.
fn write_count(path: &Path, pages: u64) -> io::Result<()> {
    // No `create`: a missing file is an error, not a new file. `truncate` matters only for fake trees.
    let mut file = OpenOptions::new().write(true).truncate(true).open(path)?;
    file.write_all(format!("{pages}\n").as_bytes())
}

/// The `hugepages` command an admin would run to set this pool.
fn reserve_command(size: PageSize, node: Option<u32>, pages: u64) -> String {
    let bytes = format_size(pages.saturating_mul(size.bytes()));
    let node = node.map(|n| format!(" --node {n}")).unwrap_or_default();
    format!("hugepages --reserve {bytes} --pagesize {size}{node}")
}

/// An exclusive `flock(2)` on [`RESERVATION_LOCK_PATH`], held until dropped.
///
/// Everything in burst that changes `nr_hugepages` relative to its current value (read, add,
/// write) does it under this lock, so two processes (or two tests) never lose each other's pages.
#[derive(Debug)]
pub struct ReservationLock {
    // Closing the file releases the lock.
    _file: File,
}

/// Takes the machine-wide reservation lock, waiting for whoever holds it.
///
/// A thread that holds it must not call [`Reservation::new`] or drop a [`Reservation`]: they take
/// it too, and would wait forever.
pub fn reservation_lock() -> Result<ReservationLock, HugepageError> {
    let path = Path::new(RESERVATION_LOCK_PATH);
    let lock_err = |source| HugepageError::Lock { path: path.to_owned(), source };
    // flock works on a read-only descriptor too: fall back to one if another user owns the file.
    let file = match OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path).map_err(lock_err)?,
        Err(e) => return Err(lock_err(e)),
    };
    loop {
        // SAFETY: flock only reads the descriptor number, which `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(ReservationLock { _file: file });
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(lock_err(err));
        }
    }
}

/// Pages added to a pool for as long as this guard lives: [`Reservation::new`] adds them to
/// whatever the pool holds, dropping (or [`Reservation::release`]) takes the same number away,
/// both under [`reservation_lock`]. Others' pages are left alone, so guards can overlap.
#[derive(Debug)]
pub struct Reservation {
    root: SysRoot,
    size: PageSize,
    node: Option<u32>,
    pages: u64,
    released: bool,
}

impl Reservation {
    /// Adds `pages` pages of `size` to the pool (system-wide or on `node`).
    ///
    /// If the kernel gives fewer, the ones it gave are put back and the error is
    /// [`HugepageError::NotEnough`] with `asked` = `pages` and `got` = how many it gave.
    pub fn new(root: &SysRoot, size: PageSize, node: Option<u32>, pages: u64) -> Result<Self, HugepageError> {
        let _lock = reservation_lock()?;
        let before = root.counts(size, node)?.total;
        let want = before.saturating_add(pages);
        match root.reserve(want.saturating_mul(size.bytes()), size, node) {
            Ok(got) => Ok(Reservation { root: root.clone(), size, node, pages: got - before, released: false }),
            Err(HugepageError::NotEnough { got, .. }) => {
                if got > before {
                    if let Err(e) = root.set_total(size, node, before) {
                        tracing::warn!(%size, ?node, pages = got - before, "could not give back pages: {e}");
                    }
                }
                Err(HugepageError::NotEnough { size, asked: pages, got: got.saturating_sub(before) })
            }
            Err(e) => Err(e),
        }
    }

    /// The pages this guard added.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn size(&self) -> PageSize {
        self.size
    }

    pub fn node(&self) -> Option<u32> {
        self.node
    }

    /// Takes the pages away again, reporting what dropping would only log.
    pub fn release(mut self) -> Result<(), HugepageError> {
        self.released = true;
        self.give_back()
    }

    fn give_back(&self) -> Result<(), HugepageError> {
        let _lock = reservation_lock()?;
        let now = self.root.counts(self.size, self.node)?.total;
        let target = now.saturating_sub(self.pages);
        let got = self.root.set_total(self.size, self.node, target)?;
        if got > target {
            return Err(HugepageError::InUse { size: self.size, node: self.node, pages: got - target });
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.give_back() {
                tracing::warn!(size = %self.size, node = ?self.node, pages = self.pages, "hugepage reservation not released: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepage::fake::FakeSysTree;

    const NR_2M: &str = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

    #[test]
    fn set_total_writes_the_file_and_reads_it_back() {
        let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
        tree.write(NR_2M, "1024\n").unwrap();
        let root = tree.sys_root();
        assert_eq!(root.set_total(PageSize::SIZE_2M, None, 4).unwrap(), 4);
        assert_eq!(tree.read(NR_2M).unwrap(), "4\n");
        assert_eq!(root.set_total(PageSize::SIZE_1G, Some(1), 2).unwrap(), 2);
        assert_eq!(
            tree.read("sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages").unwrap(),
            "2\n"
        );
        assert_eq!(root.counts(PageSize::SIZE_1G, Some(1)).unwrap().total, 2);
        assert!(matches!(root.set_total(PageSize::SIZE_2M, Some(5), 1), Err(HugepageError::UnknownNode { .. })));
    }

    #[test]
    fn set_total_never_creates_files() {
        let tree = FakeSysTree::new().unwrap();
        tree.remove(NR_2M).unwrap();
        let err = tree.sys_root().set_total(PageSize::SIZE_2M, None, 4).unwrap_err();
        assert!(matches!(err, HugepageError::Io { .. }), "{err:?}");
        assert!(tree.read(NR_2M).is_err());
    }

    #[test]
    fn reserve_rounds_up_to_whole_pages() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        assert_eq!(root.reserve(512 << 20, PageSize::SIZE_2M, None).unwrap(), 256);
        assert_eq!(root.reserve((512 << 20) + 1, PageSize::SIZE_2M, None).unwrap(), 257);
        assert_eq!(root.reserve(1, PageSize::SIZE_1G, Some(0)).unwrap(), 1);
        assert_eq!(tree.read(NR_2M).unwrap(), "257\n");
    }

    #[test]
    fn reserve_refuses_more_than_the_machine_has() {
        let tree = FakeSysTree::new().unwrap();
        tree.set_meminfo(PageSize::SIZE_2M, 1 << 30).unwrap();
        let err = tree.sys_root().reserve(2 << 30, PageSize::SIZE_2M, None).unwrap_err();
        assert!(matches!(err, HugepageError::TooLarge { .. }), "{err:?}");
        assert_eq!(tree.read(NR_2M).unwrap(), "0\n", "nothing written");
    }

    #[test]
    fn not_enough_says_what_it_got_and_what_to_do() {
        let err = HugepageError::NotEnough { size: PageSize::SIZE_1G, asked: 4, got: 1 };
        let msg = err.to_string();
        for needle in ["asked for 4 1G hugepages", "reserved only 1", "fragmented", "hugepages="] {
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn permission_denied_says_run_as_root_with_the_command() {
        let err = HugepageError::NotRoot {
            what: "reserving hugepages",
            command: reserve_command(PageSize::SIZE_2M, None, 256),
        };
        assert_eq!(
            err.to_string(),
            "reserving hugepages needs root: run as root or ask an admin to run `hugepages --reserve 512M --pagesize 2M`"
        );
        assert!(reserve_command(PageSize::SIZE_1G, Some(1), 2).ends_with("--reserve 2G --pagesize 1G --node 1"));
    }

    #[test]
    fn a_reservation_adds_and_gives_back_only_its_own_pages() {
        let tree = FakeSysTree::new().unwrap();
        tree.write(NR_2M, "10\n").unwrap();
        let root = tree.sys_root();
        let a = Reservation::new(&root, PageSize::SIZE_2M, None, 4).unwrap();
        assert_eq!((a.pages(), a.size(), a.node()), (4, PageSize::SIZE_2M, None));
        assert_eq!(tree.read(NR_2M).unwrap(), "14\n");
        let b = Reservation::new(&root, PageSize::SIZE_2M, None, 3).unwrap();
        assert_eq!(tree.read(NR_2M).unwrap(), "17\n");
        drop(a);
        assert_eq!(tree.read(NR_2M).unwrap(), "13\n");
        b.release().unwrap();
        assert_eq!(tree.read(NR_2M).unwrap(), "10\n");
    }

    #[test]
    fn the_lock_excludes_other_holders() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let held = Arc::new(AtomicBool::new(false));
        let lock = reservation_lock().unwrap();
        held.store(true, Ordering::SeqCst);
        let waiter = {
            let held = Arc::clone(&held);
            std::thread::spawn(move || {
                let _lock = reservation_lock().unwrap();
                held.load(Ordering::SeqCst)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        held.store(false, Ordering::SeqCst);
        drop(lock);
        assert!(!waiter.join().unwrap(), "the second holder got the lock while the first held it");
    }
}
