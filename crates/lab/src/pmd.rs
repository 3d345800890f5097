//! The checks every poll-mode driver's lab test makes: boot a lab, bind its NICs, and drive
//! them with the workspace's own `pktgen` and `l2fwd` in the guest while the host sends and
//! receives frames on the wires.
//!
//! ```no_run
//! use burst_lab::{pmd, LabConfig, NicModel};
//! let lab = pmd::boot(LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000]));
//! pmd::bind_all(&lab, "vfio-pci");
//! pmd::txonly(&lab, 0, &[]);
//! pmd::io_forward(&lab, 0, 1, 300, 300, &[]);
//! ```
//!
//! These are test helpers: they panic with the guest's output when a check fails, rather than
//! return an error. Each check takes the NICs it drives by index and the extra EAL options the
//! device needs (`--iova-mode pa` for one whose DMA bypasses the IOMMU, say). pktgen exits 0 only
//! when every buffer is back in its pool after the ports closed, and [`result`] insists on exit
//! 0, so every check is also a leak check. What only one driver can check (its own log lines, how
//! it refuses a configuration) stays in that driver's test.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::frames::{TestFrame, MAX_LEN, MIN_LEN};
use crate::{format_mac, Lab, LabConfig, Output};

/// How long a guest program may run in all (TCG is slow, and the guest builds nothing).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a guest program may take to start forwarding, or to report what it received.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The host pauses after this many frames...
const PACE_EVERY: u32 = 32;
/// ...for this long, to stay within what the host's socket and QEMU's queue hold while the guest
/// catches up.
const PACE_PAUSE: Duration = Duration::from_millis(2);
/// pktgen's default peer for port 0: the destination of what txonly sends.
const PKTGEN_PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 0];
/// The host's source address in rxonly.
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// The source address of rxonly's oversize frames.
const OVERSIZE_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x98];

/// Boots a lab, saying how long it took.
///
/// # Panics
/// When the lab does not boot (`cargo xtask setup` must have run).
pub fn boot(cfg: LabConfig) -> Lab {
    let start = Instant::now();
    let (nics, iommu) = (cfg.nics.clone(), cfg.iommu);
    let lab = Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)");
    eprintln!("lab with {nics:?}, IOMMU {iommu:?}: up in {:.1} s", start.elapsed().as_secs_f64());
    lab
}

/// Binds every NIC to `driver` (`vfio-pci` or `uio_pci_generic`; vfio-pci also needs the type-1
/// IOMMU backend).
///
/// # Panics
/// When a module does not load or a NIC ends up on another driver.
pub fn bind_all(lab: &Lab, driver: &str) {
    let modules = if driver == "vfio-pci" {
        "modprobe vfio-pci && modprobe vfio_iommu_type1"
    } else {
        "modprobe uio_pci_generic"
    };
    lab.sh_ok(modules).unwrap();
    for nic in lab.nics() {
        let got = lab.bind(&nic.pci_address, driver).unwrap_or_else(|e| panic!("binding {}: {e}", nic.pci_address));
        assert_eq!(got, driver, "{}", nic.pci_address);
    }
}

/// `prog -a ADDR... -l 0,1 [eal] -- app...` as one argv.
pub fn argv<'a>(prog: &'a str, addrs: &[&'a str], eal: &[&'a str], app: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![prog];
    for a in addrs {
        v.extend(["-a", a]);
    }
    v.extend(["-l", "0,1"]);
    v.extend_from_slice(eal);
    v.push("--");
    v.extend_from_slice(app);
    v
}

