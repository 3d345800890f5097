//! `PciDevice` on a real kernel, in the lab, through the guest tool `pci-check`: BARs (memory
//! and I/O-port), config space and virtio capabilities, interrupts, DMA mapping and real DMA,
//! IOMMU-group viability, the IOVA-mode vote, for e1000 and both virtio models, on vfio-pci
//! (IOMMU translating) and on uio_pci_generic (IOMMU pass-through).
//!
//! Three boots, several NICs each (a boot is ~5 s under TCG). Binding is done with the shell
//! (driver_override), as crates/lab/tests/nics.rs does. `cargo xtask setup` must have run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use burst_lab::{Iommu, Lab, LabConfig, NicModel, Output};

fn boot(cfg: LabConfig) -> Lab {
    let start = Instant::now();
    let (nics, iommu) = (cfg.nics.clone(), cfg.iommu);
    let lab = Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)");
    eprintln!("lab with {nics:?}, IOMMU {iommu:?}: up in {:.1} s", start.elapsed().as_secs_f64());
    lab
}

/// Binds `addr` to `driver` through driver_override; returns the driver it ends up with.
fn bind(lab: &Lab, addr: &str, driver: &str) -> String {
    lab.bind(addr, driver).unwrap_or_else(|e| panic!("binding {addr} to {driver}: {e}"))
}

fn pci_check(lab: &Lab, args: &[&str]) -> Output {
    let argv: Vec<&str> = std::iter::once("pci-check").chain(args.iter().copied()).collect();
    lab.run(&argv, Duration::from_secs(60)).unwrap_or_else(|e| panic!("pci-check {args:?}: {e}"))
}

/// Runs pci-check, which must succeed; its `key=value` lines.
fn check(lab: &Lab, args: &[&str]) -> HashMap<String, String> {
    let out = pci_check(lab, args);
    assert!(out.status.success(), "pci-check {args:?}: {}: {}{}", out.status, out.stdout_str(), out.stderr_str());
    out.stdout_str().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Runs pci-check, which must fail with exit status 1 and one `pci-check: ...` line; the line.
fn refused(lab: &Lab, args: &[&str]) -> String {
    let out = pci_check(lab, args);
    let err = out.stderr_str();
    assert_eq!(out.status.shell_code(), 1, "pci-check {args:?} should fail: {}{err}", out.stdout_str());
    assert!(err.starts_with("pci-check: ") && err.lines().count() == 1, "{err:?}");
    err
}

fn mac_text(mac: &[u8; 6]) -> String {
    burst_lab::format_mac(mac)
}

fn model_name(model: NicModel) -> &'static str {
    match model {
        NicModel::VirtioLegacy => "virtio-legacy",
        NicModel::VirtioModern => "virtio-modern",
        _ => "e1000",
    }
}

