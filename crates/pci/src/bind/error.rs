//! [`BindError`]: what goes wrong while binding or unbinding, each message saying what to do.

use std::io;
use std::path::PathBuf;

use crate::sysfs::{Holder, SysfsError};
use crate::PciAddress;

/// What went wrong while binding or unbinding; every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),

    /// Not a driver name (empty, or with characters no driver has).
    #[error(
        "`{name}` is not a driver name: use a name from /sys/bus/pci/drivers, such as vfio-pci or uio_pci_generic"
    )]
    BadDriverName { name: String },

    /// The device's interface has routes, and `force` was not given.
    #[error(
        "{addr} has an active interface {iface} (it has routes): use --force to take it anyway, \
         which cuts that interface's traffic"
    )]
    Active { addr: PciAddress, iface: String },

    /// The device's interface is enslaved to a bridge or bond that has routes, and `force` was
    /// not given.
    #[error(
        "{addr} has an active interface {iface}: it is enslaved to {master}, which has routes: use --force to \
         take it anyway, which cuts {master}'s traffic through {iface}"
    )]
    ActiveMaster { addr: PciAddress, iface: String, master: String },

    /// A process holds the device open through VFIO or UIO: unbinding it would block until the
    /// process exits.
    #[error(
        "{addr} is in use: {} {} {file} open, and taking the device from its driver would wait until {} \
         exit{}: stop {} first (`kill {}`)",
        list(holders),
        if holders.len() == 1 { "has" } else { "have" },
        if holders.len() == 1 { "it" } else { "they" },
        if holders.len() == 1 { "s" } else { "" },
        if holders.len() == 1 { "it" } else { "them" },
        holders.iter().map(|h| h.pid.to_string()).collect::<Vec<_>>().join(" "),
    )]
    InUse { addr: PciAddress, file: String, holders: Vec<Holder> },

    /// `vfio-pci` for a device with no IOMMU group.
    #[error(
        "cannot bind {addr} to vfio-pci: no IOMMU: boot with intel_iommu=on (or amd_iommu=on) and enable \
         VT-d/AMD-Vi, or use uio_pci_generic (IOVA as PA)"
    )]
    NoIommu { addr: PciAddress },

    /// The driver's module would not load.
    #[error(
        "cannot load module {module} for driver {driver} (`modprobe {module}`: {detail}): {}",
        module_hint(driver)
    )]
    Modprobe { module: String, driver: String, detail: String },

    /// The module loaded but brought no PCI driver of that name.
    #[error(
        "`modprobe {module}` worked but there is no PCI driver {driver} in /sys/bus/pci/drivers: \
         check the driver's name there"
    )]
    NotAPciDriver { module: String, driver: String },

    /// The kernel has no `driver_override` (Linux before 3.16).
    #[error("{addr} has no driver_override file: this kernel is too old (Linux 3.16 or later is needed)")]
    NoDriverOverride { addr: PciAddress },

    /// A sysfs write failed.
    #[error("cannot write `{value}` to {}: {source}{}", path.display(), write_hint(source))]
    Write { path: PathBuf, value: String, source: io::Error },

    /// The probe did not end with the device on the driver.
    #[error(
        "{addr} did not bind to {driver} (it is {}): see the kernel's reason with `dmesg | tail`",
        now_on(now.as_deref())
    )]
    NotBound { addr: PciAddress, driver: String, now: Option<String> },

    /// The unbind did not take.
    #[error("{addr} is still on {driver} after unbinding: see `dmesg | tail`")]
    StillBound { addr: PciAddress, driver: String },

    /// No kernel driver took the device back.
    #[error(
        "no kernel driver took {addr} ({vendor:04x}:{device:04x}): load the module for it (`modprobe MODULE`; \
         `lspci -k -s {addr}` names it) and run `devbind --bind kernel {addr}` again"
    )]
    NoKernelDriver { addr: PciAddress, vendor: u16, device: u16 },
}

fn module_hint(driver: &str) -> &'static str {
    match driver {
        "igb_uio" => "igb_uio is not part of Linux: build it from dpdk-kmods, or use vfio-pci or uio_pci_generic",
        _ => "install your kernel's modules (Debian: linux-image-$(uname -r); Ubuntu: linux-modules-extra-$(uname -r)) or check the driver's name",
    }
}

fn write_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => ": run devbind as root",
        _ => ": see `dmesg | tail`",
    }
}

fn list(holders: &[Holder]) -> String {
    holders.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
}

fn now_on(driver: Option<&str>) -> String {
    match driver {
        Some(d) => format!("on {d} now"),
        None => "on no driver now".to_string(),
    }
}
