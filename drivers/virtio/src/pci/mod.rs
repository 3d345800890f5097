//! The virtio PCI transports (virtio 1.2, 4.1 "Virtio Over PCI Bus") and the PCI probe.
//!
//! - [`legacy`]: the transitional device 1af4:1000 through its legacy I/O-port registers in BAR 0
//!   (4.1.4.8). 32 feature bits, fixed ring sizes, one page frame number per ring, DMA to
//!   physical addresses whatever the IOMMU.
//! - [`modern`]: the modern device 1af4:1041 through the structures its vendor capabilities
//!   point to (4.1.4), in memory BARs: 64 feature bits, settable ring sizes, three addresses per
//!   ring, and DMA through the IOMMU when the device offers `VIRTIO_F_ACCESS_PLATFORM`.
//! - [`caps`]: finding those structures; [`regs`]: register access (a [`Bar`], or a fake in
//!   the unit tests).
//!
//! A transitional device also has the modern capabilities; we drive it through its legacy
//! interface, as the ID says (DPDK prefers modern when both exist; QEMU's transitional device
//! cannot sit behind the IOMMU either way, so legacy loses nothing there).
//!
//! **Bindings.** Under `uio_pci_generic` the device sees physical addresses: IOVA as PA, both
//! transports. Under `vfio-pci` the runtime maps our memory in the IOMMU, at VA by default; a
//! device that bypasses the IOMMU (legacy, or modern without ACCESS_PLATFORM) would then DMA to
//! the wrong place, so the probe refuses VA for it and says to run with `--iova-mode pa` (the
//! IOMMU then maps IOVA = PA, and the device's physical addresses are right).

mod caps;
mod legacy;
mod modern;
mod regs;

use std::sync::Arc;

use burst_ethdev::{DeviceName, EthDev, EthError, PciProbe};
use burst_mem::IovaMode;
use burst_pci::{Bar, Binding, DeviceError, PciDevice};

use crate::dev::{DevContext, VirtioNet};
use crate::error::VirtioError;
use crate::spec::features::ACCESS_PLATFORM;
use crate::transport::{Transport, TransportKind};

/// Transitional virtio-net (virtio 1.2, 4.1.2.3: legacy device ID 0x1000 = network card).
pub(crate) const DEVICE_ID_TRANSITIONAL_NET: u16 = 0x1000;
/// Modern virtio-net (4.1.2.1: 0x1040 + virtio device ID 1).
pub(crate) const DEVICE_ID_MODERN_NET: u16 = 0x1041;

/// Probes a virtio-net PCI function: bus mastering on, the transport its device ID names, then
/// the net device on top.
pub(crate) fn probe(p: PciProbe) -> Result<Box<dyn EthDev>, EthError> {
    let addr = p.device.address();
    let err = |e: VirtioError| EthError::driver(crate::DRIVER_NAME, addr, e);
    let transport: Box<dyn Transport> = match p.id.device {
        DEVICE_ID_TRANSITIONAL_NET => Box::new(open_legacy(&p.device).map_err(err)?),
        DEVICE_ID_MODERN_NET => Box::new(open_modern(&p.device).map_err(err)?),
        device => return Err(err(VirtioError::UnknownDevice { device })),
    };
    check_iommu(&*transport, p.device.binding(), p.memory.iova_mode()).map_err(err)?;
    p.device.enable_bus_master().map_err(DeviceError::from)?;
    tracing::debug!(%addr, kind = %transport.kind(), features = format_args!("{:#x}", transport.device_features()), "virtio PCI transport ready");
    let ctx = DevContext {
        driver: crate::DRIVER_NAME,
        device: DeviceName::Pci(addr),
        memory: p.memory,
        port: p.port_id,
        socket: p.socket,
        mac: None,
        keep: Some(Box::new(p.device)),
    };
    let dev = VirtioNet::new(transport, ctx)?;
    Ok(Box::new(dev))
}

/// Reads config space for [`caps`].
fn config_reader(device: &PciDevice) -> impl Fn(u16, &mut [u8]) -> Result<(), VirtioError> + '_ {
    |offset, buf| Ok(device.config().read(offset, buf)?)
}

