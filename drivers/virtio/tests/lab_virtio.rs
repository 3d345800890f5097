//! The virtio-net PCI driver in the lab: QEMU's transitional (legacy interface, 1af4:1000) and
//! modern (1af4:1041) virtio-net under both bindings, driven by the workspace's own `pktgen` and
//! `l2fwd` in the guest while the host sends and receives frames on the NICs' wires.
//!
//! - `vfio-pci` (IOMMU translating): the modern device (`iommu_platform=on`, it offers
//!   ACCESS_PLATFORM) works with IOVA as VA; the legacy device bypasses the IOMMU, so the driver
//!   refuses VA with advice, and works with `--iova-mode pa`.
//! - `uio_pci_generic` (IOMMU pass-through): both work with IOVA as PA.
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
/// EAL options for a device whose DMA bypasses the IOMMU while it is bound to vfio-pci.
const PA: &[&str] = &["--iova-mode", "pa"];
const SIGINT: i32 = 2;
/// Frames in flight at most in io forwarding.
const WINDOW: u32 = 128;

fn boot(cfg: LabConfig) -> Lab {
    let start = Instant::now();
    let (nics, iommu) = (cfg.nics.clone(), cfg.iommu);
    let lab = Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)");
    eprintln!("lab with {nics:?}, IOMMU {iommu:?}: up in {:.1} s", start.elapsed().as_secs_f64());
    lab
}

