//! What the vhost-user tests share: a private hugetlbfs mount and hugepage reservation
//! ([`setup`]), and dpdk-testpmd serving the socket with a `net_vhost` port ([`Testpmd`]), killed
//! on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst::mem::hugepage::{self, PageSize, Reservation, SysRoot};
use burst::Runtime;

const MB2: u64 = 2 << 20;

/// A private hugetlbfs mount, unmounted and removed on drop.
pub struct TempMount(pub PathBuf);

impl Drop for TempMount {
    fn drop(&mut self) {
        // A killed testpmd may take a moment to let go of the files it mapped.
        let t0 = Instant::now();
        while let Err(e) = hugepage::unmount(&self.0) {
            if t0.elapsed() > Duration::from_secs(5) {
                eprintln!("unmount {}: {e}", self.0.display());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A temporary directory for the socket, removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// dpdk-testpmd with a vhost-user port, driven through its interactive prompt; killed on drop.
pub struct Testpmd {
    pub child: Child,
    pub stdin: ChildStdin,
    pub out: Arc<Mutex<String>>,
}

/// How to start [`Testpmd`].
#[derive(Clone, Copy, Debug)]
pub struct TestpmdConf<'a> {
    /// Its forwarding mode (`rxonly`, `txonly`, `io`).
    pub mode: &'a str,
    /// A tag for its file prefix.
    pub tag: &'a str,
    /// Queue pairs on the vhost port (and RX and TX queues in testpmd).
    pub queues: u16,
    /// More `net_vhost` arguments (`tso=1`, `legacy-ol-flags=1`), or "".
    pub vdev: &'a str,
}

impl Testpmd {
    /// Starts testpmd serving `sock` in forwarding mode `mode`, and waits for the socket.
    pub fn start(sock: &Path, mode: &str, tag: &str) -> Testpmd {
        Testpmd::start_queues(sock, mode, tag, 1)
    }

    /// As [`Testpmd::start`], with `queues` queue pairs on the vhost port (and as many RX and TX
    /// queues in testpmd).
    pub fn start_queues(sock: &Path, mode: &str, tag: &str, queues: u16) -> Testpmd {
        Testpmd::start_with(sock, &TestpmdConf { mode, tag, queues, vdev: "" })
    }

    /// Starts testpmd as `conf` says, serving `sock`, and waits for the socket.
    pub fn start_with(sock: &Path, conf: &TestpmdConf<'_>) -> Testpmd {
        let TestpmdConf { mode, tag, queues, vdev } = *conf;
        let _ = std::fs::remove_file(sock);
        let prefix = format!("burst-vhost-test-{}-{tag}", std::process::id());
        // Line-buffered stdout (stdbuf), so its answers reach us as it prints them.
        let spawned = Command::new("stdbuf")
            .args(["-oL", "dpdk-testpmd"])
            .args(["-l", "0,1", "--main-lcore", "0", "--no-huge", "-m", "256", "--no-pci", "--file-prefix", &prefix])
            .arg("--vdev")
            .arg(format!(
                "net_vhost0,iface={},queues={queues}{}{vdev}",
                sock.display(),
                if vdev.is_empty() { "" } else { "," }
            ))
            .args(["--", "-i", "--nb-cores=1", "--total-num-mbufs=4096", "--txpkts=64", "--burst=32"])
            .arg(format!("--rxq={queues}"))
            .arg(format!("--txq={queues}"))
            .arg(format!("--forward-mode={mode}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("stdbuf (coreutils) is missing: {e}"),
            Err(e) => panic!("cannot start dpdk-testpmd: {e}"),
        };
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let out = Arc::new(Mutex::new(String::new()));
        {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let mut tp = Testpmd { child, stdin, out };
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(status)) = tp.child.try_wait() {
            if status.code() == Some(127) {
                panic!("dpdk-testpmd is not installed (Debian package dpdk): run `cargo xtask setup`");
            }
        }
        let t0 = Instant::now();
        while !sock.exists() {
            if let Ok(Some(status)) = tp.child.try_wait() {
                panic!("dpdk-testpmd exited ({status}) before making {}:\n{}", sock.display(), tp.output());
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "dpdk-testpmd made no socket in 20 s:\n{}", tp.output());
            std::thread::sleep(Duration::from_millis(50));
        }
        tp.command("start");
        tp
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("testpmd's stdin");
        self.stdin.flush().unwrap();
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One runtime at a time in this process (each claims lcore 0).
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Hugepages, a private mount and a socket path for one test, all given back on drop.
pub struct Setup {
    pub sock: PathBuf,
    pub mount: TempMount,
    _dir: TempDir,
    _pages: Reservation,
}

pub fn setup(tag: &str) -> Setup {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test reserves hugepages and mounts hugetlbfs: run it as root (CI does)");
    let pages = Reservation::new(&SysRoot::host(), PageSize::SIZE_2M, None, 24).expect("reserving 2M hugepages");
    let dir = TempDir(std::env::temp_dir().join(format!("burst-vhost-test-{}-{tag}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mount = TempMount(dir.0.join("huge"));
    hugepage::mount_limited(&mount.0, PageSize::SIZE_2M, pages.pages() * MB2).expect("mounting hugetlbfs");
    // Fields drop in order: the mount before its directory, the pages last.
    Setup { sock: dir.0.join("vhost.sock"), mount, _dir: dir, _pages: pages }
}

pub fn wait_link(rt: &Runtime, up: bool) {
    let t0 = Instant::now();
    while rt.port(0).unwrap().link().up != up {
        assert!(t0.elapsed() < Duration::from_secs(10), "the link did not go {}", if up { "up" } else { "down" });
        std::thread::sleep(Duration::from_millis(20));
    }
}
