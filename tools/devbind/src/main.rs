//! The `devbind` binary: [`devbind::run`] on the machine's sysfs and kernel (see the library for
//! what it does, and docs/devbind.md).

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use burst_pci::bind::HostKernel;
use burst_pci::sysfs::SysfsRoot;
use clap::Parser;

/// Show PCI devices and their drivers; bind them to user-space drivers (vfio-pci,
/// uio_pci_generic) and back.
#[derive(Debug, Parser)]
#[command(name = "devbind", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    options: devbind::Options,

    /// Read sysfs and procfs under DIR instead of / (for tests)
    #[arg(long, value_name = "DIR", hide = true)]
    sysfs_root: Option<PathBuf>,

    /// Run PROGRAM instead of modprobe (for tests)
    #[arg(long, value_name = "PROGRAM", hide = true, default_value = "modprobe")]
    modprobe: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = SysfsRoot::at(cli.sysfs_root.unwrap_or_else(|| PathBuf::from("/")));
    let kernel = HostKernel::with_modprobe(&cli.modprobe);
    ExitCode::from(devbind::run(&cli.options, &root, &kernel, &mut io::stdout(), &mut io::stderr()))
}
