//! burst-virtio: the virtio-net poll-mode driver over two transports (virtio 1.2 spec, OASIS).
//!
//! - Over PCI ([`DRIVER`], DPDK's `net_virtio`): the transitional device 1af4:1000 through its
//!   legacy I/O-port registers, and the modern device 1af4:1041 through the virtio PCI
//!   capabilities.
//! - Over vhost-user ([`VDEV_DRIVER`], DPDK's `virtio_user`): no device at all; a backend on the
//!   same host (DPDK's `net_vhost`, OVS-DPDK, VPP) reads and writes our rings in memory we share
//!   with it by file descriptor. `--vdev virtio_user0,path=SOCK[,queues=N]`.
//!
//! Where to read what (each file cites the spec sections it implements):
//! - [`spec`]: the spec's constants: feature bits, status bits, the split ring, the config
//!   layout, the net header, control commands.
//! - `init`: device initialisation, virtio 1.2, 3.1.1, as one list of steps (reset,
//!   ACKNOWLEDGE, DRIVER, features, FEATURES_OK, virtqueues, DRIVER_OK), the probe, and the reset
//!   that stops the port.
//! - `rx`, `tx`: the burst functions (5.1.6.3-4, 5.1.6.2): mergeable RX buffers into chains,
//!   chained TX with indirect descriptors.
//! - `offload`: the net header's checksum and segmentation fields, to and from a packet's
//!   offload flags (5.1.6.2, 5.1.6.4).
//! - `virtqueue`: the split virtqueue the driver keeps (2.7), shared by RX, TX and the control
//!   queue: free descriptors, the available ring, the used ring, the in-order rule.
//! - `vring`: the ring's memory and its volatile accessors, for the driver and the test device.
//! - `ctrl`: the control queue's commands (5.1.6.5).
//! - `config`: the device's configuration space (5.1.4): MAC, link, MTU, queue pairs.
//! - `dev`: the port ([`burst_ethdev::EthDev`]): queue setup, start and stop, settings, stats.
//! - `stats`: the counters only this driver keeps.
//! - `error`: [`VirtioError`], every failure the driver reports.
//! - [`transport`]: the trait the transports implement ([`transport::TransportKind`]), and the
//!   data path's [`transport::Notifier`].
//! - `pci`: the legacy and modern PCI transports (4.1) and the PCI probe.
//! - `user`: virtio-user, the transport over a vhost-user back-end, and the virtual-device probe.
//! - `testdev`: a software device for the unit tests and the benchmark (feature `testdev`).

mod config;
mod ctrl;
mod dev;
mod error;
mod init;
mod offload;
mod pci;
mod rx;
mod stats;
#[cfg(any(test, feature = "testdev"))]
#[doc(hidden)]
pub mod testdev;
mod tx;
mod user;
mod virtqueue;
mod vring;

pub mod spec;
pub mod transport;

pub use dev::VirtioNet;
pub use error::{StructureProblem, VirtioError};

use burst_ethdev::{PciDriver, PciId, VdevDriver};

/// The PCI driver's name (DPDK's).
pub const DRIVER_NAME: &str = "net_virtio";

/// The virtio-user driver's name, as ports report it (DPDK's).
pub const USER_DRIVER_NAME: &str = "net_virtio_user";

/// The devices this driver takes over PCI (virtio 1.2, 4.1.2.1: vendor 1af4, transitional
/// network device 1000, modern network device 1040 + 1).
pub const PCI_IDS: &[PciId] = &[
    PciId::new(0x1af4, 0x1000), // transitional virtio-net: legacy interface
    PciId::new(0x1af4, 0x1041), // modern virtio-net (virtio 1.x)
];

/// The PCI driver, for `burst::drivers::registry()`.
pub static DRIVER: PciDriver = PciDriver { name: DRIVER_NAME, ids: PCI_IDS, probe: pci::probe };

/// The virtio-user driver: `--vdev virtio_user0,path=SOCK[,queues=N][,queue_size=N][,mac=MAC]`.
pub static VDEV_DRIVER: VdevDriver = VdevDriver {
    name: "virtio_user",
    aliases: &["net_virtio_user"],
    params: user::PARAMS,
    probe: user::probe,
    finish: None,
};