/// Every NIC's MAC, read from its registers, is the one QEMU was given; a writable register
/// reads back what was written: e1000 RDBAL (8254x SDM 13.4.27); legacy virtio queue_select
/// (I/O BAR0 offset 14, virtio 1.1 4.1.4.8); modern virtio common-cfg queue_select (offset 0x16
/// of the common configuration structure, virtio 1.1 4.1.4.3).
fn registers_read_and_write(lab: &Lab, nics: usize) {
    for nic in &lab.nics()[..nics] {
        let addr = nic.pci_address.as_str();
        let got = check(lab, &["mac", addr, model_name(nic.model)]);
        assert_eq!(got["mac"], mac_text(&nic.mac), "{} at {addr}", nic.model);
        let info = check(lab, &["info", addr]);
        let (vendor, device) = nic.model.pci_id();
        assert_eq!(
            (info["vendor"].as_str(), info["device"].as_str()),
            (&*format!("{vendor:#06x}"), &*format!("{device:#06x}"))
        );
        let (bar, offset, values, width) = match nic.model {
            NicModel::VirtioLegacy => {
                // BAR0 is an I/O-port BAR: reached through the file, not mapped.
                assert_eq!(info["bar0"], "file:0x20", "{info:?}");
                assert_eq!(got["config_offset"], "20", "MSI-X is off, so the config is at 20");
                ("0".to_string(), "14".to_string(), ["1", "0"], "16")
            }
            NicModel::VirtioModern => {
                assert_eq!(got["device_cfg_bar"], "4", "QEMU puts the virtio structures in BAR4");
                assert!(info["bar4"].starts_with("mmio:"), "{info:?}");
                let common = u64::from_str_radix(got["common_cfg_offset"].trim_start_matches("0x"), 16).unwrap();
                (got["common_cfg_bar"].clone(), format!("{:#x}", common + 0x16), ["1", "0"], "16")
            }
            _ => {
                assert_eq!(info["bar0"], "mmio:0x20000", "{info:?}");
                ("0".to_string(), "0x2800".to_string(), ["0x12345670", "0xabcdef00"], "32")
            }
        };
        // Two different values, so a register stuck at one of them cannot pass.
        for value in values {
            let wr = check(lab, &["write-read", addr, &bar, &offset, value, width]);
            assert_eq!(wr["read"], wr["wrote"], "{} BAR{bar} {offset}: {wr:?}", nic.model);
        }
    }
}

/// The e1000 raises TXDW when ICS is written with IMS unmasked; the interrupt arrives, nothing
/// more after ICR is read and the line unmasked. Twice, so unmasking really re-arms it.
fn e1000_interrupts(lab: &Lab, addr: &str) {
    for round in 0..2 {
        let irq = check(lab, &["irq", addr]);
        assert_eq!(irq["kind"], "intx");
        assert_eq!(irq["before"], "0", "round {round}: nothing before ICS: {irq:?}");
        assert!(irq["count"].parse::<u64>().unwrap() >= 1, "round {round}: {irq:?}");
        let icr = u32::from_str_radix(irq["icr"].trim_start_matches("0x"), 16).unwrap();
        assert!(icr & 1 != 0, "ICR.TXDW set: {irq:?}");
        assert_eq!(irq["after"], "0", "round {round}: quiet once cleared: {irq:?}");
        eprintln!("{addr} INTx round {round}: {} us from ICS to the wakeup", irq["latency_us"]);
    }
}

/// e1000-tx sends a 60-byte frame by DMA; the host receives it from the NIC's MAC.
fn e1000_sends_by_dma(lab: &Lab, index: usize, extra: &[&str]) -> HashMap<String, String> {
    sends_by_dma(lab, index, "e1000-tx", extra)
}

/// pci-check `command` on NIC `index` (an e1000) sends the 60-byte frame by DMA; the host
/// receives it from the NIC's MAC.
fn sends_by_dma(lab: &Lab, index: usize, command: &str, extra: &[&str]) -> HashMap<String, String> {
    let nic = &lab.nics()[index];
    lab.wire(index).drain().unwrap();
    let mut args = vec![command, nic.pci_address.as_str()];
    args.extend_from_slice(extra);
    let tx = check(lab, &args);
    assert_eq!(tx["dd"], "1", "{tx:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = lab.wire(index).recv(left).unwrap().unwrap_or_else(|| panic!("no frame on the wire: {tx:?}"));
        if frame.len() >= 14 && frame[12..14] == [0x88, 0xb6] {
            assert_eq!(&frame[6..12], &nic.mac, "source MAC");
            assert_eq!(&frame[..6], &[0xff; 6]);
            assert!(frame[14..].starts_with(b"burst pci-check e1000-tx DMA"), "payload {frame:02x?}");
            return tx;
        }
    }
}

