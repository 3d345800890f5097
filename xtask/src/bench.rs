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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use burst_lab::paths::workspace_root;
use burst_mem::hugepage::{self, PageSize, Reservation, SysRoot};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

#[path = "bench_null.rs"]
mod null;
#[path = "bench_vhost.rs"]
mod vhost;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// burst-mem's ring and mempool against DPDK's ring_perf and mempool_perf autotests.
    Mem(MemArgs),
    /// pktgen against DPDK's testpmd: io forwarding between two net_null ports on one core.
    Null(null::NullArgs),
    /// pktgen over our virtio-user against testpmd over DPDK's, both to one DPDK vhost backend.
    Vhost(vhost::VhostArgs),
}

#[derive(Args)]
struct MemArgs {
    /// Don't run DPDK's autotests (they take about 35 minutes): show the numbers of the last
    /// run, saved in target/bench/dpdk-mem.json, if any.
    #[arg(long)]
    skip_dpdk: bool,
    /// Don't run burst's criterion benches: show criterion's last results, if any.
    #[arg(long)]
    skip_ours: bool,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.suite {
        Suite::Mem(a) => mem(a),
        Suite::Null(a) => null::run(a),
        Suite::Vhost(a) => vhost::run(a),
    }
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

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C stops the children (they are in our process group) and we clean up after them.
fn catch_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as *const () as libc::sighandler_t);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn mem(args: &MemArgs) -> Result<(), String> {
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

/// The end of every bench: prints the table and the notes, writes the markdown to `md_path`
/// unless something failed (the last complete table stays there then), and turns the failures
/// into the bench's result.
pub(super) fn report(
    text: &str,
    notes: &[String],
    md_path: &Path,
    markdown: impl FnOnce() -> String,
    mut failures: Vec<String>,
) -> Result<(), String> {
    println!();
    print!("{text}");
    for n in notes {
        println!("{n}");
    }
    if !failures.is_empty() {
        println!("bench: {} left as it was, since something failed", md_path.display());
    } else if let Err(e) = fs::write(md_path, markdown()) {
        failures.push(format!("writing {}: {e}", md_path.display()));
    } else {
        println!("bench: table written to {}", md_path.display());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

// ---------------------------------------------------------------------------------------------
// DPDK

struct DpdkResults {
    /// e.g. `22.11.11`.
    version: String,
    tsc_hz: f64,
    /// Where `tsc_hz` came from.
    tsc_source: String,
    measured_unix: u64,
    cpu: String,
    /// The EAL options the tests ran with.
    options: String,
    /// Said while measuring (a busy machine).
    warnings: Vec<String>,
    /// Cycles per element by op id, with the DPDK lines they came from.
    rows: BTreeMap<String, (f64, Vec<String>)>,
}

impl DpdkResults {
    fn to_json(&self) -> String {
        let rows: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|(id, (c, from))| (id.clone(), json!({ "cycles_per_elem": c, "from": from })))
            .collect();
        let v = json!({
            "version": self.version,
            "tsc_hz": self.tsc_hz,
            "tsc_source": self.tsc_source,
            "measured_unix": self.measured_unix,
            "cpu": self.cpu,
            "options": self.options,
            "warnings": self.warnings,
            "rows": rows,
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    fn load(path: &Path) -> Option<Self> {
        let v: Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let rows = v
            .get("rows")?
            .as_object()?
            .iter()
            .filter_map(|(id, r)| {
                let c = r.get("cycles_per_elem")?.as_f64()?;
                let from = r
                    .get("from")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|l| l.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                Some((id.clone(), (c, from)))
            })
            .collect();
        Some(Self {
            version: s("version"),
            tsc_hz: v.get("tsc_hz")?.as_f64()?,
            tsc_source: s("tsc_source"),
            measured_unix: v.get("measured_unix").and_then(Value::as_u64).unwrap_or(0),
            cpu: s("cpu"),
            options: s("options"),
            warnings: v
                .get("warnings")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|w| w.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            rows,
        })
    }

    /// `22.11` of `22.11.11`.
    fn major_minor(&self) -> String {
        self.version.split('.').take(2).collect::<Vec<_>>().join(".")
    }
}

fn measure_dpdk(out_dir: &Path) -> Result<DpdkResults, String> {
    let bin = ensure_dpdk_test()?;
    let lcores = lcore_list();
    let prefix = format!("burst-bench-{}", std::process::id());
    let _runtime = RuntimeDir::new(&prefix);
    let options: Vec<String> = [
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "-l",
        &lcores,
        "--file-prefix",
        &prefix,
        "-v",
        "--log-level=lib.eal:debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let options_shown = options.join(" ").replace(&prefix, "burst-bench-PID");

    let mut warnings = Vec::new();
    let mut check_busy = |what: &str| {
        if let Some(w) = busy_warning(what) {
            println!("bench: warning: {w}");
            warnings.push(w);
        }
    };
    check_busy("ring_perf_autotest");
    let ring_log = out_dir.join("dpdk-ring_perf_autotest.log");
    println!("bench: DPDK_TEST=ring_perf_autotest {} {options_shown} (about 5 s)", bin.display());
    let started = Instant::now();
    let ring_out = run_autotest(&bin, "ring_perf_autotest", &options, &ring_log, RING_TIMEOUT, &mut |_| false)?;
    println!("bench: ring_perf_autotest took {:.1} s; its output is in {}", secs(started), ring_log.display());
    let ring = parse_ring(&ring_out.text);
    if !ring_out.text.lines().any(|l| l.trim() == "Test OK") {
        return Err(format!("ring_perf_autotest did not say `Test OK`; see {}", ring_log.display()));
    }

    check_busy("mempool_perf_autotest");
    let mempool_log = out_dir.join("dpdk-mempool_perf_autotest.log");
    println!(
        "bench: DPDK_TEST=mempool_perf_autotest {} {options_shown} (5 s per case; the cases needed here are \
         done after about 35 minutes and the test is stopped there)",
        bin.display()
    );
    let started = Instant::now();
    let mut mp = MempoolParser::default();
    let mut on_line = |line: &str| {
        let before = (mp.section, mp.samples.len());
        mp.feed(line);
        if mp.section != before.0 {
            println!("bench: [{:>5.0} s] {}", secs(started), line.trim());
        }
        if mp.samples.len() != before.1 {
            if let Some(s) = mp.samples.last() {
                println!("bench: [{:>5.0} s]   {}", secs(started), s.line);
            }
        }
        mp.complete()
    };
    let mempool_out =
        run_autotest(&bin, "mempool_perf_autotest", &options, &mempool_log, MEMPOOL_TIMEOUT, &mut on_line)?;
    println!(
        "bench: mempool_perf_autotest {} after {:.0} s; its output is in {}",
        if mempool_out.stopped_early { "stopped" } else { "ended" },
        secs(started),
        mempool_log.display()
    );

    let text = format!("{}\n{}", ring_out.text, mempool_out.text);
    let version = text
        .lines()
        .find_map(|l| l.split("RTE Version: 'DPDK ").nth(1))
        .map(|v| v.trim_end_matches('\'').trim().to_string())
        .unwrap_or_else(|| "?".into());
    let (tsc_hz, tsc_source) = match parse_tsc_khz(&text) {
        Some(khz) => (khz * 1e3, "DPDK's EAL log (`TSC frequency is ~N KHz`)".to_string()),
        None => match measure_tsc_hz() {
            Some(hz) => (hz, "measured here (rdtsc over 200 ms); DPDK's EAL log did not say".to_string()),
            None => return Err("no TSC frequency: DPDK's log did not give one and it cannot be measured here".into()),
        },
    };

    let mut rows = BTreeMap::new();
    let mut missing = Vec::new();
    for op in OPS {
        match &op.dpdk {
            Ref::Ring { section, key } => match ring.get(&(section.to_string(), key.to_string())) {
                Some((v, line)) => {
                    rows.insert(op.id.to_string(), (v / f64::from(op.n), vec![line.clone()]));
                }
                None => missing.push(format!("`legacy APIs: {key}` under `{section}` ({})", ring_log.display())),
            },
            Ref::Mempool { section, keep } => {
                let samples: Vec<&MpSample> = mp.samples_for(*section, *keep).collect();
                let best = samples.iter().map(|s| tsc_hz / s.rate).fold(f64::INFINITY, f64::min);
                if samples.is_empty() || !best.is_finite() {
                    missing.push(format!(
                        "`mempool_autotest ... cores=1 n_get_bulk=32 n_put_bulk=32 n_keep={keep}` {} ({})",
                        section.describe(),
                        mempool_log.display()
                    ));
                } else {
                    rows.insert(op.id.to_string(), (best, samples.iter().map(|s| s.line.clone()).collect()));
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(format!("dpdk-test printed no line for: {}", missing.join("; ")));
    }
    Ok(DpdkResults {
        version,
        tsc_hz,
        tsc_source,
        measured_unix: now_unix(),
        cpu: cpu_model(),
        options: options_shown,
        warnings,
        rows,
    })
}

/// Finds `dpdk-test`, installing Debian's `dpdk-dev` (which holds it) if it is missing.
fn ensure_dpdk_test() -> Result<PathBuf, String> {
    ensure_dpdk_tool("dpdk-test", ", or pass --skip-dpdk")
}

/// Finds DPDK's `tool` (`dpdk-test`, `dpdk-testpmd`: both in Debian's `dpdk-dev`), installing
/// the package if it is missing. `escape` ends the errors with another way out, if there is one.
pub(super) fn ensure_dpdk_tool(tool: &str, escape: &str) -> Result<PathBuf, String> {
    if let Some(p) = find_on_path(tool) {
        return Ok(p);
    }
    let packages = crate::setup::DPDK_PACKAGES.join(" ");
    println!("bench: {tool} is not installed; it comes in Debian's dpdk-dev package (DPDK 22.11 on Debian 12)");
    if find_on_path("apt-get").is_none() {
        return Err(format!(
            "{tool} is not installed and there is no apt-get here: install DPDK 22.11's {tool} \
             (Debian/Ubuntu package dpdk-dev) by hand{escape}"
        ));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "{tool} is not installed and installing it needs root: run \
             `sudo apt-get install --no-install-recommends {packages}` (or `sudo cargo xtask setup`){escape}"
        ));
    }
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(crate::setup::DPDK_PACKAGES);
    if apt(&install).is_err() {
        println!("bench: that failed; updating the package lists and trying again");
        apt(&["update"])?;
        apt(&install)?;
    }
    find_on_path(tool).ok_or_else(|| format!("dpdk-dev is installed but there is no {tool} on PATH"))
}

fn apt(args: &[&str]) -> Result<(), String> {
    crate::setup::apt_as("bench", args)
}

fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// The first two CPUs we may run on, as DPDK's `-l` list (one if there is only one).
fn lcore_list() -> String {
    // SAFETY: cpu_set_t is plain data, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size given.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    let cpus: Vec<String> = if ok {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE and `set` is initialised.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .take(2)
            .map(|c| c.to_string())
            .collect()
    } else {
        Vec::new()
    };
    if cpus.is_empty() {
        "0".into()
    } else {
        cpus.join(",")
    }
}

/// DPDK's runtime directory for our file prefix: removed when dropped, and its parent too if
/// it was not there before.
struct RuntimeDir {
    dir: PathBuf,
    parent: PathBuf,
    parent_existed: bool,
}

impl RuntimeDir {
    fn new(prefix: &str) -> Self {
        // As EAL picks it: /var/run for root, else $XDG_RUNTIME_DIR or /tmp.
        // SAFETY: geteuid has no preconditions.
        let base = if unsafe { libc::geteuid() } == 0 {
            PathBuf::from("/var/run")
        } else {
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"))
        };
        let parent = base.join("dpdk");
        Self { dir: parent.join(prefix), parent_existed: parent.exists(), parent }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        if self.dir.exists() {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                eprintln!("bench: could not remove DPDK's runtime directory {}: {e}", self.dir.display());
            }
        }
        if !self.parent_existed {
            // Only if empty: someone else's DPDK may have started meanwhile.
            let _ = fs::remove_dir(&self.parent);
        }
    }
}

struct AutotestOutput {
    /// stdout and stderr, line by line as they came.
    text: String,
    /// `on_line` said it had enough and the test was stopped.
    stopped_early: bool,
}

/// Runs one DPDK autotest, its output saved to `log` and fed line by line to `on_line`, which
/// returns true to have the test stopped there.
fn run_autotest(
    bin: &Path,
    test: &str,
    options: &[String],
    log: &Path,
    timeout: Duration,
    on_line: &mut dyn FnMut(&str) -> bool,
) -> Result<AutotestOutput, String> {
    // The test's printf()s reach a pipe; stdbuf makes them come line by line, not 4 KiB at once.
    let mut cmd = match find_on_path("stdbuf") {
        Some(stdbuf) => {
            let mut c = Command::new(stdbuf);
            c.arg("-oL").arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(options).env("DPDK_TEST", test).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let mut log_file = fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;

    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    for pipe in pipes.into_iter().flatten() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut stopped_early = false;
    let mut problem = None;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        match rx.recv_timeout(wait) {
            Ok(line) => {
                let _ = writeln!(log_file, "{line}");
                text.push_str(&line);
                text.push('\n');
                if on_line(&line) {
                    stopped_early = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interrupted() {
                    problem = Some(format!("{test}: interrupted"));
                    break;
                }
                if Instant::now() >= deadline {
                    problem = Some(format!(
                        "{test} did not finish within {} s; its output is in {}",
                        timeout.as_secs(),
                        log.display()
                    ));
                    break;
                }
            }
        }
    }
    let status = if stopped_early || problem.is_some() {
        let _ = child.kill();
        let _ = child.wait();
        None
    } else {
        Some(child.wait().map_err(|e| format!("waiting for dpdk-test: {e}"))?)
    };
    for r in readers {
        let _ = r.join();
    }
    if let Some(p) = problem {
        return Err(p);
    }
    if interrupted() {
        return Err(format!("{test}: interrupted"));
    }
    if let Some(status) = status {
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(format!(
                "`DPDK_TEST={test} dpdk-test {}` failed ({status}); its output is in {}; it ended with:\n{}",
                options.join(" "),
                log.display(),
                tail.join("\n")
            ));
        }
    }
    Ok(AutotestOutput { text, stopped_early })
}

/// ring_perf_autotest's single-lcore `legacy APIs:` lines: (section, key) -> (value, line).
fn parse_ring(text: &str) -> BTreeMap<(String, String), (f64, String)> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("###") {
            section = line.to_string();
        } else if let Some(rest) = line.strip_prefix("legacy APIs: ") {
            if let Some((key, value)) = rest.rsplit_once(": ") {
                if let Ok(v) = value.trim().parse::<f64>() {
                    out.entry((section.clone(), key.to_string())).or_insert((v, line.to_string()));
                }
            }
        }
    }
    out
}

/// `EAL: TSC frequency is ~2600000 KHz` -> 2600000.
fn parse_tsc_khz(text: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.split("TSC frequency is ~").nth(1)?;
        rest.split_whitespace().next()?.parse::<f64>().ok().filter(|k| *k > 0.0)
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MpSection {
    /// `start performance test (without cache)`: a ring-backed pool, no per-lcore cache.
    NoCache,
    /// `start performance test for ring_mp_mc (without cache)`: the default mbuf pool ops.
    DefaultOps,
    /// `start performance test (with cache)`: per-lcore cache of 512.
    Cache,
    /// `start performance test (with user-owned cache)`.
    UserCache,
}

impl MpSection {
    fn classify(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("start performance test")?;
        Some(if rest.contains("user-owned cache") {
            Self::UserCache
        } else if rest.contains("with cache") {
            Self::Cache
        } else if rest.trim_start().starts_with("for ") {
            Self::DefaultOps
        } else {
            Self::NoCache
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Self::NoCache => "under `start performance test (without cache)`",
            Self::DefaultOps => "under `start performance test for ... (without cache)`",
            Self::Cache => "under `start performance test (with cache)`",
            Self::UserCache => "under `start performance test (with user-owned cache)`",
        }
    }
}

struct MpSample {
    section: MpSection,
    keep: u32,
    /// None where DPDK does not print it (before 22.11).
    constant_n: Option<u32>,
    /// Objects got and put back per second.
    rate: f64,
    line: String,
}

/// Follows mempool_perf_autotest's output, keeping the 1-core, bulk 32/32 lines this table needs.
#[derive(Default)]
struct MempoolParser {
    section: Option<MpSection>,
    samples: Vec<MpSample>,
}

impl MempoolParser {
    fn feed(&mut self, line: &str) {
        let line = line.trim();
        if let Some(s) = MpSection::classify(line) {
            self.section = Some(s);
            return;
        }
        let (Some(section), Some(rest)) = (self.section, line.strip_prefix("mempool_autotest ")) else { return };
        let fields: BTreeMap<&str, &str> = rest.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        let (Some(cores), Some(get), Some(put), Some(keep), Some(rate)) =
            (num("cores"), num("n_get_bulk"), num("n_put_bulk"), num("n_keep"), num("rate_persec"))
        else {
            return;
        };
        let wanted = OPS
            .iter()
            .any(|op| matches!(op.dpdk, Ref::Mempool { section: s, keep: k } if s == section && u64::from(k) == keep));
        if cores == 1 && get == 32 && put == 32 && rate > 0 && wanted {
            self.samples.push(MpSample {
                section,
                keep: keep as u32,
                constant_n: num("constant_n").map(|c| c as u32),
                rate: rate as f64,
                line: line.to_string(),
            });
        }
    }

    fn samples_for(&self, section: MpSection, keep: u32) -> impl Iterator<Item = &MpSample> {
        self.samples.iter().filter(move |s| s.section == section && s.keep == keep)
    }

    /// Every mempool op has its lines: with `constant_n`, the `constant_n=1` replay, which
    /// comes after the `constant_n=0` run.
    fn complete(&self) -> bool {
        OPS.iter().all(|op| match op.dpdk {
            Ref::Mempool { section, keep } => self.samples_for(section, keep).any(|s| s.constant_n != Some(0)),
            Ref::Ring { .. } => true,
        })
    }
}

/// Ticks of the TSC per second, timed against the monotonic clock.
fn measure_tsc_hz() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(unused_unsafe)]
        // SAFETY: rdtsc has no preconditions on x86_64.
        let rdtsc = || unsafe { core::arch::x86_64::_rdtsc() };
        let (t0, c0) = (Instant::now(), rdtsc());
        std::thread::sleep(Duration::from_millis(200));
        let (c1, t1) = (rdtsc(), Instant::now());
        Some((c1.wrapping_sub(c0)) as f64 / (t1 - t0).as_secs_f64())
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// burst

/// What became of one of our bench targets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OurRun {
    Ran,
    Skipped,
    NotBuiltYet,
    Failed,
}

struct Ours {
    /// Per-iteration mean cycles by op id, with the file it came from and when it was written.
    estimates: BTreeMap<&'static str, (f64, SystemTime)>,
    runs: BTreeMap<&'static str, OurRun>,
}

fn measure_ours(skip: bool, target: &Path, failures: &mut Vec<String>, notes: &mut Vec<String>) -> Ours {
    let criterion = target.join("criterion");
    let bench_targets = burst_mem_benches();
    let mut runs = BTreeMap::new();
    let mut estimates = BTreeMap::new();
    for &bench in BENCHES {
        let exists = bench_targets.as_ref().map(|b| b.iter().any(|t| t == bench));
        let started = SystemTime::now();
        let run = if exists == Some(false) {
            println!("bench: burst-mem has no `{bench}` bench target: not built yet");
            OurRun::NotBuiltYet
        } else if skip {
            OurRun::Skipped
        } else {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            if let Some(w) = busy_warning(&format!("`cargo bench --bench {bench}`")) {
                println!("bench: warning: {w}");
                notes.push(format!("burst: {w}"));
            }
            println!("bench: cargo bench -p burst-mem --bench {bench}");
            let status = Command::new(cargo)
                .args(["bench", "-p", "burst-mem", "--bench", bench])
                .current_dir(workspace_root())
                .status();
            match status {
                Ok(s) if s.success() => OurRun::Ran,
                Ok(s) => {
                    if !interrupted() {
                        failures.push(format!("`cargo bench -p burst-mem --bench {bench}` failed ({s})"));
                    }
                    OurRun::Failed
                }
                Err(e) => {
                    failures.push(format!("running cargo: {e}"));
                    OurRun::Failed
                }
            }
        };
        runs.insert(bench, run);
        if interrupted() {
            break;
        }
        for op in OPS.iter().filter(|op| bench_of(op.id) == bench) {
            let Some((mean, written)) = criterion_mean(&criterion, op.id) else { continue };
            // After a run, only what it wrote counts: an id it no longer has may have old results.
            let fresh = written >= started.checked_sub(Duration::from_secs(2)).unwrap_or(started);
            if run == OurRun::Skipped || (run == OurRun::Ran && fresh) {
                estimates.insert(op.id, (mean, written));
            }
        }
    }
    if skip {
        let oldest = estimates.values().map(|(_, t)| *t).min();
        notes.push(match oldest {
            Some(t) => format!(
                "burst: not run (--skip-ours); criterion's last results in {}, the oldest from {} UTC",
                criterion.display(),
                utc(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
            ),
            None => format!("burst: not run (--skip-ours), and {} has no results for these ids", criterion.display()),
        });
    }
    Ours { estimates, runs }
}

fn bench_of(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// burst-mem's bench target names, from `cargo metadata`; None if it cannot say.
fn burst_mem_benches() -> Option<Vec<String>> {
    let meta = cargo_metadata()?;
    let pkg = meta
        .get("packages")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("burst-mem"))?;
    Some(
        pkg.get("targets")?
            .as_array()?
            .iter()
            .filter(|t| t.get("kind").and_then(Value::as_array).is_some_and(|k| k.iter().any(|k| k == "bench")))
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(String::from))
            .collect(),
    )
}

fn cargo_metadata() -> Option<Value> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Cargo's target directory, where criterion writes too.
fn target_dir() -> PathBuf {
    cargo_metadata()
        .and_then(|m| m.get("target_directory").and_then(Value::as_str).map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `mean.point_estimate` of criterion's `<id>/new/estimates.json`, and when it was written.
fn criterion_mean(criterion: &Path, id: &str) -> Option<(f64, SystemTime)> {
    let path = criterion.join(id).join("new").join("estimates.json");
    let written = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?;
    let mean = v.get("mean")?.get("point_estimate")?.as_f64()?;
    Some((mean, written))
}

// ---------------------------------------------------------------------------------------------
// The table

/// One table row: the first cell left-aligned, the rest right-aligned, each padded to its
/// column's width, between `open` and `close` and separated by `sep`.
fn row(cells: &[String; 4], widths: &[usize; 4], open: &str, sep: &str, close: &str) -> String {
    let mut out = String::from(open);
    for (i, (cell, &width)) in cells.iter().zip(widths).enumerate() {
        if i == 0 {
            let _ = write!(out, "{cell:<width$}");
        } else {
            let _ = write!(out, "{sep}{cell:>width$}");
        }
    }
    out.push_str(close);
    out
}

struct Table {
    grid: Grid,
}

/// A four-column results table, as aligned text and as markdown (shared by every bench).
struct Grid {
    header: [String; 4],
    rows: Vec<[String; 4]>,
}

impl Grid {
    fn widths(&self) -> [usize; 4] {
        let mut w = self.header.each_ref().map(|h| h.len());
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        w
    }

    /// Aligned text with a rule under the header and `footnote` last.
    fn text(&self, footnote: &str) -> String {
        let w = self.widths();
        let line = |cells: &[String; 4]| row(cells, &w, "", "  ", "\n");
        let mut out = line(&self.header);
        out.push_str(&"-".repeat(w.iter().sum::<usize>() + 6));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out.push_str(footnote);
        out.push('\n');
        out
    }

    /// A markdown table, first column left-aligned, numbers right-aligned.
    fn markdown(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String; 4]| row(cells, &w, "| ", " | ", " |\n");
        let mut md = line(&self.header);
        md.push_str(&format!(
            "|:{}|{}:|{}:|{}:|\n",
            "-".repeat(w[0] + 1),
            "-".repeat(w[1] + 1),
            "-".repeat(w[2] + 1),
            "-".repeat(w[3] + 1)
        ));
        for r in &self.rows {
            md.push_str(&line(r));
        }
        md
    }
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

// ---------------------------------------------------------------------------------------------
// Shared by the forwarding benches (null, vhost): programs, hugepages, testpmd's statistics

/// Finds `dpdk-testpmd`, installing Debian's `dpdk-dev` (which holds it) if it is missing.
fn ensure_testpmd() -> Result<PathBuf, String> {
    ensure_dpdk_tool("dpdk-testpmd", "")
}

/// `cargo build --release -p pktgen`; the binary's path.
fn build_pktgen(target: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("bench: cargo build --release -p pktgen");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "pktgen"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("`cargo build --release -p pktgen` failed ({status})"));
    }
    let bin = target.join("release").join("pktgen");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("cargo built pktgen but {} is not there", bin.display()))
    }
}

/// Prints and keeps a warning if the CPUs are busy with other work now (takes a second).
fn warn_if_busy(what: &str, notes: &mut Vec<String>) {
    if let Some(w) = busy_warning(what) {
        println!("bench: warning: {w}");
        notes.push(w);
    }
}

/// Free 2 MiB hugepages and a hugetlbfs to find them on, for as long as this lives.
struct Hugepages {
    dir: PathBuf,
    /// We mounted `dir`: unmount it at the end.
    mounted: bool,
    /// Pages added to the pool, given back in `drop` after the unmount (which takes any files
    /// left on our own mount with it).
    reservation: Option<Reservation>,
    nr_before: u64,
}

impl Hugepages {
    /// Makes sure `free_wanted` 2 MiB pages are free, reserving the difference, and that a
    /// hugetlbfs for them is mounted (mounting one under target/bench if none is).
    fn prepare(free_wanted: u64) -> Result<Self, String> {
        let root = SysRoot::host();
        let size = PageSize::SIZE_2M;
        let counts = root.counts(size, None).map_err(|e| e.to_string())?;
        let reservation = if counts.free < free_wanted {
            let add = free_wanted - counts.free;
            println!(
                "bench: {} of {} 2M hugepages are free; reserving {add} more (given back at the end)",
                counts.free, counts.total
            );
            Some(Reservation::new(&root, size, None, add).map_err(|e| format!("reserving hugepages: {e}"))?)
        } else {
            println!("bench: {} of {} 2M hugepages are free: enough", counts.free, counts.total);
            None
        };
        let (dir, mounted) = match root.mount_for(size) {
            Ok(m) => (m.path, false),
            Err(_) => {
                let dir = target_dir().join("bench").join("hugepages-2M");
                hugepage::mount(&dir, size).map_err(|e| format!("mounting hugetlbfs: {e}"))?;
                println!("bench: no hugetlbfs for 2M pages was mounted; mounted one at {}", dir.display());
                (dir, true)
            }
        };
        Ok(Hugepages { dir, mounted, reservation, nr_before: counts.total })
    }

    /// Removes the hugepage files a run left behind (a program killed before its cleanup).
    fn remove_files(&self, prefix: &str) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                println!("bench: removing the leftover hugepage file {}", e.path().display());
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = hugepage::unmount(&self.dir) {
                eprintln!("bench: could not unmount {}: {e}", self.dir.display());
            }
        }
        if let Some(r) = self.reservation.take() {
            if let Err(e) = r.release() {
                eprintln!("bench: could not give the reserved hugepages back: {e}");
            }
        }
        match SysRoot::host().counts(PageSize::SIZE_2M, None) {
            Ok(c) if c.total == self.nr_before => println!("bench: 2M hugepages back to {}", c.total),
            Ok(c) => eprintln!("bench: 2M hugepages are {} now, were {} before", c.total, self.nr_before),
            Err(e) => eprintln!("bench: reading the hugepage counts: {e}"),
        }
    }
}

