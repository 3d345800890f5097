//! A device bound to vfio-pci and open through its group: config space, BARs (mapped, or
//! reached through the device file), interrupts to eventfds, and reset.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::{
    VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP,
};
use vfio_ioctls::VfioRegionInfoCap;
use vmm_sys_util::eventfd::EventFd;

use super::group::check_group_viable;
use super::iommu::intel_iommu_width;
use super::{Container, OpenDevice, VfioError, VFIO_DEVICE_RESET};
use crate::address::PciAddress;
use crate::bar::{Bar, BarError};
use crate::config::{ConfigFile, BAR0, BAR_IO_SPACE};
use crate::irq::{Irq, IrqError, IrqInfo, IrqKind};

/// A device bound to vfio-pci, open.
pub(crate) struct VfioPci {
    addr: PciAddress,
    group: u32,
    iommu_width: Option<u8>,
    // Field order is drop order: the config file shares the device's descriptor.
    config: ConfigFile,
    device: Arc<OpenDevice>,
    container: Arc<Container>,
}

impl VfioPci {
    /// Opens `addr`, which must be bound to vfio-pci, in `container` (a new one if `None`).
    pub(crate) fn open(
        sysfs_root: &Path,
        addr: PciAddress,
        container: Option<&Arc<Container>>,
    ) -> Result<VfioPci, VfioError> {
        let group = check_group_viable(sysfs_root, addr)?;
        let container = match container {
            Some(c) => c.clone(),
            None => Container::new()?,
        };
        let iommu_width = intel_iommu_width(sysfs_root, addr);
        // Counted from here: an early return below drops it, and the count with it.
        let device = container.open(sysfs_root, addr, group, iommu_width)?;
        let size = device.get_region_size(VFIO_PCI_CONFIG_REGION_INDEX);
        if size == 0 {
            return Err(VfioError::NoConfigRegion { addr });
        }
        let offset = device.get_region_offset(VFIO_PCI_CONFIG_REGION_INDEX);
        let config = ConfigFile::new(addr, device.clone(), offset, size.min(4096) as u16);
        tracing::debug!(%addr, group, "opened through VFIO");
        Ok(VfioPci { addr, group, iommu_width, config, device, container })
    }

    pub(crate) fn group(&self) -> u32 {
        self.group
    }

    pub(crate) fn iommu_width(&self) -> Option<u8> {
        self.container.address_width().or(self.iommu_width)
    }

    pub(crate) fn container(&self) -> &Arc<Container> {
        &self.container
    }

    pub(crate) fn config(&self) -> &ConfigFile {
        &self.config
    }

