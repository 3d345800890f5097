//! `cargo xtask demo`: l2fwd on two e1000 NICs in the lab, with traffic from the host.
//!
//! 1. What the lab needs is checked and, if missing, installed: the same path as
//!    `cargo xtask setup` (which needs root only when something must be installed).
//! 2. A lab guest boots with two e1000 NICs behind the emulated IOMMU (`Lab::boot` builds the
//!    guest's binaries first); both NICs are bound to vfio-pci; the guest reserved its
//!    hugepages at boot (`LabConfig::hugepages`, mounted on `/dev/hugepages`).
//! 3. `l2fwd -a 0000:00:02.0 -a 0000:00:03.0 -l 0,1 -- -p 0x3 -T 1` runs in the guest, its
//!    output streamed here so its statistics screen updates live.
//! 4. The host sends numbered test frames into both NICs' wires at a paced rate and reads
//!    what l2fwd forwarded on the opposite wires, checking each frame intact and its
//!    addresses rewritten (destination `02:00:00:00:00:TXPORT`, source the TX NIC's MAC).
//! 5. l2fwd is stopped with SIGINT: it prints its final table and its pool check.
//! 6. One closing line: frames sent, forwarded, lost, duration, rate. Exit status 0 when
//!    l2fwd exited 0, no frame came back damaged or wrongly addressed, and the loss is at
//!    most `--max-loss` percent (default 0: every frame must come back).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use burst_lab::frames::{FrameError, TestFrame};
use burst_lab::{format_mac, Iommu, Lab, LabConfig, LabError, NicModel, Process, ProcessEvent};
use clap::Parser;

use crate::setup;

