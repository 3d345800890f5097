//! UIO (`uio_pci_generic`, Documentation/driver-api/uio-howto.rst): the kernel gives the device
//! an interrupt counter (`/dev/uioN`) and nothing else; registers and config space come from the
//! device's sysfs files.
//!
//! - Memory BARs: `mmap` of sysfs `resourceN`. I/O-port BARs: `pread`/`pwrite` of 1, 2 or 4
//!   bytes on `resourceN`, which the kernel turns into `in`/`out` (x86 cannot map port space).
//! - Config space: sysfs `config` (the whole of it needs root).
//! - Interrupts: INTx only, counted by `/dev/uioN` ([`crate::irq`]).
//! - No IOMMU context of ours: the device sees physical addresses (IOVA as PA), and with an
//!   IOMMU in translating mode it can reach nothing at all; boot with `iommu=pt`.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::address::PciAddress;
use crate::bar::{Bar, BarError};
use crate::config::ConfigFile;
use crate::irq::{set_intx_disable, Irq, IrqError, IrqInfo, IrqKind};
use crate::sysfs::device_dir;

/// `IORESOURCE_IO` in sysfs `resource` flags (include/linux/ioport.h).
const IORESOURCE_IO: u64 = 0x100;
/// `IORESOURCE_MEM`.
const IORESOURCE_MEM: u64 = 0x200;

/// What can go wrong with UIO.
#[derive(Debug, thiserror::Error)]
pub enum UioError {
    /// The device has no `uio/uioN` directory.
    #[error(
        "{addr} has no UIO device under {dir}: is it bound to uio_pci_generic? \
         (`devbind -b uio_pci_generic {addr}`)"
    )]
    NoUioDevice {
        /// The device.
        addr: PciAddress,
        /// Where we looked.
        dir: PathBuf,
    },
    /// A sysfs or /dev file could not be opened or read.
    #[error("{what} {path} for {addr} failed: {source} (run as root)")]
    Io {
        /// The device.
        addr: PciAddress,
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// The device has no reset method.
    #[error(
        "{addr} has no reset method the kernel can use ({path} is missing: no FLR, PM or bus reset); \
         re-initialise it through its registers instead"
    )]
    NoReset {
        /// The device.
        addr: PciAddress,
        /// The sysfs `reset` file.
        path: PathBuf,
    },
}

/// One BAR as sysfs `resource` lists it: `start end flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Resource {
    start: u64,
    end: u64,
    flags: u64,
}

impl Resource {
    fn len(&self) -> u64 {
        if self.end > self.start {
            self.end - self.start + 1
        } else {
            0
        }
    }
}

/// Parses sysfs `resource`: one `0xSTART 0xEND 0xFLAGS` line per resource, BARs first.
fn parse_resources(text: &str) -> Vec<Resource> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    text.lines()
        .map(|l| {
            let mut f = l.split_whitespace().map(hex);
            match (f.next().flatten(), f.next().flatten(), f.next().flatten()) {
                (Some(start), Some(end), Some(flags)) => Resource { start, end, flags },
                _ => Resource { start: 0, end: 0, flags: 0 },
            }
        })
        .collect()
}

/// sysfs `uio/uioN/event`: the interrupt count, one decimal u32.
fn parse_event_count(text: &str) -> Option<u32> {
    text.trim().parse().ok()
}

/// A device bound to uio_pci_generic, open.
pub(crate) struct UioPci {
    addr: PciAddress,
    dir: PathBuf,
    /// `uioN`.
    name: String,
    dev_path: PathBuf,
    config: Arc<ConfigFile>,
}

