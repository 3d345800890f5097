//! The QEMU command line of a lab guest.

use std::os::fd::RawFd;
use std::path::Path;

use crate::agent::CONTROL_PORT;
use crate::config::{format_mac, nic_mac, Iommu, LabConfig, CONTROL_SLOT, FIRST_NIC_SLOT};

/// Resolved accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    Kvm,
    Tcg,
}

/// File descriptors QEMU inherits.
pub struct InheritedFds {
    /// The initramfs (a memfd).
    pub initrd: RawFd,
    /// QEMU's end of the control channel (a connected unix stream socket).
    pub control: RawFd,
    /// QEMU's end of each NIC's wire (connected UDP sockets), in NIC order.
    pub wires: Vec<RawFd>,
}

/// The kernel command line.
pub fn kernel_cmdline(cfg: &LabConfig) -> String {
    let mut args = vec![
        "console=ttyS0".to_string(),
        // Reboot at once on a panic; with -no-reboot QEMU then exits, and the host notices.
        "panic=-1".into(),
        "oops=panic".into(),
        "loglevel=4".into(),
        "rdinit=/init".into(),
        "mitigations=off".into(),
        "8250.nr_uarts=1".into(),
        "hugepagesz=2M".into(),
        format!("hugepages={}", cfg.hugepages),
    ];
    match cfg.iommu {
        Iommu::On => args.push("intel_iommu=on".into()),
        Iommu::Pt => args.extend(["intel_iommu=on".into(), "iommu=pt".into()]),
        Iommu::Off => args.push("intel_iommu=off".into()),
    }
    args.extend(cfg.kernel_args.iter().cloned());
    args.join(" ")
}

/// Every argument after the program name.
pub fn args(cfg: &LabConfig, accel: Accelerator, kernel: &Path, fds: &InheritedFds) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-monitor", "none"]);
    match accel {
        // The emulated IOMMU's interrupt remapping needs the split irqchip under KVM.
        Accelerator::Kvm => push(&["-machine", "q35,kernel-irqchip=split", "-accel", "kvm", "-cpu", "host"]),
        Accelerator::Tcg => push(&["-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max"]),
    }
    let smp = cfg.cpus.to_string();
    let mem = format!("{}M", cfg.mem_mib);
    let initrd = format!("/dev/fd/{}", fds.initrd);
    let cmdline = kernel_cmdline(cfg);
    push(&["-smp", &smp, "-m", &mem, "-serial", "stdio"]);
    push(&["-kernel", &kernel.to_string_lossy(), "-initrd", &initrd, "-append", &cmdline]);
    if cfg.iommu != Iommu::Off {
        // Must come before the devices it translates for.
        push(&["-device", "intel-iommu,intremap=on"]);
    }
    let ctl = format!("socket,id=ctl,fd={}", fds.control);
    let ctl_bus = format!("virtio-serial-pci,id=ctlbus,addr={CONTROL_SLOT:#04x}");
    let ctl_port = format!("virtserialport,bus=ctlbus.0,chardev=ctl,name={CONTROL_PORT}");
    push(&["-chardev", &ctl, "-device", &ctl_bus, "-device", &ctl_port]);
    for (i, (model, fd)) in cfg.nics.iter().zip(&fds.wires).enumerate() {
        let netdev = format!("dgram,id=net{i},local.type=fd,local.str={fd}");
        // romfile= : no option ROM; nothing boots from the network and it saves time.
        let device = format!(
            "{},netdev=net{i},mac={},addr={:#04x},romfile=",
            model.qemu_device(cfg.iommu),
            format_mac(&nic_mac(i)),
            usize::from(FIRST_NIC_SLOT) + i
        );
        push(&["-netdev", &netdev, "-device", &device]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NicModel;

    fn fds(n: usize) -> InheritedFds {
        InheritedFds { initrd: 10, control: 11, wires: (0..n).map(|i| 20 + i as RawFd).collect() }
    }

    #[test]
    fn nics_get_their_slot_mac_and_wire() {
        let cfg = LabConfig::with_nics(&[NicModel::E1000, NicModel::VirtioModern]);
        let a = args(&cfg, Accelerator::Tcg, Path::new("/k"), &fds(2)).join(" ");
        assert!(a.contains("-netdev dgram,id=net0,local.type=fd,local.str=20 -device e1000,netdev=net0,mac=52:54:00:b5:00:00,addr=0x02,romfile="), "{a}");
        assert!(a.contains("iommu_platform=on,netdev=net1,mac=52:54:00:b5:00:01,addr=0x03"), "{a}");
        assert!(a.contains("-initrd /dev/fd/10"));
        assert!(a.contains("socket,id=ctl,fd=11"));
        // The IOMMU comes before any device that uses it.
        assert!(a.find("intel-iommu").unwrap() < a.find("virtio-serial-pci").unwrap());
    }

    #[test]
    fn iommu_modes_shape_the_machine() {
        let mut cfg = LabConfig::with_nics(&[NicModel::VirtioModern]);
        cfg.iommu = Iommu::Pt;
        assert!(kernel_cmdline(&cfg).contains("intel_iommu=on iommu=pt"));
        cfg.iommu = Iommu::Off;
        let a = args(&cfg, Accelerator::Kvm, Path::new("/k"), &fds(1)).join(" ");
        assert!(!a.contains("intel-iommu"));
        assert!(a.contains("iommu_platform=off"));
        assert!(a.contains("kernel-irqchip=split"));
    }
}
