//! Binding a PCI device to a driver, the way the kernel documents it
//! (Documentation/ABI/testing/sysfs-bus-pci, `driver_override`) and dpdk-devbind.py does it:
//!
//! 1. `echo DRIVER > /sys/bus/pci/devices/ADDR/driver_override` (only DRIVER may take it);
//! 2. `echo ADDR > /sys/bus/pci/drivers/OLD/unbind` (the current driver lets go);
//! 3. `echo ADDR > /sys/bus/pci/drivers_probe` (the kernel offers it to DRIVER);
//! 4. read the `driver` link back: the kernel reports a failed probe only in its log.
//!
//! A device on a user-space driver ([`USER_SPACE_DRIVERS`]) keeps its `driver_override`, so no
//! kernel driver takes it back behind burst's back; after a bind to a kernel driver it is cleared
//! again, as dpdk-devbind does. Going back to the kernel needs no memory of where a device came
//! from: [`Binder::bind_kernel_default`] clears `driver_override`, unbinds and probes, and the
//! kernel picks the driver whose ID table matches (devbind's `--bind kernel`). Naming the kernel
//! driver (`--bind e1000`) works too.
//!
//! Refusals, before anything is written: a device whose interface has routes (it may carry your
//! ssh session), or is enslaved to a bridge or bond that has, unless `force`; a device that a
//! process holds open through VFIO or UIO (the kernel's unbind would wait for that process to
//! exit: even `force` does not take it); `vfio-pci` for a device without an IOMMU group.
//!
//! A failure after the first write puts the device back as it was: its `driver_override`, and
//! its old driver if it was left on none.
//!
//! The writes and `modprobe` go through the [`Kernel`] seam (`kernel.rs`): [`HostKernel`] writes
//! the files and runs `modprobe`; `crate::fake::FakeKernel` (feature `testing`) plays the kernel
//! on a fake tree for tests. The refusals are in `checks.rs`, the errors in `error.rs`.

mod checks;
mod error;
mod kernel;
#[cfg(test)]
mod tests;

use std::path::Path;

use crate::sysfs::{is_user_space_driver, PciDeviceInfo, SysfsRoot};
use crate::vfio::keeps_group_viable;
use crate::PciAddress;

pub use crate::sysfs::USER_SPACE_DRIVERS;
pub use error::BindError;
pub use kernel::{HostKernel, Kernel};

use checks::{on_kernel_default, refuse_active};

/// devbind's name for "whatever kernel driver matches the device" ([`Binder::bind_kernel_default`]).
pub const KERNEL_DEFAULT: &str = "kernel";

/// The module that provides PCI driver `driver`: the same name with `_` for `-`
/// (`vfio-pci` -> `vfio_pci`, `virtio-pci` -> `virtio_pci`).
pub fn module_for_driver(driver: &str) -> String {
    driver.replace('-', "_")
}

/// What a bind did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindOutcome {
    pub address: PciAddress,
    /// The driver before, if any.
    pub previous: Option<String>,
    /// The driver now.
    pub driver: String,
    /// False when the device was on that driver already and nothing was written.
    pub changed: bool,
    /// Modules loaded on the way (`modprobe`).
    pub loaded_modules: Vec<String>,
    /// Things the user should know that did not stop the bind (one line each).
    pub notes: Vec<String>,
}

/// What an unbind did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnbindOutcome {
    pub address: PciAddress,
    /// The driver it was on; `None` if it had none (nothing was unbound).
    pub previous: Option<String>,
}

/// Binds through a [`Kernel`]; reads through a [`SysfsRoot`].
pub struct Binder<'a> {
    root: &'a SysfsRoot,
    kernel: &'a dyn Kernel,
    /// Devices bound together in one command ([`Binder::with_batch`]).
    batch: Vec<PciAddress>,
}

