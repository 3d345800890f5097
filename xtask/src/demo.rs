//! `cargo xtask demo`: l2fwd on two e1000 NICs in the lab (being written).

use std::process::ExitCode;

/// Options of `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {}

/// Runs the demo.
pub fn run(_args: &DemoArgs) -> ExitCode {
    eprintln!("xtask demo: not written yet");
    ExitCode::FAILURE
}