#[test]
fn vfio_pci_under_the_iommu() {
    let t = Instant::now();
    // NICs 3 and 4 become 0000:00:10.0 and 0000:00:10.1, one IOMMU group.
    let mut cfg = LabConfig::with_nics(&[
        NicModel::E1000,
        NicModel::VirtioLegacy,
        NicModel::VirtioModern,
        NicModel::E1000,
        NicModel::E1000,
    ]);
    cfg.iommu = Iommu::On;
    cfg.shared_group = true;
    let lab = boot(cfg);
    let (e1000, legacy, modern) = ("0000:00:02.0", "0000:00:03.0", "0000:00:04.0");
    let (shared0, shared1) = ("0000:00:10.0", "0000:00:10.1");
    assert_eq!((lab.nics()[3].pci_address.as_str(), lab.nics()[4].pci_address.as_str()), (shared0, shared1));

    // A device on its kernel driver is refused, with the command that fixes it.
    let err = refused(&lab, &["info", e1000]);
    assert_eq!(
        err.trim(),
        "pci-check: 0000:00:02.0 is bound to e1000, a kernel driver: run `devbind -b vfio-pci 0000:00:02.0` (or uio_pci_generic)"
    );
    // Without the type-1 backend, the container says which module is missing.
    assert_eq!(bind(&lab, e1000, "vfio-pci"), "vfio-pci");
    if lab.sh("grep -q '^vfio_iommu_type1 ' /proc/modules").unwrap().status.success() {
        eprintln!("vfio_iommu_type1 was already loaded");
    } else {
        assert!(refused(&lab, &["info", e1000]).contains("run `modprobe vfio_iommu_type1`"));
    }
    lab.sh_ok("modprobe vfio_iommu_type1").unwrap();
    for addr in [legacy, modern] {
        assert_eq!(bind(&lab, addr, "vfio-pci"), "vfio-pci");
    }

    registers_read_and_write(&lab, 3);

    // The IOMMU: its width from VFIO's IOVA ranges agrees with the Intel MGAW in sysfs.
    let info = check(&lab, &["info", e1000]);
    let cap = lab.sh_ok("cat /sys/bus/pci/devices/0000:00:02.0/iommu/intel-iommu/cap").unwrap();
    let mgaw = ((u64::from_str_radix(cap.trim(), 16).unwrap() >> 16) & 0x3f) + 1;
    assert_eq!(info["iommu_width"], mgaw.to_string(), "{info:?}");
    eprintln!("IOMMU: {} address bits (MGAW), IOVA ranges {}", info["iommu_width"], info["iova_ranges"]);
    assert_eq!(info["iova_modes"], "pa,va");
    assert_eq!((info["intx"].as_str(), info["msi"].as_str()), ("1", "0"), "QEMU's 82540EM has no MSI");

    // Interrupts: e1000 INTx through an eventfd; virtio MSI-X vectors routed; no MSI on e1000.
    e1000_interrupts(&lab, e1000);
    assert!(refused(&lab, &["irq", e1000, "msi"]).contains("has 0 msi vector(s)"));
    let msix = check(&lab, &["irq-enable", modern, "msix", "4"]);
    assert_eq!(msix["enabled"], "4");
    assert!(refused(&lab, &["irq-enable", modern, "msix", "5"]).contains("has 4 msix vector(s), 5 asked for"));

    // DMA mapping of burst-mem segments: --no-huge and hugepages with IOVA as VA, hugepages
    // with IOVA as PA. A second map of the segment is refused (it is in the IOMMU), and after
    // the mapper is removed the same IOVAs take a new mapping (it left the IOMMU).
    for extra in [&[][..], &["--hugepages"], &["--hugepages", "--iova-mode", "pa"]] {
        let mut args = vec!["dma", e1000];
        args.extend_from_slice(extra);
        let dma = check(&lab, &args);
        assert_eq!((dma["remap_refused"].as_str(), dma["unmapped"].as_str()), ("1", "1"), "{dma:?}");
        assert!(dma["remap_error"].contains("File exists"), "{dma:?}");
        match dma["iova_mode"].as_str() {
            "va" => assert_eq!(dma["iova"], dma["va"]),
            _ => assert_ne!(dma["iova"], dma["va"]),
        }
        eprintln!("DMA {extra:?}: va {} iova {}", dma["va"], dma["iova"]);
    }
    // IOVAs the IOMMU cannot translate are refused before the kernel sees them, saying why. The
    // buffer's IOVA is not its address, so --iova-mode=pa is no advice.
    let err = refused(&lab, &["map-at", e1000, "0x1000000000000"]);
    assert!(err.contains("needs 49 address bits but the IOMMU handles 48: the IOVA is not a virtual address"), "{err}");
    assert!(!err.contains("use --iova-mode=pa"), "{err}");
    let err = refused(&lab, &["map-at", e1000, "0xfee00000"]);
    assert!(err.contains("MSI window"), "{err}");
    let err = refused(&lab, &["map-at", e1000, "0x10000000", "0"]);
    assert!(err.contains("IOVA range 0x10000000 (+0x0) is empty (the length is zero)"), "{err}");
    let err = refused(&lab, &["map-at", e1000, "0xffffffffffff0000", "0x20000"]);
    assert!(err.contains("wraps around the end of the 64-bit address space"), "{err}");
    assert_eq!(check(&lab, &["map-at", e1000, "0x7fff00000000"])["unmapped"], "0x7fff00000000");
    // A register offset that overflows is an error line, not a panic (exit status 1, not 134);
    // so is a number too large for its field.
    assert!(refused(&lab, &["read", e1000, "0", "0xffffffffffffffff", "8"]).contains("is outside BAR0"));
    assert!(refused(&lab, &["read", e1000, "0x100", "0"]).contains("BAR 0x100 is out of range"));

    // Real DMA through the IOMMU with IOVA as VA: the e1000 reads a descriptor and a frame and
    // writes the descriptor back. Without the mapping, it faults and sends nothing.
    let tx = e1000_sends_by_dma(&lab, 0, &[]);
    assert_eq!(tx["iova_mode"], "va");

    // The container outlives its devices. An INTx interrupt keeps the device, its group and the
    // IOMMU after the PciDevice is gone (the count says 1, the segment is still mapped); once it
    // goes, the kernel drops the IOMMU with the mappings; reopening the device in the same
    // container maps the memory again (mapping it once more is EEXIST), and the e1000 sends
    // from memory mapped before it was closed.
    let t_reopen = Instant::now();
    let re = sends_by_dma(&lab, 0, "reopen", &[]);
    let counts = ["open_devices", "open_devices_with_irq", "open_devices_closed", "open_devices_reopened"];
    assert_eq!(counts.map(|k| re[k].as_str()), ["1", "1", "0", "1"], "{re:?}");
    assert_eq!((re["mapped_with_irq"].as_str(), re["mapped_after_reopen"].as_str()), ("1", "1"), "{re:?}");
    eprintln!("reopen and DMA from replayed mappings: {} ms", t_reopen.elapsed().as_millis());
    lab.wire(0).drain().unwrap();
    let err = refused(&lab, &["e1000-tx", e1000, "--no-map"]);
    assert!(err.contains("did not write descriptor 0 back"), "{err}");
    assert!(lab.wire(0).recv(Duration::from_millis(300)).unwrap().is_none(), "an unmapped frame went out");
    let dmesg = lab.sh_ok("dmesg | grep DMAR | tail -3").unwrap();
    assert!(dmesg.contains("[00:02.0] fault addr"), "the IOMMU blocked the device: {dmesg}");

    // The vote: every device on vfio-pci behind a 48-bit IOMMU: VA.
    let vote = check(&lab, &["vote", e1000, legacy, modern]);
    assert_eq!(vote["iova_mode"], "va");
    // No device: an IOMMU is in use, so VA (DPDK's rule), with or without physical addresses.
    for extra in [&[][..], &["--hugepages"]] {
        let vote = check(&lab, &[&["vote"][..], extra].concat());
        assert_eq!((vote["iommu"].as_str(), vote["iova_mode"].as_str()), ("1", "va"), "{extra:?}: {vote:?}");
    }
    // No reset method on these emulated devices: said plainly.
    assert!(refused(&lab, &["reset", e1000]).contains("no reset method"));

    // Group viability: 00:10.0 on vfio-pci, its group-mate 00:10.1 still on e1000.
    assert_eq!(bind(&lab, shared0, "vfio-pci"), "vfio-pci");
    let group = group_of(&lab, shared0);
    let err = refused(&lab, &["group", shared0]);
    assert_eq!(
        err.trim(),
        format!(
            "pci-check: IOMMU group {group} of 0000:00:10.0 is not viable: 0000:00:10.1 in the same group is bound \
             to e1000; VFIO needs every device of a group on vfio-pci (or pci-stub, pcieport) or on no driver: \
             bind it with `devbind -b vfio-pci 0000:00:10.1` or unbind it (`devbind -u 0000:00:10.1`)"
        )
    );
    // Unbound, the group-mate no longer stands in the way.
    lab.sh_ok(&format!("echo {shared1} > /sys/bus/pci/devices/{shared1}/driver/unbind")).unwrap();
    assert_eq!(check(&lab, &["group", shared0])["group"], group);
    assert_eq!(check(&lab, &["mac", shared0, "e1000"])["mac"], mac_text(&lab.nics()[3].mac));
    // Both functions on vfio-pci: one container opens both; a container each is EBUSY on the
    // group file, and the error says to share the first device's container.
    assert_eq!(bind(&lab, shared1, "vfio-pci"), "vfio-pci");
    assert_eq!(check(&lab, &["vote", shared0, shared1])["iova_mode"], "va");
    let err = refused(&lab, &["vote", "--own-containers", shared0, shared1]);
    assert!(err.contains("cannot open 0000:00:10.1 through VFIO"), "{err}");
    assert!(err.contains("through another container") && err.contains("the same `Arc<Container>`"), "{err}");
    eprintln!("vfio_pci_under_the_iommu: {:.1} s", t.elapsed().as_secs_f64());
}

