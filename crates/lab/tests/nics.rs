//! The lab's NICs, seen from inside the guest: every model is where it should be, with the
//! right IDs, can be bound to the user-space drivers, and its wire carries frames both ways.
//! Each test boots QEMU (TCG unless KVM really works); `cargo xtask setup` must have run.

use std::time::{Duration, Instant};

use burst_lab::{nic_pci_address, Iommu, Lab, LabConfig, NicModel};

fn boot(nics: &[NicModel], iommu: Iommu) -> Lab {
    let mut cfg = LabConfig::with_nics(nics);
    cfg.iommu = iommu;
    Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)")
}

/// Binds `addr` to `driver` through driver_override; returns the driver it ends up with.
fn bind(lab: &Lab, addr: &str, driver: &str) -> String {
    lab.bind(addr, driver).unwrap_or_else(|e| panic!("binding {addr} to {driver}: {e}"))
}

fn ids_and_kernel_drivers_are_right(lab: &Lab) {
    for (i, nic) in lab.nics().iter().enumerate() {
        let addr = nic_pci_address(i);
        assert_eq!(nic.pci_address, addr);
        let out = lab
            .sh_ok(&format!("d=/sys/bus/pci/devices/{addr}; cat $d/vendor $d/device; basename $(readlink $d/driver)"))
            .unwrap();
        let (vendor, device) = nic.model.pci_id();
        let want = format!("{vendor:#06x}\n{device:#06x}\n{}\n", nic.model.kernel_driver());
        assert_eq!(out, want, "{} at {addr}", nic.model);
    }
}

#[test]
fn every_model_binds_to_vfio_pci_under_the_iommu() {
    let lab = boot(&NicModel::ALL, Iommu::On);
    ids_and_kernel_drivers_are_right(&lab);
    for nic in lab.nics() {
        let addr = &nic.pci_address;
        assert_eq!(bind(&lab, addr, "vfio-pci"), "vfio-pci", "{}", nic.model);
        // The device's IOMMU group has its VFIO character device: user space can open it.
        let group = lab
            .sh_ok(&format!(
                "g=$(basename $(readlink /sys/bus/pci/devices/{addr}/iommu_group)); test -c /dev/vfio/$g && echo $g"
            ))
            .unwrap_or_else(|e| panic!("{}: no VFIO group device: {e}", nic.model));
        assert!(group.trim().parse::<u32>().is_ok(), "{}: group `{group}`", nic.model);
    }
}

#[test]
fn every_model_binds_to_uio_pci_generic_in_passthrough_mode() {
    let lab = boot(&NicModel::ALL, Iommu::Pt);
    ids_and_kernel_drivers_are_right(&lab);
    // Pass-through really is on: the kernel put the devices in identity domains.
    let domain = lab.sh_ok("cat /sys/bus/pci/devices/0000:00:02.0/iommu_group/type").unwrap();
    assert_eq!(domain.trim(), "identity");
    for nic in lab.nics() {
        let addr = &nic.pci_address;
        assert_eq!(bind(&lab, addr, "uio_pci_generic"), "uio_pci_generic", "{}", nic.model);
        let uio = lab
            .sh_ok(&format!("u=$(ls /sys/bus/pci/devices/{addr}/uio); test -c /dev/$u && echo $u"))
            .unwrap_or_else(|e| panic!("{}: no UIO device: {e}", nic.model));
        assert!(uio.trim().starts_with("uio"), "{}: `{uio}`", nic.model);
    }
}

#[test]
fn without_an_iommu_there_are_no_groups_and_uio_still_binds() {
    let lab = boot(&[NicModel::E1000], Iommu::Off);
    ids_and_kernel_drivers_are_right(&lab);
    let groups = lab.sh_ok("ls /sys/kernel/iommu_groups | wc -l").unwrap();
    assert_eq!(groups.trim(), "0");
    assert_eq!(bind(&lab, "0000:00:02.0", "uio_pci_generic"), "uio_pci_generic");
}

fn rx_packets(lab: &Lab, iface: &str) -> u64 {
    lab.sh_ok(&format!("cat /sys/class/net/{iface}/statistics/rx_packets")).unwrap().trim().parse().unwrap()
}

/// Brings `iface` up and waits for its carrier.
fn up(lab: &Lab, iface: &str) {
    lab.sh_ok(&format!(
        "ip link set {iface} up
         for i in $(seq 100); do [ \"$(cat /sys/class/net/{iface}/carrier 2>/dev/null)\" = 1 ] && exit 0; sleep 0.1; done
         echo no carrier on {iface} >&2; exit 1"
    ))
    .unwrap();
}

#[test]
fn wires_carry_frames_both_ways_with_the_kernel_drivers() {
    const COUNT: u32 = 200;
    let lab = boot(&NicModel::ALL, Iommu::On);
    for (i, nic) in lab.nics().iter().enumerate() {
        let iface = lab.nic_iface(i).unwrap();
        up(&lab, &iface);
        let wire = lab.wire(i);

        // Host to guest: the interface counts exactly what was sent.
        let before = rx_packets(&lab, &iface);
        for seq in 0..COUNT {
            let len = 60 + (seq as usize * 7) % (1514 - 60 + 1);
            wire.send(&burst_lab::frames::TestFrame::build(nic.mac, [2, 0, 0, 0, 0, 9], seq, len)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut now = rx_packets(&lab, &iface);
        while now < before + u64::from(COUNT) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            now = rx_packets(&lab, &iface);
        }
        std::thread::sleep(Duration::from_millis(500));
        now = rx_packets(&lab, &iface);
        assert_eq!(now - before, u64::from(COUNT), "{} ({iface}) rx_packets", nic.model);

        // Guest to host: every frame arrives once, in order, intact, from the NIC's MAC.
        wire.drain().unwrap();
        for len in [60usize, 1514] {
            lab.sh_ok(&format!("burst-lab-agent send-frames {iface} {COUNT} {len}")).unwrap();
            let got = wire.recv_test_frames(COUNT as usize, Duration::from_secs(20)).unwrap();
            assert!(got.bad.is_empty(), "{}: damaged frames {:?}", nic.model, got.bad);
            let seqs: Vec<u32> = got.frames.iter().map(|f| f.seq).collect();
            assert_eq!(seqs, (0..COUNT).collect::<Vec<_>>(), "{} len {len}", nic.model);
            assert!(got.frames.iter().all(|f| f.src == nic.mac && f.dst == [0xff; 6] && f.len == len));
        }
    }
}

#[test]
fn two_labs_run_side_by_side_on_separate_wires() {
    let a = boot(&[NicModel::E1000], Iommu::On);
    let b = boot(&[NicModel::E1000], Iommu::On);
    assert_ne!(a.wire(0).host_port(), b.wire(0).host_port());
    for lab in [&a, &b] {
        let iface = lab.nic_iface(0).unwrap();
        up(lab, &iface);
        lab.wire(0).drain().unwrap();
    }
    a.sh_ok("burst-lab-agent send-frames eth0 50 100").unwrap();
    let got_a = a.wire(0).recv_test_frames(50, Duration::from_secs(10)).unwrap();
    assert_eq!(got_a.frames.len(), 50);
    let got_b = b.wire(0).recv_test_frames(1, Duration::from_millis(500)).unwrap();
    assert!(got_b.frames.is_empty(), "lab B saw lab A's frames");
}
