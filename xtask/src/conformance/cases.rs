//! The conformance cases, run against one lab boot (two NICs of one model, one binding).
//!
//! The host sends numbered, check-summed test frames (`burst_lab::frames`) on the wires, paced to
//! what a TCG-emulated NIC keeps up with, and reads what comes back; in the guest,
//! `conformance-guest` (crates/burst/src/bin) checks what `pktgen`/`l2fwd` cannot, and ends with a
//! `RESULT {json}` line. Every guest program exits non-zero unless every buffer is back in its
//! pool after its ports closed, which the `leaks` row sums up.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use burst_lab::frames::TestFrame;
use burst_lab::{format_mac, Lab, LabConfig, NicModel, Output};
use serde_json::Value;

use super::{Binding, GUEST_TIMEOUT};

/// Frames of the rx and tx cases: more than 1455, so every size from 60 to 1514 comes up.
const RX_TX_FRAMES: u32 = 2000;
/// Frames each way through l2fwd.
const L2FWD_FRAMES: u32 = 500;
/// l2fwd frames in flight at most: the host sends this many, then waits for them to come out
/// before sending more. l2fwd drops what a full TX ring does not take (as DPDK's does), and a
/// virtio device's TX ring (256 descriptors in QEMU) is emptied by QEMU's main loop, which a
/// loaded host can starve for longer than the ring lasts; a window smaller than every ring keeps
/// the case about the driver, not about host scheduling.
const L2FWD_WINDOW: u32 = 128;
/// The host pauses after this many frames...
const PACE_EVERY: u32 = 32;
/// ...for this long, so QEMU's emulated NIC and the guest keep up (DPDK's l2fwd has no flow
/// control either; an unpaced burst of thousands overruns a TCG guest's 1024 descriptors).
const PACE_PAUSE: Duration = Duration::from_millis(2);
/// Sequence number of the frame that ends a `conformance-guest rx` run.
pub(super) const END_SEQ: u32 = u32::MAX;
/// A unicast address no lab NIC has.
pub(super) const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];
/// The host's source address.
pub(super) const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

/// One row of the table.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub case: &'static str,
    pub nic: NicModel,
    pub binding: Binding,
    pub pass: bool,
    pub packets: u64,
    pub duration: Duration,
    pub detail: String,
}

pub(super) type CaseFn = fn(&Ctx) -> Result<(u64, String), String>;

/// The cases in the order they run (probe binds the NICs, so it comes first).
const CASES: [(&str, CaseFn); 10] = [
    ("probe", probe),
    ("rx", rx),
    ("tx", tx),
    ("l2fwd", l2fwd),
    ("overload", overload),
    ("filtering", filtering),
    ("sizes", sizes),
    ("jumbo", jumbo),
    ("lifecycle", lifecycle),
    ("sigkill", sigkill),
];

/// One lab and what the cases learned about its pools.
pub(super) struct Ctx {
    pub(super) lab: Lab,
    pub(super) nic: NicModel,
    binding: Binding,
    /// EAL options every guest program gets ([`eal_options`]).
    eal: &'static [&'static str],
    /// Guest runs whose pool was checked full, and the problems found.
    pools_checked: RefCell<u64>,
    pub(super) leaks: RefCell<Vec<String>>,
}

