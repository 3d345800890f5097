//! What `bench xdp` measured: one run's figures from the frontend's output and the kernel's
//! counts, the rounds folded into a median per port, side and mode (the ratio paired per
//! round), the profiles, and the tables.

use std::fmt::Write as _;

use super::super::dpdk::version_major_minor;
use super::super::machine::machine;
use super::super::report::{now_unix, utc, Grid};
use super::super::stats::{parse_rates, steady};
use super::counters::{rates, Counts};
use super::perf::Profile;
use super::{KernelArgs, Mode, Port, Side, WARMUP};

/// One run's steady-state numbers, in packets per second.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Run {
    /// What the table counts: txonly and io, what the peer received (the kernel's count);
    /// rxonly, what the frontend says it received.
    pub(super) counted: f64,
    /// What was offered: txonly, the frontend's own Tx-pps; rxonly and io, what reached the
    /// frontend's interface (the kernel's count, frames it dropped included).
    pub(super) offered: Option<f64>,
    /// Frames the kernel dropped on the frontend's interface (its RX ring full), per second.
    pub(super) dropped: Option<f64>,
    /// Samples `counted` is the median of.
    pub(super) samples: usize,
    /// Where the time went, for a profiling run.
    pub(super) profile: Option<Profile>,
}

impl Run {
    /// The numbers of one run from the frontend's output and the kernel's counts of its
    /// interface and the peer, read as each statistics block came.
    pub(super) fn from_outputs(mode: Mode, front: &str, front_k: &[Counts], peer_k: &[Counts]) -> Result<Run, String> {
        let (f_rx, f_tx) = parse_rates(front).remove(&0).unwrap_or_default();
        // The kernel's rates are between readings: the first reading starts the first one.
        let (k_rx, k_drop, _) = rates(front_k);
        let (p_rx, _, _) = rates(peer_k);
        let warm = WARMUP.saturating_sub(1);
        let (counted, whose, offered) = match mode {
            Mode::TxOnly => (steady(&p_rx, warm), "what the peer received", steady(&f_tx, WARMUP)),
            Mode::RxOnly => (steady(&f_rx, WARMUP), "the frontend's `Rx-pps`", steady(&k_rx, warm)),
            Mode::Io => (steady(&p_rx, warm), "what the peer received back", steady(&k_rx, warm)),
        };
        let Some(median) = counted else {
            return Err(format!("too few samples of {whose} (after {WARMUP} s of warm-up)"));
        };
        if median <= 0.0 {
            return Err(format!("no packets moved: {whose} was 0 in steady state"));
        }
        let samples = match mode {
            Mode::RxOnly => f_rx.len().saturating_sub(WARMUP),
            _ => p_rx.len().saturating_sub(warm),
        };
        let dropped = if mode.generated() { steady(&k_drop, warm) } else { None };
        Ok(Run { counted: median, offered, dropped, samples, profile: None })
    }
}

/// Packets per second as Mpps.
pub(super) fn mpps(pps: f64) -> String {
    let m = pps / 1e6;
    if m >= 0.1 {
        format!("{m:.2}")
    } else {
        format!("{m:.4}")
    }
}

type Key = (Port, Side, Mode);

/// The rounds folded together.
pub(super) struct Summary {
    runs: Vec<(Key, Run)>,
    ratios: Vec<((Port, Mode), Vec<f64>)>,
    profiles: Vec<(Key, Profile)>,
}

impl Summary {
    pub(super) fn new(
        results: &[(Port, u32, Side, Mode, Run)],
        profiles: &[(Port, Side, Mode, Profile)],
        rounds: u32,
    ) -> Summary {
        let mut runs = Vec::new();
        let mut ratios = Vec::new();
        for port in [Port::Xdp, Port::Packet] {
            for mode in Mode::ALL {
                for side in [Side::Dpdk, Side::Burst] {
                    let these: Vec<&Run> = results
                        .iter()
                        .filter(|(p, _, s, m, _)| (*p, *s, *m) == (port, side, mode))
                        .map(|x| &x.4)
                        .collect();
                    let med = |f: &dyn Fn(&Run) -> Option<f64>| {
                        steady(&these.iter().filter_map(|r| f(r)).collect::<Vec<_>>(), 0)
                    };
                    if let Some(counted) = med(&|r| Some(r.counted)) {
                        let run = Run {
                            counted,
                            offered: med(&|r| r.offered),
                            dropped: med(&|r| r.dropped),
                            samples: these.iter().map(|r| r.samples).sum(),
                            profile: None,
                        };
                        runs.push(((port, side, mode), run));
                    }
                }
                let per_round: Vec<f64> = (0..rounds)
                    .filter_map(|round| {
                        let get = |side| {
                            results
                                .iter()
                                .find(|x| (x.0, x.1, x.2, x.3) == (port, round, side, mode))
                                .map(|x| x.4.counted)
                        };
                        match (get(Side::Dpdk), get(Side::Burst)) {
                            (Some(d), Some(b)) if d > 0.0 => Some(b / d),
                            _ => None,
                        }
                    })
                    .collect();
                ratios.push(((port, mode), per_round));
            }
        }
        let profiles = profiles.iter().map(|(p, s, m, prof)| ((*p, *s, *m), prof.clone())).collect();
        Summary { runs, ratios, profiles }
    }

