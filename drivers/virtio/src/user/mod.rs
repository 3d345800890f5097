//! virtio-user: the vhost-user frontend.

use burst_ethdev::{EthDev, EthError, VdevProbe};

/// The arguments `--vdev virtio_user0,...` takes.
pub(crate) const PARAMS: &str = "path=SOCK[,queues=N][,queue_size=N][,mac=MAC]";

/// Probes a `virtio_user` virtual device.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let _ = p;
    Err(EthError::NotSupported { driver: crate::USER_DRIVER_NAME, what: "virtio-user (not written yet)" })
}
