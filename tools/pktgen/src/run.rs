//! A pktgen run from start to end: options, runtime, ports, the forwarding lcores, the main
//! lcore's statistics loop, the report, teardown.

use std::io::Write as _;
use std::ops::Range;
use std::time::{Duration, Instant};

use burst::net::EthernetAddrs;
use burst::{EalError, EalOptions, MacAddr, PacketPool, Runtime};

use crate::counters::{Counts, Published};
use crate::engine::{self, Control, Stream};
use crate::error::PktgenError;
use crate::options::{self, Config, Parsed};
use crate::report::{self, PortSetup, Report};
use crate::streams::{self, StreamSpec};
use crate::{csum, frame, ports};

/// The main lcore wakes at least this often to notice SIGINT/SIGTERM.
const MAIN_TICK: Duration = Duration::from_millis(100);

/// Runs pktgen with its command line (`args[0]` first). `Ok` means exit status 0.
pub fn run(args: Vec<String>) -> Result<(), PktgenError> {
    let (eal, app_args) = match EalOptions::parse(args) {
        Ok(parsed) => parsed,
        Err(EalError::Help(text)) => {
            say(&text);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let cfg = match options::parse(&app_args)? {
        Parsed::Run(cfg) => cfg,
        Parsed::Help(text) => {
            say(&text);
            return Ok(());
        }
    };
    let mut rt = Runtime::init(eal)?;
    let outcome = session(&mut rt, &cfg);
    // Ports closed (queue handles are gone by now), memory released, also after an error.
    let closed = rt.close().map_err(PktgenError::from);
    outcome.and(closed)
}

/// Everything between init and close.
fn session(rt: &mut Runtime, cfg: &Config) -> Result<(), PktgenError> {
    let nb_ports = u16::try_from(rt.ports().len()).unwrap_or(u16::MAX);
    if nb_ports == 0 {
        return Err(PktgenError::Usage(
            "no ports: add some with --vdev (e.g. --vdev net_null0 --vdev net_null1) or -a PCI_ADDRESS".into(),
        ));
    }
    if let Some(p) = cfg.eth_peers.iter().find(|p| p.port >= nb_ports) {
        return Err(PktgenError::Usage(format!(
            "--eth-peer {},{}: there is no port {} (ports 0..{})",
            p.port,
            p.mac,
            p.port,
            nb_ports - 1
        )));
    }
    let workers = rt.worker_lcores();
    if workers.is_empty() {
        return Err(PktgenError::Usage(format!(
            "no forwarding lcore: lcore {} is the main lcore and there is no other; give at least two, e.g. -l 0,1",
            rt.main_lcore()
        )));
    }
    if cfg.nb_cores > workers.len() {
        return Err(PktgenError::Usage(format!(
            "--nb-cores {}: the number of forwarding cores must be >= 1 and <= {}, the worker lcores ({})",
            cfg.nb_cores,
            workers.len(),
            workers.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        )));
    }

    let pool = ports::packet_pool(rt, cfg)?;
    for port in rt.ports_mut() {
        ports::start_port(port, cfg, &pool)?;
    }

    let outcome = forward(rt, cfg, &pool, nb_ports, &workers[..cfg.nb_cores]);
    // The report is out; now every buffer must come home: the drivers give theirs back on close.
    let mut closed = Ok(());
    for port in rt.ports_mut() {
        if let Err(e) = port.close() {
            closed = closed.and(Err(PktgenError::from(e)));
        }
    }
    let mp = pool.mempool();
    if outcome.is_ok() && closed.is_ok() && !mp.is_full() {
        return Err(PktgenError::Runtime(format!(
            "{} of the {} buffers of pool {:?} were not given back after the ports closed",
            mp.in_use(),
            mp.capacity(),
            mp.name()
        )));
    }
    outcome.and(closed)
}

/// Sets up the streams, runs the forwarding lcores until the end, prints the report.
fn forward(
    rt: &Runtime,
    cfg: &Config,
    pool: &PacketPool,
    nb_ports: u16,
    fwd_lcores: &[u32],
) -> Result<(), PktgenError> {
    let specs = streams::streams(nb_ports, cfg.queues);
    let plan: Vec<(u32, Range<usize>)> =
        fwd_lcores.iter().copied().zip(streams::split(specs.len(), fwd_lcores.len())).collect();
    let peer_mac = |port: u16| {
        cfg.eth_peers.iter().rev().find(|p| p.port == port).map_or(streams::default_peer_mac(port), |p| p.mac)
    };
    say(&streams::describe(cfg.mode.name(), nb_ports, &specs, &plan, peer_mac));
    say(&format!("  {} packet forwarding packets/burst={}\n", cfg.mode.name(), cfg.burst));
    say(&describe_setup(rt, cfg, pool));
    if cfg.mode == options::Mode::Txonly || cfg.tx_first {
        let segs = match cfg.txpkts.len() {
            1 => String::new(),
            n => format!(" in {n} segments of {}", lens(&cfg.txpkts)),
        };
        say(&format!("  txonly frames: {} bytes{segs}, UDP 198.18.0.1:9 -> 198.18.0.2:9\n", cfg.txpkts_len()));
    }

    let published: Vec<Published> = specs.iter().map(|_| Published::default()).collect();
    let mut lcores = Vec::with_capacity(plan.len());
    for (lcore, range) in &plan {
        let mut mine = Vec::with_capacity(range.len());
        for i in range.clone() {
            mine.push(open_stream(rt, specs[i], pool, cfg, peer_mac(specs[i].tx_port), &published[i])?);
        }
        lcores.push((*lcore, mine));
    }

    let ctl = Control::default();
    let (mode, burst, tx_first) = (cfg.mode, cfg.burst, cfg.tx_first);
    let elapsed = rt.scope(|scope| {
        let mut joins = Vec::with_capacity(lcores.len());
        for (lcore, mut mine) in lcores {
            let ctl = &ctl;
            match scope.launch(lcore, move || engine::forward(mode, &mut mine, burst, tx_first, ctl)) {
                Ok(j) => joins.push(j),
                Err(e) => {
                    ctl.stop();
                    for j in joins {
                        j.join();
                    }
                    return Err(PktgenError::from(e));
                }
            }
        }
        ctl.go();
        let started = Instant::now();
        main_loop(rt, cfg, &specs, &published, nb_ports, started);
        ctl.stop();
        let elapsed = started.elapsed();
        for j in joins {
            j.join();
        }
        Ok(elapsed)
    })?;

    let counts: Vec<Counts> = published.iter().map(Published::read).collect();
    let report = Report {
        mode: cfg.mode,
        burst: cfg.burst,
        lcores: plan.len(),
        streams: specs.len(),
        elapsed_secs: elapsed.as_secs_f64(),
        ports: report::per_port(nb_ports, &specs, &counts),
        port_stats: rt.ports().iter().map(|p| p.stats()).collect(),
        setups: rt.ports().iter().map(PortSetup::of).collect(),
    };
    say(&report.text());
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The pool's buffers and each port's MTU and offloads, as testpmd's configuration display
/// shows them (`Rx offloads=0x0 Tx offloads=0x10000`).
fn describe_setup(rt: &Runtime, cfg: &Config, pool: &PacketPool) -> String {
    let mut out = format!(
        "  mbuf pool: {} buffers of {} bytes ({} of headroom, {} of data)\n",
        pool.mempool().capacity(),
        cfg.mbuf_size,
        pool.headroom(),
        pool.data_room()
    );
    for port in rt.ports() {
        let s = PortSetup::of(port);
        out.push_str(&format!(
            "  port {}: MTU {}, Rx offloads={:#x} ({}) Tx offloads={:#x} ({})\n",
            port.id(),
            s.mtu,
            s.rx_offloads.bits(),
            s.rx_offloads,
            s.tx_offloads.bits(),
            s.tx_offloads
        ));
    }
    out
}

/// `--txpkts`'s lengths as the option writes them.
fn lens(txpkts: &[u16]) -> String {
    txpkts.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// Takes stream `spec`'s queue handles and builds what its mode needs. `published` is where its
/// lcore stores its counters.
pub fn open_stream<'p>(
    rt: &'p Runtime,
    spec: StreamSpec,
    pool: &PacketPool,
    cfg: &Config,
    peer: MacAddr,
    published: &'p Published,
) -> Result<Stream<'p>, PktgenError> {
    let port = |id: u16| {
        rt.port(id).ok_or_else(|| PktgenError::Runtime(format!("port {id} disappeared while setting up streams")))
    };
    let (rx_port, tx_port) = (port(spec.rx_port)?, port(spec.tx_port)?);
    let src = tx_port.mac();
    let tx = tx_port.tx_queue(spec.tx_queue)?;
    let tx_csum = csum::TxCsum::from_offloads(tx.offloads());
    Ok(Stream {
        rx: rx_port.rx_queue(spec.rx_queue)?,
        tx,
        pool: pool.clone(),
        macs: EthernetAddrs::new(peer, src),
        template: frame::udp_template(src, peer, cfg.txpkts_len()),
        segments: if cfg.sends_chains() { cfg.txpkts.clone() } else { Vec::new() },
        segs: Vec::new(),
        tx_csum,
        prepare_failed: false,
        counts: Counts::default(),
        published,
    })
}

/// The main lcore while the others forward: the periodic statistics, and the end of the run
/// (`--run-seconds`, or SIGINT/SIGTERM).
fn main_loop(rt: &Runtime, cfg: &Config, specs: &[StreamSpec], published: &[Published], nb_ports: u16, t0: Instant) {
    let end = cfg.run_seconds.map(|s| t0 + Duration::from_secs_f64(s));
    match cfg.run_seconds {
        Some(s) => say(&format!("Forwarding for {s} s (or until SIGINT/SIGTERM)\n")),
        None => say("Forwarding until SIGINT/SIGTERM (Ctrl-C)\n"),
    }
    let _ = std::io::stdout().flush();
    let period = (cfg.stats_period > 0).then(|| Duration::from_secs(cfg.stats_period));
    let mut next_stats = period.map(|p| t0 + p);
    let mut last = (t0, vec![Counts::default(); usize::from(nb_ports)]);
    loop {
        if rt.stop_requested() {
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if let (Some(at), Some(p)) = (next_stats, period) {
            if now >= at {
                let counts: Vec<Counts> = published.iter().map(Published::read).collect();
                let ports = report::per_port(nb_ports, specs, &counts);
                say(&report::period_block(cfg.mode, &ports, &last.1, now.duration_since(last.0).as_secs_f64()));
                let _ = std::io::stdout().flush();
                last = (now, ports);
                next_stats = Some(at + p);
            }
        }
        let mut wake = now + MAIN_TICK;
        for t in [end, next_stats].into_iter().flatten() {
            wake = wake.min(t);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
}

/// Writes to stdout, ignoring errors: a closed pipe (`pktgen ... | head`) must not turn into a
/// panic in the middle of a run; the exit code and the pool check still tell the truth.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