    fn get(&self, key: Key) -> Option<&Run> {
        self.runs.iter().find(|(k, _)| *k == key).map(|(_, r)| r)
    }

    fn ratio(&self, port: Port, mode: Mode) -> (Option<f64>, Vec<f64>) {
        let each = self.ratios.iter().find(|(k, _)| *k == (port, mode)).map(|(_, v)| v.clone()).unwrap_or_default();
        (steady(&each, 0), each)
    }

    fn profile(&self, key: Key) -> Option<&Profile> {
        self.profiles.iter().find(|(k, _)| *k == key).map(|(_, p)| p)
    }
}

pub(super) struct Table {
    port: Port,
    grid: Grid,
}

impl Table {
    pub(super) fn new(port: Port, version: Option<&str>, args: &KernelArgs, s: &Summary) -> Table {
        let dpdk = version.map(version_major_minor).unwrap_or_else(|| "22.11".into());
        let header = [
            format!("net_{} on veth, {} B, burst {}", port.driver(), args.size, args.burst),
            format!("DPDK {dpdk} (testpmd)"),
            "burst (pktgen)".to_string(),
            "ratio (burst/DPDK)".to_string(),
        ];
        let cell = |v: Option<f64>| v.map_or_else(|| "failed".to_string(), mpps);
        let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), mpps);
        let ratio = |mode| match s.ratio(port, mode) {
            (Some(r), each) if each.len() > 1 => {
                let each: Vec<String> = each.iter().map(|x| format!("{x:.2}")).collect();
                format!("{r:.2} ({})", each.join(", "))
            }
            (Some(r), _) => format!("{r:.2}"),
            (None, _) => "-".into(),
        };
        let get = |side, mode| s.get((port, side, mode));
        let mut rows = Vec::new();
        for (mode, label) in [
            (Mode::TxOnly, "txonly Mpps (received by the peer)"),
            (Mode::RxOnly, "rxonly Mpps (received by the app)"),
            (Mode::Io, "io Mpps (sent back, received by the peer)"),
        ] {
            let c = |side| cell(get(side, mode).map(|r| r.counted));
            rows.push([label.to_string(), c(Side::Dpdk), c(Side::Burst), ratio(mode)]);
        }
        for (mode, label) in [
            (Mode::TxOnly, "txonly: sent, per the app"),
            (Mode::RxOnly, "rxonly: offered at the interface"),
            (Mode::RxOnly, "rxonly: dropped by the kernel (ring full)"),
            (Mode::Io, "io: offered at the interface"),
            (Mode::Io, "io: dropped by the kernel (ring full)"),
        ] {
            let dropped = label.contains("dropped");
            let v = |side| opt(get(side, mode).and_then(|r| if dropped { r.dropped } else { r.offered }));
            rows.push([label.to_string(), v(Side::Dpdk), v(Side::Burst), "-".into()]);
        }
        for mode in Mode::ALL {
            let p = |side| {
                s.profile((port, side, mode))
                    .map_or_else(|| "-".to_string(), |p| format!("{:.0} / {:.0} / {:.0}", p.user, p.syscall, p.kernel))
            };
            rows.push([
                format!("{}: % user / syscall / kernel path", mode.name()),
                p(Side::Dpdk),
                p(Side::Burst),
                "-".into(),
            ]);
        }
        Table { port, grid: Grid { header, rows } }
    }

    pub(super) fn text(&self) -> String {
        self.grid.text("ratio > 1: burst moves more packets per second than DPDK")
    }
}

