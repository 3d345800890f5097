//! The DPDK side of `bench mem`: `dpdk-test`'s ring_perf and mempool_perf autotests, run and
//! read (the lines each of our rows is held against), and their numbers saved for `--skip-dpdk`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::super::dpdk::{ensure_dpdk_tool, RuntimeDir};
use super::super::machine::{busy_warning, cpu_model, lcore_list, measure_tsc_hz};
use super::super::program::find_on_path;
use super::super::report::now_unix;
use super::super::signal::interrupted;
use super::{secs, Ref, MEMPOOL_TIMEOUT, OPS, RING_TIMEOUT};

pub(super) struct DpdkResults {
    /// e.g. `22.11.11`.
    pub(super) version: String,
    pub(super) tsc_hz: f64,
    /// Where `tsc_hz` came from.
    pub(super) tsc_source: String,
    pub(super) measured_unix: u64,
    pub(super) cpu: String,
    /// The EAL options the tests ran with.
    pub(super) options: String,
    /// Said while measuring (a busy machine).
    pub(super) warnings: Vec<String>,
    /// Cycles per element by op id, with the DPDK lines they came from.
    pub(super) rows: BTreeMap<String, (f64, Vec<String>)>,
}

impl DpdkResults {
    pub(super) fn to_json(&self) -> String {
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

    pub(super) fn load(path: &Path) -> Option<Self> {
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
    pub(super) fn major_minor(&self) -> String {
        self.version.split('.').take(2).collect::<Vec<_>>().join(".")
    }
}

pub(super) fn measure_dpdk(out_dir: &Path) -> Result<DpdkResults, String> {
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
pub(super) enum MpSection {
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

#[cfg(test)]
mod tests {
    use super::super::{BULK, BURST, SINGLE};
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
    fn tsc_frequency_from_the_eal_log() {
        assert_eq!(parse_tsc_khz("EAL: TSC frequency is ~2600000 KHz\n"), Some(2_600_000.0));
        assert_eq!(parse_tsc_khz("EAL: nothing\n"), None);
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
