//! The statistics testpmd and pktgen print (`NIC statistics for port N` blocks with `Rx-pps:`
//! and `Tx-pps:` lines), and the steady-state figure taken from them.

use std::collections::BTreeMap;

/// The `Rx-pps:` and `Tx-pps:` values of every `NIC statistics for port N` block, per port, in
/// order. testpmd's blocks (`--stats-period`, `show port stats`) and pktgen's have these lines.
pub(super) fn parse_rates(text: &str) -> BTreeMap<u16, (Vec<f64>, Vec<f64>)> {
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
pub(super) fn steady(samples: &[f64], warmup: usize) -> Option<f64> {
    let mut s: Vec<f64> = samples.iter().skip(warmup).copied().collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[mid] } else { (s[mid - 1] + s[mid]) / 2.0 })
}
