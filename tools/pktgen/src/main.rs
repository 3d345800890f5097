//! pktgen: testpmd's forwarding modes on burst ports, for benchmarks and tests.
//!
//! `pktgen [EAL options] -- [--forward-mode=io|mac|macswap|txonly|rxonly|csum] [--burst N]
//! [--txpkts LEN[,LEN...]] [--mbuf-size N] [--max-pkt-len N] [--rx-offloads MASK]
//! [--tx-offloads MASK] [--nb-cores N] [--stats-period S] [--run-seconds N] [--eth-peer PORT,MAC]...`
//!
//! - [`options`]: the options after `--`, with testpmd's names and defaults.
//! - [`ports`]: the packet pool, and each port's offloads and MTU as the options ask.
//! - [`streams`]: port pairing, streams, and which lcore polls which stream.
//! - [`engine`]: the forwarding loop and the six modes.
//! - [`csum`]: csum mode's work on one packet.
//! - [`frame`]: txonly's frame and the MAC rewrites.
//! - [`counters`]: per-stream counters, published by the lcores to the main lcore.
//! - [`report`]: the periodic statistics and the final report (`RESULT {json}`).
//! - [`run`]: one run from start to end.
//!
//! The command is [`run::run`] with the process's arguments; `stream_tests` drive a mode's
//! streams on ports of their own. It is one binary crate, not a library under a binary: built
//! that way, LTO compiled txonly's buffer allocation 1.8 instructions a packet longer
//! (callgrind; see docs/pktgen.md). Errors end the process with one line, `pktgen: <message>`,
//! and status 2 for the command line's mistakes, 1 for failures while running. See
//! docs/pktgen.md.

mod counters;
mod csum;
mod engine;
mod error;
mod frame;
mod options;
mod ports;
mod report;
mod run;
#[cfg(test)]
mod stream_tests;
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