/// Binds every NIC to `driver` (vfio-pci also needs the type-1 IOMMU backend).
fn bind_all(lab: &Lab, driver: &str) {
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

/// `prog EAL... -a ADDR... -l 0,1 [eal extra] -- app...` as one argv.
fn argv<'a>(prog: &'a str, addrs: &[&'a str], eal: &[&'a str], app: &[&'a str]) -> Vec<&'a str> {
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

/// pktgen's `RESULT` line, parsed; the run must have exited 0 (which means: pools full).
fn result(out: &Output) -> Value {
    let stdout = out.stdout_str();
    assert!(out.status.success(), "pktgen failed: {}\n{stdout}\n{}", out.status, out.stderr_str());
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix("RESULT ")).unwrap_or_else(|| panic!("{stdout}"));
    serde_json::from_str(line).unwrap()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// TX: pktgen txonly on NIC `index` alone for a second: the host receives its 64-byte UDP
/// frames, from the NIC's MAC to pktgen's default peer, and the port's opackets are what
/// pktgen sent.
fn txonly(lab: &Lab, index: usize, eal: &[&str]) {
    let nic = &lab.nics()[index];
    lab.wire(index).drain().unwrap();
    let args = argv("pktgen", &[&nic.pci_address], eal, &["--forward-mode=txonly", "--run-seconds", "1"]);
    let res = result(&lab.run(&args, RUN_TIMEOUT).unwrap());
    let p = &res["ports"][0];
    let sent = num(p, "tx_packets");
    assert!(sent > 0, "{p}");
    assert_eq!(num(&p["port_stats"], "opackets"), sent, "{p}");
    assert_eq!(num(&p["port_stats"], "oerrors"), 0, "{p}");
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

/// RX: pktgen rxonly on NIC `index` while the host sends `count` numbered frames of every size
/// from 60 to 1514 bytes and, halfway, `oversize` jumbo frames of 9014 bytes: with 2 KiB buffers
/// those span several mergeable buffers, which the driver drops and counts in ierrors.
fn rxonly(lab: &Lab, index: usize, count: u32, oversize: u32, iova: &str, eal: &[&str]) {
    let nic = &lab.nics()[index];
    // The runtime says which IOVA mode it chose at info level.
    let eal = [eal, &["--log-level", "info"]].concat();
    let args = argv("pktgen", &[&nic.pci_address], &eal, &["--forward-mode=rxonly", "--stats-period", "1"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Forwarding", Duration::from_secs(60)).unwrap();
    for seq in 0..count {
        let len = 60 + (seq as usize * 97) % (1514 - 60 + 1);
        lab.wire(index).send(&TestFrame::build(nic.mac, [0x02, 0, 0, 0, 0, 0x99], seq, len)).unwrap();
        if seq % 32 == 31 {
            // Keep within what the host's socket and QEMU's queue hold while the guest catches up.
            std::thread::sleep(Duration::from_millis(2));
        }
        if seq == count / 2 {
            for _ in 0..oversize {
                let mut big = vec![0u8; 9014];
                big[0..6].copy_from_slice(&nic.mac);
                big[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x98]);
                big[12..14].copy_from_slice(&[0x88, 0xb5]);
                lab.wire(index).send(&big).unwrap();
            }
        }
    }
    app.wait_for_stdout(&format!("RX-packets: {count} "), Duration::from_secs(60)).unwrap();
    app.signal(SIGINT).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let res = result(&out);
    let p = &res["ports"][0];
    assert_eq!(num(p, "rx_packets"), u64::from(count), "{p}");
    let ps = &p["port_stats"];
    assert_eq!(num(ps, "ipackets"), u64::from(count), "{p}");
    assert_eq!(num(ps, "ierrors"), u64::from(oversize), "jumbo frames over several buffers are counted: {p}");
    assert_eq!(num(ps, "rx_nombuf"), 0, "{p}");
    assert!(out.stderr_str().contains(&format!("IOVA mode {iova},")), "IOVA as {iova}: {}", out.stderr_str());
    eprintln!("{} rxonly: {count} frames received, {oversize} jumbo frames dropped and counted", nic.model);
}

/// Probe as l2fwd reports it (MACs in DPDK's upper case): each port's MAC is the one QEMU was
/// given (read from the device config), and the link is up (the config's status field).
fn link_and_mac(lab: &Lab, a: usize, b: usize, eal: &[&str]) {
    let (na, nb) = (&lab.nics()[a], &lab.nics()[b]);
    let args = argv("l2fwd", &[&na.pci_address, &nb.pci_address], eal, &["-p", "3"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Port 1 Link", Duration::from_secs(60)).unwrap();
    app.signal(SIGINT).unwrap();
    let out = app.wait(RUN_TIMEOUT).unwrap();
    let stdout = out.stdout_str();
    assert!(out.status.success(), "l2fwd: {}\n{stdout}\n{}", out.status, out.stderr_str());
    for (p, nic) in [na, nb].into_iter().enumerate() {
        let mac = burst_lab::format_mac(&nic.mac).to_uppercase();
        assert!(stdout.contains(&format!("Port {p}, MAC address: {mac}")), "{stdout}");
        assert!(stdout.contains(&format!("Port {p} Link up")), "{stdout}");
    }
}

/// RX and TX together: pktgen io-forwards between NICs `a` and `b`; `count` numbered frames
/// sent by the host on each wire come out of the other one, all of them, intact and in order.
fn io_forward(lab: &Lab, a: usize, b: usize, count: u32, eal: &[&str]) {
    for i in [a, b] {
        lab.wire(i).drain().unwrap();
    }
    let (na, nb) = (&lab.nics()[a], &lab.nics()[b]);
    let args = argv("pktgen", &[&na.pci_address, &nb.pci_address], eal, &["--forward-mode=io"]);
    let mut app = lab.spawn(&args).unwrap();
    app.wait_for_stdout("Forwarding", Duration::from_secs(60)).unwrap();
    for (from, to) in [(a, b), (b, a)] {
        let dst = lab.nics()[from].mac;
        // In windows smaller than the TX ring (256 in QEMU), each waited for: pktgen drops what
        // a full TX ring refuses, and QEMU empties it from its main loop, which a loaded host
        // (two labs at once under TCG) can starve for longer than the ring lasts.
        for start in (0..count).step_by(WINDOW as usize) {
            let end = (start + WINDOW).min(count);
            for seq in start..end {
                let len = 60 + (seq as usize * 131) % (1514 - 60 + 1);
                lab.wire(from).send(&TestFrame::build(dst, [0x02, 0, 0, 0, 0, from as u8], seq, len)).unwrap();
                if seq % 32 == 31 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let got = lab.wire(to).recv_test_frames((end - start) as usize, Duration::from_secs(30)).unwrap();
            assert!(got.bad.is_empty(), "wire {from} -> {to}: bad frames {:?}", got.bad);
            let seqs: Vec<u32> = got.frames.iter().map(|f| f.seq).collect();
            assert_eq!(seqs, (start..end).collect::<Vec<_>>(), "wire {from} -> {to}: every frame, in order");
            for f in &got.frames {
                assert_eq!(f.len, 60 + (f.seq as usize * 131) % (1514 - 60 + 1));
            }
        }
    }
    app.signal(SIGINT).unwrap();
    let res = result(&app.wait(RUN_TIMEOUT).unwrap());
    for p in 0..2 {
        let ps = &res["ports"][p]["port_stats"];
        assert_eq!(num(ps, "ipackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "opackets"), u64::from(count), "{res}");
        assert_eq!(num(ps, "ierrors") + num(ps, "oerrors") + num(ps, "imissed"), 0, "{res}");
    }
    eprintln!("{} io forwarding: {count} frames each way, intact and in order", na.model);
}

/// A legacy device under vfio-pci with the IOVA mode the vote picks (VA): the probe fails and
/// says what to do, before the device is touched.
fn legacy_refuses_va(lab: &Lab, index: usize) {
    let nic = &lab.nics()[index];
    let args = argv("pktgen", &[&nic.pci_address], &[], &["--forward-mode=txonly", "--run-seconds", "1"]);
    let out = lab.run(&args, RUN_TIMEOUT).unwrap();
    let stderr = out.stderr_str();
    assert!(!out.status.success(), "a legacy device was driven with IOVA as VA:\n{}", out.stdout_str());
    assert!(
        stderr.contains("bypasses the IOMMU") && stderr.contains("--iova-mode pa"),
        "the refusal says to use --iova-mode pa: {stderr}"
    );
    eprintln!("legacy under vfio-pci, IOVA as VA: refused with advice");
}

#[test]
fn virtio_legacy_and_modern_on_vfio_pci() {
    let nics = [NicModel::VirtioModern, NicModel::VirtioModern, NicModel::VirtioLegacy, NicModel::VirtioLegacy];
    let cfg = LabConfig::with_nics(&nics);
    assert_eq!(cfg.iommu, Iommu::On);
    let lab = boot(cfg);
    bind_all(&lab, "vfio-pci");
    // Modern: through the IOMMU, IOVA as VA.
    txonly(&lab, 0, &[]);
    rxonly(&lab, 0, 1000, 3, "va", &[]);
    link_and_mac(&lab, 0, 1, &[]);
    io_forward(&lab, 0, 1, 300, &[]);
    // Legacy: around the IOMMU, so VA is refused and PA works.
    legacy_refuses_va(&lab, 2);
    txonly(&lab, 2, PA);
    rxonly(&lab, 2, 500, 2, "pa", PA);
    link_and_mac(&lab, 2, 3, PA);
    io_forward(&lab, 2, 3, 300, PA);
}

#[test]
fn virtio_legacy_and_modern_on_uio_pci_generic() {
    let nics = [NicModel::VirtioLegacy, NicModel::VirtioLegacy, NicModel::VirtioModern, NicModel::VirtioModern];
    let mut cfg = LabConfig::with_nics(&nics);
    cfg.iommu = Iommu::Pt;
    let lab = boot(cfg);
    bind_all(&lab, "uio_pci_generic");
    txonly(&lab, 0, &[]);
    rxonly(&lab, 0, 1000, 3, "pa", &[]);
    link_and_mac(&lab, 0, 1, &[]);
    io_forward(&lab, 0, 1, 300, &[]);
    // Modern under uio: the device offers ACCESS_PLATFORM, the IOMMU passes physical addresses.
    txonly(&lab, 2, &[]);
    rxonly(&lab, 2, 500, 2, "pa", &[]);
    io_forward(&lab, 2, 3, 300, &[]);
}
