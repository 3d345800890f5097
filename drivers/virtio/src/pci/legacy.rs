//! The legacy virtio PCI transport: the transitional device's I/O-port registers in BAR 0
//! (virtio 1.2, 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout"), as DPDK's
//! `virtio_pci.c` `legacy_ops` and Linux's `virtio_pci_legacy_dev.c` drive them.
//!
//! What legacy cannot do, and the net device knows from this transport: only the low 32 feature
//! bits exist (no VERSION_1, no ACCESS_PLATFORM); the ring size is the device's, fixed; a queue is
//! given as one page frame number, so the whole ring is contiguous with the legacy layout (2.7.2:
//! used ring on the next 4096-byte boundary) and below 2^44 (16 TiB); and the device DMAs to
//! physical addresses, bypassing any IOMMU (QEMU will not put a transitional device behind one).

use std::sync::Arc;

use super::regs::{read_chunked, write_chunked, Regs};
use crate::error::VirtioError;
use crate::transport::{Notifier, QueueLayout, Transport, TransportKind};

/// Device features, 32 bits, read-only.
pub(crate) const HOST_FEATURES: usize = 0x00;
/// Driver (guest) features, 32 bits.
pub(crate) const GUEST_FEATURES: usize = 0x04;
/// Page frame number (address >> 12) of the selected queue, 32 bits; 0 = queue unused.
pub(crate) const QUEUE_PFN: usize = 0x08;
/// Size of the selected queue, 16 bits, read-only (0: no such queue).
pub(crate) const QUEUE_NUM: usize = 0x0c;
/// Queue select, 16 bits.
pub(crate) const QUEUE_SEL: usize = 0x0e;
/// Queue notify, 16 bits: write the queue index.
pub(crate) const QUEUE_NOTIFY: usize = 0x10;
/// Device status, 8 bits (2.1); writing 0 resets the device.
pub(crate) const STATUS: usize = 0x12;
// 0x13 is the ISR status (8 bits, read to acknowledge): unused, we poll.
/// Device-specific config when MSI-X is disabled...
pub(crate) const CONFIG: usize = 0x14;
/// ...and when it is enabled (two 16-bit vector registers come first).
pub(crate) const CONFIG_MSIX: usize = 0x18;

/// The queue address shift: `QUEUE_PFN` holds the address in 4096-byte pages
/// (`VIRTIO_PCI_QUEUE_ADDR_SHIFT`).
pub(crate) const QUEUE_ADDR_SHIFT: u32 = 12;
/// Alignment of the used ring in the legacy layout (`VIRTIO_PCI_VRING_ALIGN`, 2.7.2).
pub(crate) const VRING_ALIGN: u64 = 4096;

/// The legacy transport over register window `R` (BAR 0 of the device).
pub(crate) struct Legacy<R: Regs> {
    regs: Arc<R>,
    /// Where the device-specific config starts: [`CONFIG`] or [`CONFIG_MSIX`].
    config: usize,
}

impl<R: Regs> Legacy<R> {
    /// The transport over `regs`; `msix_enabled` says where the device config is.
    pub(crate) fn new(regs: Arc<R>, msix_enabled: bool) -> Result<Legacy<R>, VirtioError> {
        let config = if msix_enabled { CONFIG_MSIX } else { CONFIG };
        if regs.len() < config {
            return Err(VirtioError::LegacyBarTooShort { len: regs.len(), need: config });
        }
        Ok(Legacy { regs, config })
    }
}

/// Checks that `l` is a legacy ring: desc table page-aligned, available ring right after it, used
/// ring on the next 4096-byte boundary (virtio 1.2, 2.7.2), addressable by a 32-bit PFN; returns
/// the PFN.
pub(crate) fn legacy_pfn(l: &QueueLayout) -> Result<u32, VirtioError> {
    let size = u64::from(l.size);
    let avail = l.desc_iova + 16 * size;
    // flags, idx, ring[size], used_event: 2 + 2 + 2 * size + 2 bytes.
    let used = (avail + 6 + 2 * size).next_multiple_of(VRING_ALIGN);
    if l.desc_iova % VRING_ALIGN != 0 || l.avail_iova != avail || l.used_iova != used {
        return Err(VirtioError::LegacyLayout {
            index: l.index,
            desc: l.desc_iova,
            avail,
            used,
            got_avail: l.avail_iova,
            got_used: l.used_iova,
        });
    }
    u32::try_from(l.desc_iova >> QUEUE_ADDR_SHIFT)
        .map_err(|_| VirtioError::LegacyAbove16TiB { index: l.index, desc: l.desc_iova })
}

