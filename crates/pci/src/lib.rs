//! burst-pci: takes a PCI device away from the kernel and hands a driver its registers, config
//! space, interrupts and the ability to map DMA memory.
//!
//! - [`address`]: `PciAddress` (`0000:00:02.0`, `00:02.0`).
//! - [`sysfs`]: read-only scan of the PCI devices (`SysfsRoot`, `PciDeviceInfo`).
//! - [`bind`]: binding devices to drivers through `driver_override` (`Binder`).
//! - `fake` (feature `testing`, off by default): fake sysfs trees and a fake kernel, for tests of
//!   this crate and the crates above it; never part of the product.
//! - [`device`]: `PciDevice`, an open device on vfio-pci or uio_pci_generic (docs/pci.md).
//! - [`bar`], [`config`], [`irq`]: its registers, config space and interrupts.
//! - [`vfio`], [`uio`]: the two bindings; `vfio::Container` is the IOMMU's `DmaMapper`.
//! - [`vote`]: the IOVA-mode vote.

pub mod address;
pub mod bar;
pub mod bind;
pub mod config;
pub mod device;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod irq;
pub mod sysfs;
pub mod uio;
pub mod vfio;
pub mod vote;

pub use address::{BadAddress, PciAddress};
pub use bar::{Bar, BarError};
pub use config::{Capability, ConfigError, ConfigFile};
pub use device::{DeviceError, PciDevice};
pub use irq::{Irq, IrqError, IrqInfo, IrqKind};
pub use vfio::{Container, IovaRange, VfioError};
pub use vote::{choose_iova_mode, Binding, DeviceVote, HostIova, IovaModes, VoteError};
