//! burst-ethdev: the contract between the framework and its drivers (DPDK's `rte_ethdev`).
//!
//! A driver implements [`EthDev`] (the control path: configure, queue setup, start, stop, link,
//! MAC, filters, MTU, statistics) and hands out queue handles that implement [`RxBurst`] and
//! [`TxBurst`] (the data path). Applications never see those traits directly: they get a
//! [`Port`], which checks every call against the port's state and the device's limits before
//! the driver sees it, and [`RxQueue`]/[`TxQueue`] handles that are `Send` and move to the lcore
//! that polls them.
//!
//! - [`mac`]: Ethernet addresses ([`MacAddr`]).
//! - [`types`]: device info, descriptor limits, offloads, link status, port and queue settings.
//! - [`stats`]: [`Stats`], extended stats, and [`SwStats`], the counters software drivers share.
//! - [`dev`]: the driver traits; [`Slot`] for queue state a handle borrows.
//! - [`port`]: [`Port`] and the queue handles.
//! - [`soft`]: settings and defaults every software port shares ([`SoftSettings`]).
//! - [`registry`]: PCI ID tables, virtual devices (`--vdev NAME,key=value`), [`Registry`].
//!
//! Burst semantics are DPDK's: `rx_burst` appends up to `max` received buffers to the caller's
//! vector; `tx_burst` takes buffers from the front of the caller's vector and returns how many it
//! took; the caller keeps (and decides the fate of) the rest.

pub mod dev;
pub mod error;
pub mod mac;
pub mod port;
pub mod registry;
pub mod soft;
pub mod stats;
pub mod types;

pub use dev::{EthDev, RxBurst, Slot, SlotGuard, TxBurst};
pub use error::EthError;
pub use mac::MacAddr;
pub use port::{Port, PortId, PortState, RxQueue, TxQueue};
pub use registry::{DevArgs, PciDriver, PciId, PciProbe, PciSpec, Registry, VdevDriver, VdevProbe, VdevShared};
pub use soft::SoftSettings;
pub use stats::{QueueCounters, Stats, SwStats, XStat};
pub use types::{
    DescLimits, DevInfo, DeviceName, Duplex, LinkStatus, PortConf, RxOffloads, RxQueueConf, TxOffloads, TxQueueConf,
};
