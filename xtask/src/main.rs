//! `cargo xtask`: the project's own tasks.
//!
//! - `cargo xtask setup`: install what the lab and the host tests need (QEMU >= 8, busybox, cpio,
//!   a kernel; DPDK's dpdk-testpmd for the vhost-user tests and benches).
//! - `cargo xtask lab [OPTIONS] -- CMD...`: boot a lab guest, run CMD in it, exit with its status.
//! - `cargo xtask bench mem [--skip-dpdk] [--skip-ours]`: DPDK 22.11's ring and mempool numbers
//!   and burst-mem's, side by side, in CPU cycles per element.
//! - `cargo xtask bench null [--seconds N]`: DPDK's testpmd and our pktgen forwarding between two
//!   net_null ports on one core, back to back, in Mpps per port.
//! - `cargo xtask bench vhost [--seconds N] [--size B] [--burst N]`: DPDK's virtio-user (testpmd)
//!   and ours (pktgen) against one DPDK vhost-user backend, txonly and rxonly, in Mpps.

mod bench;
mod conformance;
mod demo;
mod lab;
mod setup;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "burst's project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the lab and host tests need from Debian packages (run as root; idempotent).
    Setup(setup::SetupArgs),
    /// Boot a lab guest, run a command in it, and exit with the command's status.
    Lab(lab::LabArgs),
    /// Run DPDK's perf autotests and our criterion benches, and compare them.
    Bench(bench::BenchArgs),
    /// Run the driver conformance suite in the lab (NIC models x bindings).
    Conformance(conformance::ConformanceArgs),
    /// Boot the lab with two e1000 NICs, run l2fwd in it and push traffic through both ways.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Task::Setup(args) => match setup::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask setup: {e}");
                ExitCode::FAILURE
            }
        },
        Task::Lab(args) => lab::run(args),
        Task::Conformance(args) => conformance::run(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Bench(args) => match bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
