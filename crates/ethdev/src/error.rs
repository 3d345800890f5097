//! What can go wrong on a port. Each message names the port and says what to do.

use burst_mem::MemError;

use crate::port::PortState;

/// Which direction a queue moves packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Receive.
    Rx,
    /// Transmit.
    Tx,
}

impl std::fmt::Display for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dir::Rx => "RX",
            Dir::Tx => "TX",
        })
    }
}

/// A port or driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EthError {
    /// The operation does not fit the port's state.
    #[error("port {port}: {op} is not allowed while the port is {state}: {hint}")]
    State {
        /// The port.
        port: u16,
        /// The operation (`rx_queue_setup`).
        op: &'static str,
        /// The state it was in.
        state: PortState,
        /// What to do.
        hint: &'static str,
    },
    /// Queue counts outside what the device has.
    #[error("port {port}: {rx} RX and {tx} TX queues asked for, the device has at most {max_rx} and {max_tx} (and at least one queue is needed)")]
    QueueCount {
        /// The port.
        port: u16,
        /// RX queues asked.
        rx: u16,
        /// TX queues asked.
        tx: u16,
        /// Device maximum RX.
        max_rx: u16,
        /// Device maximum TX.
        max_tx: u16,
    },
    /// A queue index past the configured count.
    #[error("port {port}: there is no {dir} queue {queue}: the port is configured with {count}")]
    NoQueue {
        /// The port.
        port: u16,
        /// Direction.
        dir: Dir,
        /// Index asked.
        queue: u16,
        /// Configured count.
        count: u16,
    },
    /// A queue was started without being set up.
    #[error("port {port}: {dir} queue {queue} was not set up: call {dir_lower}_queue_setup before start", dir_lower = if matches!(dir, Dir::Rx) { "rx" } else { "tx" })]
    QueueNotSetUp {
        /// The port.
        port: u16,
        /// Direction.
        dir: Dir,
        /// The queue.
        queue: u16,
    },
    /// A queue handle is already out.
    #[error("port {port}: {dir} queue {queue} is already in use by another handle: drop that handle first")]
    QueueBusy {
        /// The port.
        port: u16,
        /// Direction.
        dir: Dir,
        /// The queue.
        queue: u16,
    },
    /// A descriptor count the device cannot take.
    #[error("port {port}: {n} {dir} descriptors asked for: the device takes {min}..={max}, a multiple of {align} (0 gives {default})")]
    DescCount {
        /// The port.
        port: u16,
        /// Direction.
        dir: Dir,
        /// Asked for.
        n: u16,
        /// Minimum.
        min: u16,
        /// Maximum.
        max: u16,
        /// Alignment.
        align: u16,
        /// Default.
        default: u16,
    },
    /// An MTU outside the device's range.
    #[error("port {port}: MTU {mtu} is outside the device's range {min}..={max}")]
    Mtu {
        /// The port.
        port: u16,
        /// Asked for.
        mtu: u16,
        /// Minimum.
        min: u16,
        /// Maximum.
        max: u16,
    },
    /// Offloads the device cannot do.
    #[error("port {port}: {driver} cannot do the {dir} offloads {missing}: it offers {capa}")]
    Offloads {
        /// The port.
        port: u16,
        /// The driver.
        driver: &'static str,
        /// Direction.
        dir: Dir,
        /// What was asked for and is missing, printed.
        missing: String,
        /// What the device offers, printed.
        capa: String,
    },
    /// Offloads asked for one queue that the device can only turn on for the whole port.
    #[error("port {port}: {driver} cannot turn on the {dir} offloads {missing} for {dir} queue {queue} alone: it offers per queue {capa}; ask for them in the port's configuration instead")]
    QueueOffloads {
        /// The port.
        port: u16,
        /// The driver.
        driver: &'static str,
        /// Direction.
        dir: Dir,
        /// The queue.
        queue: u16,
        /// What was asked for and cannot be per queue, printed.
        missing: String,
        /// What the device offers per queue, printed.
        capa: String,
    },
    /// An RX pool whose buffers are smaller than the device takes.
    #[error("port {port}: RX buffers of {room} bytes are too small: the device needs at least {min}; make the pool's data room larger")]
    RxBufTooSmall {
        /// The port.
        port: u16,
        /// The pool's data room.
        room: u32,
        /// The device's minimum.
        min: u32,
    },
    /// A frame of the MTU does not fit one RX buffer.
    #[error("port {port}: MTU {mtu} needs frames of {frame} bytes and RX queue {queue}'s buffers hold {room}: use a pool with a data room of at least {frame} bytes, a smaller MTU, or the scatter RX offload (RxOffloads::SCATTER) where the driver has it")]
    FrameTooLong {
        /// The port.
        port: u16,
        /// The MTU.
        mtu: u16,
        /// The largest frame it allows.
        frame: u32,
        /// The RX queue whose buffers are too small.
        queue: u16,
        /// What one of its buffers takes.
        room: usize,
    },
    /// A MAC address that cannot be a port's.
    #[error("port {port}: {mac} cannot be a port's address: use a unicast address other than 00:00:00:00:00:00")]
    BadMac {
        /// The port.
        port: u16,
        /// The address.
        mac: crate::MacAddr,
    },
    /// A packet of a TX burst asks for what its queue cannot do (`tx_prepare`).
    #[error("TX prepare: {0}")]
    TxPrepare(#[from] crate::TxPrepareError),
    /// The driver does not do this.
    #[error("{driver}: {what} is not supported by this driver")]
    NotSupported {
        /// The driver.
        driver: &'static str,
        /// The operation.
        what: &'static str,
    },
    /// A device argument (`--vdev NAME,key=value` or `-a ADDR,key=value`) is wrong.
    #[error("{device}: {message}")]
    DevArgs {
        /// The device.
        device: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// No driver knows this virtual device.
    #[error("unknown virtual device {name:?}: the drivers here make {known} (e.g. --vdev net_null0)")]
    UnknownVdev {
        /// The name given.
        name: String,
        /// Known driver names, comma separated.
        known: String,
    },
    /// Memory for rings or buffers could not be had.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// The PCI layer failed.
    #[error(transparent)]
    Pci(#[from] burst_pci::DeviceError),
    /// A driver step failed or the device misbehaved: the driver's own error, which says what
    /// happened and what to do. [`EthError::driver_error`] gets it back as its type.
    #[error("{driver} {device}: {source}")]
    Driver {
        /// The driver.
        driver: &'static str,
        /// The device: PCI address or vdev name.
        device: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl EthError {
    /// A driver's own error `source`, for `device` of `driver`.
    pub fn driver(
        driver: &'static str,
        device: impl ToString,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> EthError {
        EthError::Driver { driver, device: device.to_string(), source: Box::new(source) }
    }

    /// The driver's error inside an [`EthError::Driver`], if it is an `E`.
    pub fn driver_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            EthError::Driver { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}