impl UioPci {
    pub(crate) fn open(sysfs_root: &Path, addr: PciAddress) -> Result<UioPci, UioError> {
        let dir = device_dir(sysfs_root, addr);
        let uio_dir = dir.join("uio");
        let mut names: Vec<String> = fs::read_dir(&uio_dir)
            .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
            .unwrap_or_default();
        names.retain(|n| n.starts_with("uio"));
        names.sort();
        let name = names.into_iter().next().ok_or(UioError::NoUioDevice { addr, dir: uio_dir })?;
        let dev_path = sysfs_root.join("dev").join(&name);
        // Opened once now so a missing /dev node or a permission problem shows at open time.
        File::options().read(true).write(true).open(&dev_path).map_err(|source| UioError::Io {
            addr,
            what: "opening",
            path: dev_path.clone(),
            source,
        })?;
        let config_path = dir.join("config");
        let config_file = File::options().read(true).write(true).open(&config_path).map_err(|source| UioError::Io {
            addr,
            what: "opening",
            path: config_path.clone(),
            source,
        })?;
        let size = config_file.metadata().map(|m| m.len()).unwrap_or(256).clamp(64, 4096) as u16;
        let config = Arc::new(ConfigFile::new(addr, Arc::new(config_file), 0, size));
        tracing::debug!(%addr, uio = %name, "opened through UIO");
        Ok(UioPci { addr, dir, name, dev_path, config })
    }

    pub(crate) fn config(&self) -> &ConfigFile {
        &self.config
    }

    /// `uioN`.
    pub(crate) fn uio_name(&self) -> &str {
        &self.name
    }

    fn resources(&self) -> Vec<Resource> {
        fs::read_to_string(self.dir.join("resource")).map(|t| parse_resources(&t)).unwrap_or_default()
    }

    /// Maps memory BAR `index` from `resourceN`, or opens an I/O-port BAR for pread/pwrite.
    pub(crate) fn bar(&self, index: u8, owner: Arc<dyn Send + Sync>) -> Result<Bar, BarError> {
        let addr = self.addr;
        let resources = self.resources();
        let no_bar = || {
            let present: Vec<String> = resources
                .iter()
                .take(6)
                .enumerate()
                .filter(|(_, r)| r.len() > 0)
                .map(|(i, r)| format!("BAR{i} ({:#x} bytes)", r.len()))
                .collect();
            let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
            BarError::NoSuchBar { addr, index, present }
        };
        if index > 5 {
            return Err(no_bar());
        }
        let res = match resources.get(usize::from(index)) {
            Some(r) if r.len() > 0 && r.flags & (IORESOURCE_IO | IORESOURCE_MEM) != 0 => *r,
            _ => return Err(no_bar()),
        };
        let path = self.dir.join(format!("resource{index}"));
        let map_err = |source| BarError::Map { addr, index, len: res.len(), source };
        let file = File::options().read(true).write(true).open(&path).map_err(map_err)?;
        if res.flags & IORESOURCE_IO != 0 {
            Ok(Bar::through_file(addr, index, Arc::new(file), 0, res.len(), Some(owner)))
        } else {
            // The mapping keeps what it needs of the file; the descriptor can close.
            Bar::map(addr, index, file.as_raw_fd(), 0, res.len(), Some(owner))
        }
    }

    pub(crate) fn irq_info(&self) -> IrqInfo {
        let pin = self.config.read8(crate::config::INTERRUPT_PIN).unwrap_or(0);
        IrqInfo { intx: u32::from(pin != 0), msi: 0, msix: 0 }
    }

