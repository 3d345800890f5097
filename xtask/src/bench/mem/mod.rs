//! `cargo xtask bench mem`: DPDK's ring and mempool perf autotests and burst-mem's criterion
//! benches, back to back, as one table of CPU cycles (TSC ticks) per element.
//!
//! DPDK side: Debian's `dpdk-test` (package `dpdk-dev`; DPDK 22.11 on Debian 12), run as
//! `DPDK_TEST=<test> dpdk-test --no-huge -m 512 --no-pci -l <2 cpus> --file-prefix <unique>`.
//! No hugepages are reserved: these tests touch a few hundred KiB, and their numbers are the
//! same with 2 MiB pages. The only thing DPDK leaves behind, its runtime directory
//! (`/var/run/dpdk/<prefix>` as root), is removed afterwards, also on error or Ctrl-C.
//!
//! - `ring_perf_autotest` (about 5 s): its single-lcore lines (legacy pointer API) give the
//!   cycles of one enqueue plus one dequeue of a burst of N; divided by N here.
//! - `mempool_perf_autotest` runs every combination of bulk sizes, kept objects and cores,
//!   5 s each, 720 cases, an hour in all, and cannot be told to run fewer. It is stopped once
//!   the lines needed here are out, about 35 minutes in. Its `rate_persec` counts objects
//!   got and put back per second, so cycles per object = TSC Hz / rate, with the TSC Hz that
//!   DPDK itself timed the 5 s with (from its EAL debug log). Of `constant_n=0/1` (bulk size
//!   a run-time or a compile-time constant) the faster is taken.
//!
//! The DPDK numbers are saved in `target/bench/dpdk-mem.json`; `--skip-dpdk` reuses them.
//!
//! burst side: `cargo bench -p burst-mem --bench ring` and `--bench mempool`, whose criterion
//! measurement is in TSC cycles and whose iterations each move N elements in and out; the
//! per-iteration mean of `target/criterion/<id>/new/estimates.json` is divided by N.

mod dpdk;
mod ours;

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use clap::Args;

use super::cargo::target_dir;
use super::report::{report, utc, Grid};
use super::signal::{catch_sigint, interrupted};
use dpdk::{measure_dpdk, DpdkResults, MpSection};
use ours::{bench_of, measure_ours, OurRun, Ours};

#[derive(Args)]
pub(super) struct MemArgs {
    /// Don't run DPDK's autotests (they take about 35 minutes): show the numbers of the last
    /// run, saved in target/bench/dpdk-mem.json, if any.
    #[arg(long)]
    skip_dpdk: bool,
    /// Don't run burst's criterion benches: show criterion's last results, if any.
    #[arg(long)]
    skip_ours: bool,
}

/// One row of the table: a criterion benchmark of ours and the DPDK number it is held against.
struct Op {
    /// Criterion id, `group/function`.
    id: &'static str,
    /// Elements moved in and out per iteration (criterion) or per printed value (DPDK ring).
    n: u32,
    dpdk: Ref,
}

enum Ref {
    /// A single-lcore `legacy APIs: KEY: VALUE` line of ring_perf_autotest, under SECTION.
    Ring { section: &'static str, key: &'static str },
    /// The 1-core `n_get_bulk=32 n_put_bulk=32` lines of mempool_perf_autotest.
    Mempool { section: MpSection, keep: u32 },
}

const SINGLE: &str = "### Testing single element enq/deq ###";
const BURST: &str = "### Testing burst enq/deq ###";
const BULK: &str = "### Testing bulk enq/deq ###";

const OPS: &[Op] = &[
    Op { id: "ring/sp_sc_single", n: 1, dpdk: Ref::Ring { section: SINGLE, key: "SP/SC: single" } },
    Op { id: "ring/sp_sc_burst_32", n: 32, dpdk: Ref::Ring { section: BURST, key: "SP/SC: burst (size: 32)" } },
    Op { id: "ring/mp_mc_burst_32", n: 32, dpdk: Ref::Ring { section: BURST, key: "MP/MC: burst (size: 32)" } },
    Op { id: "ring/sp_sc_bulk_32", n: 32, dpdk: Ref::Ring { section: BULK, key: "SP/SC: bulk (size: 32)" } },
    Op { id: "ring/mp_mc_bulk_32", n: 32, dpdk: Ref::Ring { section: BULK, key: "MP/MC: bulk (size: 32)" } },
    Op { id: "mempool/cached_bulk_32", n: 32, dpdk: Ref::Mempool { section: MpSection::Cache, keep: 32 } },
    Op { id: "mempool/cached_bulk_128", n: 128, dpdk: Ref::Mempool { section: MpSection::Cache, keep: 128 } },
    Op { id: "mempool/uncached_bulk_32", n: 32, dpdk: Ref::Mempool { section: MpSection::NoCache, keep: 32 } },
];

/// Our criterion benches, by bench target name; an op belongs to the one its id starts with.
const BENCHES: &[&str] = &["ring", "mempool"];

/// Seconds ring_perf_autotest may take (it takes about 5).
const RING_TIMEOUT: Duration = Duration::from_secs(300);
/// How long mempool_perf_autotest may take to print the lines needed (about 35 minutes).
const MEMPOOL_TIMEOUT: Duration = Duration::from_secs(50 * 60);

