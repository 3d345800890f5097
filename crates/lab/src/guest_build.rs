//! Builds the workspace's binaries for the guest: release profile, statically linked
//! (`+crt-static` on the GNU target), in their own target dir so this never fights a
//! surrounding `cargo test` for its build lock.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths::{lab_dir, workspace_root};
use crate::{elf, LabError};

/// The guest's target triple.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Paths of the workspace's release binaries built for the guest. Built once per process;
/// concurrent processes take turns through a lock file.
pub fn guest_binaries() -> Result<Vec<PathBuf>, LabError> {
    static BUILT: OnceLock<Result<Vec<PathBuf>, String>> = OnceLock::new();
    BUILT.get_or_init(|| build().map_err(|e| e.to_string())).clone().map_err(LabError::Build)
}

fn build() -> Result<Vec<PathBuf>, LabError> {
    let dir = lab_dir();
    fs::create_dir_all(&dir).map_err(LabError::io(format!("creating {}", dir.display())))?;
    let lock_path = dir.join("guest-build.lock");
    let lock = File::create(&lock_path).map_err(LabError::io(format!("creating {}", lock_path.display())))?;
    // SAFETY: flock on a file descriptor we own; it is released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(LabError::io("locking the guest build")(std::io::Error::last_os_error()));
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--release", "--workspace", "--exclude", "xtask", "--bins"])
        .args(["--target", GUEST_TARGET, "--message-format=json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", dir.join("guest"))
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(LabError::io("running cargo"))?;
    if !out.status.success() {
        return Err(LabError::Build(format!("cargo build exited with {} (its errors are above)", out.status)));
    }

    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" {
            if let Some(exe) = msg["executable"].as_str() {
                bins.push(PathBuf::from(exe));
            }
        }
    }
    for bin in &bins {
        let bytes = fs::read(bin).map_err(LabError::io(format!("reading {}", bin.display())))?;
        if elf::needs_interpreter(&bytes) != Some(false) {
            return Err(LabError::Build(format!(
                "{} is not a static executable; the guest has no dynamic loader",
                bin.display()
            )));
        }
    }
    bins.sort();
    Ok(bins)
}
