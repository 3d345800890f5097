//! burst-ethdev: the contract between the framework and its drivers (DPDK's `rte_ethdev`).
//!
//! A driver implements [`EthDev`] (the control path: configure, queue setup, start, stop, link,
//! and hooks that apply the port's address, filter modes and MTU to the device) and hands out
//! queue handles that implement [`RxBurst`] and [`TxBurst`] (the data path). Applications never
//! see those traits directly: they get a [`Port`], which holds the port's settings
//! ([`PortSettings`]) and its queues' counters once for every driver, checks every call against
//! the port's state and the device's limits before the driver sees it, and hands out
//! [`RxQueue`]/[`TxQueue`] handles that are `Send` and move to the lcore that polls them.
//!
//! - [`mac`]: Ethernet addresses ([`MacAddr`]), burst-net's, re-exported where drivers
//!   have always found them.
//! - [`types`]: device info, descriptor limits, offloads, link status, port and queue settings.
//! - [`stats`]: [`Stats`], extended stats, and [`SwStats`], the counters software drivers share.
//! - [`dev`]: the driver traits; [`Slot`] for queue state a handle borrows.
//! - [`port`]: [`Port`] and the queue handles.
//! - [`prepare`]: `tx_prepare`: a burst's TX offload requests checked and fixed up.
//! - [`settings`]: [`PortSettings`], what the port applies to its device, and frame sizes.
//! - [`soft`]: the address and link every software port reports.
//! - [`registry`]: PCI ID tables, virtual devices (`--vdev NAME,key=value`), [`Registry`].
//!
//! Burst semantics are DPDK's: `rx_burst` appends up to `max` received buffers to the caller's
//! vector; `tx_burst` takes buffers from the front of the caller's vector and returns how many it
//! took; the caller keeps (and decides the fate of) the rest.

pub mod dev;
pub mod error;
pub mod port;
pub mod prepare;
pub mod registry;
pub mod settings;
pub mod soft;
pub mod stats;
pub mod types;

pub use burst_net::mac;
pub use burst_net::MacAddr;
pub use dev::{EthDev, RxBurst, Slot, SlotGuard, TxBurst};
pub use error::EthError;
pub use port::{Port, PortId, PortState, RxQueue, TxQueue};
pub use prepare::{TxFault, TxPrepareError};
pub use registry::{DevArgs, PciDriver, PciId, PciProbe, PciSpec, Registry, VdevDriver, VdevProbe, VdevShared};
pub use settings::PortSettings;
pub use stats::{QueueCounters, Stats, SwStats, XStat};
pub use types::{
    DescLimits, DevInfo, DeviceName, Duplex, LinkStatus, PortConf, RxOffloads, RxQueueConf, TxOffloads, TxQueueConf,
};
