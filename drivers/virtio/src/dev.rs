//! The virtio-net port: feature negotiation and the control path.

use burst_ethdev::{DeviceName, EthError, MacAddr, PortId};
use burst_mem::Memory;

use crate::transport::Transport;

/// What a transport's probe hands the net device besides the transport.
pub(crate) struct DevContext {
    /// [`crate::DRIVER_NAME`] or [`crate::USER_DRIVER_NAME`].
    pub driver: &'static str,
    /// The PCI address or the vdev name.
    pub device: DeviceName,
    /// DMA memory for rings and the header area.
    pub memory: Memory,
    /// The port number the runtime gives it.
    pub port: PortId,
    /// NUMA socket of the device, if known.
    pub socket: Option<u32>,
    /// A MAC to use instead of the device's (virtio-user `mac=`).
    pub mac: Option<MacAddr>,
    /// Whatever must live as long as the port (the open `PciDevice`).
    pub keep: Option<Box<dyn Send + Sync>>,
}

/// One virtio-net port.
pub struct VirtioNet {
    _transport: Box<dyn Transport>,
}

impl VirtioNet {
    /// Probes the device behind `transport`: reset, negotiate, read MAC, link and queue counts.
    pub(crate) fn new(transport: Box<dyn Transport>, ctx: DevContext) -> Result<VirtioNet, EthError> {
        let _ = (transport, ctx);
        Err(EthError::NotSupported { driver: crate::DRIVER_NAME, what: "virtio-net (not written yet)" })
    }
}