fn open_legacy(device: &PciDevice) -> Result<legacy::Legacy<Bar>, VirtioError> {
    let caps = device.capabilities()?;
    let msix = caps::msix_enabled(&caps, &config_reader(device))?;
    let bar = device.bar(0)?;
    if bar.is_mmio() {
        return Err(VirtioError::LegacyBarIsMmio { len: bar.len() });
    }
    legacy::Legacy::new(Arc::new(bar), msix)
}

fn open_modern(device: &PciDevice) -> Result<modern::Modern<Bar>, VirtioError> {
    let list = device.capabilities()?;
    let found = caps::parse(&list, &config_reader(device))?;
    tracing::debug!(addr = %device.address(), ?found, "virtio capabilities");
    modern::Modern::new(&found, |i| open_bar(device, i), device.address().to_string())
}

fn open_bar(device: &PciDevice, index: u8) -> Result<Arc<Bar>, VirtioError> {
    let bar = device.bar(index)?;
    if !bar.is_mmio() {
        // An I/O BAR works through `Bar::read*`, only slower; say so once.
        tracing::info!(addr = %device.address(), "virtio structures in BAR{index}, which is not mapped: register accesses are system calls");
    }
    Ok(Arc::new(bar))
}

/// Refuses IOVA as VA under vfio-pci for a device whose DMA bypasses the IOMMU: a legacy
/// device, or a modern one without ACCESS_PLATFORM. It would DMA to our virtual addresses taken
/// as physical ones.
fn check_iommu(t: &dyn Transport, binding: Binding, iova: IovaMode) -> Result<(), VirtioError> {
    let legacy = t.kind() == TransportKind::Legacy;
    let bypasses = legacy || t.device_features() & ACCESS_PLATFORM == 0;
    if binding == Binding::Vfio && iova == IovaMode::Va && bypasses {
        return Err(VirtioError::IommuBypass { legacy });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::regs::fake::FakeRegs;
    use super::*;

    #[test]
    fn va_under_vfio_is_refused_for_devices_that_bypass_the_iommu() {
        let regs = Arc::new(FakeRegs::new(0x40, None));
        let legacy = legacy::Legacy::new(regs, false).unwrap();
        let err = check_iommu(&legacy, Binding::Vfio, IovaMode::Va).unwrap_err().to_string();
        assert!(err.contains("legacy") && err.contains("--iova-mode pa"), "{err}");
        assert!(check_iommu(&legacy, Binding::Vfio, IovaMode::Pa).is_ok());
        assert!(check_iommu(&legacy, Binding::Uio, IovaMode::Pa).is_ok());
    }

    /// A modern transport that only answers `kind` and `device_features`.
    struct Features(u64);

    impl Transport for Features {
        fn kind(&self) -> TransportKind {
            TransportKind::Modern
        }
        fn device_features(&self) -> u64 {
            self.0
        }
        fn set_driver_features(&self, _: u64) -> Result<(), VirtioError> {
            Ok(())
        }
        fn status(&self) -> u8 {
            0
        }
        fn set_status(&self, _: u8) -> Result<(), VirtioError> {
            Ok(())
        }
        fn reset(&self) -> Result<(), VirtioError> {
            Ok(())
        }
        fn read_config(&self, _: usize, buf: &mut [u8]) {
            buf.fill(0)
        }
        fn write_config(&self, _: usize, _: &[u8]) {}
        fn queue_max_size(&self, _: u16) -> u16 {
            0
        }
        fn queue_size_settable(&self) -> bool {
            true
        }
        fn setup_queue(&self, _: &crate::transport::QueueLayout) -> Result<crate::transport::Notifier, VirtioError> {
            unreachable!("not used by check_iommu")
        }
    }

    #[test]
    fn a_modern_device_goes_through_the_iommu_only_with_access_platform() {
        let version_1 = 1u64 << 32;
        assert!(check_iommu(&Features(version_1 | ACCESS_PLATFORM), Binding::Vfio, IovaMode::Va).is_ok());
        let err = check_iommu(&Features(version_1), Binding::Vfio, IovaMode::Va).unwrap_err().to_string();
        assert!(err.contains("VIRTIO_F_ACCESS_PLATFORM") && err.contains("--iova-mode pa"), "{err}");
        assert!(check_iommu(&Features(version_1), Binding::Vfio, IovaMode::Pa).is_ok());
    }
}