/// Without an IOMMU the vote with no device follows DPDK: VA without physical addresses (no
/// hugepages), PA with them.
#[test]
fn the_vote_without_devices_follows_the_machine() {
    let t = Instant::now();
    let mut cfg = LabConfig::with_nics(&[NicModel::E1000]);
    cfg.iommu = Iommu::Off;
    let lab = boot(cfg);
    let vote = check(&lab, &["vote"]);
    assert_eq!((vote["iommu"].as_str(), vote["phys_addrs"].as_str(), vote["iova_mode"].as_str()), ("0", "0", "va"));
    let vote = check(&lab, &["vote", "--hugepages"]);
    assert_eq!((vote["iommu"].as_str(), vote["phys_addrs"].as_str(), vote["iova_mode"].as_str()), ("0", "1", "pa"));
    eprintln!("the_vote_without_devices_follows_the_machine: {:.1} s", t.elapsed().as_secs_f64());
}

/// An IOMMU of 39 address bits cannot translate user-space virtual addresses (47 bits): IOVA as
/// VA is refused before the kernel sees it, saying what to do; the vote picks PA, and PA works.
#[test]
fn a_narrow_iommu_forces_iova_as_pa() {
    let t = Instant::now();
    let mut cfg = LabConfig::with_nics(&[NicModel::E1000]);
    cfg.iommu_aw_bits = Some(39);
    let lab = boot(cfg);
    let e1000 = "0000:00:02.0";
    assert_eq!(bind(&lab, e1000, "vfio-pci"), "vfio-pci");
    lab.sh_ok("modprobe vfio_iommu_type1").unwrap();
    let err = refused(&lab, &["dma", e1000, "--hugepages"]);
    assert!(err.contains("needs 47 address bits but the IOMMU handles 39: use --iova-mode=pa"), "{err}");
    let vote = check(&lab, &["vote", e1000]);
    assert!(vote["device"].ends_with("allowed=pa iommu_width=39"), "{vote:?}");
    assert_eq!(vote["iova_mode"], "pa");
    let dma = check(&lab, &["dma", e1000, "--hugepages", "--iova-mode", "pa"]);
    assert_eq!((dma["remap_refused"].as_str(), dma["unmapped"].as_str()), ("1", "1"), "{dma:?}");
    eprintln!("a_narrow_iommu_forces_iova_as_pa: {:.1} s", t.elapsed().as_secs_f64());
}