/// Boots the lab for (`nic`, `binding`) and runs every case, the offload cases of the model
/// ([`super::offloads::cases`]) last, in the same boot; a failed boot or bind fails them all.
pub fn run_combo(nic: NicModel, binding: Binding) -> Vec<CaseResult> {
    let cases: Vec<(&'static str, CaseFn)> = CASES.iter().chain(super::offloads::cases(nic)).copied().collect();
    let row = |case: &'static str, pass: bool, packets: u64, duration: Duration, detail: String| CaseResult {
        case,
        nic,
        binding,
        pass,
        packets,
        duration,
        detail,
    };
    let t = Instant::now();
    let mut cfg = LabConfig::with_nics(&[nic, nic]);
    cfg.iommu = binding.iommu();
    let booted = Lab::boot(cfg).map_err(|e| format!("lab boot: {e}")).and_then(|lab| {
        bind_all(&lab, binding)?;
        Ok(lab)
    });
    let lab = match booted {
        Ok(lab) => lab,
        Err(e) => {
            let mut rows: Vec<CaseResult> =
                cases.iter().map(|(name, _)| row(name, false, 0, Duration::ZERO, e.clone())).collect();
            rows.push(row("leaks", false, 0, Duration::ZERO, e));
            rows[0].duration = t.elapsed();
            return rows;
        }
    };
    let boot = t.elapsed();
    let ctx = Ctx {
        lab,
        nic,
        binding,
        eal: eal_options(nic, binding),
        pools_checked: RefCell::new(0),
        leaks: RefCell::new(Vec::new()),
    };
    let mut rows = Vec::new();
    for (i, (name, case)) in cases.iter().enumerate() {
        let t = Instant::now();
        let res = case(&ctx);
        // The boot and bind count towards the first case.
        let duration = t.elapsed() + if i == 0 { boot } else { Duration::ZERO };
        rows.push(match res {
            Ok((packets, detail)) => row(name, true, packets, duration, detail),
            Err(e) => row(name, false, 0, duration, e),
        });
        // A guest that died takes every later case with it: say so once, not six times.
        if let Err(e) = ctx.lab.sh("true") {
            // What the guest printed last says why (a panic, RCU stalls, a hung task): once.
            let console = ctx.lab.console_tail(25);
            for (k, (name, _)) in cases[i + 1..].iter().enumerate() {
                let detail = match k {
                    0 => format!("guest gone: {e}; its console's last lines:\n{console}"),
                    _ => format!("guest gone: {e}"),
                };
                rows.push(row(name, false, 0, Duration::ZERO, detail));
            }
            break;
        }
    }
    let leaks = ctx.leaks.borrow();
    let checked = *ctx.pools_checked.borrow();
    rows.push(if leaks.is_empty() && checked > 0 {
        row("leaks", true, 0, Duration::ZERO, format!("{checked} guest runs ended with every pool full"))
    } else if leaks.is_empty() {
        row("leaks", false, 0, Duration::ZERO, "no guest run got far enough to check its pool".into())
    } else {
        row("leaks", false, 0, Duration::ZERO, leaks.join("; "))
    });
    rows
}

/// EAL options the guest programs need for `nic` under `binding`: a legacy virtio device DMAs
/// around the IOMMU, so under vfio-pci it needs IOVA as PA (the driver refuses VA and says so).
pub fn eal_options(nic: NicModel, binding: Binding) -> &'static [&'static str] {
    match (nic, binding) {
        (NicModel::VirtioLegacy, Binding::Vfio) => &["--iova-mode", "pa"],
        _ => &[],
    }
}

/// The IOVA mode the runtime must end up in for `nic` under `binding`.
pub fn expected_iova(nic: NicModel, binding: Binding) -> &'static str {
    if eal_options(nic, binding).contains(&"pa") {
        "pa"
    } else {
        binding.iova()
    }
}

/// Binds both NICs to the binding's driver (vfio-pci also needs the type-1 IOMMU backend).
fn bind_all(lab: &Lab, binding: Binding) -> Result<(), String> {
    let modules = match binding {
        Binding::Vfio => "modprobe vfio-pci && modprobe vfio_iommu_type1",
        Binding::Uio => "modprobe uio_pci_generic",
    };
    lab.sh_ok(modules).map_err(|e| format!("loading {}: {e}", binding.driver()))?;
    for nic in lab.nics() {
        let got =
            lab.bind(&nic.pci_address, binding.driver()).map_err(|e| format!("binding {}: {e}", nic.pci_address))?;
        if got != binding.driver() {
            return Err(format!("{} is bound to {got}, not {}", nic.pci_address, binding.driver()));
        }
    }
    Ok(())
}

impl Ctx {
    fn addr(&self, i: usize) -> &str {
        &self.lab.nics()[i].pci_address
    }

