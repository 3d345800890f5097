//! What can go wrong on a net_af_packet port, each saying what to do.

use burst_netif::NetifError;

/// A net_af_packet driver error, wrapped in [`burst_ethdev::EthError::Driver`].
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The interface could not be found or read.
    #[error("{0}")]
    Iface(#[source] NetifError),
    /// The interface is administratively down.
    #[error("interface {iface} is down: bring it up with `ip link set dev {iface} up`")]
    Down {
        /// The interface.
        iface: String,
    },
    /// No permission to open a packet socket.
    #[error("opening an AF_PACKET socket needs CAP_NET_RAW: run as root, or give the program the capability (`setcap cap_net_raw,cap_net_admin+ep PROGRAM`)")]
    NoCapNetRaw,
    /// A step of a queue's socket set-up failed.
    #[error("queue {queue}: {step}: {source}{hint}", hint = step_hint(.source))]
    Socket {
        /// The queue pair.
        queue: u16,
        /// The step (`setsockopt(PACKET_RX_RING)`).
        step: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The port's settings could not be applied to the interface.
    #[error("applying the port's {what} to interface {iface}: {source}")]
    Apply {
        /// What (`MTU 9000`).
        what: String,
        /// The interface.
        iface: String,
        /// Why not.
        #[source]
        source: NetifError,
    },
}

fn step_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => ": the rings are too large for the memory there is: give a smaller framecnt or blocksz",
        Some(libc::EPERM) => ": run as root, or with CAP_NET_RAW",
        Some(libc::EINVAL) => ": the kernel refused the ring geometry: check blocksz, framesz and framecnt",
        Some(libc::ENETDOWN) | Some(libc::ENXIO) => ": the interface went down: bring it up again",
        _ => "",
    }
}
