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
//! The writes and `modprobe` go through the [`Kernel`] seam: [`HostKernel`] writes the files and
//! runs `modprobe`; `crate::fake::FakeKernel` (feature `testing`) plays the kernel on a fake
//! tree for tests.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sysfs::{is_user_space_driver, Holder, PciDeviceInfo, SysfsError, SysfsRoot};
use crate::vfio::keeps_group_viable;
use crate::PciAddress;

pub use crate::sysfs::USER_SPACE_DRIVERS;

/// devbind's name for "whatever kernel driver matches the device" ([`Binder::bind_kernel_default`]).
pub const KERNEL_DEFAULT: &str = "kernel";

/// What the binding code needs from the kernel: sysfs writes and module loading.
pub trait Kernel {
    /// Writes `value` to the sysfs attribute at `path` in one `write(2)`, like `echo -n`.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;

    /// Loads kernel module `module` (a module name, or a modalias as udev does), like
    /// `modprobe MODULE`. The error is what modprobe said.
    fn load_module(&self, module: &str) -> Result<(), String>;
}

/// The machine's kernel: real sysfs writes and the real `modprobe`.
#[derive(Clone, Debug)]
pub struct HostKernel {
    modprobe: PathBuf,
}

impl HostKernel {
    /// Runs `modprobe` from `PATH`.
    pub fn new() -> HostKernel {
        HostKernel { modprobe: PathBuf::from("modprobe") }
    }

    /// Runs this program instead of `modprobe`.
    pub fn with_modprobe(program: impl Into<PathBuf>) -> HostKernel {
        HostKernel { modprobe: program.into() }
    }
}

impl Default for HostKernel {
    fn default() -> Self {
        HostKernel::new()
    }
}

