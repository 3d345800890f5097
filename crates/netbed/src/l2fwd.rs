//! l2fwd between two kernel-interface ports: a [`Bed`] of two veth pairs, the ports' ends in a
//! middle namespace and the far ends in one namespace each, and [`Bed::l2fwd`], which runs
//! l2fwd in-process on two ports made from `--vdev` strings while the far ends push the mixed
//! stream through both ways.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use burst::{EalOptions, MacAddr, Runtime};
use l2fwd::{parse_app_args, L2fwd};

use crate::stream::{check_rewrite, id_of, stream};
use crate::{veth, NetNs, RawSocket};

/// The ports' interfaces in the middle namespace.
pub const PORT_IFACES: [&str; 2] = ["k0", "k1"];
/// Their addresses (so l2fwd's rewrite is known before it starts).
pub const PORT_MACS: [MacAddr; 2] = [MacAddr([0x02, 0x62, 0x75, 0x10, 0, 0]), MacAddr([0x02, 0x62, 0x75, 0x10, 0, 1])];
/// The far ends, one per namespace.
const FAR_IFACE: &str = "f";
const FAR_MACS: [MacAddr; 2] = [MacAddr([0x02, 0x62, 0x75, 0x20, 0, 0]), MacAddr([0x02, 0x62, 0x75, 0x20, 0, 1])];
/// Frames a sender may have out before its receiver has seen them: fewer than any ring holds.
const WINDOW: u32 = 64;

/// Two veth pairs: `k0`/`k1` in [`Bed::mid`], their peers `f` in `far[0]` and `far[1]`.
#[derive(Debug)]
pub struct Bed {
    /// Where the ports under test run.
    pub mid: NetNs,
    /// The far ends' namespaces.
    pub far: [NetNs; 2],
}

/// What one direction of [`Bed::l2fwd`] delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Frames of the stream that arrived once and intact.
    pub good: u32,
    /// Frames not of the stream (the kernel's own, none expected).
    pub foreign: u32,
    /// What went wrong: duplicates, corruption, frames missing at the end.
    pub errors: Vec<String>,
}

impl Bed {
    /// The bed, `queues` RX and TX queues on each veth.
    pub fn new(tag: &str, queues: u32) -> Bed {
        let bed = Bed {
            mid: NetNs::new(&format!("{tag}-m")),
            far: [NetNs::new(&format!("{tag}-f0")), NetNs::new(&format!("{tag}-f1"))],
        };
        for i in 0..2 {
            veth(&bed.mid, PORT_IFACES[i], PORT_MACS[i], &bed.far[i], FAR_IFACE, FAR_MACS[i], queues);
        }
        bed
    }

