//! The virtio PCI capabilities (virtio 1.2, 4.1.4 "Virtio Structure PCI Capabilities"): where in
//! which BAR a modern device keeps its common configuration, notification area, ISR and
//! device-specific configuration. Also the MSI-X enable bit, which moves the legacy device's
//! config space (4.1.4.8).
//!
//! Config space is the device's to write: every length is checked, a structure with a reserved
//! BAR number or too short for its type is skipped (4.1.4.1), and the first usable structure of
//! each type wins (4.1.4: "the driver SHOULD use the first one").

use burst_pci::config::{CAP_ID_MSIX, CAP_ID_VENDOR};
use burst_pci::Capability;

use crate::error::VirtioError;

/// `cfg_type` of the common configuration structure (4.1.4.3).
pub(crate) const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// `cfg_type` of the notification structure (4.1.4.4).
pub(crate) const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
/// `cfg_type` of the ISR status structure (4.1.4.5).
pub(crate) const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
/// `cfg_type` of the device-specific configuration (4.1.4.6).
pub(crate) const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;

/// `struct virtio_pci_cap` (4.1.4): `cap_vndr`, `cap_next`, `cap_len`, `cfg_type`, `bar`, `id`,
/// 2 bytes padding, `offset` (le32 at 8), `length` (le32 at 12): 16 bytes.
const CAP_LEN: usize = 16;
/// `struct virtio_pci_notify_cap` adds `notify_off_multiplier` (le32 at 16): 20 bytes.
const NOTIFY_CAP_LEN: usize = 20;
/// BARs are 0 to 5; other values are reserved (4.1.4.1: the driver ignores such structures).
const MAX_BAR: u8 = 5;
/// MSI-X message control (PCI 3.0, 6.8.2.3): 16 bits at capability + 2; bit 15 is MSI-X Enable.
const MSIX_CONTROL: u16 = 2;
const MSIX_ENABLE: u16 = 1 << 15;

/// Where one structure lives: `length` bytes at `offset` in BAR `bar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CapRegion {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// What a modern device's capabilities say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VirtioCaps {
    pub common: CapRegion,
    pub notify: CapRegion,
    /// Queue `q`'s notification address is `notify.offset + queue_notify_off(q) * this` (4.1.4.4).
    pub notify_off_multiplier: u32,
    pub isr: Option<CapRegion>,
    pub device: Option<CapRegion>,
}

/// Reads `buf.len()` config-space bytes at an offset.
pub(crate) type ConfigRead<'a> = &'a dyn Fn(u16, &mut [u8]) -> Result<(), VirtioError>;

/// Finds the virtio structures among `caps` (the device's capability list), reading each vendor
/// capability's body with `read`. Common configuration and notification are required; ISR and
/// device configuration are optional here (the net device reads zeros without the latter).
pub(crate) fn parse(caps: &[Capability], read: ConfigRead<'_>) -> Result<VirtioCaps, VirtioError> {
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    for cap in caps.iter().filter(|c| c.id == CAP_ID_VENDOR) {
        let mut head = [0u8; CAP_LEN];
        read(cap.offset, &mut head)?;
        let (cap_len, cfg_type, bar) = (usize::from(head[2]), head[3], head[4]);
        if cap_len < CAP_LEN || bar > MAX_BAR {
            tracing::debug!(offset = cap.offset, cap_len, bar, "virtio capability skipped: too short or reserved BAR");
            continue;
        }
        let offset = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let length = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if offset.checked_add(length).is_none() {
            tracing::debug!(offset = cap.offset, "virtio capability skipped: offset + length overflows");
            continue;
        }
        let region = CapRegion { bar, offset, length };
        match cfg_type {
            VIRTIO_PCI_CAP_COMMON_CFG if common.is_none() => common = Some(region),
            VIRTIO_PCI_CAP_NOTIFY_CFG if notify.is_none() => {
                if cap_len < NOTIFY_CAP_LEN {
                    continue;
                }
                let mut mult = [0u8; 4];
                read(cap.offset + CAP_LEN as u16, &mut mult)?;
                notify = Some((region, u32::from_le_bytes(mult)));
            }
            VIRTIO_PCI_CAP_ISR_CFG if isr.is_none() => isr = Some(region),
            VIRTIO_PCI_CAP_DEVICE_CFG if device.is_none() => device = Some(region),
            // PCI configuration access (5), shared memory (8), vendor data (9), duplicates.
            _ => {}
        }
    }
    let missing = |what| VirtioError::NoCapability { what };
    let common = common.ok_or_else(|| missing("common configuration"))?;
    let (notify, notify_off_multiplier) = notify.ok_or_else(|| missing("notification"))?;
    Ok(VirtioCaps { common, notify, notify_off_multiplier, isr, device })
}

