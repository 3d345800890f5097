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
//! The binary (`main.rs`) is [`run::run`] with the process's arguments; the library is there so
//! that tests can drive a mode's streams on ports of their own. Errors end the process with one
//! line, `pktgen: <message>`, and status 2 for the command line's mistakes, 1 for failures while
//! running. See docs/pktgen.md.

pub mod counters;
pub mod csum;
pub mod engine;
pub mod error;
pub mod frame;
pub mod options;
pub mod ports;
pub mod report;
pub mod run;
pub mod streams;

pub use error::PktgenError;