    /// Sends `n` frames of the stream of direction `d` (0: in at port 0, out at port 1; 1: the
    /// other way) from far end `d` and takes them at far end `1 - d`, with at most [`WINDOW`] out
    /// at once, until all have come or `patience` passes with none.
    pub fn pump(&self, n: u32, patience: Duration) -> [Pumped; 2] {
        let frames = [stream(0, n), stream(1, n)];
        let seen = [AtomicU32::new(0), AtomicU32::new(0)];
        // Both receivers' sockets are open before the first frame is sent: a frame that arrives
        // before would be lost, and with it the window's progress.
        let ready = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            let receivers: Vec<_> = (0..2usize)
                .map(|d| {
                    let (frames, seen) = (&frames[d], &seen[d]);
                    let (far, ready) = (&self.far[1 - d], &ready);
                    s.spawn(move || {
                        far.set_thread();
                        let sock = RawSocket::open(FAR_IFACE);
                        ready.wait();
                        receive(&sock, d, frames, seen, patience)
                    })
                })
                .collect();
            ready.wait();
            for d in 0..2usize {
                let (frames, seen, far) = (&frames[d], &seen[d], &self.far[d]);
                s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open(FAR_IFACE);
                    let mut last = Instant::now();
                    for (k, f) in frames.iter().enumerate() {
                        while k as u32 >= seen.load(Ordering::Acquire) + WINDOW {
                            if last.elapsed() > patience {
                                return;
                            }
                            std::thread::sleep(Duration::from_micros(20));
                        }
                        sock.send_retry(f);
                        last = Instant::now();
                    }
                });
            }
            let out: Vec<Pumped> = receivers.into_iter().map(|r| r.join().expect("a receiver panicked")).collect();
            let mut out = out.into_iter();
            [out.next().unwrap_or_default(), out.next().unwrap_or_default()]
        })
    }

    /// Runs l2fwd (`-p 0x3`, MAC updating on) on ports made from `vdevs` in the middle
    /// namespace, pumps `n` frames each way, stops l2fwd, closes the ports and checks its pool is
    /// full. Returns what each direction delivered and l2fwd's output.
    pub fn l2fwd(&self, vdevs: [&str; 2], n: u32) -> ([Pumped; 2], String) {
        // Everything on a thread in the middle namespace: the ports' sockets are made in the
        // namespace of the thread that makes them, and lcores start in their creator's.
        self.mid.enter(|| {
            let mut rt = runtime(vdevs);
            let args: Vec<String> = ["l2fwd", "-p", "0x3", "-T", "0"].iter().map(|s| s.to_string()).collect();
            let cfg = parse_app_args(&args).expect("l2fwd's options");
            let mut out: Vec<u8> = Vec::new();
            let app = L2fwd::setup(&mut rt, &cfg, &mut out).unwrap_or_else(|e| panic!("l2fwd setup: {e}"));
            let (rt_ref, app_ref) = (&rt, &app);
            let pumped = std::thread::scope(|s| {
                let l2fwd_out = &mut out;
                let forwarding = s.spawn(move || app_ref.forward(rt_ref, l2fwd_out));
                let pumped = self.pump(n, Duration::from_secs(10));
                rt_ref.request_stop();
                forwarding.join().expect("l2fwd's lcore panicked").unwrap_or_else(|e| panic!("l2fwd: {e}"));
                pumped
            });
            let summary = app.finish(&mut rt, &mut out).unwrap_or_else(|e| panic!("l2fwd finish: {e}"));
            rt.close().unwrap_or_else(|e| panic!("closing the runtime: {e}"));
            let text = String::from_utf8_lossy(&out).into_owned();
            assert_eq!(summary.pool_free, summary.pool_size, "l2fwd's pool is not full at the end:\n{text}");
            (pumped, text)
        })
    }
}

/// A runtime with the two ports, two lcores on the CPUs the process may use.
pub fn runtime(vdevs: [&str; 2]) -> Runtime {
    let cpus: Vec<usize> = burst::lcores::allowed_cpus().expect("the CPUs we may use").into_iter().collect();
    let lcores = format!("0@{},1@{}", cpus[0], cpus.get(1).unwrap_or(&cpus[0]));
    let opts = EalOptions::new()
        .no_huge()
        .no_pci()
        .lcores(&lcores)
        .handle_signals(false)
        .file_prefix(&format!("netbed-{}", std::process::id()))
        .vdev(vdevs[0])
        .vdev(vdevs[1]);
    Runtime::init(opts).unwrap_or_else(|e| panic!("the runtime with {vdevs:?}: {e}"))
}

