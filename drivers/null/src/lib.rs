//! net_null: a software port whose RX hands out buffers and whose TX frees them (DPDK's
//! `drivers/net/null`).
//!
//! `--vdev net_null0[,size=N][,copy=0|1][,no-rx=0|1][,mac=MAC]`:
//!
//! - RX takes `max` buffers from the queue's pool in one all-or-nothing bulk, gives each a length
//!   of `size` bytes (default 64) and the port's id, and leaves the data as it was. With `copy=1`
//!   it copies a fixed frame ([`template`]) into each buffer first; with `no-rx=1` it returns
//!   nothing.
//! - TX counts what it is given and frees it all; with `copy=1` it reads each packet first (into a
//!   per-queue scratch buffer), as DPDK's copy mode does, so the cost of touching the data shows.
//!   A chained packet is counted by its whole length and freed whole: the port offers the
//!   `MULTI_SEGS` TX offload, as DPDK's does; its RX makes one-segment packets and offers no
//!   other offload.
//!
//! What is not implemented: DPDK's RSS emulation (`reta_update`, `rss_hash_update`); the RSS
//! settings of a null port change nothing anyway.
//!
//! The data path is what a forwarding benchmark measures (pktgen's io mode over two null ports),
//! so per packet RX only sets the buffer's length and port, and TX only reads the length and
//! frees the buffer; the mode is chosen once per queue handle, not tested per burst.

mod args;
mod dev;
mod error;
mod rx;
mod tx;

pub use args::NullArgs;
pub use dev::{default_mac, template, NullDev, MAX_QUEUES};
pub use error::NullError;

/// The driver: `--vdev net_null0`, `--vdev net_null1,size=128`, ...
pub static DRIVER: burst_ethdev::VdevDriver = burst_ethdev::VdevDriver {
    name: "net_null",
    aliases: &["eth_null"],
    params: "size=N,copy=0|1,no-rx=0|1,mac=MAC",
    probe: dev::probe,
    finish: None,
};
