//! `cargo xtask bench vhost`: DPDK's virtio-user (in `dpdk-testpmd`) and ours (in `pktgen`)
//! against one DPDK vhost-user backend, back to back, in packets per second.
//!
//! One backend runs for the whole bench: `dpdk-testpmd --no-pci --vdev
//! net_vhost0,iface=SOCK,queues=1 -- -i`, driven through its command line on stdin (`set fwd`,
//! `start`, `stop`, `show port stats 0`). Against it, one after the other:
//!
//! 1. `dpdk-testpmd --no-pci --vdev net_virtio_user0,path=SOCK --single-file-segments --
//!    --forward-mode=txonly` (the backend in rxonly), then `--forward-mode=rxonly` (the backend
//!    in txonly);
//! 2. `pktgen --no-pci --vdev virtio_user0,path=SOCK --single-file-segments --
//!    --forward-mode=txonly`, then rxonly, the same way.
//!
//! Same frame length (`--txpkts`, default 64), burst (default 32) and statistics every second on
//! every side. CPUs: of the first two CPUs we may use, A and B, the backend runs `-l A,B
//! --main-lcore A` and so forwards on B; the frontends run `-l A,B --main-lcore B` and forward
//! on A. The main lcores only print statistics, so each forwarding lcore has a CPU to itself.
//!
//! What is counted is what moved through the rings, each direction from the receiving side:
//! txonly: the backend's `Rx-pps` (frames it took off the frontend's TX ring), asked with
//! `show port stats 0` each time the frontend prints its own statistics, so both cover the same
//! seconds; rxonly: the frontend's `Rx-pps`. The other side's view (the frontend's `Tx-pps`, the
//! backend's `Tx-pps`) is shown as a cross-check. The steady-state figure is the median of the
//! one-second samples, the first [`WARMUP`] left out.
//!
//! A run that fails or moves nothing is an error that says so, not a zero in the table: the
//! bench then prints what it has and exits with failure, leaving `target/bench/vhost.md` as it
//! was. Hugepages as in `bench null` (a `Reservation` guard and, if none is mounted, our own
//! hugetlbfs mount, both undone at the end); programs' output in `target/bench/vhost-*.log`.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::{
    build_pktgen, catch_sigint, dpdk_version, ensure_testpmd, interrupted, lcore_list, machine, measure_tsc_hz,
    now_unix, parse_rates, steady, target_dir, utc, version_major_minor, warn_if_busy, Grid, Hugepages, Program,
    RuntimeDir,
};

#[derive(Args)]
pub struct VhostArgs {
    /// Seconds of statistics each run is measured over, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Frame length in bytes, without CRC (testpmd's and pktgen's --txpkts), for txonly on both
    /// sides.
    #[arg(long, default_value_t = 64)]
    size: u16,
    /// Packets per burst, for the frontends and the backend.
    #[arg(long, default_value_t = 32)]
    burst: u16,
    /// Rounds: each runs DPDK's and ours back to back in each mode (who goes first alternates);
    /// the table shows medians over the rounds, the ratio the median of each round's ratio.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// Per-second samples left out at the start: the first covers start-up (testpmd's first is 0:
/// it has nothing to compare with yet; the backend's first covers the frontend's start).
const WARMUP: usize = 2;
/// 2 MiB pages that must be free: two testpmds' default pools (155456 buffers, about 400 MB
/// each) with room to spare.
const FREE_PAGES: u64 = 1024;
/// How long a run may take beyond its measured seconds (start-up, teardown).
const SLACK: Duration = Duration::from_secs(60);
/// How long the backend may take to create its socket.
const BACKEND_START: Duration = Duration::from_secs(60);
/// The first line of a statistics block, testpmd's and pktgen's.
const STATS_BLOCK: &str = "NIC statistics for port";
/// Shown for the per-run file prefix and socket path in the commands written down.
const PID_SHOWN: &str = "burst-bench-vhost-PID";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    TxOnly,
    RxOnly,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::TxOnly, Mode::RxOnly];

    /// The frontend's forwarding mode.
    fn name(self) -> &'static str {
        match self {
            Mode::TxOnly => "txonly",
            Mode::RxOnly => "rxonly",
        }
    }

    /// The backend's forwarding mode against a frontend in this one.
    fn backend(self) -> &'static str {
        match self {
            Mode::TxOnly => "rxonly",
            Mode::RxOnly => "txonly",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Dpdk,
    Burst,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Dpdk => "DPDK virtio-user (testpmd)",
            Side::Burst => "burst virtio-user (pktgen)",
        }
    }

    /// Short, for file names and prefixes.
    fn tag(self) -> &'static str {
        match self {
            Side::Dpdk => "dpdk",
            Side::Burst => "burst",
        }
    }
}

