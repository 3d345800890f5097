//! The refusals of binding, made before anything is written: an unknown device or a bad driver
//! name, an interface with routes (or enslaved to a master that has them) unless `force`, a
//! device a process holds open through VFIO or UIO (even with `force`), and `vfio-pci` without
//! an IOMMU group.

use crate::sysfs::{is_user_space_driver, PciDeviceInfo};
use crate::PciAddress;

use super::{BindError, Binder};

impl Binder<'_> {
    /// The refusals of [`Binder::bind`], without changing anything: unknown device, bad driver
    /// name, active interface (unless `force`), `vfio-pci` without an IOMMU. For checking a
    /// list of devices before binding any.
    pub fn check_bind(&self, addr: PciAddress, driver: &str, force: bool) -> Result<PciDeviceInfo, BindError> {
        check_driver_name(driver)?;
        let info = self.root.device(addr)?;
        if info.driver.as_deref() == Some(driver) {
            return Ok(info);
        }
        refuse_active(&info, force)?;
        self.refuse_in_use(&info)?;
        if driver == "vfio-pci" && info.iommu_group.is_none() {
            return Err(BindError::NoIommu { addr });
        }
        Ok(info)
    }

    /// The refusals of [`Binder::unbind`], without changing anything.
    pub fn check_unbind(&self, addr: PciAddress, force: bool) -> Result<PciDeviceInfo, BindError> {
        let info = self.root.device(addr)?;
        refuse_active(&info, force)?;
        self.refuse_in_use(&info)?;
        Ok(info)
    }

    /// The refusals of [`Binder::bind_kernel_default`], without changing anything: a device
    /// already on its kernel driver passes (nothing would change), else as [`Binder::check_unbind`].
    pub fn check_kernel_default(&self, addr: PciAddress, force: bool) -> Result<PciDeviceInfo, BindError> {
        let info = self.root.device(addr)?;
        if !on_kernel_default(&info) {
            refuse_active(&info, force)?;
            self.refuse_in_use(&info)?;
        }
        Ok(info)
    }

    /// Refuses a device that a process holds open through its VFIO group or `/dev/uioN`: the
    /// kernel's unbind would wait for that process to exit (vfio-pci's remove waits for the
    /// device's users), and devbind with it.
    pub(super) fn refuse_in_use(&self, info: &PciDeviceInfo) -> Result<(), BindError> {
        let mut files = Vec::new();
        if let (Some(d), Some(group)) = (&info.driver, info.iommu_group) {
            if d == "vfio-pci" || d.ends_with("_vfio_pci") {
                files.push(format!("/dev/vfio/{group}"));
            }
        }
        if let Some(n) = info.uio {
            files.push(format!("/dev/uio{n}"));
        }
        for file in files {
            let holders = self.root.holders(&file);
            if !holders.is_empty() {
                return Err(BindError::InUse { addr: info.address, file, holders });
            }
        }
        Ok(())
    }
}

fn check_driver_name(name: &str) -> Result<(), BindError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(BindError::BadDriverName { name: name.to_string() })
    }
}

/// On a kernel driver with no `driver_override`: where the kernel put it by itself.
pub(super) fn on_kernel_default(info: &PciDeviceInfo) -> bool {
    info.driver.as_deref().is_some_and(|d| !is_user_space_driver(d)) && info.driver_override.is_none()
}

pub(super) fn refuse_active(info: &PciDeviceInfo, force: bool) -> Result<(), BindError> {
    let Some(iface) = info.active_interfaces.first().filter(|_| !force) else { return Ok(()) };
    let addr = info.address;
    Err(match info.active_masters.iter().find(|(i, _)| i == iface) {
        Some((_, master)) => BindError::ActiveMaster { addr, iface: iface.clone(), master: master.clone() },
        None => BindError::Active { addr, iface: iface.clone() },
    })
}