pub(super) fn run(args: &MemArgs) -> Result<(), String> {
    catch_sigint();
    let target = target_dir();
    let out_dir = target.join("bench");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let saved = out_dir.join("dpdk-mem.json");
    let mut failures = Vec::new();
    let mut notes = Vec::new();

    let dpdk = if args.skip_dpdk {
        match DpdkResults::load(&saved) {
            Some(r) => {
                notes.push(format!(
                    "DPDK: not run (--skip-dpdk); numbers measured {} UTC, from {}",
                    utc(r.measured_unix),
                    saved.display()
                ));
                Some(r)
            }
            None => {
                notes.push("DPDK: not run (--skip-dpdk), and no earlier results are saved".into());
                None
            }
        }
    } else {
        match measure_dpdk(&out_dir) {
            Ok(r) => {
                match fs::write(&saved, r.to_json()) {
                    Ok(()) => println!("bench: DPDK numbers saved in {}", saved.display()),
                    Err(e) => eprintln!("bench: could not save DPDK numbers in {}: {e}", saved.display()),
                }
                Some(r)
            }
            Err(e) => {
                failures.push(format!("DPDK: {e}"));
                None
            }
        }
    };
    if let Some(d) = &dpdk {
        notes.extend(d.warnings.iter().map(|w| format!("DPDK: {w}")));
    }
    if interrupted() {
        return Err("interrupted".into());
    }

    let ours = measure_ours(args.skip_ours, &target, &mut failures, &mut notes);
    if interrupted() {
        return Err("interrupted".into());
    }

    let table = Table::new(dpdk.as_ref(), &ours, args.skip_dpdk);
    report(&table.text(), &notes, &out_dir.join("mem.md"), || table.markdown(dpdk.as_ref(), &notes), failures)
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

struct Table {
    grid: Grid,
}

impl Table {
    fn new(dpdk: Option<&DpdkResults>, ours: &Ours, dpdk_skipped: bool) -> Self {
        let version = dpdk.map(DpdkResults::major_minor).unwrap_or_else(|| "22.11".into());
        let header = [
            "operation".to_string(),
            format!("DPDK {version} cycles/elem"),
            "burst cycles/elem".to_string(),
            "ratio (DPDK/burst)".to_string(),
        ];
        let rows = OPS
            .iter()
            .map(|op| {
                let d = dpdk.and_then(|r| r.rows.get(op.id)).map(|(c, _)| *c);
                let b = ours.estimates.get(op.id).map(|(mean, _)| mean / f64::from(op.n));
                let d_cell = match d {
                    Some(c) => format!("{c:.2}"),
                    None if dpdk_skipped || dpdk.is_some() => "not run".into(),
                    None => "failed".into(),
                };
                let b_cell = match (b, ours.runs.get(bench_of(op.id))) {
                    (Some(c), _) => format!("{c:.2}"),
                    (None, Some(OurRun::NotBuiltYet)) => "not built yet".into(),
                    (None, Some(OurRun::Failed)) => "failed".into(),
                    (None, Some(OurRun::Ran)) => "no result".into(),
                    (None, _) => "not run".into(),
                };
                let ratio = match (d, b) {
                    (Some(d), Some(b)) if b > 0.0 => format!("{:.2}", d / b),
                    _ => "-".into(),
                };
                [op.id.to_string(), d_cell, b_cell, ratio]
            })
            .collect();
        Self { grid: Grid { header, rows } }
    }

    fn text(&self) -> String {
        self.grid.text("ratio > 1: burst takes fewer cycles than DPDK")
    }

    fn markdown(&self, dpdk: Option<&DpdkResults>, notes: &[String]) -> String {
        let mut md = String::from("# burst-mem against DPDK: rings and mempools\n\n");
        md.push_str("Written by `cargo xtask bench mem`. CPU cycles (TSC ticks) per element moved in and out ");
        md.push_str("(ring: one enqueue and one dequeue; mempool: one get and one put), on one core. ");
        md.push_str("Ratio > 1: burst takes fewer cycles than DPDK.\n\n");
        md.push_str(&self.grid.markdown());
        md.push('\n');
        if let Some(d) = dpdk {
            let _ = writeln!(md, "## Where the DPDK numbers come from\n");
            let _ = writeln!(
                md,
                "DPDK {} (Debian's `dpdk-test`), measured {} UTC on {}, EAL options `{}`; TSC {:.0} Hz from {}.\n",
                d.version,
                utc(d.measured_unix),
                if d.cpu.is_empty() { "this machine" } else { &d.cpu },
                d.options,
                d.tsc_hz,
                d.tsc_source
            );
            md.push_str(
                "- ring: `ring_perf_autotest`'s single-lcore lines for the pointer (legacy) API; each value is ",
            );
            md.push_str("the cycles of one enqueue plus one dequeue of the whole burst, divided here by its size.\n");
            md.push_str("- mempool: `mempool_perf_autotest`, 1 core, `n_get_bulk=32 n_put_bulk=32`; `n_keep` objects ");
            md.push_str(
                "are got in bulks of 32, then put back in bulks of 32. cycles/object = TSC Hz / `rate_persec`, ",
            );
            md.push_str("the faster of `constant_n=0` and `constant_n=1`.\n\n");
            for op in OPS {
                if let Some((c, from)) = d.rows.get(op.id) {
                    let _ = writeln!(md, "- `{}` = {c:.2}:", op.id);
                    for l in from {
                        let _ = writeln!(md, "  - `{l}`");
                    }
                }
            }
            md.push('\n');
        }
        if !notes.is_empty() {
            md.push_str("## Notes\n\n");
            for n in notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}
