//! The e1000 driver in the lab: QEMU's 8254x models bound to vfio-pci (IOMMU translating, IOVA
//! as VA) and to uio_pci_generic (IOMMU pass-through, IOVA as PA), driven by the workspace's own
//! `pktgen` in the guest while the host sends and receives frames on the NICs' wires.
//!
//! Two boots (each ~5 s under TCG). `cargo xtask setup` must have run. pktgen exits 0 only when
//! every buffer is back in its pool after the ports closed, so each successful run is also a
//! leak check. The checks themselves are the lab's, shared by every driver ([`burst_lab::pmd`]).

use burst_lab::pmd::{self, RxOnly};
use burst_lab::{Iommu, Lab, LabConfig, NicModel};

/// QEMU's copper PHY after autonegotiation.
const LINK: &str = "up at 1 Gbps FDX Autoneg";

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

/// RX: [`pmd::rxonly`] on NIC 0 with frames of 1600 bytes as the oversize ones (over the 1522 a
/// port with MTU 1500 takes), and the driver's closing line counting the good frames' bytes.
fn rxonly(lab: &Lab, count: u32, oversize: u32, iova: &str) {
    let spec = RxOnly { count, oversize, oversize_len: 1600, iova, log_level: "debug" };
    let out = pmd::rxonly(lab, 0, &spec, &[]);
    let bytes: u64 = (0..count).map(|seq| pmd::rxonly_frame_len(seq) as u64).sum();
    let closing = closing_counters(&out.stderr_str(), &lab.nics()[0].pci_address);
    assert_eq!(counter(&closing, "ibytes"), bytes, "ibytes are the frames' bytes without CRC: {closing:?}");
    eprintln!("rxonly: {bytes} bytes received; {closing:?}");
}

#[test]
fn e1000_models_on_vfio_pci() {
    let cfg =
        LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000, NicModel::E1000_82545em, NicModel::E1000_82544gc]);
    assert_eq!(cfg.iommu, Iommu::On);
    let lab = pmd::boot(cfg);
    pmd::bind_all(&lab, "vfio-pci");
    for index in [0, 2, 3] {
        pmd::txonly(&lab, index, &[]);
    }
    rxonly(&lab, 1000, 5, "va");
    pmd::link_and_mac(&lab, 0, 1, LINK, &[]);
    // All at once: QEMU's e1000 transmits when the guest writes TDT, not from its main loop.
    pmd::io_forward(&lab, 0, 1, 500, 500, &[]);
}

#[test]
fn e1000_on_uio_pci_generic() {
    let mut cfg = LabConfig::with_nics(&[NicModel::E1000, NicModel::E1000]);
    cfg.iommu = Iommu::Pt;
    let lab = pmd::boot(cfg);
    pmd::bind_all(&lab, "uio_pci_generic");
    pmd::txonly(&lab, 0, &[]);
    rxonly(&lab, 500, 2, "pa");
    pmd::io_forward(&lab, 0, 1, 300, 300, &[]);
}
