//! `hugepages`: show, reserve, mount and clear hugepages; the counterpart of DPDK's
//! `usertools/dpdk-hugepages.py`, option for option (see docs/hugepages.md).
//!
//! Actions combine, and run in dpdk-hugepages.py's order: clear, unmount, reserve, mount, show.

mod actions;
mod show;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use burst_mem::hugepage::{parse_size, PageSize, SysRoot};
use clap::{ArgGroup, Parser};

use actions::ToolError;

/// Where `--mount` mounts unless told otherwise (systemd's dev-hugepages.mount uses it too).
const DEFAULT_MOUNT_DIR: &str = "/dev/hugepages";

/// Show, reserve, mount and clear hugepages.
#[derive(Debug, Parser)]
#[command(name = "hugepages", version, about, long_about = None)]
#[command(group(
    ArgGroup::new("action").required(true).multiple(true).args(["show", "clear", "mount", "unmount", "reserve", "setup"])
))]
struct Cli {
    /// Print the hugepages per NUMA node and page size, and the hugetlbfs mounts
    #[arg(short, long)]
    show: bool,

    /// Release every hugepage of every size on every node
    #[arg(short, long)]
    clear: bool,

    /// Mount a hugetlbfs for the page size at --directory, unless one is mounted there already
    #[arg(short, long)]
    mount: bool,

    /// Unmount every hugetlbfs, or only the one at --directory
    #[arg(short, long)]
    unmount: bool,

    /// Set the pool to SIZE worth of pages (e.g. 512M, 2G), system-wide or on --node
    #[arg(short, long, value_name = "SIZE", value_parser = parse_size)]
    reserve: Option<u64>,

    /// Clear, unmount, reserve SIZE and mount, in one go
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "reserve")]
    setup: Option<u64>,

    /// NUMA node to reserve on (default: system-wide, the kernel spreads the pages)
    #[arg(short, long, value_name = "N")]
    node: Option<u32>,

    /// Page size to reserve and mount: 2M or 1G [default: the system's default page size]
    #[arg(short, long, value_name = "SIZE", value_parser = parse_page_size)]
    pagesize: Option<PageSize>,

    /// Mount point for --mount [default: /dev/hugepages]; with --unmount, unmount only this one
    #[arg(short, long, value_name = "DIR")]
    directory: Option<PathBuf>,

    /// With --show: print JSON instead of a table
    #[arg(long, requires = "show")]
    json: bool,

    /// Use the sysfs/procfs tree under DIR instead of / (for tests)
    #[arg(long, value_name = "DIR", hide = true, default_value = "/")]
    sys_root: PathBuf,
}

fn parse_page_size(s: &str) -> Result<PageSize, burst_mem::hugepage::HugepageError> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error says.
            let message = e.to_string().replace('\n', " ");
            let _ = writeln!(io::stderr(), "hugepages: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), ToolError> {
    let root = SysRoot::at(&cli.sys_root);
    let setup = cli.setup.is_some();
    // Checked before anything changes, so a bad --pagesize leaves the machine as it was.
    let size = if cli.reserve.is_some() || cli.mount || setup {
        Some(match cli.pagesize {
            Some(size) => actions::check_supported(&root, size)?,
            None => root.default_page_size()?,
        })
    } else {
        None
    };
    if cli.clear || setup {
        actions::clear(&root)?;
    }
    if cli.unmount || setup {
        actions::unmount(&root, cli.directory.as_deref())?;
    }
    if let (Some(bytes), Some(size)) = (cli.reserve.or(cli.setup), size) {
        root.reserve(bytes, size, cli.node)?;
    }
    if let (true, Some(size)) = (cli.mount || setup, size) {
        let dir = cli.directory.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MOUNT_DIR));
        actions::mount(&root, &dir, size)?;
    }
    if cli.show {
        let info = root.info()?;
        let text = if cli.json { show::json(&info) } else { show::table(&info) };
        match io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(ToolError::Output(e)),
            _ => {}
        }
    }
    Ok(())
}
