//! SIGINT mid-run: l2fwd forwards between two net_null ports until the statistics screen has
//! appeared, gets SIGINT, and must exit 0 having closed its ports, printed the final table and
//! got every buffer back. Once with `--no-huge`, once on real hugepages (root only).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use burst_mem::hugepage::{self, PageSize, Reservation, SysRoot};

/// The runs take turns: each uses every CPU the process may run on.
static SERIAL: Mutex<()> = Mutex::new(());

/// The last screen's line.
const SCREEN_END: &str = "====================================================";

/// Runs l2fwd with `eal` runtime options on two net_null ports and `-T 1`, sends SIGINT once the
/// first statistics screen is out, and returns everything it printed, having checked that it
/// exited 0 with nothing on stderr.
fn run_until_sigint(eal: &[&str]) -> String {
    run_until_sigint_on(eal, &["--vdev", "net_null0", "--vdev", "net_null1"])
}

/// [`run_until_sigint`] on the ports `vdevs` makes.
fn run_until_sigint_on(eal: &[&str], vdevs: &[&str]) -> String {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Two lcores if the process has two CPUs, else both ports on one.
    let nq = if burst::lcores::allowed_cpus().unwrap().len() >= 2 { "1" } else { "2" };
    let mut child = Command::new(env!("CARGO_BIN_EXE_l2fwd"))
        .args(eal)
        .arg("--no-pci")
        .args(vdevs)
        .args(["--", "-p", "0x3", "-q", nq, "-T", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting l2fwd");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    // Wait for the end of the first screen (a bound, not a timing assertion: l2fwd prints it a
    // second after it starts forwarding).
    let mut out = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let done = line == SCREEN_END && out.iter().any(|l: &String| l.contains("Port statistics"));
                out.push(line);
                if done {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no statistics screen ({e}); l2fwd printed:\n{}", out.join("\n"));
            }
        }
    }
    // SAFETY: kill(2) with a pid we spawned and have not waited for, so it is still ours.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    out.extend(lines.try_iter());
    let stderr = err_reader.join().unwrap();
    let out = out.join("\n");
    assert!(status.success(), "l2fwd ended with {status:?}; stderr:\n{stderr}\nstdout:\n{out}");
    assert!(stderr.is_empty(), "stderr:\n{stderr}");
    out
}

/// The number after `label` in `text`.
fn count(text: &str, label: &str) -> u64 {
    let at = text.find(label).unwrap_or_else(|| panic!("{label:?} missing from:\n{text}"));
    text[at + label.len()..].split_whitespace().next().unwrap().parse().unwrap()
}

/// Checks what l2fwd printed after the signal: ports closed, then a final table (no
/// clear-screen escape) with traffic on both ports, every buffer free, and "Bye...".
fn check_clean_exit(out: &str) {
    let closed = out.find("Closing port 0... Done\nClosing port 1... Done\n").unwrap_or_else(|| panic!("{out}"));
    let tail = &out[closed..];
    assert!(!tail.contains('\x1b'), "the final table has no escape sequence:\n{tail}");
    for port in ["Statistics for port 0", "Statistics for port 1"] {
        assert!(tail.contains(port), "{port:?} missing from:\n{tail}");
    }
    let sent = count(tail, "Total packets sent:");
    let received = count(tail, "Total packets received:");
    assert!(sent > 0 && received > 0, "no traffic:\n{tail}");
    // net_null's TX takes everything: every packet received went out.
    assert_eq!((sent, count(tail, "Total packets dropped:")), (received, 0), "{tail}");
    let free = count(tail, "mbuf pool:");
    assert!(tail.contains(&format!("mbuf pool: {free} of {free} buffers free")), "{tail}");
    assert!(tail.ends_with("Bye..."), "{tail}");
}

#[test]
fn sigint_without_hugepages_exits_cleanly() {
    let out = run_until_sigint(&["--no-huge"]);
    check_clean_exit(&out);
}

/// Port 1 is one end of a net_ring pair whose other end (port 2) is outside the mask: what
/// l2fwd sends on port 1 waits in port 2's RX ring. Closing only the enabled ports would leave
/// those buffers out and report a leak; every port is closed before the pool is counted.
#[test]
fn buffers_queued_on_a_port_outside_the_mask_come_back() {
    let out = run_until_sigint_on(
        &["--no-huge"],
        &["--vdev", "net_null0", "--vdev", "net_ring0,pair=a", "--vdev", "net_ring1,pair=a"],
    );
    let tail = &out[out.find("Closing port 0... Done").unwrap_or_else(|| panic!("{out}"))..];
    assert!(count(tail, "Total packets sent:") > 0, "{tail}");
    let free = count(tail, "mbuf pool:");
    assert!(tail.contains(&format!("mbuf pool: {free} of {free} buffers free")), "{tail}");
}

/// A private hugetlbfs mount, unmounted and removed on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = hugepage::unmount(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Needs root (CI runs as root): reserves 64 MiB of 2 MiB hugepages on top of what is reserved,
/// mounts a private hugetlbfs for them, runs l2fwd there with its own `--file-prefix`, and checks
/// that no hugepage file is left once it exits.
#[test]
fn sigint_on_hugepages_leaves_no_files_root() {
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "this test reserves hugepages and mounts hugetlbfs: run it as root (CI does)"
    );
    let pages = Reservation::new(&SysRoot::host(), PageSize::SIZE_2M, None, 32).expect("reserving 2M hugepages");
    let mount = Mount(std::env::temp_dir().join(format!("l2fwd-sigint-{}", std::process::id())));
    hugepage::mount(&mount.0, PageSize::SIZE_2M).expect("mounting hugetlbfs");
    let prefix = format!("l2fwd-sigint-{}", std::process::id());
    let out = run_until_sigint(&["--huge-dir", mount.0.to_str().unwrap(), "--file-prefix", &prefix]);
    check_clean_exit(&out);
    let left: Vec<_> = std::fs::read_dir(&mount.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "hugepage files left: {left:?}");
    drop(mount);
    pages.release().expect("giving the hugepages back");
}
