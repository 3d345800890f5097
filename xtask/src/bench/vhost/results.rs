//! What `bench vhost` measured: one run's figures from both outputs, the rounds folded into a
//! median per side and mode (and the ratio paired per round), and the table.

use std::fmt::Write as _;

use super::super::dpdk::version_major_minor;
use super::super::machine::machine;
use super::super::report::{now_unix, utc, Grid};
use super::super::stats::{parse_rates, steady};
use super::{Mode, Side, VhostArgs, WARMUP};

/// One frontend run's steady-state numbers, in packets per second.
#[derive(Debug, PartialEq)]
pub(super) struct Run {
    /// What the table counts: txonly, what the backend received; rxonly, what the frontend did.
    pub(super) counted: f64,
    /// The sending side's own count: txonly, the frontend's Tx-pps; rxonly, the backend's.
    pub(super) sent: Option<f64>,
    /// Samples `counted` is the median of.
    pub(super) samples: usize,
}

impl Run {
    /// The numbers of one run from the frontend's output and the backend's during the run.
    pub(super) fn from_outputs(mode: Mode, frontend: &str, backend: &str) -> Result<Run, String> {
        let f = parse_rates(frontend).remove(&0).unwrap_or_default();
        let b = parse_rates(backend).remove(&0).unwrap_or_default();
        let (counted, sent, whose) = match mode {
            Mode::TxOnly => (&b.0, &f.1, "the backend's `Rx-pps`"),
            Mode::RxOnly => (&f.0, &b.1, "the frontend's `Rx-pps`"),
        };
        let Some(median) = steady(counted, WARMUP) else {
            return Err(format!("{} samples of {whose}, fewer than the {} needed", counted.len(), WARMUP + 1));
        };
        if median <= 0.0 {
            return Err(format!("no packets moved: {whose} was {} in steady state (samples: {:?})", median, counted));
        }
        Ok(Run { counted: median, sent: steady(sent, WARMUP), samples: counted.len() - WARMUP })
    }
}

/// Packets per second as Mpps: two decimals, more below 0.1 Mpps so a trickle does not read
/// as zero.
pub(super) fn mpps(pps: f64) -> String {
    let m = pps / 1e6;
    if m >= 0.1 {
        format!("{m:.2}")
    } else {
        format!("{m:.6}")
    }
}

/// The rounds' runs folded into one figure per side and mode.
pub(super) struct Summary {
    /// Per (side, mode): the median over the rounds of each run's figures.
    runs: Vec<((Side, Mode), Run)>,
    /// Per mode: each round's ratio (burst / DPDK), for rounds where both ran.
    ratios: Vec<(Mode, Vec<f64>)>,
}

impl Summary {
    pub(super) fn new(results: &[(u32, Side, Mode, Run)], rounds: u32) -> Summary {
        let mut runs = Vec::new();
        let mut ratios = Vec::new();
        for mode in Mode::ALL {
            for side in [Side::Dpdk, Side::Burst] {
                let these: Vec<&Run> =
                    results.iter().filter(|(_, s, m, _)| *s == side && *m == mode).map(|(_, _, _, r)| r).collect();
                let counted: Vec<f64> = these.iter().map(|r| r.counted).collect();
                let sent: Vec<f64> = these.iter().filter_map(|r| r.sent).collect();
                if let Some(c) = steady(&counted, 0) {
                    let samples = these.iter().map(|r| r.samples).sum();
                    runs.push(((side, mode), Run { counted: c, sent: steady(&sent, 0), samples }));
                }
            }
            let per_round: Vec<f64> = (0..rounds)
                .filter_map(|round| {
                    let get = |side| {
                        results.iter().find(|(r, s, m, _)| *r == round && *s == side && *m == mode).map(|x| x.3.counted)
                    };
                    match (get(Side::Dpdk), get(Side::Burst)) {
                        (Some(d), Some(b)) if d > 0.0 => Some(b / d),
                        _ => None,
                    }
                })
                .collect();
            ratios.push((mode, per_round));
        }
        Summary { runs, ratios }
    }

