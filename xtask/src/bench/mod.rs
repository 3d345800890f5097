//! `cargo xtask bench`: burst against DPDK, measured back to back on this machine.
//!
//! - `mem` (`mem/`): burst-mem's rings and mempools against DPDK's perf autotests, in cycles.
//! - `null` (`null.rs`): pktgen against testpmd, io forwarding between two `net_null` ports.
//! - `vhost` (`vhost/`): our virtio-user against DPDK's, to one DPDK vhost-user backend.
//! - `xdp` (`kernel/`): net_af_xdp and net_af_packet against DPDK's, on one veth pair.
//!
//! What they share, a file each: `signal.rs` (Ctrl-C), `cargo.rs` (the target directory, building
//! pktgen), `dpdk.rs` (finding or installing DPDK's tools, their runtime directory and version),
//! `machine.rs` (CPUs, TSC, how busy the machine is), `hugepages.rs` (pages reserved and a
//! hugetlbfs mounted for a bench's life), `program.rs` (a program run with its output in a log),
//! `stats.rs` (testpmd's statistics blocks), `report.rs` (the tables and their markdown).

mod cargo;
mod dpdk;
mod hugepages;
mod kernel;
mod machine;
mod mem;
mod null;
mod program;
mod report;
mod signal;
mod stats;
mod vhost;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// burst-mem's ring and mempool against DPDK's ring_perf and mempool_perf autotests.
    Mem(mem::MemArgs),
    /// pktgen against DPDK's testpmd: io forwarding between two net_null ports on one core.
    Null(null::NullArgs),
    /// pktgen over our virtio-user against testpmd over DPDK's, both to one DPDK vhost backend.
    Vhost(vhost::VhostArgs),
    /// pktgen over our net_af_xdp and net_af_packet against testpmd over DPDK's, on one veth pair.
    Xdp(kernel::KernelArgs),
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    match &args.suite {
        Suite::Mem(a) => mem::run(a),
        Suite::Null(a) => null::run(a),
        Suite::Vhost(a) => vhost::run(a),
        Suite::Xdp(a) => kernel::run(a),
    }
}
