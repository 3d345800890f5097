//! `cargo xtask bench null`: DPDK's testpmd and burst's pktgen forwarding between two `net_null`
//! ports on one core, back to back, in packets per second per port.
//!
//! Both run the same way: lcores `0,1` (the first two CPUs we may use: the main lcore and one
//! forwarding lcore), `--no-pci --vdev net_null0 --vdev net_null1`, io forwarding, bursts of
//! 32, 2 MiB hugepages, statistics every second:
//!
//! - `dpdk-testpmd -l 0,1 --no-pci --vdev net_null0 --vdev net_null1 -- --forward-mode=io
//!   --nb-cores=1 --stats-period 1` (Debian's `dpdk-dev`, DPDK 22.11), stopped with SIGINT once it
//!   has printed enough statistics;
//! - `pktgen -l 0,1 --no-pci --vdev net_null0 --vdev net_null1 -- --forward-mode=io --nb-cores=1
//!   --stats-period 1 --run-seconds N` (release build), which prints the same `Rx-pps:`/`Tx-pps:`
//!   lines and stops by itself.
//!
//! The steady-state figure of each port is the median of its per-second `Rx-pps`/`Tx-pps`
//! samples, the first [`WARMUP`] left out. Cycles per packet are TSC ticks per second divided
//! by the packets the forwarding core sends per second (each was received once and sent once).
//!
//! testpmd's default mbuf pool (155456 buffers) wants about 400 MB of hugepages; the bench makes
//! sure [`FREE_PAGES`] 2 MiB pages are free, reserving the difference with a
//! `burst_mem::hugepage::Reservation` that gives it back at the end (also on error or Ctrl-C),
//! and mounts a hugetlbfs if none is mounted. The table goes to `target/bench/null.md`, the
//! programs' output to `target/bench/null-testpmd.log` and `null-pktgen.log`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use super::cargo::{build_pktgen, target_dir};
use super::dpdk::{dpdk_version, ensure_testpmd, version_major_minor, RuntimeDir};
use super::hugepages::Hugepages;
use super::machine::{lcore_list, machine, measure_tsc_hz, warn_if_busy};
use super::program::Program;
use super::report::{now_unix, report, utc, Grid};
use super::signal::{catch_sigint, interrupted};
use super::stats::{parse_rates, steady};

