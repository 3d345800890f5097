//! DMA memory on real hugepages. Needs root (CI runs as root): each test reserves the 2 MiB
//! pages it uses on top of whatever is reserved, mounts its own hugetlbfs, and gives both back
//! when it ends, even when it fails. The tests take turns, since they share the kernel's pool.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use burst_mem::hugepage::{self, fake::FakeSysTree, HugepageError, PageSize, Reservation, SysRoot};
use burst_mem::iova::Pagemap;
use burst_mem::{DmaMapper, IovaMode, MemConfig, MemError, Memory, MemzoneFlags, SocketMem};

const MB2: usize = 2 << 20;
static SERIAL: Mutex<()> = Mutex::new(());

/// A private hugetlbfs mount in a temporary directory, unmounted and removed on drop.
struct TempMount(PathBuf);

impl TempMount {
    /// A 2 MiB-page mount that may hold `pages` pages.
    fn new(pages: u64) -> TempMount {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burst-mem-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        hugepage::mount_limited(&dir, PageSize::SIZE_2M, pages * PageSize::SIZE_2M.bytes())
            .unwrap_or_else(|e| panic!("mount hugetlbfs at {}: {e}", dir.display()));
        TempMount(dir)
    }

    fn files(&self) -> Vec<String> {
        std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        hugepage::unmount(&self.0).unwrap();
        std::fs::remove_dir(&self.0).unwrap();
    }
}

struct Env {
    _serial: MutexGuard<'static, ()>,
    mount: TempMount,
    _pages: Reservation,
}

/// Root, `pages` more 2 MiB pages, and a mount for them.
fn env(pages: u64) -> Env {
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "these tests reserve hugepages and mount hugetlbfs: run them as root (CI does)"
    );
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pages = Reservation::new(&SysRoot::host(), PageSize::SIZE_2M, None, pages).expect("reserving 2M hugepages");
    // The mount may hold only the pages reserved here, so its free count is ours alone, whatever
    // other processes do with the kernel's pool.
    let mount = TempMount::new(pages.pages());
    Env { _serial: serial, mount, _pages: pages }
}

fn config(env: &Env, mode: IovaMode) -> MemConfig {
    MemConfig {
        iova_mode: mode,
        page_size: Some(PageSize::SIZE_2M),
        huge_dir: Some(env.mount.0.clone()),
        file_prefix: "test".into(),
        max_mem_per_socket: 1 << 30,
        ..MemConfig::default()
    }
}

impl Env {
    /// Pages the mount can still hand out (hugetlbfs reports them as free blocks).
    fn free_pages(&self) -> u64 {
        let c = std::ffi::CString::new(self.mount.0.to_str().unwrap()).unwrap();
        // SAFETY: statfs writes into the zeroed struct we pass; `c` is a valid C string.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::statfs(c.as_ptr(), &mut st) }, 0);
        st.f_bfree
    }
}

