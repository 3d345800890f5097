//! `cargo xtask bench xdp`: pktgen over burst's `net_af_xdp` against testpmd over DPDK 22.11's,
//! then the same for `net_af_packet`, on one veth pair, in packets per second.
//!
//! The bench makes a network namespace with one veth pair, `x0` (the frontend's) and `x1` (its
//! peer), and runs every program inside it with `ip netns exec`: the host's interfaces are never
//! touched, and deleting the namespace at the end takes everything with it. Per port kind and
//! mode, back to back, the frontend is `dpdk-testpmd` or `pktgen` with `--vdev
//! net_af_xdp0,iface=x0` (`net_af_packet0,iface=x0,qdisc_bypass=1`), both with 4 KiB pages:
//!
//! - txonly: the frontend sends; counted is what `x1` received, by the kernel's own count;
//! - rxonly: a generator (DPDK's testpmd in txonly through the same kind of port on `x1`, the
//!   same for both sides) sends; counted is what the frontend says it received (`Rx-pps`);
//! - io: the generator sends, the frontend sends each frame back out `x0`; counted is what `x1`
//!   received back, by the kernel's count.
//!
//! 64-byte frames and bursts of 32 by default. CPUs: of the first two we may use, A and B, the
//! frontend forwards on A (main lcore B) and the generator on B (main lcore A). Each run is the
//! median of one-second samples after [`WARMUP`]; rounds run DPDK's and ours back to back per
//! mode, who goes first alternating, as `bench vhost` does. After the rounds, with `perf` on
//! PATH, one more run of each side and mode is profiled (`perf.rs`: user space, the syscall,
//! the kernel's path); its throughput is not counted.
//!
//! A run that fails or moves nothing is an error, not a zero in the table; the table then is
//! printed but `target/bench/xdp.md` is left as it was. Logs: `target/bench/xdp-*.log`.
//!
//! The files: `mod.rs` (options, the namespace, the order of the runs, one run), `args.rs` (the
//! command lines), `counters.rs` (the kernel's counts), `perf.rs` (the profile), `results.rs`
//! (a run's figures, the rounds folded together, the table).

mod args;
mod counters;
mod perf;
mod results;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use super::cargo::{build_pktgen, target_dir};
use super::dpdk::{dpdk_version, ensure_testpmd, RuntimeDir};
use super::machine::{lcore_list, measure_tsc_hz, warn_if_busy};
use super::program::{find_on_path, Program};
use super::report::report;
use super::signal::{catch_sigint, interrupted};
use args::{frontend_args, generator_args, in_netns, lcore_pair};
use results::{mpps, Run, Summary, Table};

#[derive(Args)]
pub struct KernelArgs {
    /// Seconds of statistics each run is measured over, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Frame length in bytes, without CRC (`--txpkts`).
    #[arg(long, default_value_t = 64)]
    size: u16,
    /// Packets per burst, every side.
    #[arg(long, default_value_t = 32)]
    burst: u16,
    /// Rounds: each runs DPDK's and ours back to back in each mode (who goes first alternates).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Only this kind of port (default: both).
    #[arg(long, value_enum)]
    port: Option<Port>,
    /// No profiling runs, even with `perf` on PATH.
    #[arg(long)]
    no_perf: bool,
}

/// Per-second samples left out at the start of a run.
const WARMUP: usize = 2;
/// How long a run may take beyond its measured seconds (start-up, teardown).
const SLACK: Duration = Duration::from_secs(60);
/// Seconds a profiling run records.
const PERF_SECONDS: u64 = 4;
/// The interfaces.
const FRONT: &str = "x0";
const PEER: &str = "x1";

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(super) enum Port {
    /// net_af_xdp.
    Xdp,
    /// net_af_packet.
    Packet,
}

impl Port {
    pub(super) fn driver(self) -> &'static str {
        match self {
            Port::Xdp => "af_xdp",
            Port::Packet => "af_packet",
        }
    }

    /// Device arguments beyond `iface`, the same on both sides.
    fn extra(self) -> &'static str {
        match self {
            Port::Xdp => "",
            // DPDK's default is the qdisc path; both skip it, as a benchmark would.
            Port::Packet => ",qdisc_bypass=1",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    TxOnly,
    RxOnly,
    Io,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::TxOnly, Mode::RxOnly, Mode::Io];

    pub(super) fn name(self) -> &'static str {
        match self {
            Mode::TxOnly => "txonly",
            Mode::RxOnly => "rxonly",
            Mode::Io => "io",
        }
    }

    /// Whether frames must come in from the peer.
    fn generated(self) -> bool {
        self != Mode::TxOnly
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Side {
    Dpdk,
    Burst,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::Dpdk => "dpdk",
            Side::Burst => "burst",
        }
    }
}

