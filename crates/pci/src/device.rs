//! [`PciDevice`]: what a driver gets, whichever user-space driver the device is bound to: BARs,
//! config space, bus mastering, reset, interrupts, and its say in the IOVA-mode vote.
//!
//! The binding is read from sysfs when the device is opened: `vfio-pci` opens it through VFIO
//! ([`crate::vfio`]), `uio_pci_generic` through UIO ([`crate::uio`]); a kernel driver or no
//! driver is an error that says how to bind it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::address::PciAddress;
use crate::bar::{Bar, BarError};
use crate::config::{Capability, ConfigError, ConfigFile};
use crate::irq::{Irq, IrqError, IrqInfo, IrqKind};
use crate::sysfs::{device_dir, link_name};
use crate::uio::{UioError, UioPci};
use crate::vfio::{Container, VfioError, VfioPci};
use crate::vote::{Binding, DeviceVote, IovaModes};

/// Opening or driving a device failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device in sysfs.
    #[error("there is no PCI device {addr} ({path} is missing): check the address with `devbind --status`")]
    NotFound {
        /// The address asked for.
        addr: PciAddress,
        /// The sysfs directory looked for.
        path: PathBuf,
    },
    /// A kernel driver holds the device.
    #[error("{addr} is bound to {driver}, a kernel driver: run `devbind -b vfio-pci {addr}` (or uio_pci_generic)")]
    KernelDriver {
        /// The device.
        addr: PciAddress,
        /// The driver.
        driver: String,
    },
    /// No driver holds the device.
    #[error("{addr} is bound to no driver: run `devbind -b vfio-pci {addr}` (or uio_pci_generic)")]
    Unbound {
        /// The device.
        addr: PciAddress,
    },
    /// VFIO failed.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// UIO failed.
    #[error(transparent)]
    Uio(#[from] UioError),
    /// A BAR could not be opened.
    #[error(transparent)]
    Bar(#[from] BarError),
    /// Config space could not be read or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Interrupts could not be set up.
    #[error(transparent)]
    Irq(#[from] IrqError),
}

enum Backend {
    Vfio(VfioPci),
    Uio(UioPci),
}

/// An open PCI device bound to a user-space driver. Cheap to share (`Arc` inside); BARs and
/// interrupts keep it open while they live.
#[derive(Clone)]
pub struct PciDevice {
    addr: PciAddress,
    backend: Arc<Backend>,
}

impl std::fmt::Debug for PciDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PciDevice").field("addr", &self.addr).field("binding", &self.binding()).finish()
    }
}

/// The driver `addr` is bound to now, read from sysfs under `sysfs_root`; `Ok(None)` when none.
pub fn current_driver(sysfs_root: &Path, addr: PciAddress) -> Result<Option<String>, DeviceError> {
    let dir = device_dir(sysfs_root, addr);
    if !dir.exists() {
        return Err(DeviceError::NotFound { addr, path: dir });
    }
    Ok(link_name(&dir.join("driver")))
}

impl PciDevice {
    /// Opens `addr` through the user-space driver it is bound to. `sysfs_root` is `/` except in
    /// tests. A VFIO device joins `container`, or a new container when `None` (get it with
    /// [`PciDevice::container`] to share it with the next device).
    pub fn open(
        sysfs_root: &Path,
        addr: PciAddress,
        container: Option<&Arc<Container>>,
    ) -> Result<PciDevice, DeviceError> {
        let backend = match current_driver(sysfs_root, addr)?.as_deref() {
            Some("vfio-pci") => Backend::Vfio(VfioPci::open(sysfs_root, addr, container)?),
            Some("uio_pci_generic") => Backend::Uio(UioPci::open(sysfs_root, addr)?),
            Some(driver) => return Err(DeviceError::KernelDriver { addr, driver: driver.to_string() }),
            None => return Err(DeviceError::Unbound { addr }),
        };
        Ok(PciDevice { addr, backend: Arc::new(backend) })
    }

    /// Its address.
    pub fn address(&self) -> PciAddress {
        self.addr
    }

    /// What it is bound to.
    pub fn binding(&self) -> Binding {
        match *self.backend {
            Backend::Vfio(_) => Binding::Vfio,
            Backend::Uio(_) => Binding::Uio,
        }
    }

    /// The VFIO container the device is in (`None` under UIO).
    pub fn container(&self) -> Option<&Arc<Container>> {
        match &*self.backend {
            Backend::Vfio(v) => Some(v.container()),
            Backend::Uio(_) => None,
        }
    }

    /// The IOMMU group (`None` under UIO).
    pub fn iommu_group(&self) -> Option<u32> {
        match &*self.backend {
            Backend::Vfio(v) => Some(v.group()),
            Backend::Uio(_) => None,
        }
    }

    /// `uioN` (`None` under VFIO).
    pub fn uio_name(&self) -> Option<&str> {
        match &*self.backend {
            Backend::Vfio(_) => None,
            Backend::Uio(u) => Some(u.uio_name()),
        }
    }

    /// The device's vote in the IOVA-mode choice ([`crate::vote::choose_iova_mode`]).
    pub fn vote(&self) -> DeviceVote {
        let iommu_width = match &*self.backend {
            Backend::Vfio(v) => v.iommu_width(),
            Backend::Uio(_) => None,
        };
        DeviceVote { addr: self.addr, binding: self.binding(), iommu_width }
    }

    /// The IOVA modes the device can work with.
    pub fn allowed_iova_modes(&self) -> IovaModes {
        self.vote().allowed()
    }

