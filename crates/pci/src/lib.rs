//! space, interrupts and the ability to map DMA memory.
//!
//! - [`address`]: `PciAddress` (`0000:00:02.0`, `00:02.0`).
//! - [`fake`]: fake sysfs trees and a fake kernel, for tests.

pub mod address;
pub mod bind;
pub mod fake;
pub mod sysfs;

pub use address::{BadAddress, PciAddress};