    fn get(&self, side: Side, mode: Mode) -> Option<&Run> {
        self.runs.iter().find(|(k, _)| *k == (side, mode)).map(|(_, r)| r)
    }

    /// The median of the rounds' ratios, and the ratios themselves.
    fn ratio(&self, mode: Mode) -> (Option<f64>, Vec<f64>) {
        let each = self.ratios.iter().find(|(m, _)| *m == mode).map(|(_, v)| v.clone()).unwrap_or_default();
        (steady(&each, 0), each)
    }
}

pub(super) struct Table {
    grid: Grid,
}

impl Table {
    pub(super) fn new(version: Option<&str>, args: &VhostArgs, summary: &Summary) -> Table {
        let get = |side, mode| summary.get(side, mode);
        let header = [
            format!("vhost-user, {} B, burst {}", args.size, args.burst),
            format!("DPDK {} virtio-user", version.map(version_major_minor).unwrap_or_else(|| "22.11".into())),
            "burst virtio-user".to_string(),
            "ratio (burst/DPDK)".to_string(),
        ];
        let cell = |v: Option<f64>| v.map_or_else(|| "failed".to_string(), mpps);
        let ratio = |mode| match summary.ratio(mode) {
            (Some(r), each) if each.len() > 1 => {
                let each: Vec<String> = each.iter().map(|x| format!("{x:.2}")).collect();
                format!("{r:.2} ({})", each.join(", "))
            }
            (Some(r), _) => format!("{r:.2}"),
            (None, _) => "-".into(),
        };
        let mut rows = Vec::new();
        for (mode, label) in [
            (Mode::TxOnly, "txonly Mpps (received by the backend)"),
            (Mode::RxOnly, "rxonly Mpps (received by the frontend)"),
        ] {
            let (d, b) = (get(Side::Dpdk, mode).map(|r| r.counted), get(Side::Burst, mode).map(|r| r.counted));
            rows.push([label.to_string(), cell(d), cell(b), ratio(mode)]);
        }
        let sent = |side, mode| -> String {
            match get(side, mode) {
                Some(r) => r.sent.map_or_else(|| "-".to_string(), mpps),
                None => "failed".into(),
            }
        };
        for (mode, label) in
            [(Mode::TxOnly, "txonly: sent, per the frontend"), (Mode::RxOnly, "rxonly: sent, per the backend")]
        {
            rows.push([label.to_string(), sent(Side::Dpdk, mode), sent(Side::Burst, mode), "-".into()]);
        }
        let n = |side| {
            Mode::ALL
                .iter()
                .map(|&m| get(side, m).map_or("-".to_string(), |r| r.samples.to_string()))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        rows.push([
            "samples tx / rx (1 s each, after warm-up, all rounds)".into(),
            n(Side::Dpdk),
            n(Side::Burst),
            "-".into(),
        ]);
        Table { grid: Grid { header, rows } }
    }

    pub(super) fn text(&self) -> String {
        self.grid.text("ratio > 1: burst's virtio-user moves more packets per second than DPDK's")
    }

    pub(super) fn markdown(
        &self,
        args: &VhostArgs,
        cpu_a: &str,
        cpu_b: &str,
        commands: &[String],
        tsc_hz: Option<f64>,
        notes: &[String],
    ) -> String {
        let mut md = String::from("# virtio-user against DPDK's: to and from one DPDK vhost-user backend\n\n");
        let _ = writeln!(
            md,
            "Written by `cargo xtask bench vhost` on {} UTC, {}. {} B frames, bursts of {}. Each run: the \
             median of {} one-second samples after {WARMUP} s of warm-up; {} rounds, each running DPDK's and \
             ours back to back per mode (who goes first alternates); the table shows the median over the \
             rounds, and the ratio is the median of each round's ratio (listed in brackets). txonly counts \
             what the backend received (its `Rx-pps`), rxonly what the frontend received (its `Rx-pps`); the \
             rows \"sent\" are the sending side's own count, as a cross-check. Ratio > 1: burst moves more.\n",
            utc(now_unix()),
            machine(tsc_hz),
            args.size,
            args.burst,
            args.seconds,
            args.rounds,
        );
        md.push_str(&self.grid.markdown());
        let _ = writeln!(
            md,
            "\nCPUs: the backend forwards on CPU {cpu_b} (main lcore {cpu_a}), the frontend on CPU {cpu_a} \
             (main lcore {cpu_b}); the main lcores only print statistics."
        );
        md.push_str("\n## Commands\n\nThe backend (one for all four runs, driven through its prompt):\n\n");
        for c in commands {
            if c.starts_with('`') {
                let _ = writeln!(md, "- {c}");
            } else {
                let _ = writeln!(md, "- `{c}`");
            }
        }
        if !notes.is_empty() {
            md.push_str("\n## Notes\n\n");
            for n in notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// The backend's answers to `show port stats 0` at its prompt (testpmd 22.11, abridged).
    fn backend_stats(rx: &[u64], tx: &[u64]) -> String {
        let mut s = String::from("testpmd> start\nrxonly packet forwarding - ports=1 - cores=1 - streams=1\n");
        for (r, t) in rx.iter().zip(tx) {
            let _ = write!(
                s,
                "testpmd> show port stats 0\n\n  ######################## NIC statistics for port 0  \
                 ########################\n  RX-packets: 116699680  RX-missed: 0          RX-bytes:  7468779520\n  \
                 RX-errors: 0\n  RX-nombuf:  0\n  TX-packets: 0          TX-errors: 0          TX-bytes:  0\n\n  \
                 Throughput (since last show)\n  Rx-pps:   {r:>10}          Rx-bps:   8460766696\n  \
                 Tx-pps:   {t:>10}          Tx-bps:            0\n  \
                 ############################################################################\n"
            );
        }
        s
    }

    /// A frontend's `--stats-period 1` blocks (testpmd's and pktgen's share these lines).
    fn frontend_stats(rx: &[u64], tx: &[u64]) -> String {
        let mut s = String::from("EAL: RTE Version: 'DPDK 22.11.11'\n");
        for (r, t) in rx.iter().zip(tx) {
            let _ = write!(
                s,
                "\u{1b}[2J\u{1b}[1;1H\nPort statistics ====================================\n  \
                 ######################## NIC statistics for port 0  ########################\n  \
                 Rx-pps:   {r:>10}          Rx-bps:   0\n  Tx-pps:   {t:>10}          Tx-bps:   0\n"
            );
        }
        s
    }

    #[test]
    fn txonly_counts_what_the_backend_received() {
        let back = backend_stats(&[3_000_000, 15_000_000, 16_000_000, 17_000_000, 16_500_000], &[0; 5]);
        let front = frontend_stats(&[0; 5], &[0, 16_400_000, 16_100_000, 16_900_000, 16_600_000]);
        let r = Run::from_outputs(Mode::TxOnly, &front, &back).unwrap();
        assert_eq!(r.counted, 16_500_000.0);
        assert_eq!(r.sent, Some(16_600_000.0));
        assert_eq!(r.samples, 3);
    }

    #[test]
    fn rxonly_counts_what_the_frontend_received() {
        let back = backend_stats(&[0; 4], &[5_000_000, 21_000_000, 20_000_000, 22_000_000]);
        let front = frontend_stats(&[0, 19_000_000, 20_500_000, 21_500_000], &[0; 4]);
        let r = Run::from_outputs(Mode::RxOnly, &front, &back).unwrap();
        assert_eq!(r.counted, 21_000_000.0);
        assert_eq!(r.sent, Some(21_000_000.0));
        assert_eq!(r.samples, 2);
    }

    #[test]
    fn nothing_moved_or_too_few_samples_is_an_error_not_a_zero() {
        let back = backend_stats(&[0; 4], &[0; 4]);
        let front = frontend_stats(&[0; 4], &[9_000_000; 4]);
        let e = Run::from_outputs(Mode::TxOnly, &front, &back).unwrap_err();
        assert!(e.contains("no packets moved"), "{e}");
        let e = Run::from_outputs(Mode::RxOnly, "pktgen: error: probing virtio_user0", "").unwrap_err();
        assert!(e.contains("0 samples of the frontend's `Rx-pps`"), "{e}");
        // The backend answered fewer times than the frontend printed: what there is counts.
        let back = backend_stats(&[1, 2, 7_000_000], &[0; 3]);
        assert_eq!(Run::from_outputs(Mode::TxOnly, &front, &back).unwrap().samples, 1);
    }

    #[test]
    fn small_rates_do_not_read_as_zero() {
        assert_eq!(mpps(51_950_000.0), "51.95");
        assert_eq!(mpps(100_000.0), "0.10");
        assert_eq!(mpps(230.0), "0.000230");
    }

    #[test]
    fn rounds_fold_into_medians_and_paired_ratios() {
        let run = |c: f64| Run { counted: c * 1e6, sent: Some(c * 1e6), samples: 10 };
        let results = vec![
            (0, Side::Dpdk, Mode::TxOnly, run(10.0)),
            (0, Side::Burst, Mode::TxOnly, run(12.0)),
            (1, Side::Burst, Mode::TxOnly, run(40.0)),
            (1, Side::Dpdk, Mode::TxOnly, run(50.0)),
            (2, Side::Dpdk, Mode::TxOnly, run(20.0)),
            (2, Side::Burst, Mode::TxOnly, run(22.0)),
            (0, Side::Dpdk, Mode::RxOnly, run(20.0)),
        ];
        let s = Summary::new(&results, 3);
        assert_eq!(s.get(Side::Dpdk, Mode::TxOnly).unwrap().counted, 20e6);
        assert_eq!(s.get(Side::Burst, Mode::TxOnly).unwrap().samples, 30);
        // Paired per round: 1.2, 0.8, 1.1 -> 1.1 (not 22/20 of the medians).
        let (r, each) = s.ratio(Mode::TxOnly);
        assert_eq!(each.len(), 3);
        assert!((r.unwrap() - 1.1).abs() < 1e-9, "{r:?}");
        assert_eq!(s.ratio(Mode::RxOnly), (None, vec![]));
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 3 };
        let text = Table::new(None, &a, &s).text();
        let tx = text.lines().find(|l| l.starts_with("txonly Mpps")).unwrap();
        assert!(tx.contains("1.10 (1.20, 0.80, 1.10)"), "{tx}");
    }

    #[test]
    fn the_table_shows_failures_as_such() {
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 1 };
        let dpdk_tx = Run { counted: 16e6, sent: Some(16.1e6), samples: 10 };
        let dpdk_rx = Run { counted: 20e6, sent: None, samples: 10 };
        let ours_tx = Run { counted: 18e6, sent: Some(18e6), samples: 10 };
        let results = vec![
            (0, Side::Dpdk, Mode::TxOnly, dpdk_tx),
            (0, Side::Dpdk, Mode::RxOnly, dpdk_rx),
            (0, Side::Burst, Mode::TxOnly, ours_tx),
        ];
        let t = Table::new(Some("DPDK 22.11.11"), &a, &Summary::new(&results, 1));
        let text = t.text();
        assert!(text.contains("DPDK 22.11 virtio-user"), "{text}");
        let tx = text.lines().find(|l| l.starts_with("txonly Mpps")).unwrap();
        assert!(tx.contains("16.00") && tx.contains("18.00") && tx.contains("1.12"), "{tx}");
        let rx = text.lines().find(|l| l.starts_with("rxonly Mpps")).unwrap();
        assert!(rx.contains("20.00") && rx.contains("failed"), "{rx}");
        let samples = text.lines().find(|l| l.starts_with("samples")).unwrap();
        assert!(samples.contains("10 / 10") && samples.contains("10 / -"), "{samples}");
        let md = t.markdown(
            &a,
            "0",
            "1",
            &["dpdk-testpmd x".into(), "`set fwd rxonly` on the backend, then:".into()],
            None,
            &[],
        );
        assert!(md.contains("|:--") && md.contains("- `dpdk-testpmd x`") && md.contains("- `set fwd rxonly` on"));
        assert!(md.contains("the backend forwards on CPU 1 (main lcore 0), the frontend on CPU 0"), "{md}");
    }
}