    /// The INTx counter, unmasked: a new open of `/dev/uioN`, and INTx-disable cleared.
    pub(crate) fn enable_irqs(&self, kind: IrqKind, count: u32) -> Result<Vec<Irq>, IrqError> {
        let addr = self.addr;
        let available = self.irq_info().count(kind);
        if count != 1 || available == 0 {
            let hint = match kind {
                IrqKind::Intx => ": uio_pci_generic has one INTx vector, if the device has a pin",
                _ => ": uio_pci_generic only does INTx; bind the device to vfio-pci for MSI or MSI-X",
            };
            return Err(IrqError::NotAvailable { addr, kind, asked: count, available, hint });
        }
        let io = |op| move |source| IrqError::Io { op, addr, source };
        let file = File::options().read(true).write(true).open(&self.dev_path).map_err(io("opening the"))?;
        let event = self.dir.join("uio").join(&self.name).join("event");
        let text = fs::read_to_string(&event).map_err(io("reading the sysfs event count of the"))?;
        // A wrong starting count would make the first wait report interrupts that never came.
        let count = parse_event_count(&text).ok_or_else(|| {
            let found = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} holds {:?}, not an interrupt count", event.display(), text.trim()),
            );
            io("reading the sysfs event count of the")(found)
        })?;
        let irq = Irq::uio(addr, file, count, self.config.clone());
        irq.unmask()?;
        Ok(vec![irq])
    }

    /// Masks INTx again: sets the command register's interrupt-disable bit.
    pub(crate) fn disable_irqs(&self, _kind: IrqKind) -> Result<(), IrqError> {
        Ok(set_intx_disable(&self.config, true)?)
    }

    /// Function reset through sysfs `reset`, when the kernel has a method for this device.
    pub(crate) fn reset(&self) -> Result<(), UioError> {
        let path = self.dir.join("reset");
        if !path.exists() {
            return Err(UioError::NoReset { addr: self.addr, path });
        }
        fs::write(&path, "1").map_err(|source| UioError::Io { addr: self.addr, what: "writing", path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lines_give_bar_lengths_and_kinds() {
        // The lab's e1000: a 128 KiB memory BAR0, a 64-byte I/O BAR1, then unused entries.
        let text = "0x00000000febc0000 0x00000000febdffff 0x0000000000040200\n\
                    0x000000000000c000 0x000000000000c03f 0x0000000000040101\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n";
        let r = parse_resources(text);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].len(), 0x20000);
        assert!(r[0].flags & IORESOURCE_MEM != 0);
        assert_eq!(r[1].len(), 0x40);
        assert!(r[1].flags & IORESOURCE_IO != 0);
        assert_eq!(r[2].len(), 0);
        assert_eq!(parse_resources("garbage\n")[0].len(), 0);
    }

    /// A device on uio_pci_generic in a temporary tree: config space with an INTx pin, a
    /// `uio/uio0/event` holding `event`, and a plain file standing in for `/dev/uio0`.
    fn uio_tree(tag: &str, event: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("burst-pci-uio-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dev = root.join("sys/bus/pci/devices/0000:00:02.0");
        fs::create_dir_all(dev.join("uio/uio0")).unwrap();
        let mut config = vec![0u8; 256];
        config[crate::config::INTERRUPT_PIN as usize] = 1;
        fs::write(dev.join("config"), config).unwrap();
        fs::write(dev.join("uio/uio0/event"), event).unwrap();
        fs::create_dir_all(root.join("dev")).unwrap();
        fs::write(root.join("dev/uio0"), "").unwrap();
        root
    }

    #[test]
    fn a_malformed_event_count_is_an_error_not_zero() {
        let addr: PciAddress = "0000:00:02.0".parse().unwrap();
        let root = uio_tree("event-bad", "lots\n");
        let dev = UioPci::open(&root, addr).unwrap();
        let err = dev.enable_irqs(IrqKind::Intx, 1).unwrap_err().to_string();
        assert!(err.contains("uio/uio0/event holds \"lots\", not an interrupt count"), "{err}");
        fs::remove_dir_all(&root).unwrap();

        let root = uio_tree("event-good", "7\n");
        let irqs = UioPci::open(&root, addr).unwrap().enable_irqs(IrqKind::Intx, 1).unwrap();
        assert_eq!(irqs.len(), 1);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_event_count_must_be_a_number() {
        assert_eq!(parse_event_count("42\n"), Some(42));
        assert_eq!(parse_event_count("0"), Some(0));
        for bad in ["", "\n", "-1", "4x", "99999999999"] {
            assert_eq!(parse_event_count(bad), None, "{bad:?}");
        }
    }
}