/// A program started by a bench, its stdout and stderr going to a log file. Dropping it stops
/// the program if it still runs (SIGINT, then SIGKILL), so none is left behind on any error.
struct Program {
    child: Child,
    bin: PathBuf,
    log: PathBuf,
}

impl Program {
    /// Starts `bin ARGS` under `stdbuf -oL` (printf()s into a file are block-buffered; this
    /// makes them come a line at a time, so the output can be followed while it runs).
    fn start(bin: &Path, args: &[String], log: &Path, stdin: Stdio) -> Result<Program, String> {
        let out = fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = match find_on_path("stdbuf") {
            Some(stdbuf) => {
                let mut c = Command::new(stdbuf);
                c.arg("-oL").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        Ok(Program { child, bin: bin.to_path_buf(), log: log.to_path_buf() })
    }

    /// Everything it printed so far.
    fn output(&self) -> String {
        fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    fn exited(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child.try_wait().map_err(|e| format!("waiting for {}: {e}", self.bin.display()))
    }

    fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own child's,
            // not yet waited for (so not reused).
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Waits until it exits by itself, up to `timeout`; None if it has not.
    fn wait_for(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, String> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited()? {
                return Ok(Some(s));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, then SIGKILL if it has not gone within 10 s.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal(libc::SIGINT);
        if let Ok(Some(_)) = self.wait_for(Duration::from_secs(10)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ok if it exited with success, else what it said last.
    fn check(&self, status: ExitStatus) -> Result<(), String> {
        if status.success() {
            return Ok(());
        }
        let text = self.output();
        let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!(
            "exited with {status}; its output is in {}; it ended with:\n{}",
            self.log.display(),
            tail.join("\n")
        ))
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `Rx-pps:` and `Tx-pps:` values of every `NIC statistics for port N` block, per port, in
/// order. testpmd's blocks (`--stats-period`, `show port stats`) and pktgen's have these lines.
fn parse_rates(text: &str) -> BTreeMap<u16, (Vec<f64>, Vec<f64>)> {
    let mut out: BTreeMap<u16, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut port = None;
    let value = |rest: &str| rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
    for line in text.lines() {
        if let Some(rest) = line.split("NIC statistics for port").nth(1) {
            port = rest.split_whitespace().next().and_then(|p| p.parse::<u16>().ok());
        } else if let (Some(p), Some(rest)) = (port, line.split("Rx-pps:").nth(1)) {
            if let Some(v) = value(rest) {
                out.entry(p).or_default().0.push(v);
            }
        } else if let (Some(p), Some(rest)) = (port, line.split("Tx-pps:").nth(1)) {
            if let Some(v) = value(rest) {
                out.entry(p).or_default().1.push(v);
            }
        }
    }
    out
}

/// The median of the samples after the first `warmup`; None if there are none.
fn steady(samples: &[f64], warmup: usize) -> Option<f64> {
    let mut s: Vec<f64> = samples.iter().skip(warmup).copied().collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 })
}

/// DPDK's version from its `RTE Version: 'DPDK 22.11.11'` line (EAL's `-v`).
fn dpdk_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.split("RTE Version: '").nth(1)).map(|v| v.trim_end_matches('\'').trim().to_string())
}

/// `22.11` of `DPDK 22.11.11`.
fn version_major_minor(v: &str) -> String {
    v.trim_start_matches("DPDK ").split('.').take(2).collect::<Vec<_>>().join(".")
}

/// `CPU model, TSC N MHz` for a table's preamble.
fn machine(tsc_hz: Option<f64>) -> String {
    let cpu = cpu_model();
    format!(
        "{}, {}",
        if cpu.is_empty() { "this machine" } else { &cpu },
        tsc_hz.map_or_else(|| "TSC frequency unknown".to_string(), |hz| format!("TSC {:.0} MHz", hz / 1e6))
    )
}

// ---------------------------------------------------------------------------------------------
// Small things

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM` of a Unix time, in UTC.
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let (h, m) = ((unix % 86_400) / 3600, (unix % 3600) / 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

/// A warning if the CPUs are busy with other work now (over a second, more than 15% busy).
fn busy_warning(before: &str) -> Option<String> {
    fn sample() -> Option<(u64, u64)> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        let idle = v.get(3)? + v.get(4).unwrap_or(&0);
        Some((v.iter().take(8).sum(), idle))
    }
    let (t0, i0) = sample()?;
    std::thread::sleep(Duration::from_secs(1));
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    let busy = 1.0 - (i1.saturating_sub(i0)) as f64 / total as f64;
    (busy > 0.15).then(|| {
        format!(
            "the CPUs were {:.0}% busy with other work before {before}: its numbers are likely worse than on a quiet machine",
            busy * 100.0
        )
    })
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: &str = "\
RTE>>ring_perf_autotest

### Testing single element enq/deq ###
legacy APIs: SP/SC: single: 9.21
legacy APIs: MP/MC: single: 38.57

### Testing burst enq/deq ###
legacy APIs: SP/SC: burst (size: 8): 20.99
legacy APIs: SP/SC: burst (size: 32): 46.84
legacy APIs: MP/MC: burst (size: 32): 66.32

### Testing bulk enq/deq ###
legacy APIs: SP/SC: bulk (size: 32): 48.11
legacy APIs: MP/MC: bulk (size: 32): 64.53

### Testing using two physical cores ###
legacy APIs: SP/SC: bulk (size: 32): 4.55

### Testing bulk enq/deq ###
elem APIs: element size 16B: SP/SC: bulk (size: 32): 50.30
";

    #[test]
    fn ring_lines_are_taken_from_their_single_lcore_section_only() {
        let r = parse_ring(RING);
        let get = |s: &str, k: &str| r.get(&(s.to_string(), k.to_string())).map(|v| v.0);
        assert_eq!(get(SINGLE, "SP/SC: single"), Some(9.21));
        assert_eq!(get(BURST, "MP/MC: burst (size: 32)"), Some(66.32));
        assert_eq!(get(BULK, "SP/SC: bulk (size: 32)"), Some(48.11));
        assert_eq!(get("### Testing using two physical cores ###", "SP/SC: bulk (size: 32)"), Some(4.55));
    }

    #[test]
    fn mempool_lines_are_kept_by_section_and_the_parser_knows_when_it_has_them_all() {
        let mut p = MempoolParser::default();
        let nocache = "start performance test (without cache)";
        let line = |cores: u32, keep: u32, c: u32| {
            format!(
                "mempool_autotest cache=0 cores={cores} n_get_bulk=32 n_put_bulk=32 n_keep={keep} constant_n={c} \
                 rate_persec=260000000"
            )
        };
        for l in [nocache.to_string(), line(1, 32, 0), line(1, 32, 1), line(2, 32, 0)] {
            p.feed(&l);
        }
        assert_eq!(p.samples_for(MpSection::NoCache, 32).count(), 2);
        assert!(!p.complete());
        p.feed("start performance test for ring_mp_mc (without cache)");
        p.feed(&line(1, 32, 0));
        assert_eq!(p.section, Some(MpSection::DefaultOps));
        p.feed("start performance test (with cache)");
        for l in [line(1, 32, 0), line(1, 32, 1), line(1, 128, 0)] {
            p.feed(&l);
        }
        assert!(!p.complete());
        p.feed(&line(1, 128, 1));
        assert!(p.complete());
        p.feed("start performance test (with user-owned cache)");
        p.feed(&line(1, 32, 0));
        assert_eq!(p.samples_for(MpSection::Cache, 32).count(), 2);
        assert_eq!(p.samples.len(), 6);
    }

    #[test]
    fn tsc_and_dates() {
        assert_eq!(parse_tsc_khz("EAL: TSC frequency is ~2600000 KHz\n"), Some(2_600_000.0));
        assert_eq!(parse_tsc_khz("EAL: nothing\n"), None);
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn saved_dpdk_results_load_back() {
        let mut rows = BTreeMap::new();
        rows.insert("ring/sp_sc_single".to_string(), (9.21, vec!["legacy APIs: SP/SC: single: 9.21".to_string()]));
        let r = DpdkResults {
            version: "22.11.11".into(),
            tsc_hz: 2.6e9,
            tsc_source: "x".into(),
            measured_unix: 5,
            cpu: "cpu".into(),
            options: "--no-huge".into(),
            warnings: vec!["busy".into()],
            rows,
        };
        let dir = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("d.json");
        fs::write(&path, r.to_json()).unwrap();
        let back = DpdkResults::load(&path).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(back.major_minor(), "22.11");
        assert_eq!(back.rows["ring/sp_sc_single"].0, 9.21);
        assert_eq!(back.tsc_hz, 2.6e9);
        assert_eq!(back.warnings, ["busy"]);
    }
}
