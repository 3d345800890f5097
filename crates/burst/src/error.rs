//! [`EalError`]: what can go wrong while starting, running or closing the runtime. Each message
//! is one line that says what to do; [`EalError::exit_code`] says how an application should exit.

use burst_ethdev::EthError;
use burst_mem::MemError;
use burst_pci::sysfs::SysfsError;
use burst_pci::{DeviceError, VfioError, VoteError};

/// A runtime error.
#[derive(Debug, thiserror::Error)]
pub enum EalError {
    /// `-h`/`--help` was given: the value is the usage text. Print it to stdout and exit 0.
    #[error("{0}")]
    Help(String),
    /// A bad command line or option value (unknown option, bad lcore list, an lcore that does not
    /// exist, an unknown or duplicate vdev, bad device arguments): exit status 2.
    #[error("{0}")]
    Usage(String),
    /// Reading the PCI devices out of sysfs failed.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    /// PCI devices cannot be used as asked (an `-a` device not present, on a kernel driver or
    /// with no burst driver; bindings that need IOVA as PA with `--no-huge`); the message says
    /// what to do.
    #[error("{0}")]
    Pci(String),
    /// Opening a PCI device failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The VFIO container could not be opened.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// The devices' bindings and `--iova-mode` disagree.
    #[error(transparent)]
    Iova(#[from] VoteError),
    /// Setting up DMA memory, or a pool in it, failed.
    #[error(transparent)]
    Mem(#[from] MemError),
    /// A driver could not probe its device. Errors that already name the device (bad device
    /// arguments, an unknown vdev) are not prefixed again.
    #[error("{}", probe_message(device, source))]
    Probe {
        /// The PCI address or vdev name.
        device: String,
        /// The driver's error.
        source: EthError,
    },
    /// A port operation failed (closing, at teardown).
    #[error(transparent)]
    Port(#[from] EthError),
    /// An lcore could not be claimed, pinned or started.
    #[error("{0}")]
    Lcore(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EalError {
    /// How an application should exit: 0 for `--help`, 2 for usage errors (bad option, bad lcore
    /// list, an lcore that does not exist, unknown vdev, bad device arguments), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            EalError::Help(_) => 0,
            EalError::Usage(_) => 2,
            EalError::Probe { source, .. } | EalError::Port(source) if is_usage(source) => 2,
            _ => 1,
        }
    }

    /// Whether this is `--help` (print it to stdout, exit 0) rather than an error.
    pub fn is_help(&self) -> bool {
        matches!(self, EalError::Help(_))
    }

    /// Whether this is a usage error (exit status 2).
    pub fn is_usage(&self) -> bool {
        self.exit_code() == 2
    }

    pub(crate) fn usage(message: impl Into<String>) -> EalError {
        EalError::Usage(message.into())
    }
}

fn probe_message(device: &str, source: &EthError) -> String {
    match source {
        EthError::DevArgs { .. } | EthError::UnknownVdev { .. } => source.to_string(),
        EthError::Driver { device: d, .. } if d == device => source.to_string(),
        _ => format!("{device}: {source}"),
    }
}

/// Driver errors that are the command line's fault.
fn is_usage(e: &EthError) -> bool {
    matches!(e, EthError::DevArgs { .. } | EthError::UnknownVdev { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_kind_of_error() {
        assert_eq!(EalError::Help("usage".into()).exit_code(), 0);
        assert_eq!(EalError::usage("bad").exit_code(), 2);
        let devargs = EthError::DevArgs { device: "net_null0".into(), message: "size=x".into() };
        assert_eq!(EalError::Probe { device: "net_null0".into(), source: devargs }.exit_code(), 2);
        let other = EthError::NotSupported { driver: "x", what: "probe" };
        assert_eq!(EalError::Probe { device: "x".into(), source: other }.exit_code(), 1);
        assert_eq!(EalError::Lcore("x".into()).exit_code(), 1);
    }

    #[test]
    fn a_device_is_named_once() {
        let named = EthError::driver("net_virtio_user", "virtio_user0", std::io::Error::other("no"));
        let e = EalError::Probe { device: "virtio_user0".into(), source: named };
        assert_eq!(e.to_string(), "net_virtio_user virtio_user0: no");
        let other = EthError::NotSupported { driver: "x", what: "probe" };
        let e = EalError::Probe { device: "net_x0".into(), source: other };
        assert!(e.to_string().starts_with("net_x0: "), "{e}");
    }
}
