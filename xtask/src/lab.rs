//! `cargo xtask lab`: one guest, one command, its output streamed, its exit status returned.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use burst_lab::{format_mac, parse_mem_mib, Accel, Iommu, Lab, LabConfig, LabError, NicModel, ProcessEvent};
use clap::Args;

/// Exit status when the command ran past `--timeout` (as timeout(1) does).
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when the guest died (kernel panic, QEMU exit) or never came up.
const EXIT_GUEST: u8 = 125;

#[derive(Args)]
pub struct LabArgs {
    /// An emulated NIC, once per NIC: e1000, e1000-82545em, e1000-82544gc, igb,
    /// virtio-legacy, virtio-modern. NIC i gets PCI slot 00:(02+i).0 and MAC 52:54:00:b5:00:0i.
    #[arg(long = "nic", value_name = "MODEL", value_parser = parse::<NicModel>)]
    nics: Vec<NicModel>,
    /// IOMMU: on (vfio-pci, IOVA as VA), pt (pass-through: uio_pci_generic), off.
    #[arg(long, default_value = "on", value_parser = parse::<Iommu>)]
    iommu: Iommu,
    /// Guest memory, e.g. 1024, 512M, 2G.
    #[arg(long, default_value = "1G", value_parser = parse_mem)]
    mem: u32,
    /// 2 MiB hugepages reserved in the guest (mounted on /dev/hugepages).
    #[arg(long, default_value_t = 64)]
    hugepages: u32,
    /// Guest CPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Accelerator: auto (KVM if /dev/kvm opens), kvm, tcg.
    #[arg(long, default_value = "auto", value_parser = parse::<Accel>)]
    accel: Accel,
    /// Seconds the command may run before it is stopped (exit status 124).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds the guest may take to come up (exit status 125 past that).
    #[arg(long, default_value_t = 90)]
    boot_timeout: u64,
    /// Extra guest kernel argument (repeatable).
    #[arg(long = "kernel-arg", value_name = "ARG")]
    kernel_args: Vec<String>,
    /// Show the guest's console (kernel messages) on stderr.
    #[arg(long)]
    console: bool,
    /// Put the last two NICs in one IOMMU group, as functions 0 and 1 of slot 00:10.
    #[arg(long)]
    shared_group: bool,
    /// The emulated IOMMU's address width in bits: 39 or 48 (QEMU's default, 48).
    #[arg(long, value_name = "BITS")]
    iommu_aw_bits: Option<u8>,
    /// Say how the guest was set up and how long it took to boot.
    #[arg(short, long)]
    verbose: bool,
    /// The command to run in the guest, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse<T: std::str::FromStr<Err = LabError>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

fn parse_mem(s: &str) -> Result<u32, String> {
    parse_mem_mib(s).map_err(|e| e.to_string())
}

pub fn run(args: LabArgs) -> ExitCode {
    let config = LabConfig {
        nics: args.nics.clone(),
        iommu: args.iommu,
        mem_mib: args.mem,
        hugepages: args.hugepages,
        cpus: args.cpus,
        accel: args.accel,
        boot_timeout: Duration::from_secs(args.boot_timeout),
        kernel_args: args.kernel_args.clone(),
        show_console: args.console || LabConfig::default().show_console,
        shared_group: args.shared_group,
        iommu_aw_bits: args.iommu_aw_bits,
    };
    match boot_and_run(config, &args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask lab: {e}");
            ExitCode::from(match e {
                LabError::CommandTimeout { .. } => EXIT_TIMEOUT,
                LabError::BootTimeout { .. } | LabError::GuestDied { .. } => EXIT_GUEST,
                _ => 1,
            })
        }
    }
}

fn boot_and_run(config: LabConfig, args: &LabArgs) -> Result<u8, LabError> {
    let lab = Lab::boot(config)?;
    if args.verbose {
        eprintln!(
            "xtask lab: guest up in {:.2} s ({:?}, kernel {}, IOMMU {})",
            lab.boot_time().as_secs_f64(),
            lab.accelerator(),
            lab.kernel_release(),
            args.iommu
        );
        for (i, nic) in lab.nics().iter().enumerate() {
            eprintln!(
                "xtask lab: NIC {i}: {} at {} MAC {} wire 127.0.0.1:{}",
                nic.model,
                nic.pci_address,
                format_mac(&nic.mac),
                lab.wire(i).host_port()
            );
        }
    }
    let out = lab.spawn(&args.command)?.wait_with(Duration::from_secs(args.timeout), |event| match event {
        ProcessEvent::Stdout(d) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(d);
            let _ = out.flush();
        }
        ProcessEvent::Stderr(d) => {
            let _ = std::io::stderr().write_all(d);
        }
        ProcessEvent::Exited(_) => {}
    })?;
    if args.verbose {
        eprintln!("xtask lab: `{}` ended: {}", args.command.join(" "), out.status);
    }
    Ok(u8::try_from(out.status.shell_code()).unwrap_or(1))
}
