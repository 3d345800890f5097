//! The QEMU command line of a lab guest, and the choice between KVM and TCG.

use std::io::Read;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::agent::CONTROL_PORT;
use crate::config::{format_mac, nic_mac, Accel, Iommu, LabConfig, CONTROL_SLOT};
use crate::paths::{lab_dir, KernelCache};
use crate::LabError;

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
        // Under TCG on a loaded host the boot-time check that the timer interrupt arrives
        // through the (interrupt-remapped) IO-APIC can time out and panic the guest ("timer
        // doesn't work through Interrupt-remapped IO-APIC"); the timer works, the check is slow.
        "no_timer_check".into(),
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
        let iommu = match cfg.iommu_aw_bits {
            Some(bits) => format!("intel-iommu,intremap=on,aw-bits={bits}"),
            None => "intel-iommu,intremap=on".to_string(),
        };
        push(&["-device", &iommu]);
    }
    let ctl = format!("socket,id=ctl,fd={}", fds.control);
    let ctl_bus = format!("virtio-serial-pci,id=ctlbus,addr={CONTROL_SLOT:#04x}");
    let ctl_port = format!("virtserialport,bus=ctlbus.0,chardev=ctl,name={CONTROL_PORT}");
    push(&["-chardev", &ctl, "-device", &ctl_bus, "-device", &ctl_port]);
    for (i, (model, fd)) in cfg.nics.iter().zip(&fds.wires).enumerate() {
        let netdev = format!("dgram,id=net{i},local.type=fd,local.str={fd}");
        // romfile= : no option ROM; nothing boots from the network and it saves time.
        let (slot, function) = cfg.nic_slot(i);
        let addr = match (function, cfg.shared_group && i + 2 == cfg.nics.len()) {
            (0, true) => format!("{slot:#04x}.0,multifunction=on"),
            (0, false) => format!("{slot:#04x}"),
            (f, _) => format!("{slot:#04x}.{f}"),
        };
        let device = format!(
            "{},netdev=net{i},mac={},addr={addr},romfile=",
            model.qemu_device(cfg.iommu),
            format_mac(&nic_mac(i))
        );
        push(&["-netdev", &netdev, "-device", &device]);
    }
    a
}

/// KVM when asked for or when it really runs a guest; `BURST_LAB_ACCEL` overrides `Auto`.
pub(crate) fn resolve_accel(accel: Accel, qemu: &Path, kernel: &KernelCache) -> Result<Accelerator, LabError> {
    let accel = match (accel, std::env::var("BURST_LAB_ACCEL")) {
        (Accel::Auto, Ok(v)) => v.parse::<Accel>()?,
        (a, _) => a,
    };
    match accel {
        Accel::Tcg => Ok(Accelerator::Tcg),
        Accel::Kvm if kvm_opens() => Ok(Accelerator::Kvm),
        Accel::Kvm => Err(LabError::Config("KVM was asked for but /dev/kvm cannot be opened".into())),
        Accel::Auto => Ok(if kvm_works(qemu, kernel) { Accelerator::Kvm } else { Accelerator::Tcg }),
    }
}

fn kvm_opens() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

/// Whether KVM can run the lab's kernel. `/dev/kvm` opening is not enough: under nested
/// virtualisation it may open and then spin forever. So boot the kernel with no initramfs
/// under KVM: a working KVM reaches the "no root" panic (and QEMU's exit) in about a
/// second. The verdict is kept per host kernel and QEMU in `target/lab/kvm-probe`.
fn kvm_works(qemu: &Path, kernel: &KernelCache) -> bool {
    static VERDICT: OnceLock<bool> = OnceLock::new();
    *VERDICT.get_or_init(|| {
        if !kvm_opens() {
            return false;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let key = format!("{} {} {}", host.trim(), qemu.display(), kernel.package);
        let cache = lab_dir().join("kvm-probe");
        if let Some(v) =
            std::fs::read_to_string(&cache).ok().and_then(|c| c.strip_prefix(&format!("{key}\n")).map(str::to_string))
        {
            return v.trim() == "kvm";
        }
        let works = probe_kvm(qemu, kernel);
        let _ = std::fs::write(&cache, format!("{key}\n{}\n", if works { "kvm" } else { "tcg" }));
        works
    })
}

fn probe_kvm(qemu: &Path, kernel: &KernelCache) -> bool {
    let child = Command::new(qemu)
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-machine", "q35"])
        .args(["-accel", "kvm", "-cpu", "host", "-m", "256", "-serial", "stdio", "-kernel"])
        .arg(kernel.vmlinuz())
        .args(["-append", "console=ttyS0 panic=-1 loglevel=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    let deadline = Instant::now() + Duration::from_secs(8);
    let exited = loop {
        match child.try_wait() {
            Ok(Some(_)) => break true,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => break false,
        }
    };
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return false;
    }
    let mut console = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut console);
    }
    console.contains("Kernel panic")
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
