//! The kernel's own counts of the veth pair, read with `ip -s -j link` (iproute2's JSON): what
//! the interfaces moved, whoever's driver is on them, so DPDK's port and ours are counted alike.

use std::process::Command;
use std::time::Instant;

/// One interface's counters at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Counts {
    pub(super) at: Instant,
    pub(super) rx_packets: u64,
    pub(super) rx_dropped: u64,
    pub(super) tx_packets: u64,
}

/// `iface`'s counters in namespace `ns`.
pub(super) fn read(ns: &str, iface: &str) -> Result<Counts, String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "-j", "link", "show", "dev", iface])
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if !out.status.success() {
        return Err(format!("ip -n {ns} -s -j link show dev {iface}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    parse(&String::from_utf8_lossy(&out.stdout), Instant::now())
}

fn parse(json: &str, at: Instant) -> Result<Counts, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("ip's JSON: {e}"))?;
    let s = &v[0]["stats64"];
    let get =
        |dir: &str, what: &str| s[dir][what].as_u64().ok_or_else(|| format!("no stats64.{dir}.{what} in ip's JSON"));
    Ok(Counts {
        at,
        rx_packets: get("rx", "packets")?,
        rx_dropped: get("rx", "dropped")?,
        tx_packets: get("tx", "packets")?,
    })
}

/// Per-second rates between successive readings: (received, dropped on receive, sent).
pub(super) fn rates(readings: &[Counts]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut rx, mut drop, mut tx) = (Vec::new(), Vec::new(), Vec::new());
    for w in readings.windows(2) {
        let dt = w[1].at.duration_since(w[0].at).as_secs_f64();
        if dt <= 0.0 {
            continue;
        }
        let r = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
        rx.push(r(w[0].rx_packets, w[1].rx_packets));
        drop.push(r(w[0].rx_dropped, w[1].rx_dropped));
        tx.push(r(w[0].tx_packets, w[1].tx_packets));
    }
    (rx, drop, tx)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ips_json_is_read_and_turned_into_rates() {
        let json = r#"[{"ifindex":2,"ifname":"x1","stats64":{"rx":{"bytes":79116346,"packets":1582318,"errors":0,"dropped":745268,"over_errors":0,"multicast":0},"tx":{"bytes":1266,"packets":15,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}}]"#;
        let t0 = Instant::now();
        let a = parse(json, t0).unwrap();
        assert_eq!((a.rx_packets, a.rx_dropped, a.tx_packets), (1582318, 745268, 15));
        let b = Counts { at: t0 + Duration::from_millis(500), rx_packets: a.rx_packets + 1000, ..a };
        let (rx, drop, tx) = rates(&[a, b]);
        assert_eq!((rx, drop, tx), (vec![2000.0], vec![0.0], vec![0.0]));
        assert!(parse("[{}]", t0).unwrap_err().contains("stats64.rx.packets"));
    }
}
