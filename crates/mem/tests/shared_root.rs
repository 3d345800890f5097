//! Sharing DMA memory by file descriptor (what a vhost-user frontend hands its backend), on real
//! hugepages. **Needs root** (CI runs as root): each test reserves the 2 MiB pages it uses on top
//! of whatever is reserved (a `Reservation` guard), mounts its own size-limited hugetlbfs, and
//! gives both back when it ends, even when it fails.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use burst_mem::hugepage::{self, PageSize, Reservation, SysRoot};
use burst_mem::shared::{MemoryListener, RegionSet, SharedSegment};
use burst_mem::{IovaMode, MemConfig, MemError, Memory, MemzoneFlags};

const MB2: usize = 2 << 20;
static SERIAL: Mutex<()> = Mutex::new(());

/// A private hugetlbfs mount in a temporary directory, unmounted and removed on drop.
struct TempMount(PathBuf);

impl Drop for TempMount {
    fn drop(&mut self) {
        hugepage::unmount(&self.0).unwrap();
        std::fs::remove_dir(&self.0).unwrap();
    }
}

struct Env {
    mount: TempMount,
    _pages: Reservation,
    _serial: MutexGuard<'static, ()>,
}

fn env(pages: u64) -> Env {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests reserve hugepages and mount hugetlbfs: run them as root (CI does)");
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let reservation =
        Reservation::new(&SysRoot::host(), PageSize::SIZE_2M, None, pages).expect("reserving 2M hugepages");
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "burst-shared-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    hugepage::mount_limited(&dir, PageSize::SIZE_2M, reservation.pages() * MB2 as u64)
        .unwrap_or_else(|e| panic!("mount hugetlbfs at {}: {e}", dir.display()));
    Env { mount: TempMount(dir), _pages: reservation, _serial: serial }
}

fn config(env: &Env, single_file: bool) -> MemConfig {
    MemConfig {
        iova_mode: IovaMode::Va,
        page_size: Some(PageSize::SIZE_2M),
        huge_dir: Some(env.mount.0.clone()),
        file_prefix: "share".into(),
        single_file_segments: single_file,
        max_mem_per_socket: 1 << 30,
        ..MemConfig::default()
    }
}

/// Maps `len` bytes of `fd` from `offset` a second time, as a backend would.
fn map_again(fd: i32, offset: u64, len: usize) -> *mut u8 {
    // SAFETY: a fresh shared mapping of a file we were given; the kernel picks the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap of a shared region: {}", std::io::Error::last_os_error());
    p.cast()
}

/// Needs root.
#[test]
fn root_single_file_segments_share_as_one_region_that_maps_the_same_bytes() {
    let env = env(4);
    let mem = Memory::new(config(&env, true)).unwrap();
    let zone = mem.reserve("z", 3 * MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    let regions = mem.shared_regions().unwrap();
    assert_eq!(regions.len(), 1, "three neighbouring segments of one file merge: {regions:?}");
    let r = &regions[0];
    assert_eq!(r.len, 3 * MB2);
    assert!(r.va <= zone.as_ptr() as usize && zone.as_ptr() as usize + 3 * MB2 <= r.va + r.len);
    // SAFETY: the zone is ours, 3 * 2 MiB long.
    unsafe { zone.as_ptr().add(MB2 + 5).write_volatile(0x5a) };
    let other = map_again(r.fd.as_raw_fd(), r.offset, r.len);
    let at = zone.as_ptr() as usize + MB2 + 5 - r.va;
    // SAFETY: `other` maps `r.len` bytes and `at` is inside.
    assert_eq!(unsafe { other.add(at).read_volatile() }, 0x5a, "the second mapping sees our bytes");
    // SAFETY: unmapping what map_again mapped.
    unsafe { libc::munmap(other.cast(), r.len) };
    drop(regions);
    drop(zone);
    drop(mem);
}

/// Needs root.
#[test]
fn root_a_file_per_page_gives_a_region_per_page() {
    let env = env(4);
    let mem = Memory::new(config(&env, false)).unwrap();
    let _zone = mem.reserve("z", 2 * MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    let regions = mem.shared_regions().unwrap();
    assert_eq!(regions.len(), 2, "{regions:?}");
    assert!(regions.iter().all(|r| r.len == MB2 && r.offset == 0));
}

/// Records what it is told, into a [`RegionSet`]; refuses segments once `refuse` is set.
#[derive(Default)]
struct Recorder {
    set: Mutex<RegionSet>,
    events: Mutex<Vec<(bool, usize)>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl MemoryListener for Recorder {
    fn segment_added(&self, seg: &SharedSegment<'_>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.refuse.load(Ordering::Relaxed) {
            return Err("too many regions".into());
        }
        self.set.lock().unwrap().insert(seg)?;
        self.events.lock().unwrap().push((true, seg.va));
        Ok(())
    }

    fn segment_removed(&self, seg: &SharedSegment<'_>) {
        self.set.lock().unwrap().remove(seg.va);
        self.events.lock().unwrap().push((false, seg.va));
    }
}

/// Needs root.
#[test]
fn root_listeners_hear_of_segments_before_use_and_can_refuse_them() {
    let env = env(4);
    let mem = Memory::new(config(&env, true)).unwrap();
    let first = mem.reserve("first", MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    let rec = Arc::new(Recorder::default());
    let id = mem.add_memory_listener(rec.clone()).unwrap();
    assert_eq!(rec.events.lock().unwrap().clone(), [(true, first.as_ptr() as usize)], "told of what is mapped now");
    let later = mem.reserve("later", MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    assert_eq!(rec.events.lock().unwrap().len(), 2, "told of the new segment before reserve returned");
    assert_eq!(
        rec.set.lock().unwrap().regions(),
        mem.shared_regions().unwrap(),
        "the listener's table is the memory's"
    );
    drop(later);
    assert_eq!(*rec.events.lock().unwrap().last().unwrap(), (false, first.as_ptr() as usize + MB2));
    rec.refuse.store(true, Ordering::Relaxed);
    let err = mem.reserve("refused", MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap_err();
    assert!(matches!(err, MemError::DmaMap { .. }) && err.to_string().contains("too many regions"), "{err}");
    assert_eq!(mem.stats().segments, 1, "a refused segment is given back");
    mem.remove_memory_listener(id);
    let _after = mem.reserve("after", MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    assert_eq!(rec.events.lock().unwrap().len(), 3, "a removed listener hears nothing");
}

/// Needs root (the mount), though anonymous memory needs no file.
#[test]
fn root_anonymous_memory_is_not_shareable_and_says_what_to_do() {
    let env = env(2);
    let mut cfg = config(&env, true);
    cfg.anonymous = true;
    let mem = Memory::new(cfg).unwrap();
    let err = mem.shared_regions().unwrap_err();
    assert!(err.to_string().contains("--in-memory") && err.to_string().contains("--single-file-segments"), "{err}");
    let err = mem.add_memory_listener(Arc::new(Recorder::default())).unwrap_err();
    assert!(matches!(err, MemError::NotShareable { .. }), "{err}");
    let cfg = MemConfig { no_huge: true, ..config(&env, false) };
    let mem = Memory::new(cfg).unwrap();
    let err = mem.shared_regions().unwrap_err();
    assert!(err.to_string().contains("--no-huge"), "{err}");
}