/// The bench's namespace with its veth pair, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Result<Netns, String> {
        let ip = |a: &[&str]| -> Result<(), String> {
            let out = Command::new("ip").args(a).output().map_err(|e| format!("running ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("ip {}: {}", a.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        ip(&["netns", "add", name])?;
        let ns = Netns(name.to_string());
        ip(&["-n", name, "link", "add", FRONT, "type", "veth", "peer", "name", PEER])?;
        for i in ["lo", FRONT, PEER] {
            ip(&["-n", name, "link", "set", i, "up"])?;
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// What one run needs besides its side, port and mode.
struct Env<'a> {
    ns: &'a str,
    testpmd: &'a Path,
    lcores: &'a str,
    cpus: (&'a str, &'a str),
    prefix: &'a str,
    args: &'a KernelArgs,
}

pub fn run(args: &KernelArgs) -> Result<(), String> {
    catch_sigint();
    if args.seconds < 3 || !(42..=1514).contains(&args.size) || !(1..=512).contains(&args.burst) {
        return Err("give --seconds >= 3, --size 42 to 1514, --burst 1 to 512".into());
    }
    if !(1..=20).contains(&args.rounds) {
        return Err(format!("--rounds {}: give 1 to 20", args.rounds));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("this bench makes a network namespace and attaches XDP programs: run it as root".into());
    }
    let lcores = lcore_list();
    let Some((cpu_a, cpu_b)) = lcore_pair(&lcores) else {
        return Err("this bench needs two CPUs (the frontend on one, the generator on the other)".into());
    };
    let target = target_dir();
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let testpmd = ensure_testpmd()?;
    let pktgen = build_pktgen(&target);
    let perf = (!args.no_perf).then(|| find_on_path("perf")).flatten();

    let mut notes = Vec::new();
    warn_if_busy("the bench", &mut notes);
    if perf.is_none() && !args.no_perf {
        notes.push("no `perf` on PATH: no profile (Debian: apt-get install linux-perf)".into());
    }
    let prefix = format!("burst-bench-xdp-{}", std::process::id());
    let ns = Netns::new(&prefix)?;
    let env = Env { ns: &ns.0, testpmd: &testpmd, lcores: &lcores, cpus: (&cpu_a, &cpu_b), prefix: &prefix, args };
    let ports: Vec<Port> = args.port.map_or_else(|| vec![Port::Xdp, Port::Packet], |p| vec![p]);
    let samples = args.seconds as usize + WARMUP;
    let mut failures = Vec::new();
    let mut results: Vec<(Port, u32, Side, Mode, Run)> = Vec::new();
    let mut profiles = Vec::new();
    let mut version = None;
    'runs: for &port in &ports {
        for round in 0..args.rounds {
            for mode in Mode::ALL {
                let sides = if round % 2 == 0 { [Side::Dpdk, Side::Burst] } else { [Side::Burst, Side::Dpdk] };
                for side in sides {
                    let what = format!("{} {} {} (round {})", side.tag(), port.driver(), mode.name(), round + 1);
                    let bin = match (side, &pktgen) {
                        (Side::Dpdk, _) => testpmd.clone(),
                        (Side::Burst, Ok(p)) => p.clone(),
                        (Side::Burst, Err(e)) => {
                            failures.push(format!("{what}: not run: {e}"));
                            continue;
                        }
                    };
                    let log =
                        out_dir.join(format!("xdp-{}-{}-{}-{}.log", port.driver(), side.tag(), mode.name(), round + 1));
                    match one_run(&env, &bin, side, port, mode, samples, &log, None) {
                        Ok((run, out)) => {
                            let offered = run.offered.map_or_else(|| "-".into(), mpps);
                            println!("bench: {what}: {} Mpps (offered {offered})", mpps(run.counted));
                            if version.is_none() {
                                version = dpdk_version(&out);
                            }
                            results.push((port, round, side, mode, run));
                        }
                        Err(e) => {
                            eprintln!("bench: {what}: {e}");
                            failures.push(format!("{what}: {e}"));
                        }
                    }
                    if interrupted() {
                        break 'runs;
                    }
                }
            }
        }
        if let Some(perf) = &perf {
            for mode in Mode::ALL {
                for side in [Side::Dpdk, Side::Burst] {
                    let bin = match side {
                        Side::Dpdk => testpmd.clone(),
                        Side::Burst => match &pktgen {
                            Ok(p) => p.clone(),
                            Err(_) => continue,
                        },
                    };
                    let log = out_dir.join(format!("xdp-{}-{}-{}-perf.log", port.driver(), side.tag(), mode.name()));
                    let data = out_dir.join(format!("xdp-{}-{}-{}.perf.data", port.driver(), side.tag(), mode.name()));
                    match one_run(&env, &bin, side, port, mode, samples, &log, Some((perf, &data))) {
                        Ok((run, _)) => {
                            if let Some(p) = run.profile {
                                profiles.push((port, side, mode, p));
                            }
                        }
                        Err(e) => {
                            notes.push(format!("profiling {} {} {}: {e}", side.tag(), port.driver(), mode.name()))
                        }
                    }
                    if interrupted() {
                        break 'runs;
                    }
                }
            }
        }
    }
    drop(ns);
    if interrupted() {
        return Err("interrupted".into());
    }
    if let Some(v) = &version {
        notes.insert(0, format!("DPDK version: {v}"));
    }
    let summary = Summary::new(&results, &profiles, args.rounds);
    let tables: Vec<Table> = ports.iter().map(|&p| Table::new(p, version.as_deref(), args, &summary)).collect();
    let text: String = tables.iter().map(|t| t.text() + "\n").collect();
    let markdown = || results::markdown(&tables, &summary, args, &cpu_a, &cpu_b, measure_tsc_hz(), &notes);
    report(&text, &notes, &out_dir.join("xdp.md"), markdown, failures)
}

/// One run: the generator (if the mode needs one), then the frontend until it has printed
/// `samples` statistics blocks, the kernel's counters read at each; with `perf`, the frontend
/// profiled meanwhile.
#[allow(clippy::too_many_arguments)]
fn one_run(
    env: &Env,
    bin: &Path,
    side: Side,
    port: Port,
    mode: Mode,
    samples: usize,
    log: &Path,
    perf: Option<(&PathBuf, &Path)>,
) -> Result<(Run, String), String> {
    let gen_prefix = format!("{}-gen", env.prefix);
    let _gen_runtime = RuntimeDir::new(&gen_prefix);
    let mut generator = None;
    if mode.generated() {
        let g = generator_args(port, env.lcores, env.cpus.0, PEER, &gen_prefix, env.args);
        let glog = log.with_extension("gen.log");
        // Its input stays open for as long as it runs: testpmd without --stats-period quits
        // when it reads the end of its input ("Press enter to exit").
        let mut p = Program::start(
            Path::new("ip"),
            &in_netns(env.ns, &env.testpmd.to_string_lossy(), &g),
            &glog,
            Stdio::piped(),
        )?;
        wait_for(&mut p, "packet forwarding - ports", Duration::from_secs(60))?;
        generator = Some(p);
    }
    let run_prefix = format!("{}-{}", env.prefix, side.tag());
    let _runtime = RuntimeDir::new(&run_prefix);
    let f = frontend_args(side, port, mode, env.lcores, env.cpus.1, FRONT, &run_prefix, env.args, samples);
    let mut front = Program::start(Path::new("ip"), &in_netns(env.ns, &bin.to_string_lossy(), &f), log, Stdio::null())?;
    let deadline = Instant::now() + Duration::from_secs(samples as u64) + SLACK;
    let (mut front_counts, mut peer_counts) = (Vec::new(), Vec::new());
    loop {
        if let Some(status) = front.exited()? {
            front.check(status)?;
            return Err(format!(
                "it stopped by itself after {} statistics blocks; see {}",
                front_counts.len(),
                log.display()
            ));
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it printed {} of {samples} statistics blocks in time; see {}",
                front_counts.len(),
                log.display()
            ));
        }
        if let Some(g) = generator.as_mut() {
            if let Some(status) = g.exited()? {
                g.check(status)?;
                return Err("the generator stopped".into());
            }
        }
        let blocks = front.output().matches("Rx-pps:").count();
        if blocks > front_counts.len() {
            front_counts.push(counters::read(env.ns, FRONT)?);
            peer_counts.push(counters::read(env.ns, PEER)?);
            // A profiling run records once it is in steady state, and ends there: its
            // throughput is not counted.
            if let Some((_, data)) = perf.filter(|_| front_counts.len() > WARMUP) {
                let profile = perf::profile(front.child.id(), PERF_SECONDS, data)?;
                front.stop();
                return Ok((Run { profile: Some(profile), ..Run::default() }, front.output()));
            }
            if front_counts.len() >= samples {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    front.signal(libc::SIGINT);
    let status = front.wait_for(Duration::from_secs(15))?.ok_or("it did not stop on SIGINT")?;
    front.check(status)?;
    drop(generator);
    let out = front.output();
    let run = Run::from_outputs(mode, &out, &front_counts, &peer_counts)
        .map_err(|e| format!("{e}; see {}", log.display()))?;
    Ok((run, out))
}

/// Waits until `p`'s output holds `text`.
fn wait_for(p: &mut Program, text: &str, timeout: Duration) -> Result<(), String> {
    let until = Instant::now() + timeout;
    while !p.output().contains(text) {
        if let Some(status) = p.exited()? {
            p.check(status)?;
            return Err(format!("the generator exited; see {}", p.log.display()));
        }
        if Instant::now() >= until || interrupted() {
            return Err(format!("the generator did not start forwarding; see {}", p.log.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