/// The last `RESULT {json}` line of a guest program (pktgen, conformance-guest), parsed.
///
/// # Panics
/// When the program did not exit 0 (for pktgen: a pool was not full), or printed no valid
/// `RESULT` line.
pub fn result(out: &Output) -> Value {
    let stdout = out.stdout_str();
    assert!(out.status.success(), "the guest program failed: {}\n{stdout}\n{}", out.status, out.stderr_str());
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("{stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("RESULT {line}: {e}"))
}

/// The unsigned number `v[key]`.
///
/// # Panics
/// When there is none.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// TX: pktgen txonly on NIC `index` alone for a second: the host receives its 64-byte UDP
/// frames, from the NIC's MAC to pktgen's default peer, and the port's opackets are what
/// pktgen sent, without oerrors.
pub fn txonly(lab: &Lab, index: usize, eal: &[&str]) {
    let nic = &lab.nics()[index];
    lab.wire(index).drain().unwrap();
    let args = argv("pktgen", &[&nic.pci_address], eal, &["--forward-mode=txonly", "--run-seconds", "1"]);
    let res = result(&lab.run(&args, RUN_TIMEOUT).unwrap());
    let p = &res["ports"][0];
    let sent = num(p, "tx_packets");
    assert!(sent > 0, "{p}");
    assert_eq!(num(&p["port_stats"], "opackets"), sent, "{p}");
    assert_eq!(num(&p["port_stats"], "oerrors"), 0, "{p}");
    // The host's socket keeps what it can hold of a fast burst: some frames, all well formed.
    let mut got = 0;
    while let Some(frame) = lab.wire(index).recv(Duration::from_millis(500)).unwrap() {
        assert_eq!(frame.len(), 64, "{frame:02x?}");
        assert_eq!(&frame[0..6], &PKTGEN_PEER, "destination: pktgen's peer for port 0");
        assert_eq!(&frame[6..12], &nic.mac, "source: the NIC's MAC");
        assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4");
        got += 1;
        if got == 1000 {
            break;
        }
    }
    assert!(got > 0, "no frame from {} on the wire", nic.model);
    eprintln!("{} ({}): pktgen sent {sent}, the host read {got}", nic.model, nic.pci_address);
}

/// What [`rxonly`] sends, and what the run must report.
#[derive(Debug, Clone, Copy)]
pub struct RxOnly<'a> {
    /// Numbered test frames, frame `seq` of [`rxonly_frame_len`]`(seq)` bytes; all must arrive.
    pub count: u32,
    /// Frames over what the port takes, sent halfway; each must be dropped and counted in
    /// ierrors.
    pub oversize: u32,
    /// Their length, without FCS.
    pub oversize_len: usize,
    /// The IOVA mode the runtime must say it chose: `"va"` or `"pa"`.
    pub iova: &'a str,
    /// pktgen's `--log-level`: `info` at least (the runtime reports its IOVA mode at info),
    /// `debug` for a driver's debug lines.
    pub log_level: &'a str,
}

/// The length of rxonly's frame `seq`: 97 and 1455 are coprime, so 1455 consecutive frames take
/// every size from 60 to 1514 once.
pub fn rxonly_frame_len(seq: u32) -> usize {
    MIN_LEN + (seq as usize * 97) % (MAX_LEN - MIN_LEN + 1)
}