    /// Config space.
    pub fn config(&self) -> &ConfigFile {
        match &*self.backend {
            Backend::Vfio(v) => v.config(),
            Backend::Uio(u) => u.config(),
        }
    }

    /// Reads a config-space byte.
    pub fn config_read8(&self, offset: u16) -> Result<u8, ConfigError> {
        self.config().read8(offset)
    }

    /// Reads a config-space 16-bit value.
    pub fn config_read16(&self, offset: u16) -> Result<u16, ConfigError> {
        self.config().read16(offset)
    }

    /// Reads a config-space 32-bit value.
    pub fn config_read32(&self, offset: u16) -> Result<u32, ConfigError> {
        self.config().read32(offset)
    }

    /// Writes a config-space byte.
    pub fn config_write8(&self, offset: u16, value: u8) -> Result<(), ConfigError> {
        self.config().write8(offset, value)
    }

    /// Writes a config-space 16-bit value.
    pub fn config_write16(&self, offset: u16, value: u16) -> Result<(), ConfigError> {
        self.config().write16(offset, value)
    }

    /// Writes a config-space 32-bit value.
    pub fn config_write32(&self, offset: u16, value: u32) -> Result<(), ConfigError> {
        self.config().write32(offset, value)
    }

    /// The capability list.
    pub fn capabilities(&self) -> Result<Vec<Capability>, ConfigError> {
        self.config().capabilities()
    }

    /// Lets the device do DMA (command register bit 2).
    pub fn enable_bus_master(&self) -> Result<(), ConfigError> {
        self.config().enable_bus_master()
    }

    /// BAR `index` (0..=5), mapped when it is memory; a new mapping on every call.
    pub fn bar(&self, index: u8) -> Result<Bar, DeviceError> {
        let owner: Arc<dyn Send + Sync> = self.backend.clone();
        Ok(match &*self.backend {
            Backend::Vfio(v) => v.bar(index, owner)?,
            Backend::Uio(u) => u.bar(index, owner)?,
        })
    }

    /// Function-level reset, if the kernel has a method for the device (many emulated NICs
    /// have none: the error says so).
    pub fn reset(&self) -> Result<(), DeviceError> {
        match &*self.backend {
            Backend::Vfio(v) => Ok(v.reset()?),
            Backend::Uio(u) => Ok(u.reset()?),
        }
    }

    /// How many interrupt vectors of each kind the device offers through its binding (UIO:
    /// INTx only).
    pub fn irqs(&self) -> IrqInfo {
        match &*self.backend {
            Backend::Vfio(v) => v.irq_info(),
            Backend::Uio(u) => u.irq_info(),
        }
    }

    /// Routes `count` vectors of `kind` to file descriptors and returns them. One kind at a
    /// time (enabling MSI-X disables INTx, as PCI says).
    pub fn enable_irqs(&self, kind: IrqKind, count: u32) -> Result<Vec<Irq>, IrqError> {
        match &*self.backend {
            Backend::Vfio(v) => v.enable_irqs(kind, count),
            Backend::Uio(u) => u.enable_irqs(kind, count),
        }
    }

    /// Stops routing `kind` interrupts.
    pub fn disable_irqs(&self, kind: IrqKind) -> Result<(), IrqError> {
        match &*self.backend {
            Backend::Vfio(v) => v.disable_irqs(kind),
            Backend::Uio(u) => u.disable_irqs(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn handles_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PciDevice>();
        send_sync::<Bar>();
        send_sync::<Irq>();
        send_sync::<Container>();
    }

    fn fake_device(tag: &str, driver: Option<&str>) -> PathBuf {
        let root = std::env::temp_dir().join(format!("burst-pci-device-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dev = root.join("sys/bus/pci/devices/0000:00:02.0");
        fs::create_dir_all(&dev).unwrap();
        if let Some(d) = driver {
            let ddir = root.join("sys/bus/pci/drivers").join(d);
            fs::create_dir_all(&ddir).unwrap();
            symlink(&ddir, dev.join("driver")).unwrap();
        }
        root
    }

    fn open_err(root: &Path, addr: &str) -> String {
        PciDevice::open(root, addr.parse().unwrap(), None).unwrap_err().to_string()
    }

    #[test]
    fn a_kernel_driver_is_refused_with_the_command_to_run() {
        let root = fake_device("kernel", Some("e1000"));
        assert_eq!(
            open_err(&root, "0000:00:02.0"),
            "0000:00:02.0 is bound to e1000, a kernel driver: run `devbind -b vfio-pci 0000:00:02.0` (or uio_pci_generic)"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn no_driver_and_no_device_say_what_to_do() {
        let root = fake_device("unbound", None);
        assert!(open_err(&root, "0000:00:02.0").contains("bound to no driver: run `devbind -b vfio-pci"));
        let err = open_err(&root, "0000:00:09.0");
        assert!(err.starts_with("there is no PCI device 0000:00:09.0"), "{err}");
        assert_eq!(current_driver(&root, "0000:00:02.0".parse().unwrap()).unwrap(), None);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn uio_without_a_uio_node_says_to_bind_it() {
        let root = fake_device("uio", Some("uio_pci_generic"));
        let err = open_err(&root, "0000:00:02.0");
        assert!(err.contains("has no UIO device") && err.contains("devbind -b uio_pci_generic"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn vfio_without_an_iommu_group_says_an_iommu_is_needed() {
        let root = fake_device("vfio", Some("vfio-pci"));
        let err = open_err(&root, "0000:00:02.0");
        assert!(err.contains("has no IOMMU group"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }
}
