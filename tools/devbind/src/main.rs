//! `devbind`: show PCI devices and the drivers they are on, bind them to user-space drivers and
//! back; the counterpart of DPDK's `usertools/dpdk-devbind.py` (see docs/devbind.md).
//!
//! Binding goes through `driver_override` ([`burst_pci::bind`]); `--bind kernel` hands a device
//! back to whichever kernel driver matches it. Every device argument is checked (it exists, it
//! is not carrying routed traffic unless `--force`, no process holds it open, vfio-pci has an
//! IOMMU) before any changes.

mod status;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use burst_pci::bind::{BindError, BindOutcome, Binder, HostKernel, Kernel, KERNEL_DEFAULT};
use burst_pci::fake::FakeKernel;
use burst_pci::sysfs::{DeviceKind, SysfsError, SysfsRoot};
use burst_pci::PciAddress;
use clap::{ArgGroup, Parser, ValueEnum};

/// Show PCI devices and their drivers; bind them to user-space drivers (vfio-pci,
/// uio_pci_generic) and back.
#[derive(Debug, Parser)]
#[command(name = "devbind", version, about, long_about = None)]
#[command(group(ArgGroup::new("action").required(true).multiple(true).args(["status", "status_dev", "bind", "unbind"])))]
#[command(group(ArgGroup::new("change").args(["bind", "unbind"])))]
#[command(group(ArgGroup::new("show").multiple(true).args(["status", "status_dev"])))]
struct Cli {
    /// Print the network, crypto and baseband devices and the drivers they are on
    #[arg(short, long)]
    status: bool,

    /// Like --status, for one kind of device only
    #[arg(long, value_name = "KIND", value_enum)]
    status_dev: Option<Kind>,

    /// Bind DEV... to DRIVER: vfio-pci, uio_pci_generic, a kernel driver (e1000), or `kernel`
    /// for the kernel driver that matches each device
    #[arg(short, long, value_name = "DRIVER", requires = "devices")]
    bind: Option<String>,

    /// Unbind DEV... from their drivers (they stay on no driver)
    #[arg(short, long, requires = "devices")]
    unbind: bool,

    /// Take devices whose interface has routes anyway (cuts that interface's traffic)
    #[arg(long)]
    force: bool,

    /// With --status: print JSON (an array of devices with every field)
    #[arg(long, requires = "show")]
    json: bool,

    /// PCI addresses (0000:00:02.0 or 00:02.0) or network interface names (eth0)
    #[arg(value_name = "DEV", requires = "change")]
    devices: Vec<String>,

    /// Read sysfs and procfs under DIR instead of / (for tests)
    #[arg(long, value_name = "DIR", hide = true)]
    sysfs_root: Option<PathBuf>,

    /// With --sysfs-root: let the fake kernel of that fake tree act on the writes (for tests)
    #[arg(long, hide = true, requires = "sysfs_root")]
    fake_kernel: bool,

    /// Run PROGRAM instead of modprobe (for tests)
    #[arg(long, value_name = "PROGRAM", hide = true, default_value = "modprobe")]
    modprobe: PathBuf,
}

/// `--status-dev` kinds.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Net,
    Crypto,
    Baseband,
}

/// Everything devbind can fail with.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("{0}")]
    FakeKernel(io::Error),
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error says.
            let message = e.to_string().replace('\n', " ");
            let _ = writeln!(io::stderr(), "devbind: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), ToolError> {
    let root = SysfsRoot::at(cli.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/")));
    if cli.bind.is_some() || cli.unbind {
        let kernel: Box<dyn Kernel> = if cli.fake_kernel {
            Box::new(FakeKernel::at(root.path()).map_err(ToolError::FakeKernel)?)
        } else {
            Box::new(HostKernel::with_modprobe(&cli.modprobe))
        };
        change(cli, &root, kernel.as_ref())?;
    }
    let kinds: Vec<DeviceKind> = match cli.status_dev {
        Some(Kind::Net) => vec![DeviceKind::Network],
        Some(Kind::Crypto) => vec![DeviceKind::Crypto],
        Some(Kind::Baseband) => vec![DeviceKind::Baseband],
        None if cli.status => DeviceKind::SHOWN.to_vec(),
        None => return Ok(()),
    };
    let scan = root.scan_all()?;
    // A device sysfs describes oddly is left out of the list, and said so: not the whole status.
    for (addr, e) in &scan.skipped {
        let _ = writeln!(io::stderr(), "devbind: warning: {addr} left out: {}", e.to_string().replace('\n', " "));
    }
    let devices: Vec<_> = scan.devices.into_iter().filter(|d| kinds.contains(&d.kind())).collect();
    let text = if cli.json { status::json(&root, &devices) } else { status::text(&root, &devices, &kinds) };
    print(&text)
}

/// `--bind` or `--unbind`: every device is resolved and checked before any is changed.
fn change(cli: &Cli, root: &SysfsRoot, kernel: &dyn Kernel) -> Result<(), ToolError> {
    let mut addrs: Vec<PciAddress> = Vec::new();
    for arg in &cli.devices {
        let addr = root.resolve(arg)?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    // The devices go together: one is no reason for a note about another.
    let binder = Binder::new(root, kernel).with_batch(&addrs);
    let driver = cli.bind.as_deref();
    for &addr in &addrs {
        match driver {
            None => binder.check_unbind(addr, cli.force).map(drop)?,
            Some(KERNEL_DEFAULT) => binder.check_kernel_default(addr, cli.force).map(drop)?,
            Some(driver) => binder.check_bind(addr, driver, cli.force).map(drop)?,
        }
    }
    for addr in addrs {
        let line = match driver {
            None => match binder.unbind(addr, cli.force)?.previous {
                Some(old) => format!("{addr}: unbound from {old}"),
                None => format!("{addr}: was on no driver"),
            },
            Some(KERNEL_DEFAULT) => bound_line(&binder.bind_kernel_default(addr, cli.force)?),
            Some(driver) => bound_line(&binder.bind(addr, driver, cli.force)?),
        };
        print(&format!("{line}\n"))?;
    }
    Ok(())
}

/// `0000:00:02.0: bound to vfio-pci (was on e1000; loaded vfio_pci)`; notes go to stderr.
fn bound_line(out: &BindOutcome) -> String {
    for note in &out.notes {
        let _ = writeln!(io::stderr(), "devbind: note: {note}");
    }
    if !out.changed {
        return format!("{}: already on {}", out.address, out.driver);
    }
    let mut said = vec![match &out.previous {
        Some(old) => format!("was on {old}"),
        None => "was on no driver".to_string(),
    }];
    if !out.loaded_modules.is_empty() {
        said.push(format!("loaded {}", out.loaded_modules.join(", ")));
    }
    format!("{}: bound to {} ({})", out.address, out.driver, said.join("; "))
}

fn print(text: &str) -> Result<(), ToolError> {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(ToolError::Output(e)),
        _ => Ok(()),
    }
}
