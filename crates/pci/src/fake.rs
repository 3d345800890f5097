//! Fake sysfs/procfs trees for tests, and a fake kernel that reacts to binding writes.
//!
//! [`FakeSysfs`] lays out, in a temporary directory, what [`SysfsRoot`] reads: devices under
//! `sys/devices/pci0000:00` linked from `sys/bus/pci/devices`, drivers, IOMMU groups, routes,
//! modules. In a fake tree `driver_override`, `unbind` and `drivers_probe` are plain files, so
//! [`FakeKernel`] plays the kernel's part: after each write it does what Linux does (re-links
//! the `driver` link, removes and restores network interfaces, creates `uio/uioN`), and
//! `modprobe` creates a driver's directory. It logs every write and modprobe so tests can check
//! them. It is a model of the few kernel behaviours binding relies on, no more; the lab test
//! (`crates/pci/tests/lab_devbind.rs`) checks the same sequences on a real kernel.
//!
//! The fake kernel's own state lives in the tree's `fake-kernel/` directory (its ID table,
//! the modules `modprobe` can load, the interfaces each device's driver creates, the logs);
//! [`FakeKernel::at`] refuses a directory without it, so it can never write to the real `/sys`.
//!
//! ```
//! use burst_pci::bind::Binder;
//! use burst_pci::fake::{FakeDevice, FakeSysfs};
//! let fake = FakeSysfs::new()?;
//! fake.add_device(FakeDevice::new("0000:00:02.0", 0x8086, 0x100e).driver("e1000").group(1).iface("eth0"))?;
//! let (root, kernel) = (fake.root(), fake.kernel());
//! let addr = "00:02.0".parse().unwrap();
//! Binder::new(&root, &kernel).bind(addr, "vfio-pci", false).unwrap();
//! assert_eq!(root.device(addr).unwrap().driver.as_deref(), Some("vfio-pci"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bind::{module_for_driver, Kernel};
use crate::sysfs::{is_user_space_driver, SysfsRoot};
use crate::PciAddress;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// The fake kernel's state directory inside a fake tree.
const STATE: &str = "fake-kernel";

/// Modules a new fake tree's `modprobe` can load, with the PCI driver each brings.
const AVAILABLE_MODULES: [(&str, &str); 6] = [
    ("vfio_pci", "vfio-pci"),
    ("vfio_iommu_type1", ""),
    ("uio_pci_generic", "uio_pci_generic"),
    ("e1000", "e1000"),
    ("igb", "igb"),
    ("virtio_pci", "virtio-pci"),
];

/// One device to put in a fake tree. Defaults: class 0x020000 (Ethernet), no driver, no IOMMU
/// group, no interfaces, NUMA node -1, one 128 KiB memory BAR.
#[derive(Clone, Debug)]
pub struct FakeDevice {
    address: String,
    vendor: u16,
    device: u16,
    subsystem: (u16, u16),
    class: u32,
    driver: Option<String>,
    group: Option<u32>,
    ifaces: Vec<String>,
    numa_node: i32,
    resource: Option<String>,
    modalias: bool,
}

impl FakeDevice {
    pub fn new(address: &str, vendor: u16, device: u16) -> FakeDevice {
        FakeDevice {
            address: address.to_string(),
            vendor,
            device,
            subsystem: (0x1af4, 0x1100),
            class: 0x020000,
            driver: None,
            group: None,
            ifaces: Vec::new(),
            numa_node: -1,
            resource: None,
            modalias: true,
        }
    }

    pub fn class(mut self, class: u32) -> Self {
        self.class = class;
        self
    }

    /// Bound to `driver` now. A kernel driver also goes into the fake kernel's ID table for
    /// this vendor:device, so `drivers_probe` without an override gives the device back to it.
    pub fn driver(mut self, driver: &str) -> Self {
        self.driver = Some(driver.to_string());
        self
    }

    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// A network interface that the device's kernel driver creates.
    pub fn iface(mut self, name: &str) -> Self {
        self.ifaces.push(name.to_string());
        self
    }

    pub fn numa_node(mut self, node: i32) -> Self {
        self.numa_node = node;
        self
    }

    pub fn subsystem(mut self, vendor: u16, device: u16) -> Self {
        self.subsystem = (vendor, device);
        self
    }

    /// The `resource` file's text instead of the default.
    pub fn resource(mut self, text: &str) -> Self {
        self.resource = Some(text.to_string());
        self
    }

