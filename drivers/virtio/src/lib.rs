//! burst-virtio: the virtio-net poll-mode driver over two transports (virtio 1.2 spec, OASIS).
//!
//! - Over PCI ([`DRIVER`], DPDK's `net_virtio`): the transitional device 1af4:1000 through its
//!   legacy I/O-port registers, and the modern device 1af4:1041 through the virtio PCI
//!   capabilities.
//! - Over vhost-user ([`VDEV_DRIVER`], DPDK's `virtio_user`): no device at all; a backend on the
//!   same host (DPDK's `net_vhost`, OVS-DPDK, VPP) reads and writes our rings in memory we share
//!   with it by file descriptor. `--vdev virtio_user0,path=SOCK[,queues=N]`.
//!
//! Modules:
//! - [`spec`]: feature bits, status bits, config layout, the net header, control commands.
//! - [`transport`]: the trait both transports implement, and the data path's [`Notifier`].
//! - `virtqueue`: a split virtqueue in DMA memory (volatile access only).
//! - `rx`, `tx`, `ctrl`: the burst functions and the control queue.
//! - `dev`: feature negotiation and the control path ([`burst_ethdev::EthDev`]).
//! - `pci`: the legacy and modern PCI transports and the PCI probe.
//! - `user`: the vhost-user frontend and the virtual-device probe.

mod config;
mod ctrl;
mod dev;
mod error;
mod init;
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
