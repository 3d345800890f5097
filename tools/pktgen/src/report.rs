//! What pktgen prints: the periodic per-port rates (testpmd's `--stats-period` block, with the
//! same `Rx-pps:`/`Tx-pps:` lines) and the final report, which ends with one machine-readable
//! line, `RESULT {json}`. In csum mode both also show the bad checksums each port received
//! (testpmd's `Bad-ipcsum:`/`Bad-l4csum:` line).

use std::fmt::Write as _;

use burst::{Port, RxOffloads, Stats, TxOffloads};
use serde_json::{json, Value};

use crate::counters::Counts;
use crate::options::Mode;
use crate::streams::StreamSpec;

/// Per-port sums of the streams' counts: RX and what csum mode found in it from the streams
/// receiving on the port (as testpmd counts bad checksums for the RX port); TX, dropped and
/// generated from the streams sending on it.
pub fn per_port(nb_ports: u16, specs: &[StreamSpec], counts: &[Counts]) -> Vec<Counts> {
    let mut ports = vec![Counts::default(); usize::from(nb_ports)];
    for (s, c) in specs.iter().zip(counts) {
        if let Some(p) = ports.get_mut(usize::from(s.rx_port)) {
            p.rx += c.rx;
            p.bad_ip_csum += c.bad_ip_csum;
            p.bad_l4_csum += c.bad_l4_csum;
            p.unparsed += c.unparsed;
        }
        if let Some(p) = ports.get_mut(usize::from(s.tx_port)) {
            p.tx += c.tx;
            p.dropped += c.dropped;
            p.generated += c.generated;
        }
    }
    ports
}

/// csum mode's line of a port's statistics (testpmd's, with pktgen's unparsed count after it).
fn csum_line(out: &mut String, c: &Counts) {
    let _ =
        writeln!(out, "  Bad-ipcsum: {:<14} Bad-l4csum: {:<14} Unparsed: {}", c.bad_ip_csum, c.bad_l4_csum, c.unparsed);
}

/// testpmd's statistics block for every port: totals so far and packets per second since the
/// last block (`prev`, `secs` ago); in `mode` csum, the bad checksums too.
pub fn period_block(mode: Mode, now: &[Counts], prev: &[Counts], secs: f64) -> String {
    let rate = |a: u64, b: u64| if secs > 0.0 { (a.wrapping_sub(b) as f64 / secs).round() as u64 } else { 0 };
    let mut out = String::from("\nPort statistics ====================================\n");
    for (port, (n, p)) in now.iter().zip(prev).enumerate() {
        let _ = writeln!(out, "  ######################## NIC statistics for port {port:<2} ########################");
        let _ = writeln!(out, "  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {}", n.rx, n.tx, n.dropped);
        if mode == Mode::Csum {
            csum_line(&mut out, n);
        }
        let _ = writeln!(out, "\n  Throughput (since last show)");
        let _ = writeln!(out, "  Rx-pps: {:>12}", rate(n.rx, p.rx));
        let _ = writeln!(out, "  Tx-pps: {:>12}", rate(n.tx, p.tx));
        let _ = writeln!(out, "  ############################################################################");
    }
    out
}

/// How a port was set up for the run: what the report shows of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSetup {
    pub mtu: u16,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
}

impl PortSetup {
    /// `port`'s MTU and the offloads it was configured with.
    pub fn of(port: &Port) -> PortSetup {
        PortSetup { mtu: port.mtu(), rx_offloads: port.conf().rx_offloads, tx_offloads: port.conf().tx_offloads }
    }
}

/// The final numbers.
#[derive(Debug, Clone)]
pub struct Report {
    pub mode: Mode,
    pub burst: usize,
    /// Forwarding lcores that ran.
    pub lcores: usize,
    pub streams: usize,
    /// From the start signal to the stop signal.
    pub elapsed_secs: f64,
    /// Per port, from the streams' counters.
    pub ports: Vec<Counts>,
    /// Per port, the driver's own counters over the run.
    pub port_stats: Vec<Stats>,
    /// Per port, its MTU and offloads.
    pub setups: Vec<PortSetup>,
}

