//! burst-pci: takes a PCI device away from the kernel and hands a driver its registers, config
//! space, interrupts and the ability to map DMA memory.
//!
//! - [`address`]: `PciAddress` (`0000:00:02.0`, `00:02.0`).

pub mod address;

pub use address::{BadAddress, PciAddress};
