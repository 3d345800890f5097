//! Hugepages on the real host: reserve, count, mount, map a page, unmount, give back. Needs root:
//! run as root (`cargo test -p burst-mem --test hugepage_root`); as anyone else these tests fail.
//!
//! Other tests (and other processes) reserve hugepages on the same machine at the same time, so
//! these only ever add to a pool and take away what they added ([`Reservation`], under
//! [`burst_mem::hugepage::reservation_lock`]); [`Reservation::new`] sets the pool through
//! [`SysRoot::reserve`]. Every reservation, mount, mapping and directory is held by a guard, so a
//! failing assertion still leaves the machine as it found it.
//!
//! 1G pages: on the project's machines (a VM with 24 GiB, kernel 6.18, nothing reserved at boot)
//! the kernel usually finds a free 1 GiB block at runtime, and then
//! `hugepages_1g_reserve_mount_use_release` checks it as the 2M case does. Whether it can depends
//! on how fragmented memory is at that moment, which a test cannot control; when the kernel
//! gives none, the test checks the other real behaviour instead: a `NotEnough` error that says
//! how many were asked and got and what to do, and a pool left exactly as it was.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use burst_mem::hugepage::{self, HugepageError, HugetlbMount, PageSize, Reservation, SysRoot};

fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "hugepage_root tests need root (they reserve hugepages and mount hugetlbfs): \
             run `cargo test -p burst-mem --test hugepage_root` as root"
        );
    }
}

/// A fresh directory with a hugetlbfs mounted on it; unmounted and removed on drop.
struct HugetlbfsDir {
    path: PathBuf,
}

impl HugetlbfsDir {
    fn mount(size: PageSize) -> HugetlbfsDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("burst-hugetlbfs-{}-{n}-{size}", std::process::id()));
        fs::create_dir(&path).expect("create the mount point");
        let path = path.canonicalize().expect("canonical mount point");
        // Guard first, so a failed mount still removes the directory.
        let dir = HugetlbfsDir { path };
        hugepage::mount(&dir.path, size).expect("mount hugetlbfs");
        dir
    }
}

impl Drop for HugetlbfsDir {
    fn drop(&mut self) {
        // Already unmounted (the test did it) is fine: unmount then refuses a non-hugetlbfs.
        let _ = hugepage::unmount(&self.path);
        let _ = fs::remove_dir(&self.path);
    }
}

/// One hugepage-backed file mapping; unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
    _file: File,
}

impl Mapping {
    /// Creates `path` one page long and maps it shared.
    fn new(path: &Path, size: PageSize) -> Mapping {
        let file = File::options().read(true).write(true).create_new(true).open(path).expect("create a file");
        file.set_len(size.bytes()).expect("size the file to one page");
        let len = usize::try_from(size.bytes()).expect("page fits in usize");
        // SAFETY: a fresh shared mapping of a file we own; the kernel picks the address, and
        // nothing else refers to that range.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap a hugetlbfs file: {}", std::io::Error::last_os_error());
        Mapping { ptr: ptr.cast(), len, _file: file }
    }

    /// Writes the first and last byte and reads them back (faulting the page in).
    fn touch(&self) {
        // SAFETY: both offsets are inside the `len`-byte mapping, which lives as long as `self`;
        // volatile so the accesses really happen.
        unsafe {
            self.ptr.write_volatile(0xa5);
            self.ptr.add(self.len - 1).write_volatile(0x5a);
            assert_eq!(self.ptr.read_volatile(), 0xa5);
            assert_eq!(self.ptr.add(self.len - 1).read_volatile(), 0x5a);
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is exactly the mapping made in `new`, unmapped only here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The block size `statfs(2)` reports for `path` (a hugetlbfs reports its page size).
fn block_size(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `buf` is a writable `statfs`.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    assert_eq!(rc, 0, "statfs {}: {}", path.display(), std::io::Error::last_os_error());
    u64::try_from(buf.f_bsize).unwrap()
}

/// Reserve, check the counts, mount, map and touch a page, unmount, give the pages back.
fn reserve_mount_use_release(size: PageSize, pages: u64) {
    let host = SysRoot::host();
    assert!(host.page_sizes().unwrap().contains(&size), "this machine has no {size} pages");

    let before = host.counts(size, None).unwrap().total;
    let reservation = match Reservation::new(&host, size, None, pages) {
        Ok(r) => r,
        Err(e @ HugepageError::NotEnough { .. }) if size == PageSize::SIZE_1G => {
            let HugepageError::NotEnough { asked, got, .. } = e else { unreachable!() };
            assert_eq!(asked, pages);
            assert!(got < pages);
            assert!(e.to_string().contains("at boot"), "the error says what to do: {e}");
            assert_eq!(host.counts(size, None).unwrap().total, before, "the pages it got were given back");
            eprintln!("no free 1G block at runtime here; checked the NotEnough path instead: {e}");
            return;
        }
        Err(e) => panic!("reserving {pages} {size} pages: {e}"),
    };
    assert_eq!((reservation.pages(), reservation.size(), reservation.node()), (pages, size, None));
    let counts = host.counts(size, None).unwrap();
    assert!(counts.total >= pages, "{counts:?}");
    assert!(counts.free >= pages, "{counts:?}");
    let node0 = host.counts(size, Some(0)).unwrap();
    assert!(node0.total >= pages, "one NUMA node holds them all: {node0:?}");

    let dir = HugetlbfsDir::mount(size);
    let expected = HugetlbMount { path: dir.path.clone(), page_size: size };
    assert!(host.mounts().unwrap().contains(&expected), "{expected:?} not in {:?}", host.mounts());
    assert_eq!(block_size(&dir.path), size.bytes());

    {
        let mapping = Mapping::new(&dir.path.join("page"), size);
        mapping.touch();
    }

    hugepage::unmount(&dir.path).unwrap();
    assert!(!host.mounts().unwrap().iter().any(|m| m.path == dir.path), "still mounted");
    drop(dir);
    assert!(!expected.path.exists(), "mount point left behind");

    // Gives back exactly what it added, checking the kernel took them.
    reservation.release().unwrap();
}

#[test]
fn hugepages_2m_reserve_mount_use_release() {
    require_root();
    reserve_mount_use_release(PageSize::SIZE_2M, 4);
}

#[test]
fn hugepages_1g_reserve_mount_use_release() {
    require_root();
    reserve_mount_use_release(PageSize::SIZE_1G, 1);
}

#[test]
fn hugepage_mount_for_finds_a_fresh_mount() {
    require_root();
    let host = SysRoot::host();
    let dir = HugetlbfsDir::mount(PageSize::SIZE_2M);
    // Any 2M mount will do (another may be first); what matters is that one is found.
    let found = host.mount_for(PageSize::SIZE_2M).unwrap();
    assert_eq!(found.page_size, PageSize::SIZE_2M);
    assert!(host.mounts().unwrap().iter().any(|m| m.path == dir.path));
}

#[test]
fn hugepage_unmount_refuses_what_is_not_hugetlbfs() {
    require_root();
    let err = hugepage::unmount(std::env::temp_dir()).unwrap_err();
    assert!(matches!(err, HugepageError::NotHugetlbfs { .. }), "{err:?}");
}
