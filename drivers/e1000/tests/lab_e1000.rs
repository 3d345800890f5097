//! The e1000 driver in the lab: QEMU's 8254x models bound to vfio-pci (IOMMU translating, IOVA
//! as VA) and to uio_pci_generic (IOMMU pass-through, IOVA as PA), driven by the workspace's own
//! `pktgen` in the guest while the host sends and receives frames on the NICs' wires.
//!
//! Two boots (each ~5 s under TCG). `cargo xtask setup` must have run. pktgen exits 0 only when
//! every buffer is back in its pool after the ports closed, so each successful run is also a
//! leak check.

use std::time::{Duration, Instant};

use burst_lab::frames::TestFrame;
use burst_lab::{Iommu, Lab, LabConfig, NicModel, Output};
use serde_json::Value;

/// How long a pktgen run may take in all (TCG is slow, and the guest builds nothing).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn boot(cfg: LabConfig) -> Lab {
    let start = Instant::now();
    let (nics, iommu) = (cfg.nics.clone(), cfg.iommu);
    let lab = Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)");
    eprintln!("lab with {nics:?}, IOMMU {iommu:?}: up in {:.1} s", start.elapsed().as_secs_f64());
    lab
}

/// Binds every NIC to `driver` (vfio-pci also needs the type-1 IOMMU backend).
fn bind_all(lab: &Lab, driver: &str) {
    if driver == "vfio-pci" {
        lab.sh_ok("modprobe vfio-pci && modprobe vfio_iommu_type1").unwrap();
    }
    for nic in lab.nics() {
        let got = lab.bind(&nic.pci_address, driver).unwrap_or_else(|e| panic!("binding {}: {e}", nic.pci_address));
        assert_eq!(got, driver, "{}", nic.pci_address);
    }
}

/// pktgen's `RESULT` line, parsed; the run must have exited 0 (which means: pools full).
fn result(out: &Output) -> Value {
    let stdout = out.stdout_str();
    assert!(out.status.success(), "pktgen failed: {}\n{stdout}\n{}", out.status, out.stderr_str());
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("{stdout}"));
    serde_json::from_str(line).unwrap()
}