fn group_of(lab: &Lab, addr: &str) -> String {
    lab.sh_ok(&format!("basename $(readlink /sys/bus/pci/devices/{addr}/iommu_group)")).unwrap().trim().to_string()
}

#[test]
fn uio_pci_generic_in_passthrough_mode() {
    let t = Instant::now();
    let mut cfg = LabConfig::with_nics(&[NicModel::E1000, NicModel::VirtioLegacy, NicModel::VirtioModern]);
    cfg.iommu = Iommu::Pt;
    let lab = boot(cfg);
    let (e1000, legacy, modern) = ("0000:00:02.0", "0000:00:03.0", "0000:00:04.0");
    for addr in [e1000, legacy, modern] {
        assert_eq!(bind(&lab, addr, "uio_pci_generic"), "uio_pci_generic");
    }

    registers_read_and_write(&lab, 3);
    let info = check(&lab, &["info", e1000]);
    assert_eq!((info["binding"].as_str(), info["iova_modes"].as_str()), ("uio_pci_generic", "pa"));
    assert!(info["uio"].starts_with("uio"), "{info:?}");

    // INTx through /dev/uioN: the kernel's count goes up by one per interrupt.
    let uio = &info["uio"];
    let count =
        |lab: &Lab| lab.sh_ok(&format!("cat /sys/class/uio/{uio}/event")).unwrap().trim().parse::<u64>().unwrap();
    let before = count(&lab);
    e1000_interrupts(&lab, e1000);
    assert_eq!(count(&lab), before + 2);
    let err = refused(&lab, &["irq-enable", e1000, "msix", "1"]);
    assert!(err.contains("uio_pci_generic only does INTx; bind the device to vfio-pci"), "{err}");

    // Real DMA with IOVA as PA (hugepages, physical addresses from pagemap).
    let tx = e1000_sends_by_dma(&lab, 0, &["--hugepages"]);
    assert_eq!(tx["iova_mode"], "pa");
    assert!(refused(&lab, &["dma", e1000]).contains("bound to uio_pci_generic: DMA mapping needs vfio-pci"));

    // The vote: UIO allows PA only; --iova-mode=va is refused naming the device.
    assert_eq!(check(&lab, &["vote", e1000, legacy, modern])["iova_mode"], "pa");
    let err = refused(&lab, &["vote", "--iova-mode", "va", e1000]);
    assert_eq!(
        err.trim(),
        "pci-check: --iova-mode=va but 0000:00:02.0 is bound to uio_pci_generic, which only does PA: \
         bind it to vfio-pci or drop --iova-mode"
    );
    // Mixed: one device on vfio-pci (which works in pass-through mode too), one on UIO: PA.
    lab.sh_ok("modprobe vfio_iommu_type1").unwrap();
    assert_eq!(bind(&lab, modern, "vfio-pci"), "vfio-pci");
    let vote = check(&lab, &["vote", modern, e1000]);
    assert_eq!(vote["iova_mode"], "pa");
    assert!(
        refused(&lab, &["vote", "--iova-mode=va", modern, legacy]).contains("0000:00:03.0 is bound to uio_pci_generic")
    );
    assert_eq!(check(&lab, &["mac", modern, "virtio-modern"])["mac"], mac_text(&lab.nics()[2].mac));
    eprintln!("uio_pci_generic_in_passthrough_mode: {:.1} s", t.elapsed().as_secs_f64());
}
