//! l2fwd: DPDK's `examples/l2fwd` on burst, option for option, and the example to read when
//! embedding burst in an application of your own.
//!
//! ```text
//! l2fwd [EAL options] -- -p PORTMASK [-P] [-q NQ] [-T PERIOD] [--[no-]mac-updating] [--portmap="(0,1)(2,3)"]
//!       [--max-pkt-len PKTLEN]
//! ```
//!
//! Each enabled port is paired with another (consecutive enabled ports, or `--portmap`); every
//! frame received on one is sent on the other, with its destination address rewritten to
//! 02:00:00:00:00:TX_PORT and its source to the TX port's address (unless `--no-mac-updating`).
//! See docs/l2fwd.md.
//!
//! Reading order, for embedding:
//! - `main.rs`: split the command line into runtime (EAL) options and ours, start the
//!   [`burst::Runtime`], run, close it. Ten lines.
//! - [`app`]: [`L2fwd::setup`] makes a packet pool and configures, sets up and starts ports;
//!   [`L2fwd::forward`] takes queue handles and moves them to lcores with
//!   [`burst::Runtime::scope`]; [`L2fwd::finish`] closes the ports and checks the pool.
//! - [`fwd`]: the loop an lcore runs: `rx_burst`, rewrite, buffered `tx_burst`.
//! - [`plan`], [`options`], [`stats`]: l2fwd's own logic (pairing, options, the screen).

pub mod app;
mod error;
pub mod fwd;
pub mod options;
pub mod plan;
pub mod stats;

use std::io::Write;

pub use app::{jumbo_conf, Jumbo, L2fwd, Summary};
pub use error::Error;
pub use options::{parse_app_args, L2fwdConfig};
pub use plan::Plan;
pub use stats::PortStats;

/// Runs l2fwd on `rt` until SIGINT, SIGTERM or [`burst::Runtime::request_stop`], writing what
/// DPDK's l2fwd prints to `out`. The ports are closed and the pool checked whether forwarding
/// went well or not.
pub fn run(rt: &mut burst::Runtime, cfg: &L2fwdConfig, out: &mut dyn Write) -> Result<Summary, Error> {
    let app = L2fwd::setup(rt, cfg, out)?;
    let forwarded = app.forward(rt, out);
    let summary = app.finish(rt, out);
    forwarded?;
    summary
}