/// One frontend run's steady-state numbers, in packets per second.
#[derive(Debug, PartialEq)]
struct Run {
    /// What the table counts: txonly, what the backend received; rxonly, what the frontend did.
    counted: f64,
    /// The sending side's own count: txonly, the frontend's Tx-pps; rxonly, the backend's.
    sent: Option<f64>,
    /// Samples `counted` is the median of.
    samples: usize,
}

impl Run {
    /// The numbers of one run from the frontend's output and the backend's during the run.
    fn from_outputs(mode: Mode, frontend: &str, backend: &str) -> Result<Run, String> {
        let f = parse_rates(frontend).remove(&0).unwrap_or_default();
        let b = parse_rates(backend).remove(&0).unwrap_or_default();
        let (counted, sent, whose) = match mode {
            Mode::TxOnly => (&b.0, &f.1, "the backend's `Rx-pps`"),
            Mode::RxOnly => (&f.0, &b.1, "the frontend's `Rx-pps`"),
        };
        let Some(median) = steady(counted, WARMUP) else {
            return Err(format!("{} samples of {whose}, fewer than the {} needed", counted.len(), WARMUP + 1));
        };
        if median <= 0.0 {
            return Err(format!("no packets moved: {whose} was {} in steady state (samples: {:?})", median, counted));
        }
        Ok(Run { counted: median, sent: steady(sent, WARMUP), samples: counted.len() - WARMUP })
    }
}

/// `A,B` -> (`A`, `B`): the backend's main lcore and the frontend's.
fn lcore_pair(list: &str) -> Option<(String, String)> {
    let (a, b) = list.split_once(',')?;
    (!a.is_empty() && !b.is_empty() && !b.contains(',')).then(|| (a.to_string(), b.to_string()))
}

/// The vhost-user socket: under target/bench unless that path is too long for a unix socket
/// (108 bytes with the NUL), then in the temporary directory.
fn socket_path(out_dir: &Path, name: &str) -> PathBuf {
    let p = out_dir.join(name);
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(name)
    }
}

/// Removes the socket file when dropped (the backend removes it on a clean exit, not when killed).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The backend's arguments.
fn backend_args(lcores: &str, main: &str, sock: &str, huge_dir: &str, prefix: &str, a: &VhostArgs) -> Vec<String> {
    strings(&[
        "-l",
        lcores,
        "--main-lcore",
        main,
        "--no-pci",
        "--vdev",
        &format!("net_vhost0,iface={sock},queues=1"),
        "--huge-dir",
        huge_dir,
        "--huge-unlink",
        "--file-prefix",
        prefix,
        "-v",
        "--",
        "-i",
        "--nb-cores=1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
        "--forward-mode=rxonly",
    ])
}

/// A frontend's arguments: testpmd's or pktgen's, which differ only in the device's name and
/// pktgen's `--run-seconds` (a fallback: both are stopped with SIGINT once measured).
#[allow(clippy::too_many_arguments)]
fn frontend_args(
    side: Side,
    mode: Mode,
    lcores: &str,
    main: &str,
    sock: &str,
    huge_dir: &str,
    prefix: &str,
    a: &VhostArgs,
    samples: usize,
) -> Vec<String> {
    let vdev = match side {
        Side::Dpdk => format!("net_virtio_user0,path={sock}"),
        Side::Burst => format!("virtio_user0,path={sock}"),
    };
    let mut v = strings(&[
        "-l",
        lcores,
        "--main-lcore",
        main,
        "--no-pci",
        "--vdev",
        &vdev,
        "--single-file-segments",
        "--huge-dir",
        huge_dir,
        "--file-prefix",
        prefix,
        "--",
        &format!("--forward-mode={}", mode.name()),
        "--nb-cores=1",
        "--stats-period",
        "1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
    ]);
    if side == Side::Burst {
        v.push("--run-seconds".into());
        v.push((samples + 10).to_string());
    }
    v
}

/// The vhost backend: testpmd in interactive mode, commands written to its stdin.
struct Backend {
    /// Declared before `program`: dropped first, so testpmd sees the end of its input and quits.
    stdin: Option<ChildStdin>,
    program: Program,
}