#[test]
fn pa_translation_gives_page_aligned_distinct_stable_addresses() {
    let env = env(4);
    let mem = Memory::new(config(&env, IovaMode::Pa)).unwrap();
    let zone = mem.reserve("pa", 3 * MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    let pagemap = Pagemap::open().unwrap();
    let mut seen = Vec::new();
    for k in 0..3 {
        let iova = zone.iova_at(k * MB2).unwrap();
        assert_eq!(iova % MB2 as u64, 0, "segment {k} at {iova:#x} is not 2M-aligned");
        // SAFETY: inside the zone.
        let ptr = unsafe { zone.as_ptr().add(k * MB2) };
        assert_eq!(pagemap.phys_addr(ptr as usize).unwrap(), iova, "our IOVA is the kernel's PA");
        assert_eq!(mem.iova_of(ptr), Some(iova));
        assert_eq!(mem.iova_of(ptr.wrapping_add(100)), Some(iova + 100));
        assert!(!seen.contains(&iova), "two segments share {iova:#x}");
        seen.push(iova);
    }
    // Write through the memory, let the kernel do what it likes, and look again.
    // SAFETY: the zone is ours, 3 * 2 MiB long.
    unsafe { std::ptr::write_bytes(zone.as_ptr(), 0xa5, 3 * MB2) };
    std::thread::sleep(std::time::Duration::from_millis(100));
    for (k, &iova) in seen.iter().enumerate() {
        // SAFETY: inside the zone.
        let ptr = unsafe { zone.as_ptr().add(k * MB2) };
        assert_eq!(pagemap.phys_addr(ptr as usize).unwrap(), iova, "segment {k} moved");
    }
    drop(zone);
    drop(mem);
    assert!(env.mount.files().is_empty(), "files left: {:?}", env.mount.files());
}

#[test]
fn two_pages_report_iova_contiguity_truthfully() {
    let env = env(4);
    let mem = Memory::new(config(&env, IovaMode::Pa)).unwrap();
    let zone = mem.reserve("two", 2 * MB2, Some(0), MB2, MemzoneFlags::NONE).unwrap();
    let pagemap = Pagemap::open().unwrap();
    let p0 = pagemap.phys_addr(zone.as_ptr() as usize).unwrap();
    let p1 = pagemap.phys_addr(zone.as_ptr() as usize + MB2).unwrap();
    let really = p1 == p0 + MB2 as u64;
    let reported = zone.iova_at(MB2).unwrap() == zone.iova() + MB2 as u64;
    assert_eq!(reported, really, "PAs {p0:#x}, {p1:#x}");
    drop(zone);
    // Asked IOVA-contiguous, two pages either come out physically contiguous or the request
    // fails saying so.
    match mem.reserve("contig", 2 * MB2, Some(0), MB2, MemzoneFlags::IOVA_CONTIG) {
        Ok(zone) => {
            let p0 = pagemap.phys_addr(zone.as_ptr() as usize).unwrap();
            let p1 = pagemap.phys_addr(zone.as_ptr() as usize + MB2).unwrap();
            assert_eq!(p1, p0 + MB2 as u64, "an IOVA_CONTIG zone must be physically contiguous in PA mode");
            assert!(zone.is_iova_contig());
        }
        Err(MemError::NotEnoughContiguous { asked, found, .. }) => {
            assert_eq!(asked, 2 * MB2 as u64);
            assert!(found < asked);
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
    assert_eq!(mem.stats().segments, 0, "segments tried and not used are given back");
}

#[test]
fn too_little_contiguous_memory_is_a_clear_error() {
    let env = env(2);
    // A mount that holds at most two pages, whatever else the kernel has free.
    let small = TempMount::new(2);
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.huge_dir = Some(small.0.clone());
    let mem = Memory::new(cfg).unwrap();
    let err = mem.reserve("rings", 16 * MB2, Some(0), 4096, MemzoneFlags::IOVA_CONTIG).unwrap_err();
    let MemError::NotEnoughContiguous { asked, found, .. } = &err else { panic!("wrong error: {err}") };
    assert_eq!(*asked, 16 * MB2 as u64);
    assert!(*found >= MB2 as u64 && *found <= 2 * MB2 as u64, "found {found}");
    let msg = err.to_string();
    assert!(msg.contains("rings") && msg.contains("--iova-mode=va"), "{msg}");
    assert_eq!(mem.stats().segments, 0, "nothing stays mapped after a failed reservation");
    assert!(small.files().is_empty());
}

#[test]
fn memory_grows_on_demand_and_gives_whole_segments_back() {
    let env = env(4);
    let free0 = env.free_pages();
    let mem = Memory::new(config(&env, IovaMode::Pa)).unwrap();
    assert_eq!(mem.stats().segments, 0, "nothing is taken before it is needed");
    let a = mem.reserve("a", 1 << 20, None, 64, MemzoneFlags::NONE).unwrap();
    let b = mem.reserve("b", 1 << 20, None, 64, MemzoneFlags::NONE).unwrap();
    assert_eq!(mem.stats().segments, 1, "two 1 MiB zones share one 2 MiB segment");
    let c = mem.reserve("c", 3 << 20, None, 64, MemzoneFlags::NONE).unwrap();
    assert_eq!(mem.stats().segments, 3);
    assert_eq!(env.free_pages(), free0 - 3);
    assert_eq!(env.mount.files().len(), 3, "one file per page: {:?}", env.mount.files());
    assert!(env.mount.files().iter().all(|f| f.starts_with("testmap_")));
    assert_eq!(mem.memzone_info("b").unwrap().len, 1 << 20);
    assert!(matches!(mem.reserve("b", 64, None, 64, MemzoneFlags::NONE), Err(MemError::MemzoneExists { .. })));
    drop(c);
    assert_eq!(mem.stats().segments, 1);
    drop((a, b));
    assert_eq!(mem.stats(), burst_mem::MemStats::default());
    assert_eq!(env.free_pages(), free0, "pages went back to the kernel");
    assert!(env.mount.files().is_empty());
}

#[test]
fn socket_mem_is_reserved_up_front_and_kept() {
    let env = env(4);
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.socket_mem = SocketMem::parse_per_socket("4").unwrap();
    let mem = Memory::new(cfg).unwrap();
    assert_eq!((mem.stats().segments, mem.stats().pinned_segments), (2, 2));
    let z = mem.reserve("inside", 3 << 20, Some(0), 64, MemzoneFlags::NONE).unwrap();
    assert_eq!(mem.stats().segments, 2, "the zone fits in what was pre-reserved");
    drop(z);
    assert_eq!(mem.stats().segments, 2, "pre-reserved memory stays");
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.socket_mem = SocketMem::parse_per_socket("2,2").unwrap();
    assert!(matches!(Memory::new(cfg), Err(MemError::UnknownSocket { socket: 1, .. })));
}

#[test]
fn single_file_segments_use_one_file_per_list() {
    let env = env(4);
    let mut cfg = config(&env, IovaMode::Va);
    cfg.single_file_segments = true;
    let free0 = env.free_pages();
    let mem = Memory::new(cfg).unwrap();
    let z = mem.reserve("sfs", 3 * MB2, None, 64, MemzoneFlags::IOVA_CONTIG).unwrap();
    assert_eq!(z.iova(), z.as_ptr() as u64, "IOVA as VA");
    assert_eq!(env.mount.files().len(), 1, "{:?}", env.mount.files());
    assert_eq!(mem.files().len(), 1);
    assert_eq!(env.free_pages(), free0 - 3);
    drop(z);
    assert_eq!(env.free_pages(), free0, "holes punched in the file give the pages back");
    drop(mem);
    assert!(env.mount.files().is_empty());
}

#[test]
fn anonymous_hugepages_need_no_files() {
    let _env = env(2);
    let mem = Memory::new(MemConfig {
        iova_mode: IovaMode::Pa,
        anonymous: true,
        page_size: Some(PageSize::SIZE_2M),
        max_mem_per_socket: 1 << 30,
        ..MemConfig::default()
    })
    .unwrap();
    let z = mem.reserve("anon", 4096, None, 64, MemzoneFlags::IOVA_CONTIG).unwrap();
    assert_eq!(z.iova() % MB2 as u64, 0);
    assert_eq!(Pagemap::open().unwrap().phys_addr(z.as_ptr() as usize).unwrap(), z.iova());
    assert!(mem.files().is_empty());
}

#[derive(Default)]
struct RecordingMapper {
    mapped: Mutex<Vec<(usize, u64, usize)>>,
    fail: bool,
}

impl DmaMapper for RecordingMapper {
    fn map(&self, va: usize, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if self.fail {
            return Err("IOMMU address width is 39 bits".into());
        }
        self.mapped.lock().unwrap_or_else(|p| p.into_inner()).push((va, iova, len));
        Ok(())
    }

    fn unmap(&self, iova: u64, len: usize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut m = self.mapped.lock().unwrap_or_else(|p| p.into_inner());
        let pos = m.iter().position(|&(_, i, l)| i == iova && l == len).ok_or("unmap of a range never mapped")?;
        m.remove(pos);
        Ok(())
    }
}

#[test]
fn dma_mappers_see_every_segment_added_and_removed() {
    let env = env(4);
    let mut cfg = config(&env, IovaMode::Va);
    cfg.socket_mem = SocketMem::Total(2 << 20);
    let mem = Memory::new(cfg).unwrap();
    let mapper = Arc::new(RecordingMapper::default());
    let id = mem.add_dma_mapper(mapper.clone()).unwrap();
    assert_eq!(mapper.mapped.lock().unwrap().len(), 1, "the pre-reserved segment is mapped at once");
    let z = mem.reserve("dma", 3 * MB2, None, MB2, MemzoneFlags::IOVA_CONTIG).unwrap();
    {
        let m = mapper.mapped.lock().unwrap();
        assert_eq!(m.len(), 3, "the zone starts in the pre-reserved segment and adds two: {m:?}");
        assert!(m.iter().all(|&(va, iova, len)| va as u64 == iova && len == MB2));
    }
    drop(z);
    assert_eq!(mapper.mapped.lock().unwrap().len(), 1, "segments given back are unmapped");
    mem.remove_dma_mapper(id);
    assert!(mapper.mapped.lock().unwrap().is_empty());

    let failing = Arc::new(RecordingMapper { fail: true, ..Default::default() });
    let err = mem.add_dma_mapper(failing).unwrap_err();
    assert!(err.to_string().contains("address width"), "{err}");
}

fn holder_dir() -> Option<PathBuf> {
    std::env::var_os("BURST_MEM_HOLDER_DIR").map(PathBuf::from)
}

/// Run by `stale_files_of_a_killed_process_are_removed` in a child process: takes hugepage
/// memory with prefix `stale`, says so, and waits to be killed.
#[test]
#[ignore = "a helper process for stale_files_of_a_killed_process_are_removed, which runs it"]
fn holder_process() {
    let dir = holder_dir().expect("run by stale_files_of_a_killed_process_are_removed");
    let mem = Memory::new(MemConfig {
        huge_dir: Some(dir),
        page_size: Some(PageSize::SIZE_2M),
        file_prefix: "stale".into(),
        max_mem_per_socket: 1 << 30,
        ..MemConfig::default()
    })
    .unwrap();
    let _z = mem.reserve("held", 3 * MB2, None, 64, MemzoneFlags::NONE).unwrap();
    println!("holding");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn stale_files_of_a_killed_process_are_removed() {
    let env = env(3);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "holder_process", "--nocapture", "--test-threads=1"])
        .env("BURST_MEM_HOLDER_DIR", &env.mount.0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("holding")), "the holder never got its memory");
    assert_eq!(env.mount.files().len(), 3);
    // A live owner's files are left alone.
    assert!(burst_mem::remove_stale_files(&env.mount.0, "stale").unwrap().is_empty());
    assert_eq!(env.mount.files().len(), 3);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.mount.files().len(), 3, "a crash leaves its files behind");
    let free_before = env.free_pages();
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.file_prefix = "stale".into();
    let mem = Memory::new(cfg).unwrap();
    assert!(env.mount.files().is_empty(), "left: {:?}", env.mount.files());
    assert_eq!(env.free_pages(), free_before + 3, "their pages are free again");
    drop(mem);
}

