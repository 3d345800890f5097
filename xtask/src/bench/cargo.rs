//! Cargo, from a bench: its metadata, the target directory (where criterion and the benches
//! write), and the release build of pktgen the forwarding benches run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use burst_lab::paths::workspace_root;
use serde_json::Value;

pub(super) fn cargo_metadata() -> Option<Value> {
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
pub(super) fn target_dir() -> PathBuf {
    cargo_metadata()
        .and_then(|m| m.get("target_directory").and_then(Value::as_str).map(PathBuf::from))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// `cargo build --release -p pktgen`; the binary's path.
pub(super) fn build_pktgen(target: &Path) -> Result<PathBuf, String> {
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