#[derive(Args)]
pub struct NullArgs {
    /// Seconds of statistics each program is measured over, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Per-second samples left out at the start: the first covers start-up (testpmd's first one is
/// 0: it has nothing to compare with yet).
const WARMUP: usize = 2;
/// 2 MiB pages that must be free: testpmd's pool, its rings and EAL's own, with room to spare.
const FREE_PAGES: u64 = 1024;
/// The two ports.
const PORTS: usize = 2;
/// How long a program may take beyond its measured seconds (start-up, teardown).
const SLACK: Duration = Duration::from_secs(60);

pub fn run(args: &NullArgs) -> Result<(), String> {
    catch_sigint();
    if args.seconds < 3 {
        return Err(format!("--seconds {}: give at least 3, for a median worth the name", args.seconds));
    }
    let lcores = lcore_list();
    if !lcores.contains(',') {
        return Err("this bench needs two CPUs (a main lcore and a forwarding lcore); only one is usable".into());
    }
    let target = target_dir();
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let testpmd = ensure_testpmd()?;
    let pktgen = build_pktgen(&target)?;
    let huge = Hugepages::prepare(FREE_PAGES)?;

    let mut notes = Vec::new();
    let mut failures = Vec::new();
    let samples = args.seconds as usize + WARMUP;
    let prefix = format!("burst-bench-null-{}", std::process::id());

    let dpdk_prefix = format!("{prefix}-dpdk");
    let dpdk_args: Vec<String> = [
        "-l",
        &lcores,
        "--no-pci",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
        "--huge-dir",
        &huge.dir.display().to_string(),
        "--huge-unlink",
        "--file-prefix",
        &dpdk_prefix,
        "-v",
        "--",
        "--forward-mode=io",
        "--nb-cores=1",
        "--stats-period",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dpdk = {
        let _runtime = RuntimeDir::new(&dpdk_prefix);
        let log = out_dir.join("null-testpmd.log");
        warn_if_busy("testpmd", &mut notes);
        println!("bench: {} {}", testpmd.display(), shown(&dpdk_args, &prefix));
        let r = run_program(&testpmd, &dpdk_args, &log, samples, Stop::Signal);
        huge.remove_files(&dpdk_prefix);
        r.and_then(|text| Measured::from_output(&text, &log))
    };
    let dpdk = dpdk.map_err(|e| failures.push(format!("testpmd: {e}"))).ok();
    if interrupted() {
        return Err("interrupted".into());
    }

    let ours_prefix = format!("{prefix}-burst");
    let run_seconds = (samples + 1).to_string();
    let ours_args: Vec<String> = [
        "-l",
        &lcores,
        "--no-pci",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
        "--huge-dir",
        &huge.dir.display().to_string(),
        "--file-prefix",
        &ours_prefix,
        "--",
        "--forward-mode=io",
        "--nb-cores=1",
        "--stats-period",
        "1",
        "--run-seconds",
        &run_seconds,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ours = {
        let log = out_dir.join("null-pktgen.log");
        warn_if_busy("pktgen", &mut notes);
        println!("bench: {} {}", pktgen.display(), shown(&ours_args, &prefix));
        let r = run_program(&pktgen, &ours_args, &log, samples, Stop::ByItself);
        huge.remove_files(&ours_prefix);
        r.and_then(|text| Measured::from_output(&text, &log))
    };
    let ours = ours.map_err(|e| failures.push(format!("pktgen: {e}"))).ok();
    if interrupted() {
        return Err("interrupted".into());
    }
    drop(huge);

    let tsc_hz = measure_tsc_hz();
    if let Some(d) = &dpdk {
        if let Some(v) = &d.version {
            notes.insert(0, format!("DPDK version: {v}"));
        }
    }
    if let Some(total) = ours.as_ref().and_then(|o| o.reported_total) {
        notes.push(format!("pktgen's own `Total:` over its whole run (warm-up included): {total:.2} Mpps"));
    }
    let table = Table::new(dpdk.as_ref(), ours.as_ref(), tsc_hz);
    let commands =
        [format!("dpdk-testpmd {}", shown(&dpdk_args, &prefix)), format!("pktgen {}", shown(&ours_args, &prefix))];
    let markdown = || table.markdown(&commands, tsc_hz, args.seconds, &notes);
    report(&table.text(), &notes, &out_dir.join("null.md"), markdown, failures)
}

/// The arguments as shown in the table: the per-run file prefix made generic.
fn shown(args: &[String], prefix: &str) -> String {
    args.join(" ").replace(prefix, "burst-bench-null-PID")
}

/// How a program's run ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGINT once it has printed enough statistics (testpmd).
    Signal,
    /// It stops by itself (pktgen's `--run-seconds`).
    ByItself,
}

/// Runs `bin` with its output in `log` until it has printed `samples` statistics blocks per
/// port (and stopped, one way or the other); returns the output.
fn run_program(bin: &Path, args: &[String], log: &Path, samples: usize, stop: Stop) -> Result<String, String> {
    let mut program = Program::start(bin, args, log, Stdio::null())?;
    let deadline = Instant::now() + Duration::from_secs(samples as u64) + SLACK;
    let mut signalled = false;
    let status = loop {
        if let Some(status) = program.exited()? {
            break status;
        }
        if interrupted() {
            program.stop();
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            program.stop();
            return Err(format!("did not finish in time; its output is in {}", log.display()));
        }
        if stop == Stop::Signal && !signalled && program.output().matches("Tx-pps:").count() >= samples * PORTS {
            program.signal(libc::SIGINT);
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    program.check(status)?;
    Ok(program.output())
}

/// One program's steady-state numbers.
struct Measured {
    /// Per port: (Rx pps, Tx pps), medians after the warm-up.
    ports: Vec<(f64, f64)>,
    /// Samples the medians were taken over, per port.
    samples: usize,
    /// DPDK's version line, if printed.
    version: Option<String>,
    /// pktgen's own `total_mpps` from its `RESULT` line.
    reported_total: Option<f64>,
}

impl Measured {
    fn from_output(text: &str, log: &Path) -> Result<Measured, String> {
        let rates = parse_rates(text);
        let mut ports = Vec::new();
        let mut samples = usize::MAX;
        for port in 0..PORTS as u16 {
            let (rx, tx) = rates.get(&port).cloned().unwrap_or_default();
            let (Some(rx_pps), Some(tx_pps)) = (steady(&rx, WARMUP), steady(&tx, WARMUP)) else {
                return Err(format!(
                    "fewer than {} `Rx-pps:`/`Tx-pps:` samples for port {port}; see {}",
                    WARMUP + 1,
                    log.display()
                ));
            };
            samples = samples.min(rx.len().min(tx.len()) - WARMUP);
            ports.push((rx_pps, tx_pps));
        }
        let version = dpdk_version(text);
        let reported_total = text
            .lines()
            .filter_map(|l| l.strip_prefix("RESULT "))
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .find_map(|v| v.get("total_mpps").and_then(Value::as_f64));
        Ok(Measured { ports, samples, version, reported_total })
    }

    /// Packets the forwarding core sends per second, all ports.
    fn forwarded_pps(&self) -> f64 {
        self.ports.iter().map(|(_, tx)| tx).sum()
    }
}

struct Table {
    grid: Grid,
}

impl Table {
    fn new(dpdk: Option<&Measured>, ours: Option<&Measured>, tsc_hz: Option<f64>) -> Table {
        let version = dpdk.and_then(|d| d.version.as_deref()).map(version_major_minor);
        let header = [
            "net_null, io, 1 forwarding core".to_string(),
            format!("DPDK {} testpmd", version.unwrap_or_else(|| "22.11".into())),
            "burst pktgen".to_string(),
            "ratio (burst/DPDK)".to_string(),
        ];
        let cell = |v: Option<f64>| v.map_or_else(|| "failed".to_string(), |v| format!("{v:.2}"));
        let ratio = |d: Option<f64>, b: Option<f64>| match (d, b) {
            (Some(d), Some(b)) if d > 0.0 => format!("{:.2}", b / d),
            _ => "-".into(),
        };
        let mut rows = Vec::new();
        for port in 0..PORTS {
            for (dir, pick) in [("Rx", 0), ("Tx", 1)] {
                let get = |m: Option<&Measured>| {
                    m.and_then(|m| m.ports.get(port)).map(|p| if pick == 0 { p.0 } else { p.1 } / 1e6)
                };
                let (d, b) = (get(dpdk), get(ours));
                rows.push([format!("port {port} {dir} Mpps"), cell(d), cell(b), ratio(d, b)]);
            }
        }
        let fwd = |m: Option<&Measured>| m.map(|m| m.forwarded_pps() / 1e6);
        rows.push(["forwarded Mpps (all ports)".into(), cell(fwd(dpdk)), cell(fwd(ours)), ratio(fwd(dpdk), fwd(ours))]);
        let cycles = |m: Option<&Measured>| match (m, tsc_hz) {
            (Some(m), Some(hz)) if m.forwarded_pps() > 0.0 => Some(hz / m.forwarded_pps()),
            _ => None,
        };
        rows.push([
            "TSC cycles per packet (lower is better)".into(),
            cell(cycles(dpdk)),
            cell(cycles(ours)),
            "-".into(),
        ]);
        let n = |m: Option<&Measured>| m.map_or("-".to_string(), |m| m.samples.to_string());
        rows.push(["samples (1 s each, after warm-up)".into(), n(dpdk), n(ours), "-".into()]);
        Table { grid: Grid { header, rows } }
    }

    fn text(&self) -> String {
        self.grid.text("ratio > 1: burst forwards more packets per second than DPDK")
    }

    fn markdown(&self, commands: &[String], tsc_hz: Option<f64>, seconds: u64, notes: &[String]) -> String {
        let mut md = String::from("# pktgen against testpmd: io forwarding between two net_null ports\n\n");
        let _ = writeln!(
            md,
            "Written by `cargo xtask bench null` on {} UTC, {}. Steady state: the median of {seconds} \
             one-second `Rx-pps`/`Tx-pps` samples per port after {WARMUP} s of warm-up. Ratio > 1: burst \
             forwards more.\n",
            utc(now_unix()),
            machine(tsc_hz),
        );
        md.push_str(&self.grid.markdown());
        md.push_str("\n## Commands\n\n");
        for c in commands {
            let _ = writeln!(md, "- `{c}`");
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

    const TESTPMD: &str = "\
\u{1b}[2J\u{1b}[1;1H
Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 577312     RX-missed: 0          RX-bytes:  0
  Throughput (since last show)
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  Rx-pps:            0          Rx-bps:            0
  Tx-pps:            0          Tx-bps:            0
  ######################## NIC statistics for port 0  ########################
  Rx-pps:     80610063          Rx-bps:            0
  Tx-pps:     80610031          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  Rx-pps:     80610355          Rx-bps:            0
  Tx-pps:     80610355          Tx-bps:            0
  ######################## NIC statistics for port 0  ########################
  Rx-pps:     81409571          Rx-bps:            0
  Tx-pps:     81409570          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  Rx-pps:     81409564          Rx-bps:            0
  Tx-pps:     81409564          Tx-bps:            0
EAL: RTE Version: 'DPDK 22.11.11'
";

    #[test]
    fn rates_are_read_per_port_and_the_warmup_is_left_out() {
        let r = parse_rates(TESTPMD);
        assert_eq!(r[&0].0, [0.0, 80610063.0, 81409571.0]);
        assert_eq!(r[&1].1, [0.0, 80610355.0, 81409564.0]);
        let m = Measured::from_output(TESTPMD, Path::new("x")).unwrap();
        assert_eq!(m.ports[0], (81409571.0, 81409570.0));
        assert_eq!(m.samples, 1);
        assert_eq!(m.version.as_deref(), Some("DPDK 22.11.11"));
        assert_eq!(m.forwarded_pps(), 81409570.0 + 81409564.0);
    }

    #[test]
    fn pktgen_blocks_and_result_parse_too() {
        let mut text = String::new();
        for v in [1.0e6, 2.0e6, 9.0e7, 8.0e7, 8.5e7] {
            for p in 0..2 {
                text.push_str(&format!(
                    "  ######################## NIC statistics for port {p:<2} ########################\n  Rx-pps: {v:>12}\n  Tx-pps: {v:>12}\n"
                ));
            }
        }
        text.push_str("Total: 170.00 Mpps\nRESULT {\"total_mpps\":170.0}\n");
        let m = Measured::from_output(&text, Path::new("x")).unwrap();
        assert_eq!(m.ports[1], (8.5e7, 8.5e7), "median of the last three");
        assert_eq!(m.reported_total, Some(170.0));
        assert!(Measured::from_output("nothing", Path::new("x")).is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(steady(&[0.0, 0.0, 3.0, 1.0, 2.0], WARMUP), Some(2.0));
        assert_eq!(steady(&[0.0, 0.0, 4.0, 2.0], WARMUP), Some(3.0));
        assert_eq!(steady(&[0.0, 0.0], WARMUP), None);
        assert_eq!(steady(&[5.0], 0), Some(5.0));
    }
}
