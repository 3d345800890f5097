//! `cargo xtask conformance`: the driver conformance suite (being written).

use std::process::ExitCode;

/// Options of `cargo xtask conformance`.
#[derive(clap::Args)]
pub struct ConformanceArgs {}

/// Runs the suite.
pub fn run(_args: &ConformanceArgs) -> ExitCode {
    eprintln!("xtask conformance: not written yet");
    ExitCode::FAILURE
}
