//! What can go wrong on a net_null port, beyond what the port checks itself.

/// A net_null driver error, wrapped in [`burst_ethdev::EthError::Driver`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NullError {
    /// `size=` is larger than an RX buffer.
    #[error(
        "RX queue {queue}: packets of size={size} bytes do not fit the pool's {room}-byte data room: use a pool \
         with a larger data room or a smaller size="
    )]
    PacketTooBig {
        /// The RX queue.
        queue: u16,
        /// `size=`.
        size: u16,
        /// The pool's data room.
        room: u16,
    },
}