/// Whether MSI-X is enabled in config space: the legacy device-specific config then starts at
/// 0x18 instead of 0x14 (virtio 1.2, 4.1.4.8).
pub(crate) fn msix_enabled(caps: &[Capability], read: ConfigRead<'_>) -> Result<bool, VirtioError> {
    let Some(cap) = caps.iter().find(|c| c.id == CAP_ID_MSIX) else { return Ok(false) };
    let mut ctl = [0u8; 2];
    read(cap.offset + MSIX_CONTROL, &mut ctl)?;
    Ok(u16::from_le_bytes(ctl) & MSIX_ENABLE != 0)
}

#[cfg(test)]
pub(crate) mod tests {
    use burst_pci::ConfigError;

    use super::*;

    /// A config space with a capability list, and the reader `parse` takes.
    pub(crate) struct FakeConfig {
        pub(crate) bytes: [u8; 256],
        pub(crate) caps: Vec<Capability>,
    }

    impl FakeConfig {
        pub(crate) fn new() -> FakeConfig {
            FakeConfig { bytes: [0; 256], caps: Vec::new() }
        }

        /// Appends a virtio capability at `at` (the list order is the call order).
        pub(crate) fn virtio_cap(&mut self, at: u16, cfg_type: u8, bar: u8, offset: u32, length: u32, extra: &[u8]) {
            let a = usize::from(at);
            let len = CAP_LEN + extra.len();
            self.bytes[a..a + 4].copy_from_slice(&[CAP_ID_VENDOR, 0, len as u8, cfg_type]);
            self.bytes[a + 4] = bar;
            self.bytes[a + 8..a + 12].copy_from_slice(&offset.to_le_bytes());
            self.bytes[a + 12..a + 16].copy_from_slice(&length.to_le_bytes());
            self.bytes[a + 16..a + len].copy_from_slice(extra);
            self.caps.push(Capability { id: CAP_ID_VENDOR, offset: at });
        }

        pub(crate) fn read(&self) -> impl Fn(u16, &mut [u8]) -> Result<(), VirtioError> + '_ {
            |off, buf| {
                let a = usize::from(off);
                let past = || ConfigError::OutOfRange {
                    addr: "0000:00:02.0".parse().expect("a PCI address"),
                    offset: off,
                    len: buf.len(),
                    size: 256,
                };
                let src = self.bytes.get(a..a + buf.len()).ok_or_else(past)?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }

        /// QEMU 10's virtio-net-pci, modern: every structure in BAR 4 (0x4000 bytes), common at
        /// 0, ISR at 0x1000, device at 0x2000, notify at 0x3000 with multiplier 4; a PCI
        /// configuration access capability too.
        pub(crate) fn qemu_modern() -> FakeConfig {
            let mut c = FakeConfig::new();
            c.caps.push(Capability { id: CAP_ID_MSIX, offset: 0x98 });
            c.virtio_cap(0x84, 5, 0, 0, 0, &[0; 4]);
            c.virtio_cap(0x70, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, 0x3000, 0x1000, &4u32.to_le_bytes());
            c.virtio_cap(0x60, VIRTIO_PCI_CAP_DEVICE_CFG, 4, 0x2000, 0x1000, &[]);
            c.virtio_cap(0x50, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000, &[]);
            c.virtio_cap(0x40, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0x1000, &[]);
            c
        }
    }

