//! burst: the one crate an application depends on. [`Runtime`] is DPDK's EAL: it parses the
//! options every DPDK user knows ([`EalOptions`]), sets up logging and signal handling, scans
//! PCI, votes on the IOVA mode, sets up DMA memory, probes devices into [`Port`]s and runs
//! closures on lcores (threads pinned to CPUs, [`Runtime::scope`]).
//!
//! ```no_run
//! use burst::{PortConf, Runtime};
//!
//! let (mut rt, _app_args) = Runtime::from_args(["app", "--no-huge", "--vdev", "net_null0", "--"])?;
//! let pool = rt.pktmbuf_pool("mbufs", 8191)?;
//! let port = rt.port_mut(0).expect("one port");
//! port.configure(&PortConf::queues(1, 1))?;
//! port.rx_queue_setup(0, 0, &pool)?;
//! port.tx_queue_setup(0, 0)?;
//! port.start()?;
//! rt.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`options`]: [`EalOptions`], parsed from a command line or built in code.
//! - [`lcores`]: lcore lists (`-l 0-3`, `--lcores 0@2,1@3`) and the CPUs this process may use.
//! - [`runtime`]: [`Runtime`]: init, ports, memory, teardown.
//! - [`scope`]: [`LcoreScope`], [`LcoreJoin`]: launching closures on lcores.
//! - [`probe`]: which PCI devices are ours, and probing devices into ports.
//! - [`signals`]: SIGINT/SIGTERM as a stop request.
//! - [`drivers`]: the driver registry, one line per driver crate.
//! - [`net`]: burst-net, typed views of packet headers (Ethernet, VLAN, IPv4, IPv6, TCP, UDP)
//!   and the Internet checksum, for what an application does to the frames it forwards.
//!
//! See `docs/runtime.md` for the options reference and the init order.

mod cli;
pub mod drivers;
pub mod error;
pub mod lcores;
mod log;
pub mod options;
pub mod probe;
pub mod runtime;
pub mod scope;
pub mod signals;

pub use burst_ethdev as ethdev;
pub use burst_ethdev::{
    DevInfo, EthError, LinkStatus, MacAddr, Port, PortConf, PortId, PortSettings, PortState, RxOffloads, RxQueue,
    Stats, TxOffloads, TxQueue, XStat,
};
pub use burst_mem as mem;
pub use burst_mem::{IovaMode, Memory, Mempool, OlFlags, PacketBuf, PacketPool, PacketPoolConfig, TxOffload};
pub use burst_net as net;
pub use burst_pci as pci;
pub use error::EalError;
pub use lcores::LcoreInfo;
pub use options::EalOptions;
pub use runtime::Runtime;
pub use scope::{LcoreJoin, LcoreScope};
