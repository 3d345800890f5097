//! pktgen: testpmd's forwarding modes on burst ports, for benchmarks and tests.
//!
//! `pktgen [EAL options] -- [--forward-mode=io|mac|macswap|txonly|rxonly] [--burst N]
//! [--txpkts LEN] [--nb-cores N] [--stats-period S] [--run-seconds N] [--eth-peer PORT,MAC]...`
//!
//! - [`options`]: the options after `--`, with testpmd's names and defaults.
//! - [`streams`]: port pairing, streams, and which lcore polls which stream.
//! - [`engine`]: the forwarding loop and the five modes.
//! - [`frame`]: txonly's frame and the MAC rewrites.
//! - [`counters`]: per-stream counters, published by the lcores to the main lcore.
//! - [`report`]: the periodic statistics and the final report (`RESULT {json}`).
//! - [`run`]: one run from start to end.
//!
//! Errors end the process with one line, `pktgen: <message>`, and status 2 for the command
//! line's mistakes, 1 for failures while running. See docs/pktgen.md.

mod counters;
mod engine;
mod error;
mod frame;
mod options;
mod report;
mod run;
mod streams;

use std::process::ExitCode;

fn main() -> ExitCode {
    // args_os: a non-UTF-8 argument is an option error to report, not a panic.
    let args = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktgen: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
