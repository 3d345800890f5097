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
//!
//! The files: `mod.rs` (the options and the order of the runs), `args.rs` (the command lines),
//! `backend.rs` (driving the backend through its prompt, and a frontend against it), `results.rs`
//! (a run's figures, the rounds folded together, the table).

mod args;
mod backend;
mod results;

use std::fs;
use std::time::Duration;

use clap::Args;

use super::cargo::{build_pktgen, target_dir};
use super::dpdk::{dpdk_version, ensure_testpmd, RuntimeDir};
use super::hugepages::Hugepages;
use super::machine::{lcore_list, measure_tsc_hz, warn_if_busy};
use super::report::report;
use super::signal::{catch_sigint, interrupted};
use args::{backend_args, frontend_args, lcore_pair, socket_path, SocketFile};
use backend::{run_frontend, Backend};
use results::{mpps, Run, Summary, Table};

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
    report(&table.text(), &notes, &out_dir.join("vhost.md"), markdown, failures)
}
