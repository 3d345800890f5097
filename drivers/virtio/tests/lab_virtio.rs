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
//! leak check. The checks themselves are the lab's, shared by every driver ([`burst_lab::pmd`]).

use burst_lab::pmd::{self, RxOnly};
use burst_lab::{Iommu, Lab, LabConfig, NicModel};

/// EAL options for a device whose DMA bypasses the IOMMU while it is bound to vfio-pci.
const PA: &[&str] = &["--iova-mode", "pa"];
/// Frames in flight at most in io forwarding: fewer than the TX ring's 256 descriptors in QEMU,
/// which QEMU empties from its main loop.
const WINDOW: u32 = 128;
/// The link as the device config's status field reports it: up, no speed.
const LINK: &str = "up";

/// RX: [`pmd::rxonly`] with jumbo frames of 9014 bytes as the oversize ones: with 2 KiB buffers
/// those span several mergeable buffers, which the driver drops and counts in ierrors.
fn rxonly(lab: &Lab, index: usize, count: u32, oversize: u32, iova: &str, eal: &[&str]) {
    let spec = RxOnly { count, oversize, oversize_len: 9014, iova, log_level: "info" };
    pmd::rxonly(lab, index, &spec, eal);
}

/// A legacy device under vfio-pci with the IOVA mode the vote picks (VA): the probe fails and
/// says what to do, before the device is touched.
fn legacy_refuses_va(lab: &Lab, index: usize) {
    let nic = &lab.nics()[index];
    let args = pmd::argv("pktgen", &[&nic.pci_address], &[], &["--forward-mode=txonly", "--run-seconds", "1"]);
    let out = lab.run(&args, pmd::RUN_TIMEOUT).unwrap();
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
    let lab = pmd::boot(cfg);
    pmd::bind_all(&lab, "vfio-pci");
    // Modern: through the IOMMU, IOVA as VA.
    pmd::txonly(&lab, 0, &[]);
    rxonly(&lab, 0, 1000, 3, "va", &[]);
    pmd::link_and_mac(&lab, 0, 1, LINK, &[]);
    pmd::io_forward(&lab, 0, 1, 300, WINDOW, &[]);
    // Legacy: around the IOMMU, so VA is refused and PA works.
    legacy_refuses_va(&lab, 2);
    pmd::txonly(&lab, 2, PA);
    rxonly(&lab, 2, 500, 2, "pa", PA);
    pmd::link_and_mac(&lab, 2, 3, LINK, PA);
    pmd::io_forward(&lab, 2, 3, 300, WINDOW, PA);
}

#[test]
fn virtio_legacy_and_modern_on_uio_pci_generic() {
    let nics = [NicModel::VirtioLegacy, NicModel::VirtioLegacy, NicModel::VirtioModern, NicModel::VirtioModern];
    let mut cfg = LabConfig::with_nics(&nics);
    cfg.iommu = Iommu::Pt;
    let lab = pmd::boot(cfg);
    pmd::bind_all(&lab, "uio_pci_generic");
    pmd::txonly(&lab, 0, &[]);
    rxonly(&lab, 0, 1000, 3, "pa", &[]);
    pmd::link_and_mac(&lab, 0, 1, LINK, &[]);
    pmd::io_forward(&lab, 0, 1, 300, WINDOW, &[]);
    // Modern under uio: the device offers ACCESS_PLATFORM, the IOMMU passes physical addresses.
    pmd::txonly(&lab, 2, &[]);
    rxonly(&lab, 2, 500, 2, "pa", &[]);
    pmd::link_and_mac(&lab, 2, 3, LINK, &[]);
    pmd::io_forward(&lab, 2, 3, 300, WINDOW, &[]);
}
