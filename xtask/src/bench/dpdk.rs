//! DPDK's tools on this machine: finding `dpdk-test` and `dpdk-testpmd` (installing Debian's
//! `dpdk-dev` if they are missing), the runtime directory a run leaves, and its version line.

use std::fs;
use std::path::PathBuf;

use super::program::find_on_path;

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

/// Finds `dpdk-testpmd`, installing Debian's `dpdk-dev` (which holds it) if it is missing.
pub(super) fn ensure_testpmd() -> Result<PathBuf, String> {
    ensure_dpdk_tool("dpdk-testpmd", "")
}

fn apt(args: &[&str]) -> Result<(), String> {
    crate::setup::apt_as("bench", args)
}

/// DPDK's runtime directory for our file prefix: removed when dropped, and its parent too if
/// it was not there before.
pub(super) struct RuntimeDir {
    dir: PathBuf,
    parent: PathBuf,
    parent_existed: bool,
}

impl RuntimeDir {
    pub(super) fn new(prefix: &str) -> Self {
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

/// DPDK's version from its `RTE Version: 'DPDK 22.11.11'` line (EAL's `-v`).
pub(super) fn dpdk_version(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.split("RTE Version: '").nth(1)).map(|v| v.trim_end_matches('\'').trim().to_string())
}

/// `22.11` of `DPDK 22.11.11`.
pub(super) fn version_major_minor(v: &str) -> String {
    v.trim_start_matches("DPDK ").split('.').take(2).collect::<Vec<_>>().join(".")
}