impl Report {
    /// All ports' counts.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for p in &self.ports {
            t.add(p);
        }
        t
    }

    /// Millions of packets per second over the run.
    fn mpps(&self, packets: u64) -> f64 {
        if self.elapsed_secs > 0.0 {
            packets as f64 / self.elapsed_secs / 1e6
        } else {
            0.0
        }
    }

    /// The headline: packets forwarded (sent; received for rxonly) per second, all ports.
    pub fn total_mpps(&self) -> f64 {
        let t = self.total();
        self.mpps(if self.mode == Mode::Rxonly { t.rx } else { t.tx })
    }

    /// testpmd's forward statistics, then the run's length, the `Total:` line and `RESULT`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (port, c) in self.ports.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n  ---------------------- Forward statistics for port {port:<2} ----------------------"
            );
            let _ = writeln!(out, "  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {}", c.rx, c.tx, c.dropped);
            if self.mode == Mode::Csum {
                csum_line(&mut out, c);
            }
            let _ = writeln!(out, "  RX-Mpps: {:<17.2} TX-Mpps: {:.2}", self.mpps(c.rx), self.mpps(c.tx));
            let _ = writeln!(out, "  ----------------------------------------------------------------------------");
        }
        let t = self.total();
        let _ = writeln!(out, "\n  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++");
        let _ = writeln!(out, "  RX-packets: {:<14} TX-packets: {:<14} TX-dropped: {}", t.rx, t.tx, t.dropped);
        let _ = writeln!(out, "  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++");
        let _ = writeln!(
            out,
            "\nElapsed: {:.3} s ({} mode, {} forwarding lcore{}, {} stream{}, burst {})",
            self.elapsed_secs,
            self.mode.name(),
            self.lcores,
            if self.lcores == 1 { "" } else { "s" },
            self.streams,
            if self.streams == 1 { "" } else { "s" },
            self.burst
        );
        let _ = writeln!(out, "Total: {:.2} Mpps", self.total_mpps());
        let _ = writeln!(out, "RESULT {}", self.json());
        out
    }

    /// The report as one JSON object (the `RESULT` line; see docs/pktgen.md).
    pub fn json(&self) -> Value {
        let counts = |c: &Counts| {
            let mut v = json!({
                "rx_packets": c.rx,
                "tx_packets": c.tx,
                "tx_dropped": c.dropped,
                "generated": c.generated,
                "rx_mpps": round2(self.mpps(c.rx)),
                "tx_mpps": round2(self.mpps(c.tx)),
            });
            if self.mode == Mode::Csum {
                v["bad_ip_csum"] = json!(c.bad_ip_csum);
                v["bad_l4_csum"] = json!(c.bad_l4_csum);
                v["unparsed"] = json!(c.unparsed);
            }
            v
        };
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(port, c)| {
                let mut v = counts(c);
                v["port"] = json!(port);
                if let Some(s) = self.port_stats.get(port) {
                    v["port_stats"] = json!({
                        "ipackets": s.ipackets,
                        "opackets": s.opackets,
                        "imissed": s.imissed,
                        "ierrors": s.ierrors,
                        "oerrors": s.oerrors,
                        "rx_nombuf": s.rx_nombuf,
                        "ibytes": s.ibytes,
                        "obytes": s.obytes,
                    });
                }
                if let Some(s) = self.setups.get(port) {
                    v["mtu"] = json!(s.mtu);
                    v["rx_offloads"] = json!(format!("{:#x}", s.rx_offloads.bits()));
                    v["tx_offloads"] = json!(format!("{:#x}", s.tx_offloads.bits()));
                }
                v
            })
            .collect();
        json!({
            "mode": self.mode.name(),
            "burst": self.burst,
            "lcores": self.lcores,
            "streams": self.streams,
            "elapsed_s": (self.elapsed_secs * 1e6).round() / 1e6,
            "ports": ports,
            "total": counts(&self.total()),
            "total_mpps": round2(self.total_mpps()),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::streams;

    fn c(rx: u64, tx: u64, dropped: u64) -> Counts {
        Counts { rx, tx, dropped, ..Counts::default() }
    }

    #[test]
    fn ports_sum_rx_where_received_and_tx_where_sent() {
        let specs = streams(2, 1); // 0 -> 1, 1 -> 0
        let ports = per_port(2, &specs, &[c(100, 90, 10), c(50, 50, 0)]);
        assert_eq!(ports, [c(100, 50, 0), c(50, 90, 10)]);
    }

    #[test]
    fn the_period_block_has_testpmds_rate_lines() {
        let text = period_block(Mode::Io, &[c(3_000_000, 2_000_000, 0)], &[c(1_000_000, 1_000_000, 0)], 2.0);
        assert!(text.contains("NIC statistics for port 0"), "{text}");
        assert!(text.contains("  Rx-pps:      1000000\n"), "{text}");
        assert!(text.contains("  Tx-pps:       500000\n"), "{text}");
        assert!(!text.contains("Bad-ipcsum"), "only csum mode counts checksums: {text}");
        let bad = Counts { bad_ip_csum: 3, bad_l4_csum: 4, unparsed: 5, ..c(10, 10, 0) };
        let text = period_block(Mode::Csum, &[bad], &[c(0, 0, 0)], 1.0);
        assert!(text.contains("  Bad-ipcsum: 3              Bad-l4csum: 4              Unparsed: 5\n"), "{text}");
    }

    #[test]
    fn bad_checksums_count_for_the_port_that_received_them() {
        let specs = streams(2, 1); // 0 -> 1, 1 -> 0
        let a = Counts { bad_ip_csum: 1, bad_l4_csum: 2, unparsed: 3, ..c(10, 10, 0) };
        let ports = per_port(2, &specs, &[a, c(5, 5, 0)]);
        assert_eq!((ports[0].bad_ip_csum, ports[0].bad_l4_csum, ports[0].unparsed), (1, 2, 3));
        assert_eq!((ports[1].bad_ip_csum, ports[1].bad_l4_csum, ports[1].unparsed), (0, 0, 0));
        let r = Report {
            mode: Mode::Csum,
            burst: 32,
            lcores: 1,
            streams: 2,
            elapsed_secs: 1.0,
            ports,
            port_stats: vec![Stats::default(); 2],
            setups: vec![
                PortSetup { mtu: 9000, rx_offloads: RxOffloads::SCATTER, tx_offloads: TxOffloads::MULTI_SEGS };
                2
            ],
        };
        let text = r.text();
        assert!(text.contains("  Bad-ipcsum: 1              Bad-l4csum: 2              Unparsed: 3\n"), "{text}");
        let v = r.json();
        assert_eq!((&v["ports"][0]["bad_ip_csum"], &v["ports"][0]["bad_l4_csum"]), (&json!(1), &json!(2)));
        assert_eq!((&v["total"]["unparsed"], &v["ports"][1]["mtu"]), (&json!(3), &json!(9000)));
        assert_eq!(
            (&v["ports"][1]["rx_offloads"], &v["ports"][1]["tx_offloads"]),
            (&json!("0x2000"), &json!("0x8000"))
        );
    }

    #[test]
    fn the_report_totals_and_its_result_line_parses() {
        let r = Report {
            mode: Mode::Io,
            burst: 32,
            lcores: 1,
            streams: 2,
            elapsed_secs: 2.0,
            ports: vec![c(200_000_000, 100_000_000, 0), c(100_000_000, 200_000_000, 0)],
            port_stats: vec![Stats::default(), Stats { ipackets: 7, obytes: 640, ..Stats::default() }],
            setups: Vec::new(),
        };
        assert_eq!(r.total_mpps(), 150.0);
        let text = r.text();
        assert!(text.contains("Total: 150.00 Mpps\n"), "{text}");
        assert!(text.contains("RX-Mpps: 100.00"), "{text}");
        let line = text.lines().last().unwrap();
        let v: Value = serde_json::from_str(line.strip_prefix("RESULT ").unwrap()).unwrap();
        assert_eq!(v["total_mpps"], 150.0);
        assert_eq!(v["mode"], "io");
        assert_eq!(v["ports"][1]["tx_packets"], 200_000_000u64);
        assert_eq!(v["ports"][1]["tx_mpps"], 100.0);
        assert_eq!(v["ports"][1]["port_stats"]["ipackets"], 7);
        assert_eq!(v["ports"][1]["port_stats"]["obytes"], 640);
        assert!(v["total"].get("bad_ip_csum").is_none(), "checksums are csum mode's: {v}");
        assert_eq!(v["total"]["rx_packets"], 300_000_000u64);
    }

    #[test]
    fn rxonly_counts_what_it_received() {
        let r = Report {
            mode: Mode::Rxonly,
            burst: 32,
            lcores: 1,
            streams: 1,
            elapsed_secs: 1.0,
            ports: vec![c(5_000_000, 0, 0)],
            port_stats: Vec::new(),
            setups: Vec::new(),
        };
        assert_eq!(r.total_mpps(), 5.0);
    }
}