    /// No `modalias` file.
    pub fn without_modalias(mut self) -> Self {
        self.modalias = false;
        self
    }
}

/// A temporary tree holding `sys/` and `proc/` as Linux lays them out for PCI; removed on drop.
#[derive(Debug)]
pub struct FakeSysfs {
    tree: Tree,
}

impl FakeSysfs {
    /// A machine with no PCI devices, no drivers, no IOMMU groups, no routes, no modules
    /// loaded; `modprobe` can load vfio_pci, vfio_iommu_type1, uio_pci_generic, e1000, igb and
    /// virtio_pci.
    pub fn new() -> io::Result<FakeSysfs> {
        let root = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("burst-fake-pci-{}-{n}", std::process::id()));
            match fs::create_dir(&root) {
                Ok(()) => break root,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let fake = FakeSysfs { tree: Tree { root } };
        let t = &fake.tree;
        for dir in ["sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/kernel/iommu_groups", "sys/module"] {
            fs::create_dir_all(t.path(dir))?;
        }
        fs::create_dir_all(t.path(&format!("{STATE}/modules")))?;
        fs::create_dir_all(t.path(&format!("{STATE}/ifaces")))?;
        t.write("sys/bus/pci/drivers_probe", "")?;
        t.write("sys/bus/pci/rescan", "")?;
        t.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n",
        )?;
        t.write("proc/net/ipv6_route", "")?;
        t.write("proc/modules", "")?;
        for (module, driver) in AVAILABLE_MODULES {
            fake.set_module_available(module, Some(driver))?;
        }
        t.write(&format!("{STATE}/id_table"), "")?;
        t.write(&format!("{STATE}/writes"), "")?;
        t.write(&format!("{STATE}/modprobe"), "")?;
        Ok(fake)
    }

    /// The tree's top directory (holding `sys/` and `proc/`).
    pub fn path(&self) -> &Path {
        &self.tree.root
    }

    /// A [`SysfsRoot`] reading this tree.
    pub fn root(&self) -> SysfsRoot {
        SysfsRoot::at(&self.tree.root)
    }

    /// The fake kernel of this tree.
    pub fn kernel(&self) -> FakeKernel {
        FakeKernel { tree: Tree { root: self.tree.root.clone() } }
    }

    /// Adds a device, its driver (and the driver's module) if it has one, its IOMMU group and
    /// its interfaces.
    pub fn add_device(&self, dev: FakeDevice) -> io::Result<&Self> {
        let addr: PciAddress =
            dev.address.parse().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let t = &self.tree;
        let real = t.device_real_dir(addr);
        fs::create_dir_all(&real)?;
        let file = |name: &str, text: String| fs::write(real.join(name), text);
        file("vendor", format!("0x{:04x}\n", dev.vendor))?;
        file("device", format!("0x{:04x}\n", dev.device))?;
        file("subsystem_vendor", format!("0x{:04x}\n", dev.subsystem.0))?;
        file("subsystem_device", format!("0x{:04x}\n", dev.subsystem.1))?;
        file("class", format!("0x{:06x}\n", dev.class))?;
        file("numa_node", format!("{}\n", dev.numa_node))?;
        file("driver_override", "(null)\n".to_string())?;
        let resource = dev.resource.clone().unwrap_or_else(|| {
            let mut text = "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n".to_string();
            for _ in 1..13 {
                text.push_str("0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
            }
            text
        });
        file("resource", resource)?;
        if dev.modalias {
            let c = dev.class;
            file(
                "modalias",
                format!(
                    "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
                    dev.vendor,
                    dev.device,
                    dev.subsystem.0,
                    dev.subsystem.1,
                    c >> 16,
                    (c >> 8) & 0xff,
                    c & 0xff
                ),
            )?;
        }
        symlink(
            format!("../../../devices/{}/{addr}", host_bridge(addr)),
            t.path(&format!("sys/bus/pci/devices/{addr}")),
        )?;
        if let Some(group) = dev.group {
            let devices = t.path(&format!("sys/kernel/iommu_groups/{group}/devices"));
            fs::create_dir_all(&devices)?;
            symlink(format!("../../../../devices/{}/{addr}", host_bridge(addr)), devices.join(addr.to_string()))?;
            symlink(format!("../../../kernel/iommu_groups/{group}"), real.join("iommu_group"))?;
        }
        t.write(&format!("{STATE}/ifaces/{addr}"), &dev.ifaces.iter().map(|i| format!("{i}\n")).collect::<String>())?;
        if let Some(driver) = &dev.driver {
            t.add_driver(driver)?;
            if !is_user_space_driver(driver) {
                self.set_kernel_driver(dev.vendor, Some(dev.device), driver)?;
            }
            t.attach(addr, driver)?;
        }
        Ok(self)
    }

    /// Adds PCI driver `name` with no devices (and its module to `proc/modules`).
    pub fn add_driver(&self, name: &str) -> io::Result<&Self> {
        self.tree.add_driver(name)?;
        Ok(self)
    }

    /// Gives `iface` an IPv4 route (10.9.0.0/24), as `ip addr add 10.9.0.1/24 dev IFACE` does.
    pub fn add_route(&self, iface: &str) -> io::Result<&Self> {
        self.tree
            .append("proc/net/route", &format!("{iface}\t0000090A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"))?;
        Ok(self)
    }

    /// Gives `iface` an IPv6 route (fd00::/64).
    pub fn add_ipv6_route(&self, iface: &str) -> io::Result<&Self> {
        self.tree.append(
            "proc/net/ipv6_route",
            &format!(
                "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
                 00000000000000000000000000000000 00000100 00000001 00000000 00000001 {iface:>8}\n"
            ),
        )?;
        Ok(self)
    }

    /// Enslaves network interface `iface` (a device's, or an upper device made by an earlier
    /// call) to `master`, a bridge or bond created under `sys/devices/virtual/net` if needed:
    /// the `master` link Linux puts in the interface's directory.
    pub fn enslave(&self, iface: &str, master: &str) -> io::Result<&Self> {
        let t = &self.tree;
        let slave = t.iface_dir(iface)?;
        fs::create_dir_all(t.path(&format!("sys/devices/virtual/net/{master}")))?;
        // Relative, as sysfs makes it: up to sys/devices, then down to the master.
        let depth = slave.strip_prefix(t.path("sys/devices")).map(|p| p.components().count()).unwrap_or(0);
        symlink(format!("{}virtual/net/{master}", "../".repeat(depth)), slave.join("master"))?;
        Ok(self)
    }

    /// A process `pid` named `name` that has `files` (absolute paths, such as `/dev/vfio/7`)
    /// open: `proc/PID/comm` and one `proc/PID/fd/N` link per file.
    pub fn add_process(&self, pid: u32, name: &str, files: &[&str]) -> io::Result<&Self> {
        let t = &self.tree;
        t.write(&format!("proc/{pid}/comm"), &format!("{name}\n"))?;
        let fd = t.path(&format!("proc/{pid}/fd"));
        fs::create_dir_all(&fd)?;
        for (n, file) in files.iter().enumerate() {
            symlink(file, fd.join((n + 3).to_string()))?;
        }
        Ok(self)
    }

    /// Makes every later write to `rel` (relative to the tree) fail with `errno`, after being
    /// logged, as a kernel attribute whose store function refuses does.
    pub fn fail_writes(&self, rel: &str, errno: i32) -> io::Result<&Self> {
        self.tree.append(&format!("{STATE}/fail"), &format!("{rel}\t{errno}\n"))?;
        Ok(self)
    }

    /// Lets `modprobe MODULE` load `module`, which brings PCI driver `driver` (if any); `None`
    /// takes the module away (modprobe then fails, as when it is not installed).
    pub fn set_module_available(&self, module: &str, driver: Option<&str>) -> io::Result<&Self> {
        let path = format!("{STATE}/modules/{module}");
        match driver {
            Some(driver) => self.tree.write(&path, driver)?,
            None => {
                let _ = fs::remove_file(self.tree.path(&path));
            }
        }
        Ok(self)
    }

    /// Puts `vendor:device` (`None`: any device of the vendor) in `driver`'s ID table: a probe
    /// without `driver_override` gives such a device to `driver`.
    pub fn set_kernel_driver(&self, vendor: u16, device: Option<u16>, driver: &str) -> io::Result<&Self> {
        let device = device.map_or("*".to_string(), |d| format!("{d:04x}"));
        self.tree.append(&format!("{STATE}/id_table"), &format!("{vendor:04x} {device} {driver}\n"))?;
        Ok(self)
    }

    /// Installs a `pci.ids` database with this text at `usr/share/misc/pci.ids`.
    pub fn set_pci_ids(&self, text: &str) -> io::Result<&Self> {
        self.tree.write("usr/share/misc/pci.ids", text)?;
        Ok(self)
    }

    /// Writes `text` to the file at `rel` (relative to the tree), creating directories.
    pub fn write(&self, rel: &str, text: &str) -> io::Result<&Self> {
        self.tree.write(rel, text)?;
        Ok(self)
    }

    /// The content of the file at `rel`.
    pub fn read(&self, rel: &str) -> io::Result<String> {
        fs::read_to_string(self.tree.path(rel))
    }

    /// Every write made through the fake kernel, in order: (path relative to the tree, value).
    pub fn writes(&self) -> Vec<(String, String)> {
        let text = self.read(&format!("{STATE}/writes")).unwrap_or_default();
        text.lines().filter_map(|l| l.split_once('\t')).map(|(p, v)| (p.to_string(), v.replace("\\n", "\n"))).collect()
    }

    /// Every `modprobe` argument the fake kernel was given, in order.
    pub fn modprobes(&self) -> Vec<String> {
        self.read(&format!("{STATE}/modprobe")).unwrap_or_default().lines().map(String::from).collect()
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.tree.root);
    }
}