impl<'a> Binder<'a> {
    pub fn new(root: &'a SysfsRoot, kernel: &'a dyn Kernel) -> Binder<'a> {
        Binder { root, kernel, batch: Vec::new() }
    }

    /// Says that `addrs` are all being bound to the same driver in one go (`devbind -b vfio-pci
    /// 10.0 10.1`): a group-mate among them is no reason for a note, it is on its way.
    pub fn with_batch(mut self, addrs: &[PciAddress]) -> Binder<'a> {
        self.batch = addrs.to_vec();
        self
    }

    /// Binds `addr` to `driver` (loading its module if the kernel does not have it), and checks
    /// that the device ended up there. A device already on `driver` is left alone.
    pub fn bind(&self, addr: PciAddress, driver: &str, force: bool) -> Result<BindOutcome, BindError> {
        let info = self.check_bind(addr, driver, force)?;
        let mut outcome = BindOutcome {
            address: addr,
            previous: info.driver.clone(),
            driver: driver.to_string(),
            changed: false,
            loaded_modules: Vec::new(),
            notes: Vec::new(),
        };
        if info.driver.as_deref() == Some(driver) {
            return Ok(outcome);
        }
        self.require_override(addr)?;
        self.ensure_driver(driver, &mut outcome)?;
        if driver == "vfio-pci" {
            self.ensure_vfio_iommu_module(&mut outcome);
        }

        self.write_override(addr, driver)?;
        if let Err(e) = self.unbind_and_probe(&info, driver) {
            // Leave the device as it was rather than on no driver.
            self.undo(&info);
            return Err(match e {
                BindError::NotBound { addr, driver, .. } => {
                    BindError::NotBound { addr, driver, now: self.root.current_driver(addr)? }
                }
                e => e,
            });
        }
        if !is_user_space_driver(driver) {
            if let Err(e) = self.write_override(addr, "") {
                outcome.notes.push(format!(
                    "{addr} is on {driver}, but its driver_override could not be cleared ({e}): only {driver} \
                     will take it after an unbind"
                ));
            }
        }
        outcome.changed = true;
        if driver == "vfio-pci" {
            outcome.notes.extend(self.group_notes(&info));
        }
        Ok(outcome)
    }

    /// Takes `addr` off its driver and clears its `driver_override`; it stays on no driver.
    pub fn unbind(&self, addr: PciAddress, force: bool) -> Result<UnbindOutcome, BindError> {
        let info = self.check_unbind(addr, force)?;
        if info.driver_override.is_some() {
            self.write_override(addr, "")?;
        }
        let Some(old) = info.driver.clone() else {
            return Ok(UnbindOutcome { address: addr, previous: None });
        };
        let unbound =
            self.write(&self.root.driver_dir(&old).join("unbind"), &addr.to_string()).and_then(|()| {
                match self.root.current_driver(addr)? {
                    Some(_) => Err(BindError::StillBound { addr, driver: old.clone() }),
                    None => Ok(()),
                }
            });
        if let Err(e) = unbound {
            self.undo(&info);
            return Err(e);
        }
        Ok(UnbindOutcome { address: addr, previous: Some(old) })
    }

    /// Gives `addr` back to the kernel: clears `driver_override`, unbinds it from its current
    /// driver and asks the kernel to probe, so the driver whose ID table matches takes it (if
    /// that driver's module is not loaded, `modprobe MODALIAS` loads it, as udev does). A device
    /// already on a kernel driver with no `driver_override` is left alone.
    pub fn bind_kernel_default(&self, addr: PciAddress, force: bool) -> Result<BindOutcome, BindError> {
        let info = self.root.device(addr)?;
        let mut outcome = BindOutcome {
            address: addr,
            previous: info.driver.clone(),
            driver: String::new(),
            changed: false,
            loaded_modules: Vec::new(),
            notes: Vec::new(),
        };
        if let (true, Some(d)) = (on_kernel_default(&info), &info.driver) {
            outcome.driver = d.clone();
            return Ok(outcome);
        }
        refuse_active(&info, force)?;
        self.refuse_in_use(&info)?;
        self.require_override(addr)?;
        if info.driver_override.is_some() {
            self.write_override(addr, "")?;
        }
        let now = match self.to_kernel_default(&info, &mut outcome) {
            Ok(now) => now,
            Err(e) => {
                // Back where it was (its user-space driver, say) rather than on no driver.
                self.undo(&info);
                return Err(e);
            }
        };
        if is_user_space_driver(&now) {
            outcome.notes.push(format!(
                "the kernel gave {addr} to {now} (its ID table lists the device: see the module's `ids=` option)"
            ));
        }
        outcome.driver = now;
        outcome.changed = true;
        Ok(outcome)
    }

    /// The part of [`Binder::bind`] after `driver_override` is set: unbind, probe, check.
    fn unbind_and_probe(&self, info: &PciDeviceInfo, driver: &str) -> Result<(), BindError> {
        let addr = info.address;
        if let Some(old) = &info.driver {
            self.write(&self.root.driver_dir(old).join("unbind"), &addr.to_string())?;
        }
        self.write(&self.root.drivers_probe(), &addr.to_string())?;
        let now = self.root.current_driver(addr)?;
        if now.as_deref() != Some(driver) {
            return Err(BindError::NotBound { addr, driver: driver.to_string(), now });
        }
        Ok(())
    }

    /// The part of [`Binder::bind_kernel_default`] after `driver_override` is cleared: unbind,
    /// probe (again after `modprobe MODALIAS` if no driver took it); the driver it is on now.
    fn to_kernel_default(&self, info: &PciDeviceInfo, outcome: &mut BindOutcome) -> Result<String, BindError> {
        let addr = info.address;
        if let Some(old) = &info.driver {
            self.write(&self.root.driver_dir(old).join("unbind"), &addr.to_string())?;
        }
        self.write(&self.root.drivers_probe(), &addr.to_string())?;
        let mut now = self.root.current_driver(addr)?;
        if let (None, Some(alias)) = (&now, &info.modalias) {
            if self.kernel.load_module(alias).is_ok() {
                outcome.loaded_modules.push(alias.clone());
                self.write(&self.root.drivers_probe(), &addr.to_string())?;
                now = self.root.current_driver(addr)?;
            }
        }
        now.ok_or(BindError::NoKernelDriver { addr, vendor: info.vendor, device: info.device })
    }

    /// Puts the device back as `info` found it, best effort (we are already failing): its
    /// `driver_override`, and its old driver if it is on none now (through that driver's
    /// `bind`, else a probe).
    fn undo(&self, info: &PciDeviceInfo) {
        self.restore_override(info);
        let Some(old) = &info.driver else { return };
        if let Ok(None) = self.root.current_driver(info.address) {
            let addr = info.address.to_string();
            if self.write(&self.root.driver_dir(old).join("bind"), &addr).is_err() {
                let _ = self.write(&self.root.drivers_probe(), &addr);
            }
        }
    }

    /// Loads `driver`'s module if the kernel has no such driver.
    fn ensure_driver(&self, driver: &str, outcome: &mut BindOutcome) -> Result<(), BindError> {
        if self.root.driver_loaded(driver) {
            return Ok(());
        }
        let module = module_for_driver(driver);
        self.kernel.load_module(&module).map_err(|detail| BindError::Modprobe {
            module: module.clone(),
            driver: driver.to_string(),
            detail,
        })?;
        outcome.loaded_modules.push(module.clone());
        if !self.root.driver_loaded(driver) {
            return Err(BindError::NotAPciDriver { module, driver: driver.to_string() });
        }
        Ok(())
    }

    /// VFIO containers need an IOMMU backend: `vfio_iommu_type1` (kmod loads it as a soft
    /// dependency of `vfio`, busybox's modprobe does not). Not fatal: iommufd can stand in.
    fn ensure_vfio_iommu_module(&self, outcome: &mut BindOutcome) {
        const TYPE1: &str = "vfio_iommu_type1";
        if self.root.module_loaded(TYPE1) {
            return;
        }
        match self.kernel.load_module(TYPE1) {
            Ok(()) => outcome.loaded_modules.push(TYPE1.to_string()),
            Err(e) => outcome.notes.push(format!(
                "`modprobe {TYPE1}` failed ({e}): VFIO containers need it unless the kernel has iommufd"
            )),
        }
    }

    /// Notes about other devices in `info`'s IOMMU group: VFIO can use a group only when every
    /// device in it is on no driver or on one that leaves DMA to its owner
    /// ([`keeps_group_viable`]). Devices of the same batch are left out: they are being bound.
    fn group_notes(&self, info: &PciDeviceInfo) -> Vec<String> {
        let Some(group) = info.iommu_group else { return Vec::new() };
        let mut notes = Vec::new();
        for other in self.root.group_devices(group) {
            if other == info.address || self.batch.contains(&other) {
                continue;
            }
            if let Ok(Some(d)) = self.root.current_driver(other) {
                if !keeps_group_viable(&d) {
                    notes.push(format!(
                        "IOMMU group {group} also holds {other} (on {d}): VFIO can use the group only when \
                         every device in it is on vfio-pci (or pci-stub, pcieport) or on no driver \
                         (`devbind -b vfio-pci {other}`)"
                    ));
                }
            }
        }
        notes
    }

    fn require_override(&self, addr: PciAddress) -> Result<(), BindError> {
        if self.root.device_dir(addr).join("driver_override").exists() {
            Ok(())
        } else {
            Err(BindError::NoDriverOverride { addr })
        }
    }

    /// Sets `driver_override`; an empty `driver` clears it.
    fn write_override(&self, addr: PciAddress, driver: &str) -> Result<(), BindError> {
        // The kernel clears it on an empty write or a lone newline; `echo > file` writes "\n".
        let value = if driver.is_empty() { "\n" } else { driver };
        self.write(&self.root.device_dir(addr).join("driver_override"), value)
    }

    /// Puts `driver_override` back as it was in `info`, best effort (we are already failing).
    fn restore_override(&self, info: &PciDeviceInfo) {
        let _ = self.write_override(info.address, info.driver_override.as_deref().unwrap_or(""));
    }

    fn write(&self, path: &Path, value: &str) -> Result<(), BindError> {
        self.kernel.write(path, value).map_err(|source| BindError::Write {
            path: path.to_path_buf(),
            value: value.trim().to_string(),
            source,
        })
    }
}

/// [`Binder::bind`] on the machine's kernel.
pub fn bind(root: &SysfsRoot, addr: PciAddress, driver: &str, force: bool) -> Result<BindOutcome, BindError> {
    Binder::new(root, &HostKernel::new()).bind(addr, driver, force)
}

/// [`Binder::unbind`] on the machine's kernel.
pub fn unbind(root: &SysfsRoot, addr: PciAddress, force: bool) -> Result<UnbindOutcome, BindError> {
    Binder::new(root, &HostKernel::new()).unbind(addr, force)
}

/// [`Binder::bind_kernel_default`] on the machine's kernel.
pub fn bind_kernel_default(root: &SysfsRoot, addr: PciAddress, force: bool) -> Result<BindOutcome, BindError> {
    Binder::new(root, &HostKernel::new()).bind_kernel_default(addr, force)
}
