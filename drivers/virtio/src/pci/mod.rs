//! The virtio PCI transports: legacy (I/O-port registers) and modern (PCI capabilities).

use burst_ethdev::{EthDev, EthError, PciProbe};

/// Probes a virtio-net PCI function.
pub(crate) fn probe(p: PciProbe) -> Result<Box<dyn EthDev>, EthError> {
    let _ = p;
    Err(EthError::NotSupported { driver: crate::DRIVER_NAME, what: "virtio PCI (not written yet)" })
}
