//! Lcores: logical cores, each a thread pinned to one CPU. This module parses lcore lists and
//! checks them against the CPUs this process may run on (`sched_getaffinity`), and pins threads.
//!
//! Lists take DPDK's forms: `-l 0-3,5` (lcore N on CPU N) and `--lcores 0@2,1@3` (lcore@CPU).
//! `1-2@4` puts lcores 1 and 2 both on CPU 4, as DPDK allows. DPDK's CPU sets in parentheses
//! (`(0-3)@(4-7)`, threads floating over several CPUs) are not taken: an lcore here is pinned to
//! one CPU.

use std::collections::BTreeSet;
use std::io;

use burst_mem::lcore::MAX_LCORES;

use crate::error::EalError;

/// One lcore: its id (which indexes per-lcore state such as mempool caches) and the CPU its
/// thread is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LcoreInfo {
    /// The lcore id, below [`MAX_LCORES`].
    pub id: u32,
    /// The CPU its thread runs on.
    pub cpu: usize,
}

/// Parses an lcore list into lcores sorted by id, each checked against `allowed` (the CPUs this
/// process may run on). Errors are usage errors that say what is wrong and what is allowed.
pub fn parse_lcores(list: &str, allowed: &BTreeSet<usize>) -> Result<Vec<LcoreInfo>, EalError> {
    let bad = |why: String| {
        EalError::usage(format!("bad lcore list {list:?}: {why}; write e.g. -l 0-3,5 or --lcores 0@2,1@3"))
    };
    if list.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    let mut out: Vec<LcoreInfo> = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        let (ids, cpu) = match item.split_once('@') {
            Some((ids, cpu)) => (ids, Some(cpu)),
            None => (item, None),
        };
        let (first, last) = parse_range(ids).ok_or_else(|| bad(format!("{item:?} is not N, N-M or N@CPU")))?;
        let cpu = match cpu {
            None => None,
            Some(c) => {
                Some(c.trim().parse::<usize>().map_err(|_| bad(format!("{c:?} in {item:?} is not a CPU number")))?)
            }
        };
        for id in first..=last {
            if id >= MAX_LCORES as u64 {
                return Err(bad(format!("lcore {id} is out of range: lcore ids go from 0 to {}", MAX_LCORES - 1)));
            }
            let id = id as u32;
            if out.iter().any(|l| l.id == id) {
                return Err(bad(format!("lcore {id} is given twice")));
            }
            let cpu = cpu.unwrap_or(id as usize);
            if !allowed.contains(&cpu) {
                let may = format_cpus(allowed);
                return Err(EalError::usage(if cpu == id as usize {
                    format!("lcore {id} does not exist: this process may run on CPUs {may}")
                } else {
                    format!("lcore {id}@{cpu}: CPU {cpu} does not exist: this process may run on CPUs {may}")
                }));
            }
            out.push(LcoreInfo { id, cpu });
        }
    }
    out.sort_by_key(|l| l.id);
    Ok(out)
}

/// `N` or `N-M` (N <= M).
fn parse_range(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    let num = |t: &str| -> Option<u64> {
        let t = t.trim();
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some((a, b))
        }
        None => num(s).map(|n| (n, n)),
    }
}

/// DPDK's default: one lcore per CPU this process may run on, lcore id = CPU number (CPUs past
/// the lcore id range are left out, as DPDK does).
pub fn default_lcores(allowed: &BTreeSet<usize>) -> Vec<LcoreInfo> {
    allowed.iter().filter(|&&c| c < MAX_LCORES).map(|&cpu| LcoreInfo { id: cpu as u32, cpu }).collect()
}

