//! What can go wrong reading or changing an interface.

/// A netlink request failed, or the interface is not there.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    /// No interface of that name in this network namespace.
    #[error("there is no network interface {name:?} in this network namespace: list them with `ip link`, or run in the namespace that has it (`ip netns exec NS ...`)")]
    NoSuchInterface {
        /// The name asked for.
        name: String,
    },
    /// An interface name the kernel cannot have.
    #[error("{name:?} cannot be an interface name: give 1 to 15 bytes with no '/', ':' or whitespace")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The netlink socket could not be opened or used.
    #[error("netlink: {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("netlink: {op} on interface {ifindex} refused: {source}{hint}", hint = hint(.source))]
    Refused {
        /// What was asked (`set MTU 9000`).
        op: String,
        /// The interface.
        ifindex: u32,
        /// The kernel's error number.
        source: std::io::Error,
    },
    /// The kernel answered with something that is not what was asked for.
    #[error("netlink: {op}: unexpected answer from the kernel: {what}")]
    Answer {
        /// What was being done.
        op: &'static str,
        /// What came back.
        what: String,
    },
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => ": changing an interface needs CAP_NET_ADMIN (run as root)",
        Some(libc::EINVAL) => ": the interface's driver does not take that value",
        Some(libc::EBUSY) => ": the interface is busy (some settings can only change while it is down)",
        _ => "",
    }
}