impl Kernel for HostKernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT (a missing attribute is an error, not a new file) and no O_TRUNC (sysfs
        // attributes take the whole value in one write).
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    }

    fn load_module(&self, module: &str) -> Result<(), String> {
        let out = Command::new(&self.modprobe).arg(module).output().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("{} not found (install kmod)", self.modprobe.display())
            } else {
                format!("cannot run {}: {e}", self.modprobe.display())
            }
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().rfind(|l| !l.trim().is_empty()).map(str::trim).unwrap_or("failed").to_string())
    }
}

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
    fn refuse_in_use(&self, info: &PciDeviceInfo) -> Result<(), BindError> {
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
fn on_kernel_default(info: &PciDeviceInfo) -> bool {
    info.driver.as_deref().is_some_and(|d| !is_user_space_driver(d)) && info.driver_override.is_none()
}

fn refuse_active(info: &PciDeviceInfo, force: bool) -> Result<(), BindError> {
    let Some(iface) = info.active_interfaces.first().filter(|_| !force) else { return Ok(()) };
    let addr = info.address;
    Err(match info.active_masters.iter().find(|(i, _)| i == iface) {
        Some((_, master)) => BindError::ActiveMaster { addr, iface: iface.clone(), master: master.clone() },
        None => BindError::Active { addr, iface: iface.clone() },
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeDevice, FakeSysfs};

    const E1000: &str = "0000:00:02.0";
    const OVERRIDE: &str = "sys/bus/pci/devices/0000:00:02.0/driver_override";
    const PROBE: &str = "sys/bus/pci/drivers_probe";

    fn addr(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    /// One e1000 on its kernel driver with interface eth0, in IOMMU group 1 unless `group` is None.
    fn e1000(group: Option<u32>) -> FakeSysfs {
        let fake = FakeSysfs::new().unwrap();
        let mut dev = FakeDevice::new(E1000, 0x8086, 0x100e).driver("e1000").iface("eth0");
        if let Some(g) = group {
            dev = dev.group(g);
        }
        fake.add_device(dev).unwrap();
        fake
    }

    fn w(path: &str, value: &str) -> (String, String) {
        (path.to_string(), value.to_string())
    }

    #[test]
    fn vfio_pci_and_back_to_the_kernel() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);

        let out = binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        assert_eq!(out.previous.as_deref(), Some("e1000"));
        assert_eq!((out.driver.as_str(), out.changed), ("vfio-pci", true));
        assert_eq!(out.loaded_modules, ["vfio_pci", "vfio_iommu_type1"]);
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        assert_eq!(fake.modprobes(), ["vfio_pci", "vfio_iommu_type1"]);
        // The kernel's documented sequence, nothing else.
        assert_eq!(
            fake.writes(),
            [w(OVERRIDE, "vfio-pci"), w("sys/bus/pci/drivers/e1000/unbind", E1000), w(PROBE, E1000),]
        );
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!(dev.driver.as_deref(), Some("vfio-pci"));
        assert_eq!(dev.driver_override.as_deref(), Some("vfio-pci"), "kept, so no kernel driver takes it back");
        assert!(dev.interfaces.is_empty());

        let back = binder.bind_kernel_default(addr(E1000), false).unwrap();
        assert_eq!((back.previous.as_deref(), back.driver.as_str()), (Some("vfio-pci"), "e1000"));
        assert!(back.changed && back.loaded_modules.is_empty());
        assert_eq!(
            fake.writes()[3..],
            [w(OVERRIDE, "\n"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000), w(PROBE, E1000)]
        );
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
        assert_eq!(dev.interfaces, ["eth0"]);

        // Already there: nothing is written.
        let again = binder.bind_kernel_default(addr(E1000), false).unwrap();
        assert!(!again.changed);
        assert_eq!(again.driver, "e1000");
        assert_eq!(fake.writes().len(), 6);
    }

    #[test]
    fn naming_the_kernel_driver_also_goes_back_and_clears_the_override() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        let out = binder.bind(addr(E1000), "e1000", false).unwrap();
        assert_eq!((out.previous.as_deref(), out.driver.as_str()), (Some("vfio-pci"), "e1000"));
        assert_eq!(
            fake.writes()[3..],
            [w(OVERRIDE, "e1000"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000), w(PROBE, E1000), w(OVERRIDE, "\n"),]
        );
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
    }

    #[test]
    fn binding_to_the_current_driver_does_nothing() {
        let fake = e1000(Some(1));
        fake.add_route("eth0").unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        // Not even the active-interface refusal: nothing would change.
        let out = Binder::new(&root, &kernel).bind(addr(E1000), "e1000", false).unwrap();
        assert!(!out.changed);
        assert!(fake.writes().is_empty() && fake.modprobes().is_empty());
    }

    #[test]
    fn an_active_interface_is_refused_without_force() {
        let fake = e1000(Some(1));
        fake.add_route("eth0").unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        for result in
            [binder.bind(addr(E1000), "vfio-pci", false).map(|_| ()), binder.unbind(addr(E1000), false).map(|_| ())]
        {
            let err = result.unwrap_err();
            assert_eq!(
                err.to_string(),
                "0000:00:02.0 has an active interface eth0 (it has routes): use --force to take it anyway, \
                 which cuts that interface's traffic"
            );
        }
        assert!(fake.writes().is_empty() && fake.modprobes().is_empty(), "refused before any change");

        let out = binder.bind(addr(E1000), "vfio-pci", true).unwrap();
        assert_eq!(out.driver, "vfio-pci");
        assert!(root.routed_interfaces().is_empty(), "the interface went, and its routes with it");
    }

    #[test]
    fn vfio_pci_without_an_iommu_is_refused_and_uio_works() {
        let fake = e1000(None);
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        let err = binder.bind(addr(E1000), "vfio-pci", false).unwrap_err();
        assert!(matches!(err, BindError::NoIommu { .. }));
        assert_eq!(
            err.to_string(),
            "cannot bind 0000:00:02.0 to vfio-pci: no IOMMU: boot with intel_iommu=on (or amd_iommu=on) and \
             enable VT-d/AMD-Vi, or use uio_pci_generic (IOVA as PA)"
        );
        assert!(fake.writes().is_empty() && fake.modprobes().is_empty());

        let out = binder.bind(addr(E1000), "uio_pci_generic", false).unwrap();
        assert_eq!(out.loaded_modules, ["uio_pci_generic"]);
        assert_eq!(root.uio_index(addr(E1000)), Some(0));
        assert_eq!(root.device(addr(E1000)).unwrap().driver_override.as_deref(), Some("uio_pci_generic"));
    }

    #[test]
    fn a_module_that_will_not_load_says_which() {
        let fake = e1000(Some(1));
        fake.set_module_available("vfio_pci", None).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot load module vfio_pci for driver vfio-pci (`modprobe vfio_pci`: FATAL: Module vfio_pci not found"
            ),
            "{text}"
        );
        assert!(text.contains("install your kernel's modules"), "{text}");
        assert!(fake.writes().is_empty());
        assert_eq!(root.device(addr(E1000)).unwrap().driver.as_deref(), Some("e1000"));

        let err = Binder::new(&root, &kernel).bind(addr(E1000), "igb_uio", false).unwrap_err();
        assert!(err.to_string().contains("build it from dpdk-kmods"), "{err}");
    }

    #[test]
    fn a_module_without_that_pci_driver_is_an_error() {
        let fake = e1000(Some(1));
        fake.set_module_available("vfio_iommu_type1", Some("")).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio_iommu_type1", false).unwrap_err();
        assert!(matches!(err, BindError::NotAPciDriver { .. }), "{err}");
        assert!(err.to_string().contains("no PCI driver vfio_iommu_type1 in /sys/bus/pci/drivers"), "{err}");
    }

    #[test]
    fn a_missing_vfio_iommu_backend_is_a_note() {
        let fake = e1000(Some(1));
        fake.set_module_available("vfio_iommu_type1", None).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let out = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap();
        assert_eq!(out.driver, "vfio-pci");
        assert_eq!(out.notes.len(), 1);
        assert!(out.notes[0].starts_with("`modprobe vfio_iommu_type1` failed"), "{:?}", out.notes);
    }

    #[test]
    fn bad_driver_names_and_unknown_devices() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        for name in ["", "../../../devices", "vfio pci", ".hidden"] {
            let err = binder.bind(addr(E1000), name, false).unwrap_err();
            assert!(matches!(err, BindError::BadDriverName { .. }), "{name:?}: {err}");
        }
        let err = binder.bind(addr("00:09.0"), "vfio-pci", false).unwrap_err();
        assert_eq!(err.to_string(), "no PCI device 0000:00:09.0: see `devbind --status`");
        assert!(binder.unbind(addr("00:09.0"), false).is_err());
        assert!(binder.bind_kernel_default(addr("00:09.0"), false).is_err());
        assert!(fake.writes().is_empty());
    }

    #[test]
    fn unbind_leaves_no_driver_and_no_override() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        let out = binder.unbind(addr(E1000), false).unwrap();
        assert_eq!(out.previous.as_deref(), Some("vfio-pci"));
        assert_eq!(fake.writes()[3..], [w(OVERRIDE, "\n"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000)]);
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver, dev.driver_override), (None, None));
        // Again: nothing to unbind.
        assert_eq!(binder.unbind(addr(E1000), false).unwrap().previous, None);
        assert_eq!(fake.writes().len(), 5);
        // And from no driver back to the kernel's.
        assert_eq!(binder.bind_kernel_default(addr(E1000), false).unwrap().driver, "e1000");
    }

    #[test]
    fn the_kernel_default_loads_the_module_by_modalias_when_needed() {
        let fake = FakeSysfs::new().unwrap();
        fake.add_device(FakeDevice::new(E1000, 0x8086, 0x100e).driver("vfio-pci").group(1))
            .unwrap()
            .set_kernel_driver(0x8086, Some(0x100e), "e1000")
            .unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let out = Binder::new(&root, &kernel).bind_kernel_default(addr(E1000), false).unwrap();
        assert_eq!(out.driver, "e1000");
        let alias = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
        assert_eq!(out.loaded_modules, [alias]);
        assert_eq!(fake.modprobes(), [alias]);
    }

    #[test]
    fn no_kernel_driver_for_the_device_is_an_error() {
        let fake = FakeSysfs::new().unwrap();
        fake.add_device(FakeDevice::new(E1000, 0x1234, 0x5678).driver("vfio-pci").group(1)).unwrap();
        fake.write(OVERRIDE, "vfio-pci\n").unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).bind_kernel_default(addr(E1000), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no kernel driver took 0000:00:02.0 (1234:5678): load the module for it (`modprobe MODULE`; \
             `lspci -k -s 0000:00:02.0` names it) and run `devbind --bind kernel 0000:00:02.0` again"
        );
        // Left as it was, not on no driver.
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
    }

    #[test]
    fn a_failed_probe_write_puts_the_device_back() {
        let fake = e1000(Some(1));
        fake.fail_writes(PROBE, libc::EIO).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot write `0000:00:02.0` to ") && text.contains("drivers_probe"), "{text}");
        assert_eq!(
            fake.writes(),
            [
                w(OVERRIDE, "vfio-pci"),
                w("sys/bus/pci/drivers/e1000/unbind", E1000),
                w(PROBE, E1000),
                w(OVERRIDE, "\n"),
                w("sys/bus/pci/drivers/e1000/bind", E1000),
            ]
        );
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
        assert_eq!(dev.interfaces, ["eth0"], "its interface is back");
    }

    #[test]
    fn a_failed_probe_write_sends_a_device_back_to_its_user_space_driver() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        fake.fail_writes(PROBE, libc::EIO).unwrap();
        assert!(binder.bind_kernel_default(addr(E1000), false).is_err());
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
        assert!(binder.bind(addr(E1000), "e1000", false).is_err());
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
    }

    #[test]
    fn a_failed_unbind_write_restores_the_override() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        fake.fail_writes("sys/bus/pci/drivers/vfio-pci/unbind", libc::EBUSY).unwrap();
        for result in
            [binder.unbind(addr(E1000), false).map(drop), binder.bind_kernel_default(addr(E1000), false).map(drop)]
        {
            assert!(result.unwrap_err().to_string().contains("vfio-pci/unbind"));
            let dev = root.device(addr(E1000)).unwrap();
            assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
        }
    }

    #[test]
    fn a_device_held_open_is_refused_naming_the_process_even_with_force() {
        let fake = e1000(Some(1));
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        binder.bind(addr(E1000), "vfio-pci", false).unwrap();
        let before = fake.writes().len();
        fake.add_process(4242, "l2fwd", &["/dev/null", "/dev/vfio/1"]).unwrap();
        fake.add_process(4343, "sshd", &["/dev/vfio/vfio", "/dev/vfio/2"]).unwrap();
        for force in [false, true] {
            let results = [
                binder.unbind(addr(E1000), force).map(drop),
                binder.bind(addr(E1000), "uio_pci_generic", force).map(drop),
                binder.bind_kernel_default(addr(E1000), force).map(drop),
            ];
            for result in results {
                assert_eq!(
                    result.unwrap_err().to_string(),
                    "0000:00:02.0 is in use: l2fwd (pid 4242) has /dev/vfio/1 open, and taking the device from its \
                     driver would wait until it exits: stop it first (`kill 4242`)"
                );
            }
        }
        assert_eq!(fake.writes().len(), before, "refused before any write");
        // Nothing would change: no refusal.
        assert!(!binder.bind(addr(E1000), "vfio-pci", false).unwrap().changed);

        // Two processes on /dev/uio0.
        let fake = FakeSysfs::new().unwrap();
        fake.add_device(FakeDevice::new(E1000, 0x8086, 0x100e).driver("uio_pci_generic")).unwrap();
        fake.add_process(7, "a", &["/dev/uio0"]).unwrap().add_process(8, "b", &["/dev/uio0"]).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).unbind(addr(E1000), false).unwrap_err().to_string();
        assert!(err.contains("a (pid 7), b (pid 8) have /dev/uio0 open") && err.ends_with("(`kill 7 8`)"), "{err}");
    }

    #[test]
    fn a_slave_of_a_routed_master_is_refused_without_force() {
        let fake = e1000(Some(1));
        fake.enslave("eth0", "br0").unwrap().add_route("br0").unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let binder = Binder::new(&root, &kernel);
        let err = binder.bind(addr(E1000), "vfio-pci", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:00:02.0 has an active interface eth0: it is enslaved to br0, which has routes: use --force to \
             take it anyway, which cuts br0's traffic through eth0"
        );
        assert!(fake.writes().is_empty());
        assert_eq!(binder.bind(addr(E1000), "vfio-pci", true).unwrap().driver, "vfio-pci");
    }

    #[test]
    fn devices_bound_together_are_not_noted_and_dma_managing_drivers_are_fine() {
        let fake = FakeSysfs::new().unwrap();
        for a in ["0000:00:10.0", "0000:00:10.1"] {
            fake.add_device(FakeDevice::new(a, 0x8086, 0x100e).driver("e1000").group(7)).unwrap();
        }
        let (root, kernel) = (fake.root(), fake.kernel());
        let both = [addr("00:10.0"), addr("00:10.1")];
        let binder = Binder::new(&root, &kernel).with_batch(&both);
        for a in both {
            let out = binder.bind(a, "vfio-pci", false).unwrap();
            assert!(out.notes.is_empty(), "{:?}", out.notes);
        }
        // A group-mate on pci-stub or pcieport keeps the group viable: no note either; on
        // another driver, a bridge's shpchp included, a note.
        let fake = FakeSysfs::new().unwrap();
        fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
            .unwrap()
            .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("pci-stub").group(7))
            .unwrap()
            .add_device(FakeDevice::new("0000:00:1c.0", 0x8086, 0x2948).class(0x060400).driver("pcieport").group(7))
            .unwrap()
            .add_device(FakeDevice::new("0000:00:1d.0", 0x8086, 0x244e).class(0x060400).driver("shpchp").group(7))
            .unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let out = Binder::new(&root, &kernel).bind(addr("00:10.0"), "vfio-pci", false).unwrap();
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
        assert!(out.notes[0].starts_with("IOMMU group 7 also holds 0000:00:1d.0 (on shpchp)"), "{:?}", out.notes);
    }

    #[test]
    fn other_devices_in_the_group_are_noted() {
        let fake = FakeSysfs::new().unwrap();
        fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
            .unwrap()
            .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("e1000").group(7))
            .unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let out = Binder::new(&root, &kernel).bind(addr("00:10.0"), "vfio-pci", false).unwrap();
        assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
        assert!(out.notes[0].starts_with("IOMMU group 7 also holds 0000:00:10.1 (on e1000)"), "{}", out.notes[0]);
    }

    #[test]
    fn a_probe_that_does_not_take_is_reported_and_undone() {
        // The host kernel's writes on a fake tree: the files change, nothing reacts, as when
        // a driver's probe fails.
        let fake = e1000(Some(1));
        fake.add_driver("vfio-pci").unwrap();
        fake.write("proc/modules", "vfio_iommu_type1 1 0 - Live 0x0\n").unwrap();
        let root = fake.root();
        let kernel = HostKernel::with_modprobe("/bin/false");
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:00:02.0 did not bind to vfio-pci (it is on e1000 now): see the kernel's reason with `dmesg | tail`"
        );
        assert_eq!(fake.read("sys/bus/pci/drivers/e1000/unbind").unwrap(), E1000);
        assert_eq!(fake.read(PROBE).unwrap(), E1000);
        // driver_override is back to unset (a lone newline; the real kernel shows "(null)").
        assert!(fake.read(OVERRIDE).unwrap().starts_with('\n'));
    }

    #[test]
    fn the_host_modprobe_reports_failures() {
        let fake = e1000(Some(1));
        let root = fake.root();
        let kernel = HostKernel::with_modprobe("/bin/false");
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
        assert!(err.to_string().contains("(`modprobe uio_pci_generic`: failed)"), "{err}");
        let kernel = HostKernel::with_modprobe("/nonexistent/modprobe");
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/modprobe not found (install kmod)"), "{err}");
        assert_eq!(fake.read(OVERRIDE).unwrap(), "(null)\n", "nothing written");
    }

    #[test]
    fn a_missing_attribute_is_a_write_error_naming_it() {
        let fake = e1000(Some(1));
        std::fs::remove_file(fake.path().join(PROBE)).unwrap();
        let (root, kernel) = (fake.root(), fake.kernel());
        let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("cannot write `0000:00:02.0` to ") && text.contains("drivers_probe"), "{text}");
    }

    #[test]
    fn the_fake_kernel_refuses_a_real_tree() {
        assert!(crate::fake::FakeKernel::at("/").is_err());
    }

    #[test]
    fn module_names_use_underscores() {
        assert_eq!(module_for_driver("vfio-pci"), "vfio_pci");
        assert_eq!(module_for_driver("uio_pci_generic"), "uio_pci_generic");
        assert_eq!(module_for_driver("virtio-pci"), "virtio_pci");
    }
}