    /// `prog -a NIC... -l LCORES [EAL options of the combination] -- app...`.
    pub(super) fn argv<'a>(&'a self, prog: &'a str, nics: &[usize], lcores: &'a str, app: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![prog];
        for &i in nics {
            v.extend(["-a", self.addr(i)]);
        }
        v.extend(["-l", lcores]);
        v.extend_from_slice(self.eal);
        v.push("--");
        v.extend_from_slice(app);
        v
    }

    pub(super) fn mac(&self, i: usize) -> [u8; 6] {
        self.lab.nics()[i].mac
    }

    /// A finished guest program's output: exit 0 and its pool reported full, or why not. The
    /// outcome also goes into the leaks row.
    pub(super) fn check_exit(&self, what: &str, out: &Output) -> Result<(), String> {
        if out.status.success() {
            *self.pools_checked.borrow_mut() += 1;
            return Ok(());
        }
        let err = format!("{what} exited {}: {}", out.status, last_lines(&out.stderr_str(), 3));
        if out.stderr_str().contains("pool") || out.stderr_str().contains("buffers") {
            self.leaks.borrow_mut().push(err.clone());
        }
        Err(err)
    }

    /// `conformance-guest`'s `RESULT` object, after [`Ctx::check_exit`]; the pool in it must be full.
    pub(super) fn guest_result(&self, what: &str, out: &Output) -> Result<Value, String> {
        self.check_exit(what, out)?;
        let stdout = out.stdout_str();
        let line = stdout.lines().rev().find_map(|l| l.strip_prefix("RESULT ")).ok_or(format!("{what}: no RESULT"))?;
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{what}: bad RESULT {line}: {e}"))?;
        let (free, size) = (num(&v["pool"], "free"), num(&v["pool"], "size"));
        if free != size || size == 0 {
            let err = format!("{what}: pool {free} of {size} free");
            self.leaks.borrow_mut().push(err.clone());
            return Err(err);
        }
        Ok(v)
    }

    /// Starts `conformance-guest rx` on NIC 0 and waits until it polls.
    fn spawn_rx(&self, extra: &[&str]) -> Result<burst_lab::Process<'_>, String> {
        let mut app = vec!["rx"];
        app.extend_from_slice(extra);
        let argv = self.argv("conformance-guest", &[0], "0", &app);
        let mut app = self.lab.spawn(&argv).map_err(|e| format!("spawning rx: {e}"))?;
        app.wait_for_stdout("ready", GUEST_TIMEOUT).map_err(|e| format!("rx never got ready: {e}"))?;
        Ok(app)
    }

    /// Sends frames on wire `i`, pausing every [`PACE_EVERY`].
    pub(super) fn send_paced(&self, i: usize, frames: impl IntoIterator<Item = Vec<u8>>) -> Result<u64, String> {
        let mut n = 0u64;
        for f in frames {
            self.lab.wire(i).send(&f).map_err(|e| format!("sending on wire {i}: {e}"))?;
            n += 1;
            if n % u64::from(PACE_EVERY) == 0 {
                std::thread::sleep(PACE_PAUSE);
            }
        }
        Ok(n)
    }

    /// Ends a `conformance-guest rx` run: the end frame, then its result.
    fn finish_rx(&self, app: burst_lab::Process<'_>) -> Result<Value, String> {
        self.lab.wire(0).send(&end_frame(self.mac(0))).map_err(|e| e.to_string())?;
        let out = app.wait(GUEST_TIMEOUT).map_err(|e| format!("rx: {e}"))?;
        self.guest_result("conformance-guest rx", &out)
    }
}