    #[test]
    fn qemu_modern_layout_is_found() {
        let c = FakeConfig::qemu_modern();
        let caps = parse(&c.caps, &c.read()).unwrap();
        assert_eq!(caps.common, CapRegion { bar: 4, offset: 0, length: 0x1000 });
        assert_eq!(caps.notify, CapRegion { bar: 4, offset: 0x3000, length: 0x1000 });
        assert_eq!(caps.notify_off_multiplier, 4);
        assert_eq!(caps.isr, Some(CapRegion { bar: 4, offset: 0x1000, length: 0x1000 }));
        assert_eq!(caps.device, Some(CapRegion { bar: 4, offset: 0x2000, length: 0x1000 }));
        assert!(!msix_enabled(&c.caps, &c.read()).unwrap());
    }

    #[test]
    fn unusable_structures_are_skipped_and_the_first_usable_wins() {
        let mut c = FakeConfig::new();
        // Reserved BAR, too short, then a good one, then a later duplicate.
        c.virtio_cap(0x40, VIRTIO_PCI_CAP_COMMON_CFG, 6, 0, 0x100, &[]);
        c.virtio_cap(0x50, VIRTIO_PCI_CAP_COMMON_CFG, 1, 0, 0x100, &[]);
        c.bytes[0x52] = 12;
        c.virtio_cap(0x60, VIRTIO_PCI_CAP_COMMON_CFG, 2, 0x80, 0x40, &[]);
        c.virtio_cap(0x70, VIRTIO_PCI_CAP_COMMON_CFG, 3, 0, 0x40, &[]);
        // A notify capability without its multiplier, then an overflowing one, then a good one.
        c.virtio_cap(0x80, VIRTIO_PCI_CAP_NOTIFY_CFG, 2, 0x1000, 0x100, &[]);
        c.virtio_cap(0x90, VIRTIO_PCI_CAP_NOTIFY_CFG, 2, u32::MAX, 2, &[0; 4]);
        c.virtio_cap(0xa0, VIRTIO_PCI_CAP_NOTIFY_CFG, 2, 0x2000, 0x100, &2u32.to_le_bytes());
        let caps = parse(&c.caps, &c.read()).unwrap();
        assert_eq!(caps.common, CapRegion { bar: 2, offset: 0x80, length: 0x40 });
        assert_eq!((caps.notify, caps.notify_off_multiplier), (CapRegion { bar: 2, offset: 0x2000, length: 0x100 }, 2));
        assert_eq!((caps.isr, caps.device), (None, None));
    }

    #[test]
    fn a_legacy_only_device_is_refused_with_a_reason() {
        let mut c = FakeConfig::new();
        c.caps.push(Capability { id: CAP_ID_MSIX, offset: 0x98 });
        let err = parse(&c.caps, &c.read()).unwrap_err().to_string();
        assert!(err.contains("common configuration") && err.contains("legacy registers"), "{err}");
        c.virtio_cap(0x40, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0x1000, &[]);
        let err = parse(&c.caps, &c.read()).unwrap_err().to_string();
        assert!(err.contains("notification"), "{err}");
    }

    #[test]
    fn msix_enable_bit_is_read_from_message_control() {
        let mut c = FakeConfig::new();
        c.caps.push(Capability { id: CAP_ID_MSIX, offset: 0x98 });
        c.bytes[0x98..0x9c].copy_from_slice(&[CAP_ID_MSIX, 0, 0x02, 0x00]);
        assert!(!msix_enabled(&c.caps, &c.read()).unwrap());
        c.bytes[0x9b] = 0x80;
        assert!(msix_enabled(&c.caps, &c.read()).unwrap());
        assert!(!msix_enabled(&[], &c.read()).unwrap(), "no MSI-X capability");
    }
}
