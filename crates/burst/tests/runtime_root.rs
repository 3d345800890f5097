//! The runtime on real hugepages. **Needs root** (CI runs as root): each test reserves the 2 MiB
//! pages it uses on top of whatever is reserved (a `Reservation` guard), mounts its own
//! size-limited hugetlbfs, and gives both back when it ends, even when it fails. The tests take
//! turns, since they share the kernel's pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use burst::mem::hugepage::{self, PageSize, Reservation, SysRoot};
use burst::{EalOptions, PacketBuf, PortConf, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

/// A private hugetlbfs mount in a temporary directory, unmounted and removed on drop.
struct TempMount(PathBuf);

impl TempMount {
    /// A 2 MiB-page mount that may hold `pages` pages.
    fn new(pages: u64) -> TempMount {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burst-runtime-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        hugepage::mount_limited(&dir, PageSize::SIZE_2M, pages * PageSize::SIZE_2M.bytes())
            .unwrap_or_else(|e| panic!("mount hugetlbfs at {}: {e}", dir.display()));
        TempMount(dir)
    }

    /// The files whose names start with `prefix`.
    fn files(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect()
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

/// Root, `pages` more 2 MiB pages, and a mount that may hold only those.
fn env(pages: u64) -> Env {
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "these tests reserve hugepages and mount hugetlbfs: run them as root (CI does)"
    );
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pages = Reservation::new(&SysRoot::host(), PageSize::SIZE_2M, None, pages).expect("reserving 2M hugepages");
    let mount = TempMount::new(pages.pages());
    Env { _serial: serial, mount, _pages: pages }
}

fn options(env: &Env, prefix: &str) -> EalOptions {
    EalOptions::new().no_pci().lcores("0").huge_dir(&env.mount.0).file_prefix(prefix)
}

/// Needs root.
#[test]
fn root_init_pool_and_close_leave_no_hugepage_file() {
    let env = env(4);
    let mut rt = Runtime::init(options(&env, "burstrt").vdev("net_null0")).unwrap();
    assert_eq!(rt.memory().huge_dir(), Some(env.mount.0.as_path()));
    let pool = rt.pktmbuf_pool("mbufs", 511).unwrap();
    assert!(!env.mount.files("burstrt").is_empty(), "the pool lives in hugepage files");
    let port = rt.port_mut(0).unwrap();
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 0, &pool).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
    {
        let port = rt.port(0).unwrap();
        let (mut rx, mut tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(64);
        assert_eq!(rx.rx_burst(&mut bufs, 32), 32);
        assert!(bufs.iter().all(|b| rt.memory().iova_of(b.data().as_ptr()).is_some()));
        assert_eq!(tx.tx_burst(&mut bufs), 32);
    }
    assert!(pool.mempool().is_full());
    drop(pool);
    rt.close().unwrap();
    assert_eq!(env.mount.files("burstrt"), Vec::<String>::new(), "every hugepage file is gone");
}

/// Needs root.
#[test]
fn root_a_probe_failing_after_memory_is_set_up_leaves_no_hugepage_file() {
    let env = env(2);
    // -m 2 maps a page at start, so there is a file to clean up when the bad vdev fails.
    let opts = options(&env, "burstfail").memory_mb(2).vdev("net_null0").vdev("net_null1,size=nope");
    let err = Runtime::init(opts).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().starts_with("net_null1: "), "{err}");
    assert_eq!(env.mount.files("burstfail"), Vec::<String>::new());
}

/// Needs root. `--in-memory`: the pool is in hugepages, yet no file appears in any mount.
#[test]
fn root_in_memory_uses_hugepages_without_files() {
    let env = env(4);
    let before = hugepage::SysRoot::host().counts(PageSize::SIZE_2M, None).unwrap().free;
    let rt = Runtime::init(options(&env, "burstanon").in_memory().vdev("net_null0")).unwrap();
    let pool = rt.pktmbuf_pool("mbufs", 511).unwrap();
    let during = hugepage::SysRoot::host().counts(PageSize::SIZE_2M, None).unwrap().free;
    assert!(during < before, "the pool took hugepages: {before} free before, {during} after");
    assert_eq!(env.mount.files("burstanon"), Vec::<String>::new(), "no file for anonymous memory");
    drop(pool);
    rt.close().unwrap();
}
