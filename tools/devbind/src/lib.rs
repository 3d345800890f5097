//! `devbind`: show PCI devices and the drivers they are on, bind them to user-space drivers and
//! back; the counterpart of DPDK's `usertools/dpdk-devbind.py` (see docs/devbind.md).
//!
//! Binding goes through `driver_override` ([`burst_pci::bind`]); `--bind kernel` hands a device
//! back to whichever kernel driver matches it. Every device argument is checked (it exists, it
//! is not carrying routed traffic unless `--force`, no process holds it open, vfio-pci has an
//! IOMMU) before any changes.
//!
//! The command line lives here as a library: [`Options`] (what the user types) and [`run`] (what
//! it does), with the sysfs tree, the kernel and the output streams passed in. The binary runs it
//! on the host's `/` and kernel; the tests run it on fake trees with the fake kernel of
//! `burst_pci::fake`, so the shipped binary carries no test-only kernel.

mod status;

use std::io::{self, Write};

use burst_pci::bind::{BindError, BindOutcome, Binder, Kernel, KERNEL_DEFAULT};
use burst_pci::sysfs::{DeviceKind, SysfsError, SysfsRoot};
use burst_pci::PciAddress;
use clap::{ArgGroup, Args, ValueEnum};

/// Exit status of a run that failed (one `devbind: ...` line on stderr). Bad options exit with
/// 2, as clap does.
pub const EXIT_FAILURE: u8 = 1;

/// What the user asks for: an action (`--status`, `--status-dev`, `--bind`, `--unbind`) and the
/// devices it applies to.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).multiple(true).args(["status", "status_dev", "bind", "unbind"])))]
#[command(group(ArgGroup::new("change").args(["bind", "unbind"])))]
#[command(group(ArgGroup::new("show").multiple(true).args(["status", "status_dev"])))]
pub struct Options {
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
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

/// Runs `options` on the tree `root` reads, binding through `kernel`; results go to `out`,
/// notes, warnings and the error to `err`. Returns the exit status: 0, or [`EXIT_FAILURE`]
/// after one `devbind: ...` line on `err`.
pub fn run(options: &Options, root: &SysfsRoot, kernel: &dyn Kernel, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match execute(options, root, kernel, out, err) {
        Ok(()) => 0,
        Err(e) => {
            // One line, whatever the error says.
            let message = e.to_string().replace('\n', " ");
            let _ = writeln!(err, "devbind: {message}");
            EXIT_FAILURE
        }
    }
}

fn execute(
    options: &Options,
    root: &SysfsRoot,
    kernel: &dyn Kernel,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), ToolError> {
    if options.bind.is_some() || options.unbind {
        change(options, root, kernel, out, err)?;
    }
    let kinds: Vec<DeviceKind> = match options.status_dev {
        Some(Kind::Net) => vec![DeviceKind::Network],
        Some(Kind::Crypto) => vec![DeviceKind::Crypto],
        Some(Kind::Baseband) => vec![DeviceKind::Baseband],
        None if options.status => DeviceKind::SHOWN.to_vec(),
        None => return Ok(()),
    };
    let scan = root.scan_all()?;
    // A device sysfs describes oddly is left out of the list, and said so: not the whole status.
    for (addr, e) in &scan.skipped {
        let _ = writeln!(err, "devbind: warning: {addr} left out: {}", e.to_string().replace('\n', " "));
    }
    let devices: Vec<_> = scan.devices.into_iter().filter(|d| kinds.contains(&d.kind())).collect();
    let text = if options.json { status::json(root, &devices) } else { status::text(root, &devices, &kinds) };
    print(out, &text)
}

/// `--bind` or `--unbind`: every device is resolved and checked before any is changed.
fn change(
    options: &Options,
    root: &SysfsRoot,
    kernel: &dyn Kernel,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), ToolError> {
    let mut addrs: Vec<PciAddress> = Vec::new();
    for arg in &options.devices {
        let addr = root.resolve(arg)?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    // The devices go together: one is no reason for a note about another.
    let binder = Binder::new(root, kernel).with_batch(&addrs);
    let driver = options.bind.as_deref();
    let force = options.force;
    for &addr in &addrs {
        match driver {
            None => binder.check_unbind(addr, force).map(drop)?,
            Some(KERNEL_DEFAULT) => binder.check_kernel_default(addr, force).map(drop)?,
            Some(driver) => binder.check_bind(addr, driver, force).map(drop)?,
        }
    }
    for addr in addrs {
        let line = match driver {
            None => match binder.unbind(addr, force)?.previous {
                Some(old) => format!("{addr}: unbound from {old}"),
                None => format!("{addr}: was on no driver"),
            },
            Some(KERNEL_DEFAULT) => bound_line(&binder.bind_kernel_default(addr, force)?, err),
            Some(driver) => bound_line(&binder.bind(addr, driver, force)?, err),
        };
        print(out, &format!("{line}\n"))?;
    }
    Ok(())
}

/// `0000:00:02.0: bound to vfio-pci (was on e1000; loaded vfio_pci)`; notes go to `err`.
fn bound_line(outcome: &BindOutcome, err: &mut dyn Write) -> String {
    for note in &outcome.notes {
        let _ = writeln!(err, "devbind: note: {note}");
    }
    if !outcome.changed {
        return format!("{}: already on {}", outcome.address, outcome.driver);
    }
    let mut said = vec![match &outcome.previous {
        Some(old) => format!("was on {old}"),
        None => "was on no driver".to_string(),
    }];
    if !outcome.loaded_modules.is_empty() {
        said.push(format!("loaded {}", outcome.loaded_modules.join(", ")));
    }
    format!("{}: bound to {} ({})", outcome.address, outcome.driver, said.join("; "))
}

/// Writes `text` to `out`; a reader that went away (`devbind -s | head`) is no error.
fn print(out: &mut dyn Write, text: &str) -> Result<(), ToolError> {
    match out.write_all(text.as_bytes()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(ToolError::Output(e)),
        _ => Ok(()),
    }
}