#[test]
fn no_free_hugepages_says_how_to_reserve_them() {
    let env = env(1);
    // A mount that holds at most one page stands for a machine with one free page.
    let small = TempMount::new(1);
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.huge_dir = Some(small.0.clone());
    let mem = Memory::new(cfg).unwrap();
    let err = mem.reserve("big", 3 * MB2, None, 64, MemzoneFlags::NONE).unwrap_err();
    assert!(matches!(err, MemError::NoFreeHugepages { .. }), "{err:?}");
    assert!(err.to_string().contains("hugepages --reserve"), "{err}");
    assert_eq!(mem.stats().segments, 0);
    assert!(small.files().is_empty());
}

#[test]
fn configuration_errors_are_typed_and_say_what_to_do() {
    let tree = FakeSysTree::new().unwrap();
    let fake = |page_size| MemConfig { sys: tree.sys_root(), page_size, ..MemConfig::default() };

    let err = Memory::new(fake(None)).unwrap_err();
    assert!(matches!(err, MemError::Hugepage(HugepageError::NoMount { .. })), "{err:?}");
    assert!(err.to_string().contains("hugepages --mount"), "{err}");

    tree.remove("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages").unwrap();
    let only_2m = FakeSysTree::new().unwrap();
    std::fs::remove_dir_all(only_2m.path().join("sys/kernel/mm/hugepages/hugepages-1048576kB")).unwrap();
    let err =
        Memory::new(MemConfig { sys: only_2m.sys_root(), page_size: Some(PageSize::SIZE_1G), ..MemConfig::default() })
            .unwrap_err();
    assert!(matches!(err, MemError::Hugepage(HugepageError::UnknownPageSize { .. })), "{err:?}");
    assert!(err.to_string().contains("2M"), "{err}");

    let err = Memory::new(MemConfig { no_huge: true, iova_mode: IovaMode::Pa, ..MemConfig::default() }).unwrap_err();
    assert!(matches!(err, MemError::NoHugeNeedsVa));
    assert!(err.to_string().contains("--iova-mode=va"));

    let err = Memory::new(MemConfig { huge_dir: Some(Path::new("/tmp").into()), ..MemConfig::default() }).unwrap_err();
    assert!(err.to_string().contains("not a hugetlbfs mount"), "{err}");
}