impl Backend {
    fn start(bin: &Path, args: &[String], log: &Path, sock: &Path) -> Result<Backend, String> {
        let mut program = Program::start(bin, args, log, Stdio::piped())?;
        let stdin = program.child.stdin.take();
        let mut b = Backend { stdin, program };
        let until = Instant::now() + BACKEND_START;
        while !sock.exists() {
            b.alive()?;
            if interrupted() {
                return Err("interrupted".into());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "it did not create {} within {} s; its output is in {}",
                    sock.display(),
                    BACKEND_START.as_secs(),
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(b)
    }

    fn alive(&mut self) -> Result<(), String> {
        match self.program.exited()? {
            None => Ok(()),
            Some(status) => {
                self.program.check(status)?;
                Err(format!("it exited; its output is in {}", self.program.log.display()))
            }
        }
    }

    fn send(&mut self, cmd: &str) -> Result<(), String> {
        self.alive()?;
        let stdin = self.stdin.as_mut().ok_or("its input is closed")?;
        writeln!(stdin, "{cmd}").and_then(|()| stdin.flush()).map_err(|e| format!("writing `{cmd}` to it: {e}"))
    }

    /// Stops forwarding, switches to `mode`, starts again, and asks for the statistics once
    /// so the next `show port stats` gives rates from here.
    fn forward(&mut self, mode: &str) -> Result<(), String> {
        let mark = self.mark();
        for cmd in ["stop", &format!("set fwd {mode}"), "start", "show port stats 0"] {
            self.send(cmd)?;
        }
        if self.wait_for_stats(mark, 1, Duration::from_secs(10))? {
            Ok(())
        } else {
            Err(format!("it did not answer `show port stats 0`; its output is in {}", self.program.log.display()))
        }
    }

    /// Waits until its output since `mark` holds `n` statistics blocks; false if it has not
    /// printed them within `timeout`.
    fn wait_for_stats(&mut self, mark: usize, n: usize, timeout: Duration) -> Result<bool, String> {
        let until = Instant::now() + timeout;
        loop {
            if self.output_since(mark).matches(STATS_BLOCK).count() >= n {
                return Ok(true);
            }
            self.alive()?;
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bytes of output so far: where a run's output starts.
    fn mark(&self) -> usize {
        fs::metadata(&self.program.log).map(|m| m.len() as usize).unwrap_or(0)
    }

    fn output_since(&self, mark: usize) -> String {
        let bytes = fs::read(&self.program.log).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    /// `quit`, and waits for it to go (killing it if it does not).
    fn quit(mut self) {
        let _ = self.send("stop");
        let _ = self.send("quit");
        self.stdin = None;
        if let Ok(Some(_)) = self.program.wait_for(Duration::from_secs(10)) {
            return;
        }
        self.program.stop();
    }
}

/// Runs one frontend against the backend until it has printed `samples` statistics blocks,
/// asking the backend for its statistics each time; returns both outputs over the run.
fn run_frontend(
    bin: &Path,
    args: &[String],
    log: &Path,
    samples: usize,
    backend: &mut Backend,
) -> Result<(String, String), String> {
    let mark = backend.mark();
    let mut program = Program::start(bin, args, log, Stdio::null())?;
    let deadline = Instant::now() + Duration::from_secs(samples as u64) + SLACK;
    let mut seen = 0;
    let mut signalled = false;
    let status = loop {
        if let Some(status) = program.exited()? {
            if !signalled {
                program.check(status)?;
                return Err(format!(
                    "it stopped by itself after {seen} of {samples} statistics blocks; its output is in {}",
                    log.display()
                ));
            }
            break status;
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it printed {seen} of {samples} statistics blocks in time; its output is in {}",
                log.display()
            ));
        }
        backend.alive().map_err(|e| format!("the vhost backend failed during the run: {e}"))?;
        if !signalled {
            let blocks = program.output().matches("Rx-pps:").count();
            while seen < blocks {
                backend.send("show port stats 0")?;
                seen += 1;
            }
            if seen >= samples {
                program.signal(libc::SIGINT);
                signalled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    program.check(status)?;
    // The last `show port stats` answers.
    backend.wait_for_stats(mark, seen, Duration::from_secs(5))?;
    Ok((program.output(), backend.output_since(mark)))
}

pub fn run(args: &VhostArgs) -> Result<(), String> {
    catch_sigint();
    if args.seconds < 3 {
        return Err(format!("--seconds {}: give at least 3, for a median worth the name", args.seconds));
    }
    if !(42..=2048).contains(&args.size) {
        return Err(format!(
            "--size {}: give a frame length from 42 (Ethernet, IPv4 and UDP headers) to 2048",
            args.size
        ));
    }
    if !(1..=512).contains(&args.burst) {
        return Err(format!("--burst {}: give 1 to 512", args.burst));
    }
    if !(1..=20).contains(&args.rounds) {
        return Err(format!("--rounds {}: give 1 to 20", args.rounds));
    }
    let lcores = lcore_list();
    let Some((cpu_a, cpu_b)) = lcore_pair(&lcores) else {
        return Err(
            "this bench needs two CPUs (the backend forwards on one, the frontend on the other); only one is usable"
                .into(),
        );
    };
    let target = target_dir();
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let testpmd = ensure_testpmd()?;
    // A pktgen that does not build still leaves DPDK's numbers to measure: its runs fail.
    let pktgen = build_pktgen(&target);

    let mut notes = Vec::new();
    warn_if_busy("the bench", &mut notes);
    let huge = Hugepages::prepare(FREE_PAGES)?;
    let huge_dir = huge.dir.display().to_string();
    let prefix = format!("burst-bench-vhost-{}", std::process::id());
    let sock = socket_path(&out_dir, &format!("{prefix}.sock"));
    let _ = fs::remove_file(&sock);
    let _sock_guard = SocketFile(sock.clone());
    let sock_str = sock.display().to_string();
    let shown = |a: &[String]| a.join(" ").replace(&prefix, PID_SHOWN);

    let back_prefix = format!("{prefix}-backend");
    let back_args = backend_args(&lcores, &cpu_a, &sock_str, &huge_dir, &back_prefix, args);
    let mut commands = vec![format!("dpdk-testpmd {}", shown(&back_args))];
    let _back_runtime = RuntimeDir::new(&back_prefix);
    println!("bench: vhost backend: {} {}", testpmd.display(), shown(&back_args));
    let back_log = out_dir.join("vhost-backend.log");
    let mut backend =
        Backend::start(&testpmd, &back_args, &back_log, &sock).map_err(|e| format!("the vhost backend: {e}"))?;

    let samples = args.seconds as usize + WARMUP;
    let mut failures = Vec::new();
    let mut results: Vec<(u32, Side, Mode, Run)> = Vec::new();
    // The machine's speed drifts over minutes (two vCPUs whose placement on the host changes):
    // DPDK's run and ours go back to back within each mode, and who goes first alternates.
    let order: Vec<(u32, Mode, Side)> = (0..args.rounds)
        .flat_map(|round| {
            Mode::ALL.into_iter().flat_map(move |mode| {
                let sides = if round % 2 == 0 { [Side::Dpdk, Side::Burst] } else { [Side::Burst, Side::Dpdk] };
                sides.map(|side| (round, mode, side))
            })
        })
        .collect();
    'runs: for (round, mode, side) in order {
        {
            let what = format!("{} {} (round {})", side.name(), mode.name(), round + 1);
            let bin = match (side, &pktgen) {
                (Side::Dpdk, _) => &testpmd,
                (Side::Burst, Ok(p)) => p,
                (Side::Burst, Err(e)) => {
                    eprintln!("bench: {what}: not run: {e}");
                    failures.push(format!("{what}: not run: {e}"));
                    continue;
                }
            };
            if let Err(e) = backend.forward(mode.backend()) {
                failures.push(format!("the vhost backend, switching to {}: {e}", mode.backend()));
                break 'runs;
            }
            let run_prefix = format!("{prefix}-{}-{}", side.tag(), mode.name());
            let _runtime = RuntimeDir::new(&run_prefix);
            let f_args = frontend_args(side, mode, &lcores, &cpu_b, &sock_str, &huge_dir, &run_prefix, args, samples);
            let name = bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if round == 0 {
                commands.push(format!("`set fwd {}` on the backend, then:", mode.backend()));
                commands.push(format!(
                    "{} {}",
                    if side == Side::Dpdk { "dpdk-testpmd" } else { "pktgen" },
                    shown(&f_args)
                ));
            }
            println!("bench: {what} (backend in {}): {name} {}", mode.backend(), shown(&f_args));
            let log = out_dir.join(format!("vhost-{}-{}-{}.log", side.tag(), mode.name(), round + 1));
            let r = run_frontend(bin, &f_args, &log, samples, &mut backend);
            huge.remove_files(&run_prefix);
            let r = r.and_then(|(front, back)| {
                Run::from_outputs(mode, &front, &back).map_err(|e| format!("{e}; its output is in {}", log.display()))
            });
            match r {
                Ok(run) => {
                    println!("bench: {what}: {} Mpps", mpps(run.counted));
                    results.push((round, side, mode, run));
                }
                Err(e) => {
                    let msg = match side {
                        Side::Burst => format!(
                            "{what}: {e}\n(our virtio-user over pktgen failed: check `--vdev virtio_user0,path=SOCK` \
                             against the backend by hand, see docs/virtio-user.md)"
                        ),
                        Side::Dpdk => format!("{what}: {e}"),
                    };
                    eprintln!("bench: {msg}");
                    failures.push(msg);
                }
            }
            if interrupted() {
                break 'runs;
            }
        }
    }
    let version = dpdk_version(&backend.output_since(0));
    backend.quit();
    huge.remove_files(&back_prefix);
    drop(huge);
    if interrupted() {
        return Err("interrupted".into());
    }

    if let Some(v) = &version {
        notes.insert(0, format!("DPDK version: {v}"));
    }
    let summary = Summary::new(&results, args.rounds);
    let table = Table::new(version.as_deref(), args, &summary);
    let markdown = || table.markdown(args, &cpu_a, &cpu_b, &commands, measure_tsc_hz(), &notes);
    super::report(&table.text(), &notes, &out_dir.join("vhost.md"), markdown, failures)
}

/// Packets per second as Mpps: two decimals, more below 0.1 Mpps so a trickle does not read
/// as zero.
fn mpps(pps: f64) -> String {
    let m = pps / 1e6;
    if m >= 0.1 {
        format!("{m:.2}")
    } else {
        format!("{m:.6}")
    }
}

/// The rounds' runs folded into one figure per side and mode.
struct Summary {
    /// Per (side, mode): the median over the rounds of each run's figures.
    runs: Vec<((Side, Mode), Run)>,
    /// Per mode: each round's ratio (burst / DPDK), for rounds where both ran.
    ratios: Vec<(Mode, Vec<f64>)>,
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl Summary {
    fn new(results: &[(u32, Side, Mode, Run)], rounds: u32) -> Summary {
        let mut runs = Vec::new();
        let mut ratios = Vec::new();
        for mode in Mode::ALL {
            for side in [Side::Dpdk, Side::Burst] {
                let these: Vec<&Run> =
                    results.iter().filter(|(_, s, m, _)| *s == side && *m == mode).map(|(_, _, _, r)| r).collect();
                let mut counted: Vec<f64> = these.iter().map(|r| r.counted).collect();
                let mut sent: Vec<f64> = these.iter().filter_map(|r| r.sent).collect();
                if let Some(c) = median(&mut counted) {
                    let samples = these.iter().map(|r| r.samples).sum();
                    runs.push(((side, mode), Run { counted: c, sent: median(&mut sent), samples }));
                }
            }
            let per_round: Vec<f64> = (0..rounds)
                .filter_map(|round| {
                    let get = |side| {
                        results.iter().find(|(r, s, m, _)| *r == round && *s == side && *m == mode).map(|x| x.3.counted)
                    };
                    match (get(Side::Dpdk), get(Side::Burst)) {
                        (Some(d), Some(b)) if d > 0.0 => Some(b / d),
                        _ => None,
                    }
                })
                .collect();
            ratios.push((mode, per_round));
        }
        Summary { runs, ratios }
    }

    fn get(&self, side: Side, mode: Mode) -> Option<&Run> {
        self.runs.iter().find(|(k, _)| *k == (side, mode)).map(|(_, r)| r)
    }

    /// The median of the rounds' ratios, and the ratios themselves.
    fn ratio(&self, mode: Mode) -> (Option<f64>, Vec<f64>) {
        let mut v = self.ratios.iter().find(|(m, _)| *m == mode).map(|(_, v)| v.clone()).unwrap_or_default();
        let each = v.clone();
        (median(&mut v), each)
    }
}

struct Table {
    grid: Grid,
}

impl Table {
    fn new(version: Option<&str>, args: &VhostArgs, summary: &Summary) -> Table {
        let get = |side, mode| summary.get(side, mode);
        let header = [
            format!("vhost-user, {} B, burst {}", args.size, args.burst),
            format!("DPDK {} virtio-user", version.map(version_major_minor).unwrap_or_else(|| "22.11".into())),
            "burst virtio-user".to_string(),
            "ratio (burst/DPDK)".to_string(),
        ];
        let cell = |v: Option<f64>| v.map_or_else(|| "failed".to_string(), mpps);
        let ratio = |mode| match summary.ratio(mode) {
            (Some(r), each) if each.len() > 1 => {
                let each: Vec<String> = each.iter().map(|x| format!("{x:.2}")).collect();
                format!("{r:.2} ({})", each.join(", "))
            }
            (Some(r), _) => format!("{r:.2}"),
            (None, _) => "-".into(),
        };
        let mut rows = Vec::new();
        for (mode, label) in [
            (Mode::TxOnly, "txonly Mpps (received by the backend)"),
            (Mode::RxOnly, "rxonly Mpps (received by the frontend)"),
        ] {
            let (d, b) = (get(Side::Dpdk, mode).map(|r| r.counted), get(Side::Burst, mode).map(|r| r.counted));
            rows.push([label.to_string(), cell(d), cell(b), ratio(mode)]);
        }
        let sent = |side, mode| -> String {
            match get(side, mode) {
                Some(r) => r.sent.map_or_else(|| "-".to_string(), mpps),
                None => "failed".into(),
            }
        };
        for (mode, label) in
            [(Mode::TxOnly, "txonly: sent, per the frontend"), (Mode::RxOnly, "rxonly: sent, per the backend")]
        {
            rows.push([label.to_string(), sent(Side::Dpdk, mode), sent(Side::Burst, mode), "-".into()]);
        }
        let n = |side| {
            Mode::ALL
                .iter()
                .map(|&m| get(side, m).map_or("-".to_string(), |r| r.samples.to_string()))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        rows.push([
            "samples tx / rx (1 s each, after warm-up, all rounds)".into(),
            n(Side::Dpdk),
            n(Side::Burst),
            "-".into(),
        ]);
        Table { grid: Grid { header, rows } }
    }

    fn text(&self) -> String {
        self.grid.text("ratio > 1: burst's virtio-user moves more packets per second than DPDK's")
    }

    fn markdown(
        &self,
        args: &VhostArgs,
        cpu_a: &str,
        cpu_b: &str,
        commands: &[String],
        tsc_hz: Option<f64>,
        notes: &[String],
    ) -> String {
        let mut md = String::from("# virtio-user against DPDK's: to and from one DPDK vhost-user backend\n\n");
        let _ = writeln!(
            md,
            "Written by `cargo xtask bench vhost` on {} UTC, {}. {} B frames, bursts of {}. Each run: the \
             median of {} one-second samples after {WARMUP} s of warm-up; {} rounds, each running DPDK's and \
             ours back to back per mode (who goes first alternates); the table shows the median over the \
             rounds, and the ratio is the median of each round's ratio (listed in brackets). txonly counts \
             what the backend received (its `Rx-pps`), rxonly what the frontend received (its `Rx-pps`); the \
             rows \"sent\" are the sending side's own count, as a cross-check. Ratio > 1: burst moves more.\n",
            utc(now_unix()),
            machine(tsc_hz),
            args.size,
            args.burst,
            args.seconds,
            args.rounds,
        );
        md.push_str(&self.grid.markdown());
        let _ = writeln!(
            md,
            "\nCPUs: the backend forwards on CPU {cpu_b} (main lcore {cpu_a}), the frontend on CPU {cpu_a} \
             (main lcore {cpu_b}); the main lcores only print statistics."
        );
        md.push_str("\n## Commands\n\nThe backend (one for all four runs, driven through its prompt):\n\n");
        for c in commands {
            if c.starts_with('`') {
                let _ = writeln!(md, "- {c}");
            } else {
                let _ = writeln!(md, "- `{c}`");
            }
        }
        if !notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The backend's answers to `show port stats 0` at its prompt (testpmd 22.11, abridged).
    fn backend_stats(rx: &[u64], tx: &[u64]) -> String {
        let mut s = String::from("testpmd> start\nrxonly packet forwarding - ports=1 - cores=1 - streams=1\n");
        for (r, t) in rx.iter().zip(tx) {
            let _ = write!(
                s,
                "testpmd> show port stats 0\n\n  ######################## NIC statistics for port 0  \
                 ########################\n  RX-packets: 116699680  RX-missed: 0          RX-bytes:  7468779520\n  \
                 RX-errors: 0\n  RX-nombuf:  0\n  TX-packets: 0          TX-errors: 0          TX-bytes:  0\n\n  \
                 Throughput (since last show)\n  Rx-pps:   {r:>10}          Rx-bps:   8460766696\n  \
                 Tx-pps:   {t:>10}          Tx-bps:            0\n  \
                 ############################################################################\n"
            );
        }
        s
    }

    /// A frontend's `--stats-period 1` blocks (testpmd's and pktgen's share these lines).
    fn frontend_stats(rx: &[u64], tx: &[u64]) -> String {
        let mut s = String::from("EAL: RTE Version: 'DPDK 22.11.11'\n");
        for (r, t) in rx.iter().zip(tx) {
            let _ = write!(
                s,
                "\u{1b}[2J\u{1b}[1;1H\nPort statistics ====================================\n  \
                 ######################## NIC statistics for port 0  ########################\n  \
                 Rx-pps:   {r:>10}          Rx-bps:   0\n  Tx-pps:   {t:>10}          Tx-bps:   0\n"
            );
        }
        s
    }

    #[test]
    fn txonly_counts_what_the_backend_received() {
        let back = backend_stats(&[3_000_000, 15_000_000, 16_000_000, 17_000_000, 16_500_000], &[0; 5]);
        let front = frontend_stats(&[0; 5], &[0, 16_400_000, 16_100_000, 16_900_000, 16_600_000]);
        let r = Run::from_outputs(Mode::TxOnly, &front, &back).unwrap();
        assert_eq!(r.counted, 16_500_000.0);
        assert_eq!(r.sent, Some(16_600_000.0));
        assert_eq!(r.samples, 3);
    }

    #[test]
    fn rxonly_counts_what_the_frontend_received() {
        let back = backend_stats(&[0; 4], &[5_000_000, 21_000_000, 20_000_000, 22_000_000]);
        let front = frontend_stats(&[0, 19_000_000, 20_500_000, 21_500_000], &[0; 4]);
        let r = Run::from_outputs(Mode::RxOnly, &front, &back).unwrap();
        assert_eq!(r.counted, 21_000_000.0);
        assert_eq!(r.sent, Some(21_000_000.0));
        assert_eq!(r.samples, 2);
    }

    #[test]
    fn nothing_moved_or_too_few_samples_is_an_error_not_a_zero() {
        let back = backend_stats(&[0; 4], &[0; 4]);
        let front = frontend_stats(&[0; 4], &[9_000_000; 4]);
        let e = Run::from_outputs(Mode::TxOnly, &front, &back).unwrap_err();
        assert!(e.contains("no packets moved"), "{e}");
        let e = Run::from_outputs(Mode::RxOnly, "pktgen: error: probing virtio_user0", "").unwrap_err();
        assert!(e.contains("0 samples of the frontend's `Rx-pps`"), "{e}");
        // The backend answered fewer times than the frontend printed: what there is counts.
        let back = backend_stats(&[1, 2, 7_000_000], &[0; 3]);
        assert_eq!(Run::from_outputs(Mode::TxOnly, &front, &back).unwrap().samples, 1);
    }

    #[test]
    fn lcores_and_arguments() {
        assert_eq!(lcore_pair("0,1"), Some(("0".into(), "1".into())));
        assert_eq!(lcore_pair("2,5"), Some(("2".into(), "5".into())));
        assert_eq!(lcore_pair("0"), None);
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 1 };
        let back = backend_args("0,1", "0", "/s.sock", "/huge", "p-backend", &a).join(" ");
        assert!(back.starts_with("-l 0,1 --main-lcore 0 --no-pci --vdev net_vhost0,iface=/s.sock,queues=1"), "{back}");
        assert!(back.contains("-- -i --nb-cores=1 --burst=32 --txpkts=64"), "{back}");
        let d = frontend_args(Side::Dpdk, Mode::TxOnly, "0,1", "1", "/s.sock", "/huge", "p", &a, 12).join(" ");
        assert!(
            d.starts_with("-l 0,1 --main-lcore 1 --no-pci --vdev net_virtio_user0,path=/s.sock --single-file-segments")
        );
        assert!(d.ends_with("--forward-mode=txonly --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64"), "{d}");
        let b = frontend_args(Side::Burst, Mode::RxOnly, "0,1", "1", "/s.sock", "/huge", "p", &a, 12).join(" ");
        assert!(b.contains("--vdev virtio_user0,path=/s.sock --single-file-segments"), "{b}");
        assert!(
            b.ends_with("--forward-mode=rxonly --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64 --run-seconds 22")
        );
        assert_eq!(Mode::TxOnly.backend(), "rxonly");
        assert_eq!(Mode::RxOnly.backend(), "txonly");
    }

    #[test]
    fn small_rates_do_not_read_as_zero() {
        assert_eq!(mpps(51_950_000.0), "51.95");
        assert_eq!(mpps(100_000.0), "0.10");
        assert_eq!(mpps(230.0), "0.000230");
    }

    #[test]
    fn rounds_fold_into_medians_and_paired_ratios() {
        let run = |c: f64| Run { counted: c * 1e6, sent: Some(c * 1e6), samples: 10 };
        let results = vec![
            (0, Side::Dpdk, Mode::TxOnly, run(10.0)),
            (0, Side::Burst, Mode::TxOnly, run(12.0)),
            (1, Side::Burst, Mode::TxOnly, run(40.0)),
            (1, Side::Dpdk, Mode::TxOnly, run(50.0)),
            (2, Side::Dpdk, Mode::TxOnly, run(20.0)),
            (2, Side::Burst, Mode::TxOnly, run(22.0)),
            (0, Side::Dpdk, Mode::RxOnly, run(20.0)),
        ];
        let s = Summary::new(&results, 3);
        assert_eq!(s.get(Side::Dpdk, Mode::TxOnly).unwrap().counted, 20e6);
        assert_eq!(s.get(Side::Burst, Mode::TxOnly).unwrap().samples, 30);
        // Paired per round: 1.2, 0.8, 1.1 -> 1.1 (not 22/20 of the medians).
        let (r, each) = s.ratio(Mode::TxOnly);
        assert_eq!(each.len(), 3);
        assert!((r.unwrap() - 1.1).abs() < 1e-9, "{r:?}");
        assert_eq!(s.ratio(Mode::RxOnly), (None, vec![]));
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 3 };
        let text = Table::new(None, &a, &s).text();
        let tx = text.lines().find(|l| l.starts_with("txonly Mpps")).unwrap();
        assert!(tx.contains("1.10 (1.20, 0.80, 1.10)"), "{tx}");
    }

    #[test]
    fn long_socket_paths_go_to_the_temporary_directory() {
        assert_eq!(socket_path(Path::new("/work/target/bench"), "x.sock"), Path::new("/work/target/bench/x.sock"));
        let long = PathBuf::from("/").join("d".repeat(120));
        assert_eq!(socket_path(&long, "x.sock"), std::env::temp_dir().join("x.sock"));
    }

    #[test]
    fn the_table_shows_failures_as_such() {
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 1 };
        let dpdk_tx = Run { counted: 16e6, sent: Some(16.1e6), samples: 10 };
        let dpdk_rx = Run { counted: 20e6, sent: None, samples: 10 };
        let ours_tx = Run { counted: 18e6, sent: Some(18e6), samples: 10 };
        let results = vec![
            (0, Side::Dpdk, Mode::TxOnly, dpdk_tx),
            (0, Side::Dpdk, Mode::RxOnly, dpdk_rx),
            (0, Side::Burst, Mode::TxOnly, ours_tx),
        ];
        let t = Table::new(Some("DPDK 22.11.11"), &a, &Summary::new(&results, 1));
        let text = t.text();
        assert!(text.contains("DPDK 22.11 virtio-user"), "{text}");
        let tx = text.lines().find(|l| l.starts_with("txonly Mpps")).unwrap();
        assert!(tx.contains("16.00") && tx.contains("18.00") && tx.contains("1.12"), "{tx}");
        let rx = text.lines().find(|l| l.starts_with("rxonly Mpps")).unwrap();
        assert!(rx.contains("20.00") && rx.contains("failed"), "{rx}");
        let samples = text.lines().find(|l| l.starts_with("samples")).unwrap();
        assert!(samples.contains("10 / 10") && samples.contains("10 / -"), "{samples}");
        let md = t.markdown(
            &a,
            "0",
            "1",
            &["dpdk-testpmd x".into(), "`set fwd rxonly` on the backend, then:".into()],
            None,
            &[],
        );
        assert!(md.contains("|:--") && md.contains("- `dpdk-testpmd x`") && md.contains("- `set fwd rxonly` on"));
        assert!(md.contains("the backend forwards on CPU 1 (main lcore 0), the frontend on CPU 0"), "{md}");
    }
}
