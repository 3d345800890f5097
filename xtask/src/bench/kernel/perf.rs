//! Where a run's time goes: `perf record` on the frontend's process for a few seconds (its own
//! CPU time, user and kernel, softirqs run in its context included), its samples split into user
//! space, the system call's own entry, exit and socket plumbing, and the rest of the kernel (the
//! AF_XDP/AF_PACKET and veth data path: copies, XDP, skbs, NAPI).
//!
//! The split is by symbol name (below), a heuristic: good to see which third dominates, not to
//! a percent.

use std::path::Path;
use std::process::Command;

/// Kernel symbols counted as "the syscall": entry and exit, and the socket layer between the
/// system call and the protocol.
const SYSCALL: [&str; 12] = [
    "entry_SYSCALL",
    "syscall",
    "__x64_sys",
    "__sys_",
    "do_sys",
    "exit_to_user",
    "__fdget",
    "fput",
    "sockfd_lookup",
    "sock_sendmsg",
    "sock_recvmsg",
    "do_poll",
];

/// Shares of a profile, in percent of its samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Profile {
    pub(super) user: f64,
    pub(super) syscall: f64,
    pub(super) kernel: f64,
    /// The heaviest symbols: (percent, `[.]`/`[k]` and name).
    pub(super) top: Vec<(f64, String)>,
}

/// Records `pid` for `seconds` into `data`, then reads the report.
pub(super) fn profile(pid: u32, seconds: u64, data: &Path) -> Result<Profile, String> {
    let rec = Command::new("perf")
        .args(["record", "-q", "-F", "997", "-p", &pid.to_string(), "-o"])
        .arg(data)
        .args(["--", "sleep", &seconds.to_string()])
        .output()
        .map_err(|e| format!("running perf: {e}"))?;
    if !rec.status.success() {
        return Err(format!("perf record: {}", String::from_utf8_lossy(&rec.stderr).trim()));
    }
    let rep = Command::new("perf")
        .args(["report", "--stdio", "--sort", "sym", "-i"])
        .arg(data)
        .output()
        .map_err(|e| format!("running perf report: {e}"))?;
    if !rep.status.success() {
        return Err(format!("perf report: {}", String::from_utf8_lossy(&rep.stderr).trim()));
    }
    Ok(parse(&String::from_utf8_lossy(&rep.stdout)))
}

/// `perf report --stdio --sort sym`'s lines: `    12.34%  [k] veth_xmit`.
fn parse(report: &str) -> Profile {
    let mut p = Profile::default();
    for line in report.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(pct), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let Some(pct) = pct.strip_suffix('%').and_then(|v| v.parse::<f64>().ok()) else { continue };
        let sym = parts.collect::<Vec<_>>().join(" ");
        match kind {
            "[k]" if SYSCALL.iter().any(|s| sym.contains(s)) => p.syscall += pct,
            "[k]" => p.kernel += pct,
            _ => p.user += pct,
        }
        if p.top.len() < 6 {
            p.top.push((pct, format!("{kind} {sym}")));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_split_into_user_syscall_and_kernel() {
        let r = "# Overhead  Symbol\n#\n    40.00%  [.] pktgen::run::forward\n    30.00%  [k] veth_xmit\n    \
                 20.00%  [k] entry_SYSCALL_64\n     6.00%  [k] __sys_sendto\n     4.00%  [.] 0x00007f\n";
        let p = parse(r);
        assert_eq!((p.user, p.syscall, p.kernel), (44.0, 26.0, 30.0));
        assert_eq!(p.top[1], (30.0, "[k] veth_xmit".to_string()));
    }
}
