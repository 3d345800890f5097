//! The machine a bench runs on: the CPUs we may use (as DPDK's `-l` list), the TSC frequency,
//! the CPU model, and whether other work keeps the CPUs busy (which makes numbers worse).

use std::fs;
use std::time::{Duration, Instant};

/// The first two CPUs we may run on, as DPDK's `-l` list (one if there is only one).
pub(super) fn lcore_list() -> String {
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

/// Ticks of the TSC per second, timed against the monotonic clock.
pub(super) fn measure_tsc_hz() -> Option<f64> {
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

pub(super) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_default()
}

/// `CPU model, TSC N MHz` for a table's preamble.
pub(super) fn machine(tsc_hz: Option<f64>) -> String {
    let cpu = cpu_model();
    format!(
        "{}, {}",
        if cpu.is_empty() { "this machine" } else { &cpu },
        tsc_hz.map_or_else(|| "TSC frequency unknown".to_string(), |hz| format!("TSC {:.0} MHz", hz / 1e6))
    )
}

/// A warning if the CPUs are busy with other work now (over a second, more than 15% busy).
pub(super) fn busy_warning(before: &str) -> Option<String> {
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

/// Prints and keeps a warning if the CPUs are busy with other work now (takes a second).
pub(super) fn warn_if_busy(what: &str, notes: &mut Vec<String>) {
    if let Some(w) = busy_warning(what) {
        println!("bench: warning: {w}");
        notes.push(w);
    }
}