impl<R: Regs> Transport for Legacy<R> {
    fn kind(&self) -> TransportKind {
        TransportKind::Legacy
    }

    fn device_features(&self) -> u64 {
        u64::from(self.regs.read32(HOST_FEATURES))
    }

    fn set_driver_features(&self, features: u64) -> Result<(), VirtioError> {
        let low = u32::try_from(features).map_err(|_| VirtioError::LegacyFeatureBits { features })?;
        self.regs.write32(GUEST_FEATURES, low);
        Ok(())
    }

    fn status(&self) -> u8 {
        self.regs.read8(STATUS)
    }

    fn set_status(&self, status: u8) -> Result<(), VirtioError> {
        if status == 0 {
            self.reset()?;
        } else {
            self.regs.write8(STATUS, status);
        }
        Ok(())
    }

    /// Writing 0 resets a legacy device at once; the read flushes the write (Linux's
    /// `vp_legacy_set_status` comment: "Flush out the status write").
    fn reset(&self) -> Result<(), VirtioError> {
        self.regs.write8(STATUS, 0);
        match self.regs.read8(STATUS) {
            0 => Ok(()),
            status => Err(VirtioError::LegacyResetFailed { status }),
        }
    }

    fn read_config(&self, offset: usize, buf: &mut [u8]) {
        read_chunked(&*self.regs, self.config + offset, self.regs.len(), buf);
    }

    fn write_config(&self, offset: usize, data: &[u8]) {
        write_chunked(&*self.regs, self.config + offset, self.regs.len(), data);
    }

    fn queue_max_size(&self, index: u16) -> u16 {
        self.regs.write16(QUEUE_SEL, index);
        self.regs.read16(QUEUE_NUM)
    }

    fn queue_size_settable(&self) -> bool {
        false
    }

    /// Virtio 1.2, 4.1.5.1.3.1 (legacy virtqueue configuration): select the queue, check its
    /// size, write the ring's page frame number.
    fn setup_queue(&self, layout: &QueueLayout) -> Result<Notifier, VirtioError> {
        let index = layout.index;
        self.regs.write16(QUEUE_SEL, index);
        let size = self.regs.read16(QUEUE_NUM);
        if size == 0 {
            return Err(VirtioError::NoVirtqueue { index, has: None });
        }
        if size != layout.size {
            return Err(VirtioError::LegacyQueueSize { index, size, laid_out: layout.size });
        }
        let pfn = legacy_pfn(layout)?;
        self.regs.write32(QUEUE_PFN, pfn);
        let back = self.regs.read32(QUEUE_PFN);
        if back != pfn {
            return Err(VirtioError::LegacyPfnReadBack { index, pfn, back });
        }
        Ok(R::notifier(&self.regs, QUEUE_NOTIFY, layout.index))
    }
}

#[cfg(test)]
mod tests {
    use super::super::regs::fake::{Access, FakeRegs, Hook};
    use super::*;

    /// A legacy virtio-net as QEMU has it: 64 bytes of I/O ports, three queues of 256, features
    /// MAC | STATUS | CTRL_VQ | MRG_RXBUF, MAC 52:54:00:b5:00:00, link up.
    fn qemu_legacy() -> Arc<FakeRegs> {
        const SIZES: [u16; 3] = [256, 256, 64];
        let hook: Hook = Box::new(|mem, off, _, value| match off {
            QUEUE_SEL => {
                let size = SIZES.get(value as usize).copied().unwrap_or(0);
                mem[QUEUE_NUM..QUEUE_NUM + 2].copy_from_slice(&size.to_le_bytes());
            }
            // Reset: queues forgotten, features cleared.
            STATUS if value == 0 => {
                mem[GUEST_FEATURES..GUEST_FEATURES + 4].fill(0);
                mem[QUEUE_PFN..QUEUE_PFN + 4].fill(0);
            }
            _ => {}
        });
        let regs = FakeRegs::new(0x40, Some(hook));
        regs.poke(HOST_FEATURES, &((1u32 << 5) | (1 << 16) | (1 << 17) | (1 << 15)).to_le_bytes());
        regs.poke(CONFIG, &[0x52, 0x54, 0, 0xb5, 0, 0, 1, 0]);
        Arc::new(regs)
    }

    fn layout(index: u16, size: u16, desc: u64) -> QueueLayout {
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(4096);
        QueueLayout {
            index,
            size,
            desc_iova: desc,
            avail_iova: avail,
            used_iova: used,
            desc_va: 0,
            avail_va: 0,
            used_va: 0,
        }
    }