/// Takes direction `d`'s frames at one far end until all `frames` came or `patience` passed
/// with nothing new.
fn receive(sock: &RawSocket, d: usize, frames: &[Vec<u8>], seen: &AtomicU32, patience: Duration) -> Pumped {
    let mut got = Pumped::default();
    let mut have = HashSet::new();
    // The frame leaves l2fwd on port 1 - d, from its address, to 02:00:00:00:00:(1 - d).
    let (dst, src) = (MacAddr([2, 0, 0, 0, 0, 1 - d as u8]), PORT_MACS[1 - d]);
    let mut last = Instant::now();
    while (have.len() as u32) < frames.len() as u32 && last.elapsed() < patience {
        let Some(f) = sock.recv(Duration::from_millis(100)) else { continue };
        let Some((dir, seq)) = id_of(&f) else {
            got.foreign += 1;
            continue;
        };
        last = Instant::now();
        if usize::from(dir) != d || seq as usize >= frames.len() {
            got.errors.push(format!("direction {d}: a frame of direction {dir}, number {seq}"));
            continue;
        }
        if !have.insert(seq) {
            got.errors.push(format!("direction {d}: frame {seq} arrived twice"));
            continue;
        }
        match check_rewrite(&frames[seq as usize], &f, dst, src) {
            Ok(()) => got.good += 1,
            Err(e) => got.errors.push(format!("direction {d}: frame {seq}: {e}")),
        }
        seen.store(have.len() as u32, Ordering::Release);
    }
    let missing = frames.len() - have.len();
    if missing > 0 {
        let first: Vec<usize> = (0..frames.len()).filter(|s| !have.contains(&(*s as u32))).take(5).collect();
        got.errors.push(format!("direction {d}: {missing} frames never arrived (first: {first:?})"));
    }
    got
}

/// The environment variable that makes a test binary's child test run l2fwd: the two `--vdev`
/// strings, separated by a space.
pub const CHILD_ENV: &str = "BURST_NETBED_L2FWD_CHILD";

/// The child half of [`Bed::kill_mid_traffic`], run in a process of its own in the middle
/// namespace: l2fwd on the ports [`CHILD_ENV`] names, forwarding until it is killed. Fails
/// when the variable is not set (the test was run by hand, not by its parent).
pub fn l2fwd_until_killed() {
    let spec = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!(
            "this test is the child half of a kill -9 test and runs only when that test starts it ({CHILD_ENV} unset)"
        )
    });
    let vdevs: Vec<&str> = spec.split(' ').collect();
    assert_eq!(vdevs.len(), 2, "{CHILD_ENV}={spec:?}: two --vdev strings");
    let mut rt = runtime([vdevs[0], vdevs[1]]);
    let args: Vec<String> = ["l2fwd", "-p", "0x3", "-T", "0"].iter().map(|s| s.to_string()).collect();
    let cfg = parse_app_args(&args).expect("l2fwd's options");
    let mut sink = std::io::sink();
    let app = L2fwd::setup(&mut rt, &cfg, &mut sink).unwrap_or_else(|e| panic!("l2fwd setup: {e}"));
    println!("READY");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = app.forward(&rt, &mut sink);
}

impl Bed {
    /// Starts `child` (this test binary, run on its test that calls [`l2fwd_until_killed`] with
    /// [`CHILD_ENV`] set), checks l2fwd forwards 200 frames each way, then kills it with SIGKILL
    /// while frames keep coming, and waits until it is gone.
    pub fn kill_mid_traffic(&self, mut child: std::process::Command) {
        use std::io::BufRead as _;
        let mut child = child.stdout(std::process::Stdio::piped()).spawn().expect("starting the child l2fwd");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("READY") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            let status = child.wait();
            panic!("the child l2fwd never said READY (it ended: {status:?})");
        }
        let pumped = self.pump(200, Duration::from_secs(10));
        for (d, p) in pumped.iter().enumerate() {
            assert!(p.errors.is_empty() && p.good == 200, "before the kill, direction {d}: {p:?}");
        }
        // Frames keep coming from both sides while the child dies.
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for d in 0..2 {
                let (far, stop) = (&self.far[d], &stop);
                s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open(FAR_IFACE);
                    let frames = stream(d as u8, 512);
                    for f in frames.iter().cycle() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let _ = sock.send(f);
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(200));
            child.kill().expect("SIGKILL to the child");
            let status = child.wait().expect("waiting for the child");
            assert!(!status.success(), "the child was killed: {status:?}");
            std::thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
        });
    }
}