/// The two NICs' PCI addresses in the guest (NIC i is at slot 02 + i).
const PORTS: [&str; 2] = ["0000:00:02.0", "0000:00:03.0"];
/// How long l2fwd may take to start forwarding (probe, pool, link up) under TCG.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long l2fwd may take to exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// After the last frame is sent, how long to wait for stragglers with none arriving.
const QUIET: Duration = Duration::from_secs(2);
/// l2fwd's periodic clear-screen escape (DPDK's `print_stats`).
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[1;1H";

/// Options of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Frames per second sent into each NIC (so twice this in all). The default is half of
    /// what l2fwd forwarded without loss on two vCPUs under TCG (QEMU without KVM) on a
    /// 2-core development machine: 10000 per NIC held, 20000 lost 0.7%.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: u32,
    /// Frame length in bytes, without FCS (60 to 1514).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(60..=1514))]
    size: u16,
    /// Loss (percent of the frames sent) still counted a success.
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT")]
    max_loss: f64,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> ExitCode {
    if !(0.0..=100.0).contains(&args.max_loss) {
        eprintln!("demo: --max-loss must be between 0 and 100, not {}", args.max_loss);
        return ExitCode::from(2);
    }
    if let Err(e) = prerequisites() {
        eprintln!("demo: {e}");
        return ExitCode::FAILURE;
    }
    match demo(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask setup`'s check-and-install path, run as that command runs it.
fn prerequisites() -> Result<(), String> {
    #[derive(Parser)]
    struct Setup {
        #[command(flatten)]
        args: setup::SetupArgs,
    }
    println!("demo: checking what the lab needs (as `cargo xtask setup` does)");
    let setup = Setup::try_parse_from(["setup"]).map_err(|e| e.to_string())?;
    setup::run(&setup.args).map_err(|e| format!("setting up the lab: {e}"))
}

/// What went wrong, for the closing message.
#[derive(Debug)]
enum DemoError {
    Lab(LabError),
    Wire(std::io::Error),
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Lab(e) => write!(f, "{e}"),
            DemoError::Wire(e) => write!(f, "a wire to the guest failed: {e}"),
        }
    }
}

impl From<LabError> for DemoError {
    fn from(e: LabError) -> Self {
        DemoError::Lab(e)
    }
}

/// What one direction's receiver saw on its wire.
#[derive(Default)]
struct Seen {
    /// Distinct frames that came back intact and correctly rewritten.
    good: u64,
    /// Frames seen twice.
    duplicates: u64,
    /// Frames that came back with a lower number than one before them.
    reordered: u64,
    /// Damaged frames, or frames with the wrong addresses: what went wrong, the first few.
    bad: Vec<String>,
    bad_count: u64,
    /// When the last good frame arrived.
    last: Option<Instant>,
}

/// Boots, forwards, reports. `Ok(false)`: the demo ran and something was wrong (said why).
fn demo(args: &DemoArgs) -> Result<bool, DemoError> {
    println!("demo: building the guest's binaries and booting the lab (two e1000 NICs, IOMMU on)");
    let cfg = LabConfig { iommu: Iommu::On, ..LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000]) };
    let hugepages = cfg.hugepages;
    let lab = Lab::boot(cfg)?;
    println!(
        "demo: guest up in {:.1} s ({:?}, kernel {}), {hugepages} hugepages of 2 MiB on /dev/hugepages",
        lab.boot_time().as_secs_f64(),
        lab.accelerator(),
        lab.kernel_release()
    );
    lab.sh_ok("modprobe vfio-pci && modprobe vfio_iommu_type1")?;
    for nic in lab.nics() {
        let driver = lab.bind(&nic.pci_address, "vfio-pci")?;
        if driver != "vfio-pci" {
            return Err(LabError::Config(format!("{} ended up on {driver}, not vfio-pci", nic.pci_address)).into());
        }
        println!("demo: {} ({}, MAC {}) bound to vfio-pci", nic.pci_address, nic.model, format_mac(&nic.mac));
    }
    for i in 0..2 {
        lab.wire(i).drain().map_err(DemoError::Wire)?;
    }

    let argv = ["l2fwd", "-a", PORTS[0], "-a", PORTS[1], "-l", "0,1", "--", "-p", "0x3", "-T", "1"];
    println!("demo: running `{}` in the guest", argv.join(" "));
    let mut out = Terminal::new();
    let mut app = lab.spawn(&argv)?;
    if !pump_until(&mut app, &mut out, "L2FWD: entering main loop", START_TIMEOUT)? {
        let out = app.wait(STOP_TIMEOUT)?;
        eprintln!("demo: l2fwd did not start forwarding ({})", out.status);
        return Ok(false);
    }

    // Frames go in both ways at once; the main thread meanwhile streams l2fwd's screen.
    let sending_done = AtomicBool::new(false);
    let (sent, seen, started, ended_early) = std::thread::scope(|s| {
        let started = Instant::now();
        let lab = &lab;
        let senders: Vec<_> = (0..2).map(|i| s.spawn(move || send(lab, i, args, started))).collect();
        let done = &sending_done;
        let receivers: Vec<_> = (0..2).map(|i| s.spawn(move || receive(lab, i, done))).collect();
        let mut ended_early = None;
        while senders.iter().any(|h| !h.is_finished()) || receivers.iter().any(|h| !h.is_finished()) {
            if senders.iter().all(|h| h.is_finished()) {
                sending_done.store(true, Ordering::Relaxed);
            }
            match app.next_event(Duration::from_millis(50)) {
                Ok(Some(ProcessEvent::Exited(st))) => {
                    ended_early.get_or_insert(st);
                    sending_done.store(true, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(Some(e)) => out.show(&e),
                Ok(None) => {}
                Err(e) => {
                    sending_done.store(true, Ordering::Relaxed);
                    return Err(DemoError::Lab(e));
                }
            }
        }
        let sent: Vec<Result<u64, std::io::Error>> =
            senders.into_iter().map(|h| h.join().expect("sender thread panicked")).collect();
        let seen: Vec<Result<Seen, std::io::Error>> =
            receivers.into_iter().map(|h| h.join().expect("receiver thread panicked")).collect();
        Ok((sent, seen, started, ended_early))
    })?;
    let sent: Vec<u64> = sent.into_iter().collect::<Result<_, _>>().map_err(DemoError::Wire)?;
    let seen: Vec<Seen> = seen.into_iter().collect::<Result<_, _>>().map_err(DemoError::Wire)?;

    match ended_early {
        Some(st) => eprintln!("demo: l2fwd ended while traffic was running ({st})"),
        None => app.signal(libc::SIGINT)?,
    }
    let result = app.wait_with(STOP_TIMEOUT, |e| out.show(e))?;
    out.finish();

    let total_sent: u64 = sent.iter().sum();
    let forwarded: u64 = seen.iter().map(|s| s.good).sum();
    let lost = total_sent.saturating_sub(forwarded);
    let loss_pct = if total_sent == 0 { 0.0 } else { lost as f64 * 100.0 / total_sent as f64 };
    let last = seen.iter().filter_map(|s| s.last).max().unwrap_or(started);
    let secs = last.duration_since(started).as_secs_f64().max(1e-3);
    println!();
    for (i, s) in seen.iter().enumerate() {
        let from = 1 - i;
        println!(
            "demo: wire {from} -> l2fwd port {from} -> port {i} -> wire {i}: sent {}, forwarded {}, duplicated {}, \
             reordered {}, bad {}",
            sent[from], s.good, s.duplicates, s.reordered, s.bad_count
        );
        for b in &s.bad {
            println!("demo:   {b}");
        }
    }
    println!(
        "demo: sent {total_sent} frames, forwarded {forwarded}, lost {lost} ({loss_pct:.1}%), {secs:.1} s, {:.0} frames/s",
        forwarded as f64 / secs
    );

    let mut ok = true;
    if !result.status.success() || ended_early.is_some() {
        eprintln!("demo: FAILED: l2fwd exited with {} (its output above says why)", result.status);
        ok = false;
    }
    let bad: u64 = seen.iter().map(|s| s.bad_count + s.duplicates).sum();
    if bad > 0 {
        eprintln!("demo: FAILED: {bad} frames came back damaged, misaddressed or twice (listed above)");
        ok = false;
    }
    if loss_pct > args.max_loss {
        eprintln!(
            "demo: FAILED: {lost} frames lost ({loss_pct:.2}% > --max-loss {}); {}",
            args.max_loss,
            where_lost(&result.stdout_str(), total_sent, args.rate)
        );
        ok = false;
    }
    Ok(ok)
}

/// Where the lost frames went, from l2fwd's final table: before l2fwd (the NIC's RX ring or
/// QEMU's queue was full: the guest does not keep up) or in l2fwd (TX queue full).
fn where_lost(stdout: &str, sent: u64, rate: u32) -> String {
    let total =
        |what: &str| stdout.lines().rev().find_map(|l| l.strip_prefix(what)).and_then(|v| v.trim().parse::<u64>().ok());
    let hint = format!("the guest does not keep up at --rate {rate}: try a lower one");
    match (total("Total packets received:"), total("Total packets dropped:")) {
        (Some(rx), Some(dropped)) => format!(
            "l2fwd received {rx} of the {sent} sent (the rest were dropped before it, by the NICs or QEMU) and \
             dropped {dropped}; {hint}"
        ),
        _ => hint,
    }
}

/// Streams l2fwd's events until its stdout holds `pattern`; false if it exited first or
/// `timeout` passed (then it is killed).
fn pump_until(app: &mut Process<'_>, out: &mut Terminal, pattern: &str, timeout: Duration) -> Result<bool, LabError> {
    let deadline = Instant::now() + timeout;
    while !String::from_utf8_lossy(app.stdout()).contains(pattern) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("demo: no `{pattern}` from l2fwd within {} s: stopping it", timeout.as_secs());
            app.kill()?;
            return Ok(false);
        }
        match app.next_event(left)? {
            Some(ProcessEvent::Exited(_)) => return Ok(false),
            Some(e) => out.show(&e),
            None => {}
        }
    }
    Ok(true)
}

/// Sends frame after frame into NIC `i`, addressed to it, at `args.rate` per second for
/// `args.seconds`; returns how many went out.
fn send(lab: &Lab, i: usize, args: &DemoArgs, start: Instant) -> Result<u64, std::io::Error> {
    let wire = lab.wire(i);
    let dst = lab.nics()[i].mac;
    let src = host_mac(i);
    let total = args.seconds * u64::from(args.rate);
    let mut seq: u64 = 0;
    while seq < total {
        // Paced against the clock rather than by sleeps, so the rate holds however long a
        // sleep really takes.
        let due = ((start.elapsed().as_secs_f64() * f64::from(args.rate)) as u64 + 1).min(total);
        while seq < due {
            wire.send(&TestFrame::build(dst, src, seq as u32, usize::from(args.size)))?;
            seq += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(seq)
}

/// Receives what l2fwd forwarded out of NIC `i` until sending is over and the wire has been
/// quiet for [`QUIET`].
fn receive(lab: &Lab, i: usize, sending_done: &AtomicBool) -> Result<Seen, std::io::Error> {
    let wire = lab.wire(i);
    // l2fwd's rewrite: to 02:00:00:00:00:<TX port>, from the TX port's own MAC.
    let want_dst = [0x02, 0, 0, 0, 0, i as u8];
    let want_src = lab.nics()[i].mac;
    // What the other wire's sender put in.
    let from = 1 - i;
    let sent_dst = lab.nics()[from].mac;
    let sent_src = host_mac(from);
    let mut seen = Seen::default();
    let mut got: Vec<bool> = Vec::new();
    let mut highest: Option<u32> = None;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let Some(bytes) = wire.recv(Duration::from_millis(100))? else {
            if sending_done.load(Ordering::Relaxed) {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= QUIET {
                    return Ok(seen);
                }
            }
            continue;
        };
        quiet_since = None;
        // The test frame's checksum covers the addresses l2fwd rewrote: check the rewrite,
        // then put back the addresses the frame was sent with and check the rest.
        let mut bytes = bytes;
        if bytes.len() >= 12 && (bytes[0..6] != want_dst || bytes[6..12] != want_src) {
            if TestFrame::parse(&bytes) == Err(FrameError::Foreign) {
                continue;
            }
            let mut dst = [0; 6];
            let mut src = [0; 6];
            dst.copy_from_slice(&bytes[0..6]);
            src.copy_from_slice(&bytes[6..12]);
            seen.note_bad(format!(
                "a frame came out as {} -> {}, not {} -> {}",
                format_mac(&src),
                format_mac(&dst),
                format_mac(&want_src),
                format_mac(&want_dst)
            ));
            continue;
        }
        if bytes.len() >= 12 {
            bytes[0..6].copy_from_slice(&sent_dst);
            bytes[6..12].copy_from_slice(&sent_src);
        }
        let frame = match TestFrame::parse(&bytes) {
            Ok(f) => f,
            // Nothing else should be on the wire (the kernel does not own the NICs), but
            // whatever it is, it is not ours to count.
            Err(FrameError::Foreign) => continue,
            Err(e) => {
                seen.note_bad(e.to_string());
                continue;
            }
        };
        let seq = frame.seq as usize;
        if got.len() <= seq {
            got.resize(seq + 1, false);
        }
        if got[seq] {
            seen.duplicates += 1;
            continue;
        }
        got[seq] = true;
        seen.good += 1;
        seen.last = Some(Instant::now());
        if highest.is_some_and(|h| frame.seq < h) {
            seen.reordered += 1;
        }
        highest = highest.max(Some(frame.seq));
    }
}

/// Source MAC of the host's frames on wire `i`: a locally administered address of our own.
fn host_mac(i: usize) -> [u8; 6] {
    [0x02, 0x00, 0x00, 0x00, 0x01, i as u8]
}

impl Seen {
    fn note_bad(&mut self, what: String) {
        self.bad_count += 1;
        if self.bad.len() < 5 {
            self.bad.push(what);
        }
    }
}

/// l2fwd's output on ours: stdout to stdout, stderr to stderr. When stdout is not a terminal
/// (a log, a pipe), the clear-screen escapes become blank lines so the screens read one after
/// the other.
struct Terminal {
    tty: bool,
}

impl Terminal {
    fn new() -> Terminal {
        Terminal { tty: std::io::stdout().is_terminal() }
    }

    fn show(&mut self, event: &ProcessEvent) {
        match event {
            ProcessEvent::Stdout(d) => {
                let mut out = std::io::stdout().lock();
                if self.tty {
                    let _ = out.write_all(d);
                } else {
                    let _ = out.write_all(String::from_utf8_lossy(d).replace(CLEAR_SCREEN, "\n").as_bytes());
                }
                let _ = out.flush();
            }
            ProcessEvent::Stderr(d) => {
                let _ = std::io::stderr().write_all(d);
            }
            ProcessEvent::Exited(_) => {}
        }
    }

    fn finish(&mut self) {
        let _ = std::io::stdout().flush();
    }
}