#[test]
fn packet_buffers_in_pa_mode_are_iova_contiguous_end_to_end() {
    let env = env(4);
    let mem = Memory::new(config(&env, IovaMode::Pa)).unwrap();
    // A small zone first, so the pool does not start on a segment boundary by luck.
    let _pad = mem.reserve("pad", 4096, None, 64, MemzoneFlags::NONE).unwrap();
    // 2048 buffers of 2304 bytes need about 2.25 segments.
    let pool = burst_mem::PacketPool::new(&mem, &burst_mem::PacketPoolConfig::new("pa_pkts", 2048)).unwrap();
    assert!(mem.stats().segments >= 3);
    let pagemap = Pagemap::open().unwrap();
    let mut bufs = Vec::with_capacity(2048);
    assert!(pool.alloc_bulk(&mut bufs, 2048));
    for b in &bufs {
        let first = b.buf_addr() as usize;
        let last = first + b.buf_len() - 1;
        assert_eq!(pagemap.phys_addr(first).unwrap(), b.buf_iova());
        assert_eq!(
            pagemap.phys_addr(last).unwrap(),
            b.buf_iova() + b.buf_len() as u64 - 1,
            "buffer at {first:#x} straddles two pages that are not physically contiguous"
        );
    }
    burst_mem::PacketPool::free_bulk(&mut bufs);
    assert!(pool.mempool().is_full());
    drop(pool);
    drop(_pad);
    assert_eq!(mem.stats().segments, 0);
}

#[test]
fn files_of_an_earlier_process_with_our_pid_are_stale_but_our_own_are_not() {
    let env = env(2);
    let mut cfg = config(&env, IovaMode::Pa);
    cfg.file_prefix = "mine".into();
    let mem = Memory::new(cfg.clone()).unwrap();
    let _z = mem.reserve("held", 4096, None, 64, MemzoneFlags::NONE).unwrap();
    let ours = env.mount.files();
    assert_eq!(ours.len(), 1);
    // What a process before us with the same pid (a restarted container) would have left.
    let old = env.mount.0.join(format!("minemap_{}_999999_0_0", std::process::id()));
    std::fs::File::create(&old).unwrap();
    let removed = burst_mem::remove_stale_files(&env.mount.0, "mine").unwrap();
    assert_eq!(removed, vec![old]);
    assert_eq!(env.mount.files(), ours, "a live memory's locked files stay");
}