/// Plays the kernel on a fake tree: see the module documentation.
#[derive(Debug)]
pub struct FakeKernel {
    tree: Tree,
}

impl FakeKernel {
    /// The fake kernel of the tree at `dir`; an error if `dir` is not a fake tree (has no
    /// `fake-kernel/` directory), so that this can never write to the real `/sys`.
    pub fn at(dir: impl Into<PathBuf>) -> io::Result<FakeKernel> {
        let root = dir.into();
        if !root.join(STATE).is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a fake sysfs tree (no {STATE}/ in it)", root.display()),
            ));
        }
        Ok(FakeKernel { tree: Tree { root } })
    }

    /// The driver that may take `addr`: the `driver_override` driver if set, else the driver
    /// whose ID table matches (`driver_match_device`).
    fn candidate(&self, addr: PciAddress) -> io::Result<Option<String>> {
        let t = &self.tree;
        let dir = t.device_dir(addr);
        let over = fs::read_to_string(dir.join("driver_override"))?.trim().to_string();
        if over.is_empty() || over == "(null)" {
            let vendor = hex_file(&dir.join("vendor"))?;
            let device = hex_file(&dir.join("device"))?;
            t.id_table_driver(vendor, device)
        } else {
            Ok(Some(over))
        }
    }

    /// `driver`'s probe of `addr`: false when it refuses the device.
    fn probe_with(&self, addr: PciAddress, driver: &str) -> io::Result<bool> {
        let t = &self.tree;
        if !t.path(&format!("sys/bus/pci/drivers/{driver}")).is_dir() {
            return Ok(false);
        }
        // vfio-pci's probe fails without an IOMMU group (this kernel has no VFIO no-IOMMU).
        if driver == "vfio-pci" && !t.device_dir(addr).join("iommu_group").exists() {
            return Ok(false);
        }
        t.attach(addr, driver)?;
        Ok(true)
    }

    /// What `drivers_probe` does for a device on no driver: the driver that may take it
    /// ([`FakeKernel::candidate`]), if the kernel has it.
    fn probe(&self, addr: PciAddress) -> io::Result<()> {
        if let Some(driver) = self.candidate(addr)? {
            self.probe_with(addr, &driver)?;
        }
        Ok(())
    }

    /// The write's error, if [`FakeSysfs::fail_writes`] set one for `rel`.
    fn failure(&self, rel: &Path) -> Option<io::Error> {
        let table = fs::read_to_string(self.tree.path(&format!("{STATE}/fail"))).unwrap_or_default();
        table.lines().find_map(|l| {
            let (path, errno) = l.split_once('\t')?;
            let errno: i32 = errno.parse().ok()?;
            (Path::new(path) == rel).then(|| io::Error::from_raw_os_error(errno))
        })
    }
}