fn port(res: &Value, p: usize) -> &Value {
    &res["ports"][p]
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// The driver's closing line (`--log-level debug`): its counters for the port at `addr`.
fn closing_counters(stderr: &str, addr: &str) -> Vec<(String, u64)> {
    let marker = format!("e1000 {addr} closing: ");
    let line = stderr.lines().find_map(|l| l.split_once(&marker).map(|(_, rest)| rest.to_string()));
    let line = line.unwrap_or_else(|| panic!("no closing line for {addr} in:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words.chunks(2).filter_map(|kv| Some((kv[0].to_string(), kv.get(1)?.trim_end_matches(',').parse().ok()?))).collect()
}

fn counter(counters: &[(String, u64)], name: &str) -> u64 {
    counters.iter().find(|(k, _)| k == name).map(|(_, v)| *v).unwrap_or_else(|| panic!("{name} in {counters:?}"))
}

/// TX: pktgen txonly on NIC `index` alone for a second: the host receives its 64-byte UDP
/// frames, from the NIC's MAC to pktgen's default peer, and the port's opackets are what
/// pktgen sent.
fn txonly(lab: &Lab, index: usize) {
    let nic = &lab.nics()[index];
    lab.wire(index).drain().unwrap();
    let out = lab
        .run(
            &["pktgen", "-a", &nic.pci_address, "-l", "0,1", "--", "--forward-mode=txonly", "--run-seconds", "1"],
            RUN_TIMEOUT,
        )
        .unwrap();
    let res = result(&out);
    let p = port(&res, 0);
    let sent = num(p, "tx_packets");
    assert!(sent > 0, "{p}");
    assert_eq!(num(&p["port_stats"], "opackets"), sent, "{p}");
    assert_eq!(num(&p["port_stats"], "oerrors"), 0, "{p}");
    // The host's socket keeps what it can hold of a fast burst: some frames, all well formed.
    let mut got = 0;
    while let Some(frame) = lab.wire(index).recv(Duration::from_millis(500)).unwrap() {
        assert_eq!(frame.len(), 64, "{frame:02x?}");
        assert_eq!(&frame[0..6], &[0x02, 0, 0, 0, 0, 0], "destination: pktgen's peer for port 0");
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

/// RX: pktgen rxonly on NIC 0 while the host sends `count` numbered frames of every size from
/// 60 to 1514 bytes and `oversize` frames of 1600 bytes (over the 1522 a port with MTU 1500
/// takes): all the good ones arrive, the big ones are dropped and counted in ierrors.
fn rxonly(lab: &Lab, count: u32, oversize: u32, iova: &str) {
    let nic = &lab.nics()[0];
    let mut app = lab
        .spawn(&[
            "pktgen",
            "-a",
            &nic.pci_address,
            "-l",
            "0,1",
            "--log-level",
            "debug",
            "--",
            "--forward-mode=rxonly",
            "--stats-period",
            "1",
        ])
        .unwrap();
    app.wait_for_stdout("Forwarding", Duration::from_secs(60)).unwrap();
    let mut bytes = 0u64;
    for seq in 0..count {
        let len = 60 + (seq as usize * 97) % (1514 - 60 + 1);
        lab.wire(0).send(&TestFrame::build(nic.mac, [0x02, 0, 0, 0, 0, 0x99], seq, len)).unwrap();
        bytes += len as u64;
        if seq % 32 == 31 {
            // Keep within what the host's socket and QEMU's queue hold while the guest catches up.
            std::thread::sleep(Duration::from_millis(2));
        }
        if seq == count / 2 {
            for _ in 0..oversize {
                let mut big = vec![0u8; 1600];
                big[0..6].copy_from_slice(&nic.mac);
                big[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x98]);
                big[12..14].copy_from_slice(&[0x88, 0xb5]);
                lab.wire(0).send(&big).unwrap();
            }
        }
    }
    app.wait_for_stdout(&format!("RX-packets: {count} "), Duration::from_secs(60)).unwrap();
    app.signal(libc_sigint()).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let res = result(&out);
    let p = port(&res, 0);
    assert_eq!(num(p, "rx_packets"), u64::from(count), "{p}");
    let ps = &p["port_stats"];
    assert_eq!(num(ps, "ipackets"), u64::from(count), "{p}");
    assert_eq!(num(ps, "imissed"), 0, "{p}");
    assert_eq!(num(ps, "ierrors"), u64::from(oversize), "oversize frames are counted: {p}");
    assert_eq!(num(ps, "rx_nombuf"), 0, "{p}");
    assert!(out.stderr_str().contains(&format!("IOVA mode {iova},")), "IOVA as {iova}: {}", out.stderr_str());
    let closing = closing_counters(&out.stderr_str(), &nic.pci_address);
    assert_eq!(counter(&closing, "ibytes"), bytes, "ibytes are the frames' bytes without CRC: {closing:?}");
    eprintln!("rxonly: {count} frames, {bytes} bytes received; {oversize} oversize dropped; {closing:?}");
}

/// Probe as l2fwd reports it (MACs in DPDK's upper case): each port's MAC is the one QEMU was
/// given, and the link comes up at 1 Gb/s full duplex (QEMU's copper PHY after autonegotiation).
fn link_and_mac(lab: &Lab) {
    let (a, b) = (&lab.nics()[0], &lab.nics()[1]);
    let mut app =
        lab.spawn(&["l2fwd", "-a", &a.pci_address, "-a", &b.pci_address, "-l", "0,1", "--", "-p", "3"]).unwrap();
    app.wait_for_stdout("Port 1 Link", Duration::from_secs(60)).unwrap();
    app.signal(libc_sigint()).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let stdout = out.stdout_str();
    assert!(out.status.success(), "l2fwd: {}\n{stdout}\n{}", out.status, out.stderr_str());
    for (p, nic) in [a, b].into_iter().enumerate() {
        let mac = burst_lab::format_mac(&nic.mac).to_uppercase();
        assert!(stdout.contains(&format!("Port {p}, MAC address: {mac}")), "{stdout}");
        assert!(stdout.contains(&format!("Port {p} Link up at 1 Gbps FDX Autoneg")), "{stdout}");
    }
}

fn libc_sigint() -> i32 {
    2
}

/// RX and TX together: pktgen io-forwards between NICs 0 and 1; `count` numbered frames sent
/// by the host on each wire come out of the other one, all of them, intact and in order.
fn io_forward(lab: &Lab, count: u32) {
    let (a, b) = (&lab.nics()[0], &lab.nics()[1]);
    for i in 0..2 {
        lab.wire(i).drain().unwrap();
    }
    let mut app = lab
        .spawn(&["pktgen", "-a", &a.pci_address, "-a", &b.pci_address, "-l", "0,1", "--", "--forward-mode=io"])
        .unwrap();
    app.wait_for_stdout("Forwarding", Duration::from_secs(60)).unwrap();
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let dst = lab.nics()[from].mac;
        for seq in 0..count {
            let len = 60 + (seq as usize * 131) % (1514 - 60 + 1);
            lab.wire(from).send(&TestFrame::build(dst, [0x02, 0, 0, 0, 0, from as u8], seq, len)).unwrap();
            if seq % 32 == 31 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let got = lab.wire(to).recv_test_frames(count as usize, Duration::from_secs(30)).unwrap();
        assert!(got.bad.is_empty(), "wire {from} -> {to}: bad frames {:?}", got.bad);
        let seqs: Vec<u32> = got.frames.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, (0..count).collect::<Vec<_>>(), "wire {from} -> {to}: every frame, in order");
        for f in &got.frames {
            assert_eq!(f.len, 60 + (f.seq as usize * 131) % (1514 - 60 + 1));
        }
    }
    app.signal(libc_sigint()).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let res = result(&out);
    for p in 0..2 {
        let ps = &port(&res, p)["port_stats"];
        assert_eq!(num(ps, "ipackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "opackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "ierrors") + num(ps, "oerrors") + num(ps, "imissed"), 0, "{res}");
    }
    eprintln!("io forwarding: {count} frames each way, intact and in order");
}

#[test]
fn e1000_models_on_vfio_pci() {
    let cfg =
        LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000, NicModel::E1000_82545em, NicModel::E1000_82544gc]);
    assert_eq!(cfg.iommu, Iommu::On);
    let lab = boot(cfg);
    bind_all(&lab, "vfio-pci");
    for index in [0, 2, 3] {
        txonly(&lab, index);
    }
    rxonly(&lab, 1000, 5, "va");
    link_and_mac(&lab);
    io_forward(&lab, 500);
}

#[test]
fn e1000_on_uio_pci_generic() {
    let mut cfg = LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000]);
    cfg.iommu = Iommu::Pt;
    let lab = boot(cfg);
    bind_all(&lab, "uio_pci_generic");
    txonly(&lab, 0);
    rxonly(&lab, 500, 2, "pa");
    io_forward(&lab, 300);
}
