//! `cargo xtask conformance`: the driver conformance suite. Every (NIC model, binding) pair gets
//! one lab boot with two NICs of that model, bound to the PCI driver the binding names; the cases
//! of [`cases`] (and, on the models that have them, the offload cases of [`offloads`]) then run in the guest (`conformance-guest`, `l2fwd`) while the host sends and
//! receives on the NICs' wires. The results are printed as one table; the exit status is 1 if any
//! case failed. See `docs/drivers.md`.

mod cases;
mod offloads;

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burst_lab::{Iommu, LabError, NicModel};

pub use cases::CaseResult;

/// How a NIC is handed to user space, and the IOVA mode the runtime then votes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Binding {
    /// `vfio-pci` under the lab's translating IOMMU (`--iommu on`): IOVA as VA.
    Vfio,
    /// `uio_pci_generic` with the IOMMU in pass-through (`--iommu pt`): IOVA as PA.
    Uio,
}

impl Binding {
    pub fn name(self) -> &'static str {
        match self {
            Binding::Vfio => "vfio",
            Binding::Uio => "uio",
        }
    }

    /// The guest kernel driver to bind.
    pub fn driver(self) -> &'static str {
        match self {
            Binding::Vfio => "vfio-pci",
            Binding::Uio => "uio_pci_generic",
        }
    }

    pub fn iommu(self) -> Iommu {
        match self {
            Binding::Vfio => Iommu::On,
            Binding::Uio => Iommu::Pt,
        }
    }

    /// The IOVA mode the runtime chooses by itself (`Runtime::iova_mode`'s Display); a legacy
    /// virtio device under vfio-pci is run with `--iova-mode pa` instead ([`cases::eal_options`]).
    pub fn iova(self) -> &'static str {
        match self {
            Binding::Vfio => "va",
            Binding::Uio => "pa",
        }
    }
}

/// The default set: the e1000 models QEMU has, and virtio-net through its legacy and its modern
/// interface.
pub const DEFAULT_NICS: [NicModel; 5] =
    [NicModel::E1000, NicModel::E1000_82545em, NicModel::E1000_82544gc, NicModel::VirtioLegacy, NicModel::VirtioModern];

/// Options of `cargo xtask conformance`.
#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// NIC model to test (repeatable). Default: e1000, e1000-82545em, e1000-82544gc, virtio-legacy,
    /// virtio-modern.
    #[arg(long = "nic", value_name = "MODEL", value_parser = parse_nic)]
    nics: Vec<NicModel>,
    /// Binding to test (repeatable). Default: both.
    #[arg(long = "binding", value_enum)]
    bindings: Vec<Binding>,
    /// Labs booted at once (each guest takes 1 GiB and, under TCG, most of a CPU).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=8))]
    jobs: u32,
}

fn parse_nic(s: &str) -> Result<NicModel, String> {
    s.parse().map_err(|e: LabError| e.to_string())
}

/// Runs the suite.
pub fn run(args: &ConformanceArgs) -> ExitCode {
    let nics = if args.nics.is_empty() { DEFAULT_NICS.to_vec() } else { args.nics.clone() };
    let bindings = if args.bindings.is_empty() { vec![Binding::Vfio, Binding::Uio] } else { args.bindings.clone() };
    let combos: Vec<(NicModel, Binding)> = nics.iter().flat_map(|&n| bindings.iter().map(move |&b| (n, b))).collect();
    let start = Instant::now();
    let results = run_all(&combos, args.jobs as usize);
    print_table(&results);
    let failed = results.iter().filter(|r| !r.pass).count();
    println!(
        "conformance: {} cases, {} failed, {} NIC x binding combinations, {:.1} s",
        results.len(),
        failed,
        combos.len(),
        start.elapsed().as_secs_f64()
    );
    for r in results.iter().filter(|r| !r.pass) {
        println!("FAIL {} {} {}: {}", r.case, r.nic.name(), r.binding.name(), r.detail);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs every combination, `jobs` at a time, each on its own thread (a `Lab` stays on the thread
/// that booted it). Results come back in `combos` order.
fn run_all(combos: &[(NicModel, Binding)], jobs: usize) -> Vec<CaseResult> {
    let queue = Mutex::new(combos.iter().copied().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(combos.len()) {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((i, (nic, binding))) = next else { break };
                eprintln!("conformance: {} on {}: booting", nic.name(), binding.name());
                let t = Instant::now();
                let results = cases::run_combo(nic, binding);
                let failed = results.iter().filter(|r| !r.pass).count();
                eprintln!(
                    "conformance: {} on {}: {} cases, {failed} failed, {:.1} s",
                    nic.name(),
                    binding.name(),
                    results.len(),
                    t.elapsed().as_secs_f64()
                );
                done.lock().unwrap_or_else(|e| e.into_inner()).push((i, results));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, r)| r).collect()
}

fn print_table(results: &[CaseResult]) {
    println!();
    println!(
        "{:<10} {:<14} {:<7} {:<6} {:>8} {:>9}  detail",
        "case", "nic", "binding", "result", "packets", "duration"
    );
    for r in results {
        println!(
            "{:<10} {:<14} {:<7} {:<6} {:>8} {:>8.1}s  {}",
            r.case,
            r.nic.name(),
            r.binding.name(),
            if r.pass { "pass" } else { "FAIL" },
            r.packets,
            r.duration.as_secs_f64(),
            short(&r.detail)
        );
    }
    println!();
}

/// The first line of a detail, cut to fit the table.
fn short(detail: &str) -> String {
    let line = detail.lines().next().unwrap_or("");
    if line.chars().count() > 90 {
        format!("{}...", line.chars().take(87).collect::<String>())
    } else {
        line.to_string()
    }
}

/// A guest command's time limit: TCG is slow, but nothing here should take a minute.
pub(crate) const GUEST_TIMEOUT: Duration = Duration::from_secs(90);