impl Kernel for FakeKernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let t = &self.tree;
        let rel = path.strip_prefix(&t.root).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{} is outside the fake tree", path.display()))
        })?;
        t.append(&format!("{STATE}/writes"), &format!("{}\t{}\n", rel.display(), value.replace('\n', "\\n")))?;
        // Like sysfs: an attribute that does not exist cannot be written.
        OpenOptions::new().write(true).open(path)?;
        if let Some(e) = self.failure(rel) {
            return Err(e);
        }
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        let arg = value.trim();
        let enodev = || io::Error::from_raw_os_error(libc::ENODEV);
        match parts.as_slice() {
            ["sys", "bus", "pci", "devices", _, "driver_override"] => {
                let text = if arg.is_empty() { "(null)\n".to_string() } else { format!("{arg}\n") };
                fs::write(path, text)
            }
            ["sys", "bus", "pci", "drivers", driver, "unbind"] => {
                let addr: PciAddress = arg.parse().map_err(|_| enodev())?;
                if t.driver_of(addr).as_deref() != Some(*driver) {
                    return Err(enodev());
                }
                t.detach(addr, driver)
            }
            ["sys", "bus", "pci", "drivers", driver, "bind"] => {
                // bind_store: the driver must match the device (driver_override counts), and the
                // device must be on no driver.
                let addr: PciAddress = arg.parse().map_err(|_| enodev())?;
                if !t.device_dir(addr).exists() {
                    return Err(enodev());
                }
                if t.driver_of(addr).is_some() {
                    return Err(io::Error::from_raw_os_error(libc::EBUSY));
                }
                if self.candidate(addr)?.as_deref() != Some(*driver) || !self.probe_with(addr, driver)? {
                    return Err(enodev());
                }
                Ok(())
            }
            ["sys", "bus", "pci", "drivers_probe"] => {
                let addr: PciAddress = arg.parse().map_err(|_| enodev())?;
                if !t.device_dir(addr).exists() {
                    return Err(enodev());
                }
                if t.driver_of(addr).is_none() {
                    self.probe(addr)?;
                }
                Ok(())
            }
            _ => fs::write(path, value),
        }
    }

    fn load_module(&self, module: &str) -> Result<(), String> {
        let t = &self.tree;
        t.append(&format!("{STATE}/modprobe"), &format!("{module}\n")).map_err(|e| e.to_string())?;
        let not_found = || format!("FATAL: Module {module} not found in directory /lib/modules/fake");
        // A modalias, as udev passes: the module of the driver whose ID table matches.
        let module = match parse_modalias(module) {
            Some((vendor, device)) => {
                let driver = t.id_table_driver(vendor, device).map_err(|e| e.to_string())?.ok_or_else(not_found)?;
                module_for_driver(&driver)
            }
            None => module.replace('-', "_"),
        };
        let driver = fs::read_to_string(t.path(&format!("{STATE}/modules/{module}"))).map_err(|_| not_found())?;
        if driver.is_empty() {
            t.load(&module).map_err(|e| e.to_string())
        } else {
            t.add_driver(&driver).map_err(|e| e.to_string())
        }
    }
}