    #[test]
    fn features_status_and_config_go_through_the_legacy_registers() {
        let regs = qemu_legacy();
        let t = Legacy::new(regs.clone(), false).unwrap();
        assert_eq!(t.kind(), TransportKind::Legacy);
        assert_eq!(t.device_features(), 0x0003_8020);
        t.set_driver_features(0x0001_0020).unwrap();
        let err = t.set_driver_features(1 << 32).unwrap_err().to_string();
        assert!(err.contains("above 31"), "{err}");
        t.set_status(1 | 2).unwrap();
        assert_eq!(t.status(), 3);
        let mut cfg = [0u8; 8];
        t.read_config(0, &mut cfg);
        assert_eq!(cfg, [0x52, 0x54, 0, 0xb5, 0, 0, 1, 0], "MAC, then status = LINK_UP");
        let mut tail = [0xffu8; 8];
        t.read_config(0x28, &mut tail);
        assert_eq!(tail, [0; 8], "past the BAR: zeros, no access outside");
        assert_eq!(
            regs.take_writes(),
            [(GUEST_FEATURES, 4, 0x0001_0020), (STATUS, 1, 3)],
            "a refused feature set writes nothing"
        );
        t.write_config(0, &[2, 0, 0, 0, 0, 1]);
        assert_eq!(regs.take_writes(), [(CONFIG, 4, 2), (CONFIG + 4, 2, 0x0100)]);
        t.reset().unwrap();
        assert_eq!(t.status(), 0);
        assert_eq!(regs.peek(GUEST_FEATURES, 4), [0; 4]);
    }

    #[test]
    fn msix_moves_the_config_by_four_bytes() {
        let regs = qemu_legacy();
        regs.poke(CONFIG_MSIX, &[0xaa, 0xbb]);
        let t = Legacy::new(regs.clone(), true).unwrap();
        let mut b = [0u8; 2];
        t.read_config(0, &mut b);
        assert_eq!(b, [0xaa, 0xbb]);
    }

    #[test]
    fn queue_setup_writes_the_page_frame_number_and_kicks_queue_notify() {
        let regs = qemu_legacy();
        let t = Legacy::new(regs.clone(), false).unwrap();
        assert_eq!((t.queue_max_size(0), t.queue_max_size(2), t.queue_max_size(3)), (256, 64, 0));
        assert!(!t.queue_size_settable());
        regs.take_log();
        let n = t.setup_queue(&layout(1, 256, 0x1234_5000)).unwrap();
        assert!(matches!(n, Notifier::EventFd(_)), "the fake's notifier");
        let log = regs.take_log();
        assert!(log.contains(&Access::Write { offset: QUEUE_SEL, width: 2, value: 1 }), "{log:?}");
        assert!(log.contains(&Access::Write { offset: QUEUE_PFN, width: 4, value: 0x12345 }), "{log:?}");
        assert_eq!(log.last(), Some(&Access::Notifier { offset: QUEUE_NOTIFY, value: 1 }));
    }

    #[test]
    fn queue_setup_refuses_what_a_legacy_device_cannot_take() {
        let regs = qemu_legacy();
        let t = Legacy::new(regs.clone(), false).unwrap();
        let err = |l: QueueLayout| t.setup_queue(&l).unwrap_err().to_string();
        assert!(err(layout(5, 256, 0x10000)).contains("no virtqueue 5"));
        assert!(err(layout(0, 128, 0x10000)).contains("takes no other size"));
        assert!(err(layout(0, 256, 0x10800)).contains("not laid out"), "desc not page-aligned");
        let mut l = layout(0, 256, 0x10000);
        l.used_iova += 4096;
        assert!(err(l).contains("not laid out"));
        let e = err(layout(0, 256, 0x7f12_3456_7000));
        assert!(e.contains("16 TiB") && e.contains("--iova-mode pa"), "{e}");
        // Nothing reached QUEUE_PFN.
        assert!(regs.take_writes().iter().all(|w| w.0 != QUEUE_PFN));
    }

    #[test]
    fn legacy_layouts_match_dpdk_vring_size() {
        // DPDK's vring_size(256, 4096): desc 4096 + avail 518 -> used at 8192.
        let l = layout(0, 256, 0);
        assert_eq!((l.avail_iova, l.used_iova), (4096, 8192));
        assert_eq!(legacy_pfn(&layout(0, 1024, 0xfff_ffff_f000)).unwrap(), 0xffff_ffff);
    }
}