/// The markdown file: both tables, how they were made, the profiles' heaviest symbols.
pub(super) fn markdown(
    tables: &[Table],
    s: &Summary,
    args: &KernelArgs,
    cpu_a: &str,
    cpu_b: &str,
    tsc_hz: Option<f64>,
    notes: &[String],
) -> String {
    let mut md = String::from("# net_af_xdp and net_af_packet against DPDK's, on one veth pair\n\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench xdp` on {} UTC, {}. {} B frames, bursts of {}. Each run: the median \
         of {} one-second samples after {WARMUP} s of warm-up; {} rounds, DPDK's run and ours back to back \
         per mode, who goes first alternating; the table shows the median over the rounds, the ratio the \
         median of each round's ratio (in brackets). The frontend (testpmd or pktgen) forwards on CPU \
         {cpu_a}, the generator on the peer (DPDK's testpmd in txonly, for rxonly and io) on CPU {cpu_b}. \
         Ratio > 1: burst moves more.\n",
        utc(now_unix()),
        machine(tsc_hz),
        args.size,
        args.burst,
        args.seconds,
        args.rounds,
    );
    for t in tables {
        md.push_str(&t.grid.markdown());
        md.push('\n');
        for mode in Mode::ALL {
            for side in [Side::Dpdk, Side::Burst] {
                if let Some(p) = s.profile((t.port, side, mode)) {
                    let top: Vec<String> = p.top.iter().map(|(pct, sym)| format!("{pct:.1}% `{sym}`")).collect();
                    let who = if side == Side::Dpdk { "DPDK" } else { "burst" };
                    let _ = writeln!(md, "- net_{} {} {who}: {}", t.port.driver(), mode.name(), top.join(", "));
                }
            }
        }
        md.push('\n');
    }
    md.push_str(
        "Profiles: `perf record -p` on the frontend for a few seconds of a separate run; `[.]` user space, \
         `[k]` kernel (the system call's entry and socket plumbing counted as \"syscall\", the rest as the \
         kernel's path: XDP, the copies, veth, skbs).\n",
    );
    if !notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn counts(per_s: &[u64]) -> Vec<Counts> {
        let t0 = Instant::now();
        let mut total = 0;
        per_s
            .iter()
            .enumerate()
            .map(|(i, n)| {
                total += n;
                Counts {
                    at: t0 + Duration::from_secs(i as u64),
                    rx_packets: total,
                    rx_dropped: total / 10,
                    tx_packets: 0,
                }
            })
            .collect()
    }

    fn front(rx: &[u64], tx: &[u64]) -> String {
        rx.iter()
            .zip(tx)
            .map(|(r, t)| {
                format!("  #### NIC statistics for port 0  ####\n  Rx-pps: {r} Rx-bps: 0\n  Tx-pps: {t} Tx-bps: 0\n")
            })
            .collect()
    }

    #[test]
    fn each_mode_counts_its_side_and_nothing_moved_is_an_error() {
        let k = counts(&[0, 100, 2_000_000, 2_000_000, 3_000_000]);
        let tx =
            Run::from_outputs(Mode::TxOnly, &front(&[0; 5], &[0, 9, 2_100_000, 2_100_000, 2_100_000]), &k, &k).unwrap();
        assert_eq!((tx.counted, tx.offered, tx.dropped), (2_000_000.0, Some(2_100_000.0), None));
        let rx =
            Run::from_outputs(Mode::RxOnly, &front(&[0, 5, 1_000_000, 1_200_000, 1_100_000], &[0; 5]), &k, &k).unwrap();
        assert_eq!((rx.counted, rx.offered, rx.samples), (1_100_000.0, Some(2_000_000.0), 3));
        assert_eq!(rx.dropped, Some(200_000.0));
        let zero = counts(&[0; 5]);
        let e = Run::from_outputs(Mode::Io, &front(&[0; 5], &[0; 5]), &zero, &zero).unwrap_err();
        assert!(e.contains("no packets moved"), "{e}");
        assert!(Run::from_outputs(Mode::Io, "", &[], &[]).unwrap_err().contains("too few samples"));
    }

    #[test]
    fn rounds_fold_into_medians_and_paired_ratios_and_failures_show() {
        let run = |c: f64| Run { counted: c * 1e6, samples: 10, ..Run::default() };
        let results = vec![
            (Port::Xdp, 0, Side::Dpdk, Mode::TxOnly, run(1.0)),
            (Port::Xdp, 0, Side::Burst, Mode::TxOnly, run(1.2)),
            (Port::Xdp, 1, Side::Burst, Mode::TxOnly, run(2.0)),
            (Port::Xdp, 1, Side::Dpdk, Mode::TxOnly, run(2.5)),
            (Port::Xdp, 0, Side::Dpdk, Mode::RxOnly, run(1.0)),
        ];
        let prof = Profile { user: 20.0, syscall: 30.0, kernel: 50.0, top: vec![] };
        let s = Summary::new(&results, &[(Port::Xdp, Side::Burst, Mode::Io, prof)], 2);
        let a = KernelArgs { seconds: 10, size: 64, burst: 32, rounds: 2, port: None, no_perf: false };
        let text = Table::new(Port::Xdp, Some("DPDK 22.11.11"), &a, &s).text();
        let line = |p: &str| text.lines().find(|l| l.starts_with(p)).unwrap().to_string();
        assert!(line("txonly Mpps").contains("1.00 (1.20, 0.80)"), "{text}");
        assert!(line("rxonly Mpps").contains("failed"), "{text}");
        assert!(line("io: % user").contains("20 / 30 / 50"), "{text}");
        assert!(text.contains("DPDK 22.11 (testpmd)"), "{text}");
    }
}
