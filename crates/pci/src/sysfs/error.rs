//! The error type of [`crate::sysfs`]. Every message ends with what to do about it.

use std::io;
use std::path::PathBuf;

use crate::{BadAddress, PciAddress};

/// What went wrong while reading the PCI devices out of sysfs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysfsError {
    /// No such device under `/sys/bus/pci/devices`.
    #[error("no PCI device {addr}: see `devbind --status`")]
    NoDevice { addr: PciAddress },

    /// A device argument that is neither a PCI address nor the name of a PCI device's interface.
    #[error(
        "`{arg}` is neither a PCI address nor a network interface of a PCI device: \
         give an address like 0000:00:02.0 or an interface name from `devbind --status`"
    )]
    NoSuchInterface { arg: String },

    /// A device argument that looks like a PCI address but is not one.
    #[error(transparent)]
    BadAddress(#[from] BadAddress),

    /// `/sys/bus/pci/devices` is missing: no sysfs, or no PCI bus.
    #[error("{} does not exist: mount sysfs on /sys (`mount -t sysfs sysfs /sys`); a machine without PCI has nothing to bind", path.display())]
    NoSysfs { path: PathBuf },

    /// A file or directory that exists but could not be read.
    #[error("cannot read {}: {source}{}", path.display(), io_hint(source))]
    Read { path: PathBuf, source: io::Error },

    /// A file whose content is not what the kernel writes there.
    #[error("{}: expected {expected}, found {found:?}: is this a sysfs tree?", path.display())]
    Parse { path: PathBuf, expected: &'static str, found: String },
}

/// What to do about an I/O error, if there is anything to say.
fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => " (run as root)",
        io::ErrorKind::NotFound => " (did the device go away? run `devbind --status`)",
        _ => "",
    }
}