    fn present_bars(&self) -> String {
        let present: Vec<String> = (0..6u32)
            .filter(|&i| self.device.get_region_size(i) > 0)
            .map(|i| format!("BAR{i} ({:#x} bytes)", self.device.get_region_size(i)))
            .collect();
        if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        }
    }

    /// Whether VFIO lets us mmap the whole region: it says MMAP, and if it lists sparse areas
    /// (to keep the MSI-X table out), they cover everything or the table is mappable anyway.
    /// If not, why not.
    fn whole_region_mappable(&self, index: u32, size: u64) -> Result<(), &'static str> {
        if self.device.get_region_flags(index) & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err("the region has no MMAP flag");
        }
        let caps = self.device.get_region_caps(index);
        if caps.iter().any(|c| matches!(c, VfioRegionInfoCap::MsixMappable)) {
            return Ok(());
        }
        match caps.iter().find_map(|c| match c {
            VfioRegionInfoCap::SparseMmap(s) => Some(s),
            _ => None,
        }) {
            None => Ok(()),
            Some(sparse) if sparse.areas.iter().any(|a| a.offset == 0 && a.size >= size) => Ok(()),
            Some(_) => Err("only sparse areas of it are mappable, the MSI-X table being carved out"),
        }
    }

    /// Maps (or opens for pread/pwrite) BAR `index`. `owner` keeps the device open.
    pub(crate) fn bar(&self, index: u8, owner: Arc<dyn Send + Sync>) -> Result<Bar, BarError> {
        let addr = self.addr;
        let no_bar = || BarError::NoSuchBar { addr, index, present: self.present_bars() };
        if index > 5 {
            return Err(no_bar());
        }
        let region = u32::from(index);
        let size = self.device.get_region_size(region);
        if size == 0 {
            return Err(no_bar());
        }
        let offset = self.device.get_region_offset(region);
        let bar_reg = self.config.read32(BAR0 + 4 * u16::from(index)).unwrap_or(0);
        let is_io = bar_reg & BAR_IO_SPACE != 0;
        if !is_io {
            match self.whole_region_mappable(region, size) {
                Ok(()) => match Bar::map(addr, index, self.device.as_raw_fd(), offset, size, Some(owner.clone())) {
                    Ok(bar) => return Ok(bar),
                    Err(e) => {
                        tracing::warn!("{e}; reaching it through pread/pwrite instead: register access will be slow")
                    }
                },
                Err(why) => tracing::warn!(
                    "BAR{index} of {addr} is a memory BAR that VFIO does not let us map whole ({why}): reaching it \
                     through pread/pwrite, one system call per register access, so register access will be slow"
                ),
            }
        }
        Ok(Bar::through_file(addr, index, self.device.clone(), offset, size, Some(owner)))
    }

    pub(crate) fn irq_info(&self) -> IrqInfo {
        let count = |i| self.device.get_irq_info(i).map_or(0, |irq| irq.count);
        IrqInfo {
            intx: count(VFIO_PCI_INTX_IRQ_INDEX),
            msi: count(VFIO_PCI_MSI_IRQ_INDEX),
            msix: count(VFIO_PCI_MSIX_IRQ_INDEX),
        }
    }

    fn index(kind: IrqKind) -> u32 {
        match kind {
            IrqKind::Intx => VFIO_PCI_INTX_IRQ_INDEX,
            IrqKind::Msi => VFIO_PCI_MSI_IRQ_INDEX,
            IrqKind::Msix => VFIO_PCI_MSIX_IRQ_INDEX,
        }
    }

    /// Routes `count` vectors of `kind` to new eventfds.
    pub(crate) fn enable_irqs(&self, kind: IrqKind, count: u32) -> Result<Vec<Irq>, IrqError> {
        let addr = self.addr;
        let available = self.irq_info().count(kind);
        if count == 0 || count > available {
            let hint = match kind {
                IrqKind::Intx => "",
                _ if available == 0 => ": the device has no such capability; use INTx",
                _ => "",
            };
            return Err(IrqError::NotAvailable { addr, kind, asked: count, available, hint });
        }
        let mut fds = Vec::new();
        for _ in 0..count {
            fds.push(EventFd::new(libc::EFD_NONBLOCK).map_err(|source| IrqError::Io {
                op: "creating an eventfd for the",
                addr,
                source,
            })?);
        }
        self.device.enable_irq(Self::index(kind), fds.iter().collect()).map_err(|source| IrqError::Setup {
            addr,
            kind,
            source,
        })?;
        let intx = (kind == IrqKind::Intx).then(|| self.device.clone());
        Ok(fds.into_iter().enumerate().map(|(v, fd)| Irq::eventfd(addr, kind, v as u32, fd, intx.clone())).collect())
    }

    /// Stops routing `kind` interrupts (the eventfds stay valid but stay quiet).
    pub(crate) fn disable_irqs(&self, kind: IrqKind) -> Result<(), IrqError> {
        self.device.disable_irq(Self::index(kind)).map_err(|source| IrqError::Setup { addr: self.addr, kind, source })
    }

    /// `VFIO_DEVICE_RESET`: function-level reset (FLR, PM, or a bus reset the kernel may do).
    pub(crate) fn reset(&self) -> Result<(), VfioError> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument and touches no memory of ours.
        let r = unsafe { libc::ioctl(self.device.as_raw_fd(), VFIO_DEVICE_RESET) };
        if r == 0 {
            return Ok(());
        }
        let source = std::io::Error::last_os_error();
        let hint = if source.raw_os_error() == Some(libc::EINVAL) {
            ": the device has no reset method the kernel can use (no FLR, PM reset or bus reset); \
             re-initialise it through its registers instead"
        } else {
            ""
        };
        Err(VfioError::Reset { addr: self.addr, source, hint })
    }
}