/// RX: pktgen rxonly on NIC `index` while the host sends `spec.count` numbered frames of every
/// size from 60 to 1514 bytes and, halfway, `spec.oversize` frames of `spec.oversize_len` bytes:
/// all the good ones arrive, without imissed or rx_nombuf, and the oversize ones are dropped and
/// counted in ierrors. Returns pktgen's output, for what only the driver's test can check.
pub fn rxonly(lab: &Lab, index: usize, spec: &RxOnly<'_>, eal: &[&str]) -> Output {
    let nic = &lab.nics()[index];
    let eal = [eal, &["--log-level", spec.log_level]].concat();
    let args = argv("pktgen", &[&nic.pci_address], &eal, &["--forward-mode=rxonly", "--stats-period", "1"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Forwarding", READY_TIMEOUT).unwrap();
    let count = spec.count;
    for seq in 0..count {
        lab.wire(index).send(&TestFrame::build(nic.mac, HOST_MAC, seq, rxonly_frame_len(seq))).unwrap();
        if seq % PACE_EVERY == PACE_EVERY - 1 {
            std::thread::sleep(PACE_PAUSE);
        }
        if seq == count / 2 {
            for _ in 0..spec.oversize {
                let mut big = vec![0u8; spec.oversize_len];
                big[0..6].copy_from_slice(&nic.mac);
                big[6..12].copy_from_slice(&OVERSIZE_SRC);
                big[12..14].copy_from_slice(&[0x88, 0xb5]);
                lab.wire(index).send(&big).unwrap();
            }
        }
    }
    app.wait_for_stdout(&format!("RX-packets: {count} "), READY_TIMEOUT).unwrap();
    app.signal(libc::SIGINT).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let res = result(&out);
    let p = &res["ports"][0];
    assert_eq!(num(p, "rx_packets"), u64::from(count), "{p}");
    let ps = &p["port_stats"];
    assert_eq!(num(ps, "ipackets"), u64::from(count), "{p}");
    assert_eq!(num(ps, "imissed"), 0, "{p}");
    assert_eq!(num(ps, "ierrors"), u64::from(spec.oversize), "oversize frames are dropped and counted: {p}");
    assert_eq!(num(ps, "rx_nombuf"), 0, "{p}");
    let iova = spec.iova;
    assert!(out.stderr_str().contains(&format!("IOVA mode {iova},")), "IOVA as {iova}: {}", out.stderr_str());
    eprintln!(
        "{} rxonly: {count} frames received; {} of {} bytes dropped and counted",
        nic.model, spec.oversize, spec.oversize_len
    );
    out
}

/// Probe as l2fwd on NICs `a` and `b` reports it (MACs in DPDK's upper case): each port's MAC is
/// the one QEMU was given, and l2fwd prints `Port N Link {link}` (`"up"`, or with the speed the
/// device must report, `"up at 1 Gbps FDX Autoneg"`).
pub fn link_and_mac(lab: &Lab, a: usize, b: usize, link: &str, eal: &[&str]) {
    let (na, nb) = (&lab.nics()[a], &lab.nics()[b]);
    let args = argv("l2fwd", &[&na.pci_address, &nb.pci_address], eal, &["-p", "3"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Port 1 Link", READY_TIMEOUT).unwrap();
    app.signal(libc::SIGINT).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let stdout = out.stdout_str();
    assert!(out.status.success(), "l2fwd: {}\n{stdout}\n{}", out.status, out.stderr_str());
    for (p, nic) in [na, nb].into_iter().enumerate() {
        let mac = format_mac(&nic.mac).to_uppercase();
        assert!(stdout.contains(&format!("Port {p}, MAC address: {mac}")), "{stdout}");
        assert!(stdout.contains(&format!("Port {p} Link {link}")), "{stdout}");
    }
}

/// The length of io forwarding's frame `seq`.
fn io_frame_len(seq: u32) -> usize {
    MIN_LEN + (seq as usize * 131) % (MAX_LEN - MIN_LEN + 1)
}

/// RX and TX together: pktgen io-forwards between NICs `a` and `b`; `count` numbered frames sent
/// by the host on each wire come out of the other one, all of them, intact and in order, and
/// each port counts `count` in and out without errors.
///
/// The host sends `window` frames, then waits for them to come out before sending more; a window
/// of `count` or more sends them all at once. pktgen drops what a full TX ring refuses, and a device
/// whose TX ring QEMU empties from its main loop (virtio) needs a window smaller than that ring:
/// a loaded host (two labs at once under TCG) can starve the main loop for longer than the ring
/// lasts.
pub fn io_forward(lab: &Lab, a: usize, b: usize, count: u32, window: u32, eal: &[&str]) {
    assert!(window > 0, "a window of no frames");
    for i in [a, b] {
        lab.wire(i).drain().unwrap();
    }
    let (na, nb) = (&lab.nics()[a], &lab.nics()[b]);
    let args = argv("pktgen", &[&na.pci_address, &nb.pci_address], eal, &["--forward-mode=io"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Forwarding", READY_TIMEOUT).unwrap();
    for (from, to) in [(a, b), (b, a)] {
        let dst = lab.nics()[from].mac;
        for start in (0..count).step_by(window as usize) {
            let end = start.saturating_add(window).min(count);
            for seq in start..end {
                let frame = TestFrame::build(dst, [0x02, 0, 0, 0, 0, from as u8], seq, io_frame_len(seq));
                lab.wire(from).send(&frame).unwrap();
                if seq % PACE_EVERY == PACE_EVERY - 1 {
                    std::thread::sleep(PACE_PAUSE);
                }
            }
            let got = lab.wire(to).recv_test_frames((end - start) as usize, Duration::from_secs(30)).unwrap();
            assert!(got.bad.is_empty(), "wire {from} -> {to}: bad frames {:?}", got.bad);
            let seqs: Vec<u32> = got.frames.iter().map(|f| f.seq).collect();
            assert_eq!(seqs, (start..end).collect::<Vec<_>>(), "wire {from} -> {to}: every frame, in order");
            for f in &got.frames {
                assert_eq!(f.len, io_frame_len(f.seq));
            }
        }
    }
    app.signal(libc::SIGINT).unwrap();
    let res = result(&app.wait(RUN_TIMEOUT).unwrap());
    for p in 0..2 {
        let ps = &res["ports"][p]["port_stats"];
        assert_eq!(num(ps, "ipackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "opackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "ierrors") + num(ps, "oerrors") + num(ps, "imissed"), 0, "{res}");
    }
    eprintln!("{} io forwarding: {count} frames each way, intact and in order", na.model);
}
