//! The burst side of `bench mem`: `cargo bench -p burst-mem` for each of our bench targets, and
//! criterion's per-iteration means read back from `target/criterion`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use burst_lab::paths::workspace_root;
use serde_json::Value;

use super::super::cargo::cargo_metadata;
use super::super::machine::busy_warning;
use super::super::report::utc;
use super::super::signal::interrupted;
use super::{BENCHES, OPS};

/// What became of one of our bench targets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum OurRun {
    Ran,
    Skipped,
    NotBuiltYet,
    Failed,
}

pub(super) struct Ours {
    /// Per-iteration mean cycles by op id, with the file it came from and when it was written.
    pub(super) estimates: BTreeMap<&'static str, (f64, SystemTime)>,
    pub(super) runs: BTreeMap<&'static str, OurRun>,
}

pub(super) fn measure_ours(skip: bool, target: &Path, failures: &mut Vec<String>, notes: &mut Vec<String>) -> Ours {
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

pub(super) fn bench_of(id: &str) -> &str {
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

/// `mean.point_estimate` of criterion's `<id>/new/estimates.json`, and when it was written.
fn criterion_mean(criterion: &Path, id: &str) -> Option<(f64, SystemTime)> {
    let path = criterion.join(id).join("new").join("estimates.json");
    let written = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).ok()?).ok()?;
    let mean = v.get("mean")?.get("point_estimate")?.as_f64()?;
    Some((mean, written))
}