/// Vendor and device out of a modalias `pci:v00008086d0000100E...`.
fn parse_modalias(s: &str) -> Option<(u16, u16)> {
    let rest = s.strip_prefix("pci:v")?;
    let vendor = u32::from_str_radix(rest.get(..8)?, 16).ok()?;
    let device = u32::from_str_radix(rest.get(8..)?.strip_prefix('d')?.get(..8)?, 16).ok()?;
    Some((vendor as u16, device as u16))
}

fn hex_file(path: &Path) -> io::Result<u16> {
    let text = fs::read_to_string(path)?;
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// `pci0000:00` for devices on bus 0 of domain 0.
fn host_bridge(addr: PciAddress) -> String {
    format!("pci{:04x}:{:02x}", addr.domain, addr.bus)
}

/// The tree's files, shared by [`FakeSysfs`] and [`FakeKernel`].
#[derive(Debug)]
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> io::Result<()> {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, text)
    }

    fn append(&self, rel: &str, text: &str) -> io::Result<()> {
        OpenOptions::new().append(true).create(true).open(self.path(rel))?.write_all(text.as_bytes())
    }

    fn device_real_dir(&self, addr: PciAddress) -> PathBuf {
        self.path(&format!("sys/devices/{}/{addr}", host_bridge(addr)))
    }

    fn device_dir(&self, addr: PciAddress) -> PathBuf {
        self.path(&format!("sys/bus/pci/devices/{addr}"))
    }

    /// The directory of network interface `iface`: an upper device's under
    /// `sys/devices/virtual/net`, or a PCI device's `net/IF` (or `virtioN/net/IF`).
    fn iface_dir(&self, iface: &str) -> io::Result<PathBuf> {
        let virtual_dir = self.path(&format!("sys/devices/virtual/net/{iface}"));
        if virtual_dir.is_dir() {
            return Ok(virtual_dir);
        }
        let children = |dir: PathBuf| fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
        for dev in children(self.path("sys/devices")).flat_map(children) {
            for net in std::iter::once(dev.join("net")).chain(children(dev.clone()).map(|c| c.join("net"))) {
                if net.join(iface).is_dir() {
                    return Ok(net.join(iface));
                }
            }
        }
        Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface {iface} in the fake tree")))
    }

    fn driver_of(&self, addr: PciAddress) -> Option<String> {
        let target = fs::read_link(self.device_dir(addr).join("driver")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// Loads `module`: it appears in `proc/modules` and `sys/module`.
    fn load(&self, module: &str) -> io::Result<()> {
        let listed = fs::read_to_string(self.path("proc/modules"))?;
        if !listed.lines().any(|l| l.split_whitespace().next() == Some(module)) {
            self.append("proc/modules", &format!("{module} 16384 0 - Live 0x0000000000000000\n"))?;
        }
        fs::create_dir_all(self.path(&format!("sys/module/{module}")))
    }

    fn add_driver(&self, driver: &str) -> io::Result<()> {
        let dir = self.path(&format!("sys/bus/pci/drivers/{driver}"));
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&dir)?;
        for file in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            fs::write(dir.join(file), "")?;
        }
        self.load(&module_for_driver(driver))
    }

    fn id_table_driver(&self, vendor: u16, device: u16) -> io::Result<Option<String>> {
        let table = fs::read_to_string(self.path(&format!("{STATE}/id_table")))?;
        let (v, d) = (format!("{vendor:04x}"), format!("{device:04x}"));
        Ok(table.lines().find_map(|line| match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [tv, td, driver] if *tv == v && (*td == d || *td == "*") => Some(driver.to_string()),
            _ => None,
        }))
    }

    /// The kernel binding `addr` to `driver`: the links, and what the driver creates.
    fn attach(&self, addr: PciAddress, driver: &str) -> io::Result<()> {
        let real = self.device_real_dir(addr);
        symlink(format!("../../../bus/pci/drivers/{driver}"), real.join("driver"))?;
        symlink(
            format!("../../../../devices/{}/{addr}", host_bridge(addr)),
            self.path(&format!("sys/bus/pci/drivers/{driver}/{addr}")),
        )?;
        if driver == "uio_pci_generic" || driver == "igb_uio" {
            let used: Vec<u32> = fs::read_dir(self.path("sys/devices"))
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(|bridge| fs::read_dir(bridge.path()).into_iter().flatten().flatten())
                .flat_map(|dev| fs::read_dir(dev.path().join("uio")).into_iter().flatten().flatten())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("uio")?.parse().ok())
                .collect();
            let n = (0..).find(|n| !used.contains(n)).unwrap_or(0);
            fs::create_dir_all(real.join(format!("uio/uio{n}")))?;
        } else if !is_user_space_driver(driver) {
            let ifaces = fs::read_to_string(self.path(&format!("{STATE}/ifaces/{addr}"))).unwrap_or_default();
            // virtio-pci puts the interface on its virtio child device, others on the PCI device.
            let net =
                if driver == "virtio-pci" { real.join(format!("virtio{}/net", addr.device)) } else { real.join("net") };
            for iface in ifaces.lines() {
                fs::create_dir_all(net.join(iface))?;
            }
        }
        Ok(())
    }

    /// The kernel unbinding `addr` from `driver`: its interfaces go, and their routes with them.
    fn detach(&self, addr: PciAddress, driver: &str) -> io::Result<()> {
        let real = self.device_real_dir(addr);
        fs::remove_file(real.join("driver"))?;
        fs::remove_file(self.path(&format!("sys/bus/pci/drivers/{driver}/{addr}")))?;
        let _ = fs::remove_dir_all(real.join("uio"));
        let virtio = real.join(format!("virtio{}", addr.device));
        let gone: Vec<String> = [real.join("net"), virtio.join("net")]
            .iter()
            .flat_map(|net| fs::read_dir(net).into_iter().flatten().flatten())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let _ = fs::remove_dir_all(real.join("net"));
        let _ = fs::remove_dir_all(virtio);
        for (file, iface_field) in [("proc/net/route", 0usize), ("proc/net/ipv6_route", 9)] {
            let text = fs::read_to_string(self.path(file))?;
            let kept: String = text
                .lines()
                .filter(|l| l.split_whitespace().nth(iface_field).is_none_or(|i| !gone.iter().any(|g| g == i)))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(self.path(file), kept)?;
        }
        Ok(())
    }
}