fn end_frame(dst: [u8; 6]) -> Vec<u8> {
    TestFrame::build(dst, HOST_MAC, END_SEQ, 60)
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(u64::MAX)
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// The length of frame `seq` in rx/tx/l2fwd: 97 and 1455 are coprime, so 1455 consecutive
/// frames take every size from 60 to 1514 once (the guest's `tx` uses the same formula).
fn frame_len(seq: u32) -> usize {
    60 + (seq as usize * 97) % (1514 - 60 + 1)
}

/// Checks a rx run's tally: exactly `want` good frames, none bad, none out of order.
fn check_rx(v: &Value, want: u64) -> Result<(), String> {
    let (good, bad, ooo) = (num(v, "good"), num(v, "bad"), num(v, "out_of_order"));
    if good != want || bad != 0 || ooo != 0 {
        return Err(format!(
            "{good} of {want} frames good, {bad} bad, {ooo} out of order ({}); stats {}",
            v["problem"].as_str().unwrap_or(""),
            v["stats"]
        ));
    }
    Ok(())
}

/// 1. probe: the driver attaches to both NICs, each MAC is QEMU's, the link is up, and the
///    runtime chose the IOVA mode the binding implies ([`expected_iova`]).
fn probe(c: &Ctx) -> Result<(u64, String), String> {
    let out =
        c.lab.run(&c.argv("conformance-guest", &[0, 1], "0", &["info"]), GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    let v = c.guest_result("conformance-guest info", &out)?;
    let ports = v["ports"].as_array().ok_or(format!("no ports in {v}"))?;
    if ports.len() != 2 {
        return Err(format!("{} ports probed, 2 expected: {v}", ports.len()));
    }
    for (i, p) in ports.iter().enumerate() {
        let want = format_mac(&c.mac(i));
        let got = p["mac"].as_str().unwrap_or("");
        if !got.eq_ignore_ascii_case(&want) {
            return Err(format!("port {i}: MAC {got}, QEMU gave {want}"));
        }
        if p["link_up"] != Value::Bool(true) {
            return Err(format!("port {i}: link down: {p}"));
        }
    }
    let iova = expected_iova(c.nic, c.binding);
    if v["iova"] != iova {
        return Err(format!("IOVA mode {}, {iova} expected with {} {:?}", v["iova"], c.binding.driver(), c.eal));
    }
    Ok((0, format!("MACs match, links up at {} Mb/s, IOVA {iova}", ports[0]["speed_mbps"])))
}

/// 2. rx: numbered frames of every size 60..1514 all arrive, intact, in order; ipackets and
///    ibytes are what was sent (plus the end frame).
fn rx(c: &Ctx) -> Result<(u64, String), String> {
    let app = c.spawn_rx(&[])?;
    let dst = c.mac(0);
    let bytes: u64 = (0..RX_TX_FRAMES).map(|s| frame_len(s) as u64).sum();
    c.send_paced(0, (0..RX_TX_FRAMES).map(|s| TestFrame::build(dst, HOST_MAC, s, frame_len(s))))?;
    let v = c.finish_rx(app)?;
    check_rx(&v, u64::from(RX_TX_FRAMES))?;
    let st = &v["stats"];
    let (ipackets, ibytes) = (num(st, "ipackets"), num(st, "ibytes"));
    if ipackets != u64::from(RX_TX_FRAMES) + 1 || ibytes != bytes + 60 {
        return Err(format!(
            "ipackets {ipackets} / ibytes {ibytes}, sent {} frames / {} bytes (with the end frame)",
            RX_TX_FRAMES + 1,
            bytes + 60
        ));
    }
    Ok((u64::from(RX_TX_FRAMES), format!("{ipackets} frames, {ibytes} bytes, counters exact")))
}

/// 3. tx: the guest sends numbered frames of every size; the host gets them all, intact, in
///    order, from the NIC's MAC; opackets is what was sent.
fn tx(c: &Ctx) -> Result<(u64, String), String> {
    c.lab.wire(0).drain().map_err(|e| e.to_string())?;
    let count = RX_TX_FRAMES.to_string();
    let dst = format_mac(&OTHER_MAC);
    let app = c.lab.spawn(&c.argv("conformance-guest", &[0], "0", &["tx", &count, &dst])).map_err(|e| e.to_string())?;
    let got = c.lab.wire(0).recv_test_frames(RX_TX_FRAMES as usize, GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    let v = c.guest_result("conformance-guest tx", &out)?;
    if !got.bad.is_empty() {
        return Err(format!("{} damaged frames, first: {}", got.bad.len(), got.bad[0]));
    }
    if got.frames.len() != RX_TX_FRAMES as usize {
        return Err(format!("the host got {} of {RX_TX_FRAMES} frames; guest: {v}", got.frames.len()));
    }
    for (i, f) in got.frames.iter().enumerate() {
        if f.seq != i as u32 || f.len != frame_len(f.seq) || f.src != c.mac(0) || f.dst != OTHER_MAC {
            return Err(format!("frame {i}: got {f:?}"));
        }
    }
    let opackets = num(&v["stats"], "opackets");
    if opackets != u64::from(RX_TX_FRAMES) || num(&v["stats"], "oerrors") != 0 {
        return Err(format!("opackets {opackets}, sent {RX_TX_FRAMES}: {}", v["stats"]));
    }
    Ok((u64::from(RX_TX_FRAMES), format!("{RX_TX_FRAMES} frames intact and in order, opackets exact")))
}

/// 4. l2fwd: frames both ways through DPDK's l2fwd; each comes out of the other NIC with
///    destination 02:00:00:00:00:TXPORT and the TX NIC's MAC as source, the rest untouched.
fn l2fwd(c: &Ctx) -> Result<(u64, String), String> {
    for i in 0..2 {
        c.lab.wire(i).drain().map_err(|e| e.to_string())?;
    }
    let mut app = c.lab.spawn(&c.argv("l2fwd", &[0, 1], "0,1", &["-p", "3", "-T", "0"])).map_err(|e| e.to_string())?;
    for port in ["portid=0", "portid=1"] {
        app.wait_for_stdout(port, GUEST_TIMEOUT).map_err(|e| format!("l2fwd never polled ({port}): {e}"))?;
    }
    let mut moved = 0u64;
    let mut problem = None;
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let dst = c.mac(from);
        for start in (0..L2FWD_FRAMES).step_by(L2FWD_WINDOW as usize) {
            let window = start..(start + L2FWD_WINDOW).min(L2FWD_FRAMES);
            c.send_paced(from, window.clone().map(|s| TestFrame::build(dst, HOST_MAC, s, frame_len(s))))?;
            match check_forwarded(c, from, to, window) {
                Ok(n) => moved += n,
                Err(e) => {
                    problem = Some(e);
                    break;
                }
            }
        }
        if problem.is_some() {
            break;
        }
    }
    app.signal(libc::SIGINT).map_err(|e| e.to_string())?;
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    c.check_exit("l2fwd", &out)?;
    if let Some(e) = problem {
        return Err(e);
    }
    let stdout = out.stdout_str();
    let pool = stdout.lines().find(|l| l.starts_with("mbuf pool:")).ok_or("l2fwd printed no pool line")?;
    let words: Vec<&str> = pool.split_whitespace().collect();
    if words.len() < 5 || words[2] != words[4] {
        let err = format!("l2fwd: {pool}");
        c.leaks.borrow_mut().push(err.clone());
        return Err(err);
    }
    Ok((moved, format!("{L2FWD_FRAMES} frames each way, rewritten, intact, in order; {pool}")))
}

/// What wire `to` got from l2fwd, of the frames `seqs` sent on wire `from`.
fn check_forwarded(c: &Ctx, from: usize, to: usize, seqs: std::ops::Range<u32>) -> Result<u64, String> {
    let want_dst = [0x02, 0, 0, 0, 0, to as u8];
    let want_src = c.mac(to);
    let deadline = Instant::now() + GUEST_TIMEOUT;
    let mut next = seqs.start;
    while next < seqs.end {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(mut f) = c.lab.wire(to).recv(left).map_err(|e| e.to_string())? else {
            return Err(format!("wire {from} -> {to}: {next} of {L2FWD_FRAMES} frames came through"));
        };
        if f.len() < 24 || f[12..14] != [0x88, 0xb5] {
            continue; // not ours
        }
        if f[0..6] != want_dst || f[6..12] != want_src {
            return Err(format!(
                "wire {from} -> {to}: frame {next} has dst {} src {}, want {} {}",
                format_mac(f[0..6].try_into().unwrap_or(&[0; 6])),
                format_mac(f[6..12].try_into().unwrap_or(&[0; 6])),
                format_mac(&want_dst),
                format_mac(&want_src)
            ));
        }
        // Put back the addresses the host sent, so the checksum covers the rest unchanged.
        f[0..6].copy_from_slice(&c.mac(from));
        f[6..12].copy_from_slice(&HOST_MAC);
        let t = TestFrame::parse(&f).map_err(|e| format!("wire {from} -> {to}: {e}"))?;
        if t.seq != next || t.len != frame_len(next) {
            return Err(format!("wire {from} -> {to}: frame {} of {} bytes when {next} was due", t.seq, t.len));
        }
        next += 1;
    }
    Ok(u64::from(seqs.end - seqs.start))
}

/// 6. filtering: with promiscuous mode off, unicast frames to another MAC are dropped while
///    broadcast and own-MAC frames arrive; with it on, all arrive.
fn filtering(c: &Ctx) -> Result<(u64, String), String> {
    const EACH: u32 = 20;
    let own = c.mac(0);
    let frames = || {
        // Own MAC and broadcast first, then the other MAC's: the accepted ones stay contiguous.
        let dsts = [own, [0xff; 6], OTHER_MAC];
        dsts.into_iter().enumerate().flat_map(move |(k, d)| {
            (0..EACH).map(move |s| TestFrame::build(d, HOST_MAC, k as u32 * EACH + s, 60 + 64 * k))
        })
    };
    let mut total = 0;
    for (promisc, other) in [("off", 0), ("on", u64::from(EACH))] {
        let app = c.spawn_rx(&["--promisc", promisc])?;
        c.send_paced(0, frames())?;
        let v = c.finish_rx(app)?;
        let (o, b, x) = (num(&v, "own"), num(&v, "broadcast"), num(&v, "other"));
        if o != u64::from(EACH) || b != u64::from(EACH) || x != other {
            return Err(format!(
                "promiscuous {promisc}: own {o}, broadcast {b}, other MAC {x} arrived; want {EACH}, {EACH}, {other}"
            ));
        }
        check_rx(&v, 2 * u64::from(EACH) + other)?;
        total += 2 * u64::from(EACH) + other;
    }
    Ok((total, format!("off: other MAC dropped, broadcast kept; on: all {} kept", 3 * EACH)))
}

/// What the sizes case expects of a model: the frame lengths that arrive, and the ones dropped
/// and counted in ierrors.
fn size_expectations(nic: NicModel) -> (&'static [usize], &'static [usize]) {
    if nic.is_virtio() {
        // virtio-net has no receive length limit of its own (VIRTIO_NET_F_MTU only advises the
        // driver): a frame arrives when it fits one RX buffer (2048 bytes of data room here);
        // a longer one spans several mergeable buffers, which the driver cannot chain into one
        // packet yet, so it drops them and counts ierrors.
        (&[60, 1514, 1519, 1600], &[9014])
    } else {
        // The 8254x without long packet enable: 1522 bytes (1518 + a VLAN tag, with CRC).
        (&[60, 1514], &[1519, 1600, 9014])
    }
}

/// 7. sizes: 60 and 1514 bytes arrive; frames the model cannot take at MTU 1500
///    ([`size_expectations`]) are dropped and counted in ierrors.
fn sizes(c: &Ctx) -> Result<(u64, String), String> {
    let (arrive, dropped) = size_expectations(c.nic);
    let own = c.mac(0);
    let app = c.spawn_rx(&[])?;
    // The first good frame, the dropped ones, then the other good ones: the good ones keep
    // consecutive sequence numbers.
    let mut frames = vec![TestFrame::build(own, HOST_MAC, 0, arrive[0])];
    frames.extend(dropped.iter().enumerate().map(|(k, &len)| TestFrame::build(own, HOST_MAC, 100 + k as u32, len)));
    frames.extend(arrive.iter().enumerate().skip(1).map(|(k, &len)| TestFrame::build(own, HOST_MAC, k as u32, len)));
    c.send_paced(0, frames)?;
    let v = c.finish_rx(app)?;
    check_rx(&v, arrive.len() as u64)?;
    let ierrors = num(&v["stats"], "ierrors");
    if ierrors != dropped.len() as u64 {
        return Err(format!("{} oversize frames dropped but ierrors is {ierrors}: {}", dropped.len(), v["stats"]));
    }
    Ok(((arrive.len() + dropped.len()) as u64, format!("{arrive:?} arrive; {dropped:?} dropped, ierrors {ierrors}")))
}

/// 8 (part). sigkill: a receiver killed with SIGKILL mid-traffic; a fresh start then receives
///    every frame, and once it exited no hugepage file is left.
fn sigkill(c: &Ctx) -> Result<(u64, String), String> {
    let dst = c.mac(0);
    let app = c.spawn_rx(&[])?;
    c.send_paced(0, (0..200).map(|s| TestFrame::build(dst, HOST_MAC, s, frame_len(s))))?;
    app.kill().map_err(|e| e.to_string())?;
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    if out.status.success() {
        return Err("the killed receiver exited 0".into());
    }
    let after_kill = c.lab.sh_ok("ls -A /dev/hugepages | wc -l").map_err(|e| e.to_string())?;
    // What the killed run had not taken waits in QEMU and on the wire: a first fresh run takes
    // it (and must end cleanly), a second one must then get exactly what is sent.
    let flush = c.finish_rx(c.spawn_rx(&[])?)?;
    if num(&flush, "bad") != 0 {
        return Err(format!("after SIGKILL: damaged frames {flush}"));
    }
    let app = c.spawn_rx(&[])?;
    c.send_paced(0, (0..500).map(|s| TestFrame::build(dst, HOST_MAC, s, frame_len(s))))?;
    let v = c.finish_rx(app)?;
    check_rx(&v, 500)?;
    let left = c.lab.sh_ok("ls -A /dev/hugepages").map_err(|e| e.to_string())?;
    if !left.trim().is_empty() {
        return Err(format!("hugepage files left after the fresh start exited: {}", left.trim()));
    }
    let stale = num(&flush, "good");
    Ok((
        700,
        format!(
            "{} hugepage files after SIGKILL; fresh start: {stale} stale frames, then all 500; none left",
            after_kill.trim()
        ),
    ))
}

/// 5. overload: frames sent while the application does not poll overrun the 1024 descriptors;
///    the surplus the device dropped is counted in imissed, and frames flow again once it polls:
///    everything sent is received or counted, and the last frame sent arrives.
fn overload(c: &Ctx) -> Result<(u64, String), String> {
    const IDLE: u32 = 3000;
    const AFTER: u32 = 100;
    let dst = c.mac(0);
    c.lab.sh_ok("rm -f /tmp/conformance-go").map_err(|e| e.to_string())?;
    let mut app = c.spawn_rx(&["--idle"])?;
    // Paced for the host's socket only: the guest is not polling anyway.
    c.send_paced(0, (0..IDLE).map(|s| TestFrame::build(dst, HOST_MAC, s, 60)))?;
    // Let QEMU take what it will from the wire before the application polls again (there is
    // no event for "QEMU has caught up": a short wait is the only way).
    std::thread::sleep(Duration::from_secs(1));
    c.lab.sh_ok("touch /tmp/conformance-go").map_err(|e| e.to_string())?;
    app.wait_for_stdout("polling", GUEST_TIMEOUT).map_err(|e| format!("never polled again: {e}"))?;
    c.send_paced(0, (IDLE..IDLE + AFTER).map(|s| TestFrame::build(dst, HOST_MAC, s, 60)))?;
    let v = c.finish_rx(app)?;
    let (good, bad, next) = (num(&v, "good"), num(&v, "bad"), num(&v, "next"));
    let imissed = num(&v["stats"], "imissed");
    let idle_missed = num(&v["idle_stats"], "imissed");
    let sent = u64::from(IDLE + AFTER);
    if bad != 0 || next != sent {
        return Err(format!("{bad} damaged; last frame in was {}, {} sent: {v}", next.wrapping_sub(1), sent));
    }
    if good + imissed != sent {
        return Err(format!(
            "{good} received + {imissed} imissed != {sent} sent ({} unaccounted for): {}",
            sent.saturating_sub(good + imissed),
            v["stats"]
        ));
    }
    let how = if imissed == 0 { "QEMU held the surplus on the wire (none dropped)" } else { "surplus in imissed" };
    Ok((sent, format!("{good} received, {imissed} imissed ({idle_missed} while idle): {how}; flows after")))
}

/// 7 (jumbo). After an MTU change to 9000 (with a pool of 16 KiB buffers), 1514, 4000 and
///    9014-byte frames (9018 with CRC) arrive intact.
fn jumbo(c: &Ctx) -> Result<(u64, String), String> {
    const SIZES: [usize; 4] = [60, 1514, 4000, 9014];
    let own = c.mac(0);
    let app = c.spawn_rx(&["--mtu", "9000"])?;
    c.send_paced(0, SIZES.iter().enumerate().map(|(k, &len)| TestFrame::build(own, HOST_MAC, k as u32, len)))?;
    let v = c.finish_rx(app)?;
    check_rx(&v, SIZES.len() as u64)?;
    Ok((SIZES.len() as u64, format!("MTU 9000: {SIZES:?} arrive intact")))
}

/// 8. lifecycle: receiving works after start, after stop and start again, and after the ports
///    and the runtime were closed and the devices probed again, in one process.
fn lifecycle(c: &Ctx) -> Result<(u64, String), String> {
    const EACH: u32 = 300;
    let dst = c.mac(0);
    let mut app = c.lab.spawn(&c.argv("conformance-guest", &[0], "0", &["lifecycle"])).map_err(|e| e.to_string())?;
    for phase in 1..=3 {
        app.wait_for_stdout(&format!("ready {phase}"), GUEST_TIMEOUT)
            .map_err(|e| format!("phase {phase} never got ready: {e}"))?;
        c.send_paced(0, (0..EACH).map(|s| TestFrame::build(dst, HOST_MAC, s, frame_len(s))))?;
        c.lab.wire(0).send(&end_frame(dst)).map_err(|e| e.to_string())?;
    }
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    let v = c.guest_result("conformance-guest lifecycle", &out)?;
    let phases = v["phases"].as_array().cloned().unwrap_or_default();
    if phases.len() != 3 {
        return Err(format!("{} phases reported: {v}", phases.len()));
    }
    for (name, p) in ["after start", "after stop+start", "after close+probe"].iter().zip(&phases) {
        check_rx(p, u64::from(EACH)).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok((3 * u64::from(EACH), format!("{EACH} frames after start, stop+start, close+probe again")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_legacy_virtio_under_vfio_is_run_with_iova_as_pa() {
        for nic in NicModel::ALL {
            for binding in [Binding::Vfio, Binding::Uio] {
                let pa = nic == NicModel::VirtioLegacy && binding == Binding::Vfio;
                assert_eq!(eal_options(nic, binding).is_empty(), !pa, "{nic} {binding:?}");
                let want = if pa { "pa" } else { binding.iova() };
                assert_eq!(expected_iova(nic, binding), want, "{nic} {binding:?}");
            }
        }
    }

    #[test]
    fn size_expectations_cover_what_the_case_sends() {
        for nic in NicModel::ALL {
            let (arrive, dropped) = size_expectations(nic);
            assert_eq!(arrive[..2], [60, 1514], "{nic}: the first good frames");
            assert!(dropped.contains(&9014), "{nic}: a jumbo frame never fits a 2 KiB buffer");
        }
    }
}