/// `0-3,5`.
pub fn format_cpus(cpus: &BTreeSet<usize>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = cpus.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(",")
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`).
pub fn allowed_cpus() -> io::Result<BTreeSet<usize>> {
    let set = get_affinity()?;
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| cpu_isset(c, &set)).collect())
}

fn cpu_isset(cpu: usize, set: &libc::cpu_set_t) -> bool {
    // SAFETY: CPU_ISSET reads one bit of the set; `cpu` is below CPU_SETSIZE (callers' range).
    unsafe { libc::CPU_ISSET(cpu, set) }
}

/// The calling thread's affinity mask.
pub(crate) fn get_affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size is that of the set we pass.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// Sets the calling thread's affinity mask.
pub(crate) fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: pid 0 is the calling thread; the size is that of the set we pass.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `cpu`. The kernel moves it there before returning.
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("CPU {cpu} is past CPU_SETSIZE")));
    }
    // SAFETY: as in get_affinity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes one bit; `cpu` is below CPU_SETSIZE (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set_affinity(&set)
}

/// The CPU the calling thread is running on now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(list: &[usize]) -> BTreeSet<usize> {
        list.iter().copied().collect()
    }

    fn ids(l: &[LcoreInfo]) -> Vec<(u32, usize)> {
        l.iter().map(|l| (l.id, l.cpu)).collect()
    }

    #[test]
    fn ranges_and_singles_map_lcore_n_to_cpu_n() {
        let all = cpus(&[0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(ids(&parse_lcores("0-3,5", &all).unwrap()), [(0, 0), (1, 1), (2, 2), (3, 3), (5, 5)]);
        assert_eq!(ids(&parse_lcores("5,1", &all).unwrap()), [(1, 1), (5, 5)]);
        assert_eq!(ids(&parse_lcores(" 2 ", &all).unwrap()), [(2, 2)]);
    }

    #[test]
    fn at_forms_pick_the_cpu() {
        let all = cpus(&[0, 1, 2, 3]);
        assert_eq!(ids(&parse_lcores("0@0,1@1", &all).unwrap()), [(0, 0), (1, 1)]);
        assert_eq!(ids(&parse_lcores("10@3,4@2", &all).unwrap()), [(4, 2), (10, 3)]);
        assert_eq!(ids(&parse_lcores("1-2@3", &all).unwrap()), [(1, 3), (2, 3)]);
    }

    #[test]
    fn a_cpu_outside_the_mask_does_not_exist() {
        let two = cpus(&[0, 1]);
        let err = parse_lcores("0,7", &two).unwrap_err();
        assert_eq!(err.to_string(), "lcore 7 does not exist: this process may run on CPUs 0-1");
        assert_eq!(err.exit_code(), 2);
        let err = parse_lcores("3@9", &two).unwrap_err().to_string();
        assert_eq!(err, "lcore 3@9: CPU 9 does not exist: this process may run on CPUs 0-1");
    }

    #[test]
    fn malformed_lists_are_usage_errors_with_an_example() {
        let all = cpus(&(0..200).collect::<Vec<_>>());
        for (list, want) in [
            ("", "it is empty"),
            ("a", "is not N, N-M or N@CPU"),
            ("3-1", "is not N, N-M or N@CPU"),
            ("1,,2", "is not N, N-M or N@CPU"),
            ("-1", "is not N, N-M or N@CPU"),
            ("0@x", "is not a CPU number"),
            ("1,1", "lcore 1 is given twice"),
            ("0-2,2@1", "lcore 2 is given twice"),
            ("128", "lcore 128 is out of range: lcore ids go from 0 to 127"),
            ("99999999999999999999999", "is not N, N-M or N@CPU"),
        ] {
            let err = parse_lcores(list, &all).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(want), "{list:?}: {text}");
            assert!(text.contains("-l 0-3,5"), "{list:?}: {text}");
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(err.exit_code(), 2);
        }
    }

    #[test]
    fn defaults_cover_the_mask_and_cpu_lists_print_as_ranges() {
        assert_eq!(ids(&default_lcores(&cpus(&[1, 3, 200]))), [(1, 1), (3, 3)]);
        assert_eq!(format_cpus(&cpus(&[0, 1, 2, 3, 5, 7, 8])), "0-3,5,7-8");
        assert_eq!(format_cpus(&cpus(&[])), "none");
        assert_eq!(format_cpus(&cpus(&[4])), "4");
    }

    #[test]
    fn this_process_has_cpus() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        assert!(allowed.contains(&current_cpu().unwrap()));
    }
}
