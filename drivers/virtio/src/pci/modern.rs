//! The modern virtio PCI transport: the structures the virtio capabilities point to, in memory
//! BARs (virtio 1.2, 4.1.4), as DPDK's `virtio_pci.c` `modern_ops` and Linux's
//! `virtio_pci_modern_dev.c` drive them.
//!
//! - Common configuration (4.1.4.3): 64-bit feature words through a 32-bit window
//!   (`device_feature_select` / `driver_feature_select`), device status, and per queue (through
//!   `queue_select`) its size, addresses, enable bit and notification offset.
//! - Notification (4.1.4.4): queue `q` is kicked by a 16-bit write of `q` at
//!   `notify.offset + queue_notify_off(q) * notify_off_multiplier`.
//! - Device configuration (4.1.4.6): `struct virtio_net_config`, read consistently with
//!   `config_generation` (2.5.1, 4.1.4.3.1).
//!
//! Every structure is checked to lie inside its BAR, and to be aligned as its section requires,
//! when the transport is made; every access after that is to a constant offset inside a checked
//! structure, or clamped to it. Each queue's notification address is checked the same way when
//! the queue is set up. Config space is the device's input: a bad structure is refused with an
//! error, never a panic in a register access.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::caps::{CapRegion, VirtioCaps};
use super::regs::{notify_reg_fits, read_chunked, write_chunked, Regs};
use crate::error::{StructureProblem, VirtioError};
use crate::transport::{Notifier, QueueLayout, Transport, TransportKind};

// `struct virtio_pci_common_cfg` (4.1.4.3).
/// Selects which 32 bits of the device features `DEVICE_FEATURE` shows, le32.
pub(crate) const DEVICE_FEATURE_SELECT: usize = 0x00;
/// Device features, 32 bits at a time, le32 read-only.
pub(crate) const DEVICE_FEATURE: usize = 0x04;
/// Selects which 32 bits of the driver features `DRIVER_FEATURE` takes, le32.
pub(crate) const DRIVER_FEATURE_SELECT: usize = 0x08;
/// Driver features, 32 bits at a time, le32.
pub(crate) const DRIVER_FEATURE: usize = 0x0c;
/// Number of virtqueues, le16 read-only.
pub(crate) const NUM_QUEUES: usize = 0x12;
/// Device status, u8 (2.1).
pub(crate) const DEVICE_STATUS: usize = 0x14;
/// Changes whenever the device config may have changed, u8 read-only.
pub(crate) const CONFIG_GENERATION: usize = 0x15;
/// Queue select, le16.
pub(crate) const QUEUE_SELECT: usize = 0x16;
/// Selected queue's size: the maximum on reset, the driver may write a smaller one; le16.
pub(crate) const QUEUE_SIZE: usize = 0x18;
/// Selected queue enabled, le16 (the driver writes 1 only, 4.1.4.3.2).
pub(crate) const QUEUE_ENABLE: usize = 0x1c;
/// Selected queue's notification offset (in multiplier units), le16 read-only.
pub(crate) const QUEUE_NOTIFY_OFF: usize = 0x1e;
/// Descriptor table address, le64.
pub(crate) const QUEUE_DESC: usize = 0x20;
/// Available ring ("driver area") address, le64.
pub(crate) const QUEUE_DRIVER: usize = 0x28;
/// Used ring ("device area") address, le64.
pub(crate) const QUEUE_DEVICE: usize = 0x30;
/// The common configuration structure of virtio 1.0, up to the end of `queue_device`.
pub(crate) const COMMON_CFG_LEN: u32 = 0x38;

/// How long a reset may take to show (QEMU's is immediate; hardware virtio may take a while).
const RESET_TIMEOUT: Duration = Duration::from_secs(1);
/// Reads of the device config retried while `config_generation` keeps changing.
const CONFIG_RETRIES: usize = 16;

/// What a structure must be: the name and section for messages, its least length, and the
/// alignment of its offset in the BAR.
struct Shape {
    what: &'static str,
    section: &'static str,
    min_len: u32,
    align: u32,
}

/// 4.1.4.3: "The device MUST present [the common configuration] at an offset that is 4-byte
/// aligned"; its registers are up to 32 bits wide.
const COMMON_SHAPE: Shape =
    Shape { what: "common configuration", section: "4.1.4.3", min_len: COMMON_CFG_LEN, align: 4 };
/// 4.1.4.4: "cap.offset MUST be 2-byte aligned"; at least one 16-bit notification register.
const NOTIFY_SHAPE: Shape = Shape { what: "notification", section: "4.1.4.4", min_len: 2, align: 2 };
/// 4.1.4.6: "The offset for the device-specific configuration MUST be 4-byte aligned."
const DEVICE_SHAPE: Shape = Shape { what: "device configuration", section: "4.1.4.6", min_len: 0, align: 4 };

/// One structure: `len` bytes at `base` in a register window.
pub(crate) struct Region<R: Regs> {
    regs: Arc<R>,
    base: usize,
    len: usize,
}

impl<R: Regs> Region<R> {
    /// The structure `cap` in `regs`, which must hold it, be at least `shape.min_len` long and
    /// start at a multiple of `shape.align` (the BAR itself is page-aligned).
    fn new(regs: Arc<R>, cap: CapRegion, shape: &Shape) -> Result<Region<R>, VirtioError> {
        let Shape { what, section, min_len, align } = *shape;
        let end = u64::from(cap.offset) + u64::from(cap.length);
        let problem = if cap.length < min_len {
            StructureProblem::TooShort { min: min_len }
        } else if end > regs.len() as u64 {
            StructureProblem::PastBar
        } else if cap.offset % align != 0 {
            StructureProblem::Misaligned { align, section }
        } else {
            return Ok(Region { regs, base: cap.offset as usize, len: cap.length as usize });
        };
        Err(VirtioError::BadStructure {
            what,
            length: cap.length,
            offset: cap.offset,
            bar: cap.bar,
            bar_len: regs.len(),
            problem,
        })
    }

    fn r8(&self, off: usize) -> u8 {
        self.regs.read8(self.base + off)
    }
    fn r16(&self, off: usize) -> u16 {
        self.regs.read16(self.base + off)
    }
    fn r32(&self, off: usize) -> u32 {
        self.regs.read32(self.base + off)
    }
    fn w8(&self, off: usize, v: u8) {
        self.regs.write8(self.base + off, v)
    }
    fn w16(&self, off: usize, v: u16) {
        self.regs.write16(self.base + off, v)
    }
    fn w32(&self, off: usize, v: u32) {
        self.regs.write32(self.base + off, v)
    }
    /// A 64-bit field as two 32-bit writes, low half first (4.1.3.1: the driver may access a
    /// 64-bit field as two 32-bit accesses).
    fn w64(&self, off: usize, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }
}

/// The modern transport over register windows `R` (memory BARs of the device).
pub(crate) struct Modern<R: Regs> {
    common: Region<R>,
    notify: Region<R>,
    notify_off_multiplier: u32,
    device: Option<Region<R>>,
    /// Each queue's maximum size, read after a reset (`queue_size` shows what the driver wrote
    /// until the next reset, not the maximum).
    max_sizes: Vec<u16>,
    /// The PCI address, for messages.
    name: String,
}

impl<R: Regs> Modern<R> {
    /// The transport for the structures `caps` names; `bar(i)` opens BAR `i` (called once per BAR
    /// in use). Resets the device and reads its queue sizes.
    pub(crate) fn new(
        caps: &VirtioCaps,
        mut bar: impl FnMut(u8) -> Result<Arc<R>, VirtioError>,
        name: String,
    ) -> Result<Modern<R>, VirtioError> {
        let mut open: Vec<(u8, Arc<R>)> = Vec::new();
        let mut regs = |index: u8| -> Result<Arc<R>, VirtioError> {
            if let Some((_, r)) = open.iter().find(|(i, _)| *i == index) {
                return Ok(r.clone());
            }
            let r = bar(index)?;
            open.push((index, r.clone()));
            Ok(r)
        };
        let common = Region::new(regs(caps.common.bar)?, caps.common, &COMMON_SHAPE)?;
        let notify = Region::new(regs(caps.notify.bar)?, caps.notify, &NOTIFY_SHAPE)?;
        let device = match caps.device {
            Some(cap) => Some(Region::new(regs(cap.bar)?, cap, &DEVICE_SHAPE)?),
            None => None,
        };
        let mut t = Modern {
            common,
            notify,
            notify_off_multiplier: caps.notify_off_multiplier,
            device,
            max_sizes: Vec::new(),
            name,
        };
        t.reset()?;
        let queues = t.common.r16(NUM_QUEUES);
        t.max_sizes = (0..queues)
            .map(|q| {
                t.common.w16(QUEUE_SELECT, q);
                t.common.r16(QUEUE_SIZE)
            })
            .collect();
        Ok(t)
    }

    /// Where virtqueue `index`, whose `queue_notify_off` is `notify_off`, is kicked, as an
    /// offset in the notification structure's BAR: `cap.offset + queue_notify_off *
    /// notify_off_multiplier` (4.1.4.4). Refused unless the 16-bit register lies inside the
    /// structure and is 2-byte aligned, so the notifier made for it never faults (or panics) on
    /// the data path.
    fn notify_addr(&self, index: u16, notify_off: u16) -> Result<usize, VirtioError> {
        let multiplier = self.notify_off_multiplier;
        let rel = u64::from(notify_off) * u64::from(multiplier);
        if rel + 2 > self.notify.len as u64 {
            return Err(VirtioError::NotifyOutside { index, notify_off, multiplier, len: self.notify.len });
        }
        // `rel < notify.len`, and `notify.base + notify.len` fits in the BAR (`Region::new`).
        let addr = self.notify.base + rel as usize;
        if !notify_reg_fits(self.notify.regs.len(), addr) {
            return Err(VirtioError::NotifyMisaligned { index, notify_off, multiplier, addr });
        }
        Ok(addr)
    }
}

impl<R: Regs> Transport for Modern<R> {
    fn kind(&self) -> TransportKind {
        TransportKind::Modern
    }

    fn device_features(&self) -> u64 {
        self.common.w32(DEVICE_FEATURE_SELECT, 0);
        let low = self.common.r32(DEVICE_FEATURE);
        self.common.w32(DEVICE_FEATURE_SELECT, 1);
        let high = self.common.r32(DEVICE_FEATURE);
        u64::from(high) << 32 | u64::from(low)
    }

    fn set_driver_features(&self, features: u64) -> Result<(), VirtioError> {
        self.common.w32(DRIVER_FEATURE_SELECT, 0);
        self.common.w32(DRIVER_FEATURE, features as u32);
        self.common.w32(DRIVER_FEATURE_SELECT, 1);
        self.common.w32(DRIVER_FEATURE, (features >> 32) as u32);
        Ok(())
    }

    fn status(&self) -> u8 {
        self.common.r8(DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) -> Result<(), VirtioError> {
        if status == 0 {
            self.reset()?;
        } else {
            self.common.w8(DEVICE_STATUS, status);
        }
        Ok(())
    }

    /// 4.1.4.3.2: "After writing 0 to device_status, the driver MUST wait for a read of
    /// device_status to return 0 before reinitializing the device."
    fn reset(&self) -> Result<(), VirtioError> {
        self.common.w8(DEVICE_STATUS, 0);
        let deadline = Instant::now() + RESET_TIMEOUT;
        while self.common.r8(DEVICE_STATUS) != 0 {
            if Instant::now() > deadline {
                return Err(VirtioError::ResetTimeout { waited: RESET_TIMEOUT });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(())
    }

    /// Reads until `config_generation` is the same before and after (2.5.1), bounded.
    fn read_config(&self, offset: usize, buf: &mut [u8]) {
        let Some(dev) = &self.device else {
            buf.fill(0);
            return;
        };
        let limit = dev.base + dev.len;
        for _ in 0..CONFIG_RETRIES {
            let before = self.common.r8(CONFIG_GENERATION);
            read_chunked(&*dev.regs, dev.base.saturating_add(offset), limit, buf);
            if self.common.r8(CONFIG_GENERATION) == before {
                return;
            }
        }
        tracing::warn!(device = %self.name, "virtio config kept changing while read: using the last read");
    }

    fn write_config(&self, offset: usize, data: &[u8]) {
        if let Some(dev) = &self.device {
            write_chunked(&*dev.regs, dev.base.saturating_add(offset), dev.base + dev.len, data);
        }
    }

    fn queue_max_size(&self, index: u16) -> u16 {
        self.max_sizes.get(usize::from(index)).copied().unwrap_or(0)
    }

    fn queue_size_settable(&self) -> bool {
        true
    }

    /// 4.1.5.1.3 "Virtqueue Configuration": select the queue, write its size and the three
    /// addresses, read its notification offset, then enable it (4.1.4.3.2: the other fields
    /// before `queue_enable`).
    fn setup_queue(&self, layout: &QueueLayout) -> Result<Notifier, VirtioError> {
        let (index, size) = (layout.index, layout.size);
        let max = self.queue_max_size(index);
        if max == 0 {
            return Err(VirtioError::NoVirtqueue { index, has: Some(self.max_sizes.len() as u16) });
        }
        if size == 0 || size > max || !size.is_power_of_two() {
            return Err(VirtioError::ModernQueueSize { index, size, max });
        }
        let c = &self.common;
        c.w16(QUEUE_SELECT, layout.index);
        c.w16(QUEUE_SIZE, layout.size);
        c.w64(QUEUE_DESC, layout.desc_iova);
        c.w64(QUEUE_DRIVER, layout.avail_iova);
        c.w64(QUEUE_DEVICE, layout.used_iova);
        let addr = self.notify_addr(index, c.r16(QUEUE_NOTIFY_OFF))?;
        c.w16(QUEUE_ENABLE, 1);
        Ok(R::notifier(&self.notify.regs, addr, layout.index))
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::tests::FakeConfig;
    use super::super::caps::{
        parse, CapRegion, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG,
    };
    use super::super::regs::fake::{Access, FakeRegs, Hook};
    use super::*;

    const DEVICE_CFG: usize = 0x2000;
    const NOTIFY: usize = 0x3000;

    /// A byte of the fake (outside every structure): non-zero makes reset slow.
    const SLOW_RESET: usize = 0x3fff;

    /// QEMU's modern virtio-net BAR 4: three queues (256, 256, 64), features VERSION_1 |
    /// ACCESS_PLATFORM | MAC | STATUS, notify_off(q) = q, the MAC at 0x2000. Writing status 0
    /// clears it at once, unless [`SLOW_RESET`] is set (then the test clears it).
    fn qemu_modern() -> Arc<FakeRegs> {
        const SIZES: [u16; 3] = [256, 256, 64];
        const FEATURES: u64 = (1 << 32) | (1 << 33) | (1 << 5) | (1 << 16);
        let hook: Hook = Box::new(|mem, off, _, v| {
            let put16 = |mem: &mut Vec<u8>, at: usize, x: u16| mem[at..at + 2].copy_from_slice(&x.to_le_bytes());
            match off {
                DEVICE_FEATURE_SELECT => {
                    let word = if v == 0 {
                        FEATURES as u32
                    } else if v == 1 {
                        (FEATURES >> 32) as u32
                    } else {
                        0
                    };
                    mem[DEVICE_FEATURE..DEVICE_FEATURE + 4].copy_from_slice(&word.to_le_bytes());
                }
                QUEUE_SELECT => {
                    let q = v as usize;
                    put16(mem, QUEUE_SIZE, SIZES.get(q).copied().unwrap_or(0));
                    put16(mem, QUEUE_NOTIFY_OFF, q as u16);
                    put16(mem, QUEUE_ENABLE, 0);
                }
                DEVICE_STATUS if v == 0 && mem[SLOW_RESET] != 0 => mem[DEVICE_STATUS] = 0x0f,
                _ => {}
            }
        });
        let regs = FakeRegs::new(0x4000, Some(hook));
        regs.poke(NUM_QUEUES, &3u16.to_le_bytes());
        regs.poke(QUEUE_SIZE, &999u16.to_le_bytes()); // a previous user's size: not the maximum
        regs.poke(DEVICE_STATUS, &[0x0f]);
        regs.poke(DEVICE_CFG, &[0x52, 0x54, 0, 0xb5, 0, 1, 1, 0]);
        Arc::new(regs)
    }

    /// Makes a transport on the fake, counting BAR opens.
    fn transport(regs: &Arc<FakeRegs>) -> (Modern<FakeRegs>, Vec<u8>) {
        let c = FakeConfig::qemu_modern();
        let caps = parse(&c.caps, &c.read()).unwrap();
        let mut opened = Vec::new();
        let t = Modern::new(
            &caps,
            |i| {
                opened.push(i);
                Ok(regs.clone())
            },
            "0000:00:03.0".into(),
        )
        .unwrap();
        (t, opened)
    }

    #[test]
    fn one_bar_is_opened_once_and_the_device_reset_first() {
        let regs = qemu_modern();
        let (t, opened) = transport(&regs);
        assert_eq!(opened, [4], "every structure is in BAR 4");
        assert_eq!(t.status(), 0);
        assert_eq!((t.queue_max_size(0), t.queue_max_size(2), t.queue_max_size(3)), (256, 64, 0));
        let writes = regs.take_writes();
        assert_eq!(writes[0], (DEVICE_STATUS, 1, 0), "reset before anything: {writes:?}");
    }

    #[test]
    fn features_are_read_and_written_as_two_32_bit_words() {
        let regs = qemu_modern();
        let (t, _) = transport(&regs);
        regs.take_log();
        assert_eq!(t.device_features(), (1 << 32) | (1 << 33) | (1 << 5) | (1 << 16));
        t.set_driver_features((1 << 33) | (1 << 32) | (1 << 5)).unwrap();
        assert_eq!(
            regs.take_writes(),
            [
                (DEVICE_FEATURE_SELECT, 4, 0),
                (DEVICE_FEATURE_SELECT, 4, 1),
                (DRIVER_FEATURE_SELECT, 4, 0),
                (DRIVER_FEATURE, 4, 1 << 5),
                (DRIVER_FEATURE_SELECT, 4, 1),
                (DRIVER_FEATURE, 4, 3),
            ]
        );
    }

    #[test]
    fn reset_waits_until_status_reads_zero() {
        let regs = qemu_modern();
        let (t, _) = transport(&regs);
        t.set_status(1 | 2 | 8).unwrap();
        assert_eq!(t.status(), 11);
        // From now on the device is slow: its status reads 0 only once another thread clears it.
        regs.poke(SLOW_RESET, &[1]);
        let device = regs.clone();
        let clear = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            device.poke(DEVICE_STATUS, &[0]);
        });
        let started = Instant::now();
        t.set_status(0).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(15), "returned before the status cleared");
        assert_eq!(t.status(), 0);
        clear.join().unwrap();
    }

    #[test]
    fn config_is_read_from_the_device_structure_consistently() {
        let regs = qemu_modern();
        let (t, _) = transport(&regs);
        regs.take_log();
        let mut cfg = [0u8; 8];
        t.read_config(0, &mut cfg);
        assert_eq!(cfg, [0x52, 0x54, 0, 0xb5, 0, 1, 1, 0]);
        let log = regs.take_log();
        assert_eq!(log.first(), Some(&Access::Read { offset: CONFIG_GENERATION, width: 1 }));
        assert_eq!(log.last(), Some(&Access::Read { offset: CONFIG_GENERATION, width: 1 }));
        assert!(log.contains(&Access::Read { offset: DEVICE_CFG, width: 4 }), "{log:?}");
        let mut far = [0xffu8; 4];
        t.read_config(0x1ffe, &mut far);
        assert_eq!(far, [0; 4], "past the structure: zeros");
    }

    #[test]
    fn queue_setup_programs_size_addresses_then_enable() {
        let regs = qemu_modern();
        let (t, _) = transport(&regs);
        regs.take_log();
        let l = QueueLayout {
            index: 1,
            size: 128,
            desc_iova: 0x1_2345_6000,
            avail_iova: 0x1_2345_6800,
            used_iova: 0x1_2345_7000,
            desc_va: 0,
            avail_va: 0,
            used_va: 0,
        };
        t.setup_queue(&l).unwrap();
        let log = regs.take_log();
        let writes: Vec<(usize, u32)> = log
            .iter()
            .filter_map(|a| match *a {
                Access::Write { offset, value, .. } => Some((offset, value)),
                _ => None,
            })
            .collect();
        assert_eq!(
            writes,
            [
                (QUEUE_SELECT, 1),
                (QUEUE_SIZE, 128),
                (QUEUE_DESC, 0x2345_6000),
                (QUEUE_DESC + 4, 1),
                (QUEUE_DRIVER, 0x2345_6800),
                (QUEUE_DRIVER + 4, 1),
                (QUEUE_DEVICE, 0x2345_7000),
                (QUEUE_DEVICE + 4, 1),
                (QUEUE_ENABLE, 1),
            ]
        );
        // notify_off 1 x multiplier 4 past the notify structure at 0x3000.
        assert_eq!(log.last(), Some(&Access::Notifier { offset: NOTIFY + 4, value: 1 }));
        let bad = |size: u16, index: u16| t.setup_queue(&QueueLayout { size, index, ..l }).unwrap_err().to_string();
        assert!(bad(512, 1).contains("up to 256"));
        assert!(bad(100, 1).contains("power of two"));
        assert!(bad(64, 7).contains("no virtqueue 7"));
    }

    #[test]
    fn structures_outside_their_bar_are_refused() {
        let regs = qemu_modern();
        let mut caps = parse(&FakeConfig::qemu_modern().caps, &FakeConfig::qemu_modern().read()).unwrap();
        caps.device = Some(CapRegion { bar: 4, offset: 0x3f00, length: 0x200 });
        let err = Modern::new(&caps, |_| Ok(regs.clone()), "x".into()).err().unwrap().to_string();
        assert!(err.contains("device configuration") && err.contains("ends past its BAR"), "{err}");
        caps.device = None;
        caps.common.length = 0x20;
        let err = Modern::new(&caps, |_| Ok(regs.clone()), "x".into()).err().unwrap().to_string();
        assert!(err.contains("shorter than 0x38"), "{err}");
    }

    #[test]
    fn a_notify_offset_outside_the_structure_is_refused() {
        let regs = qemu_modern();
        let c = FakeConfig::qemu_modern();
        let mut caps = parse(&c.caps, &c.read()).unwrap();
        caps.notify.length = 4; // room for queues 0 only (offsets 0 and 4 with multiplier 4)
        let t = Modern::new(&caps, |_| Ok(regs.clone()), "x".into()).unwrap();
        assert_eq!(t.notify_addr(0, 0).ok(), Some(NOTIFY));
        assert!(t.notify_addr(1, 1).is_err());
        let l = QueueLayout {
            index: 1,
            size: 256,
            desc_iova: 0,
            avail_iova: 0,
            used_iova: 0,
            desc_va: 0,
            avail_va: 0,
            used_va: 0,
        };
        regs.take_log();
        let err = t.setup_queue(&l).unwrap_err().to_string();
        assert!(err.contains("outside the 0x4-byte notification structure"), "{err}");
        assert!(!regs.take_writes().contains(&(QUEUE_ENABLE, 2, 1)), "not enabled");
    }

    /// Config space with QEMU's structures in BAR 4, at the given offsets, and the multiplier.
    fn caps_at(common: u32, notify: u32, multiplier: u32, device: u32) -> VirtioCaps {
        let mut c = FakeConfig::new();
        c.virtio_cap(0x40, VIRTIO_PCI_CAP_COMMON_CFG, 4, common, 0x100, &[]);
        c.virtio_cap(0x60, VIRTIO_PCI_CAP_DEVICE_CFG, 4, device, 0x100, &[]);
        c.virtio_cap(0x70, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, notify, 0x100, &multiplier.to_le_bytes());
        let read = c.read();
        parse(&c.caps, &read).unwrap()
    }

    /// Probes with `caps`: the error, after checking no register was touched (the fake, like
    /// `Bar`, panics on a misaligned access).
    fn refused(caps: &VirtioCaps) -> String {
        let regs = qemu_modern();
        let err = Modern::new(caps, |_| Ok(regs.clone()), "x".into()).err().expect("refused").to_string();
        assert_eq!(regs.take_log(), [], "no register access before the refusal");
        err
    }

    #[test]
    fn misaligned_structures_are_refused_at_probe() {
        assert!(
            Modern::new(&caps_at(0, NOTIFY as u32, 4, DEVICE_CFG as u32), |_| Ok(qemu_modern()), "x".into()).is_ok()
        );
        let err = refused(&caps_at(2, NOTIFY as u32, 4, DEVICE_CFG as u32));
        assert!(
            err.contains("common configuration") && err.contains("not 4-byte aligned") && err.contains("4.1.4.3"),
            "{err}"
        );
        let err = refused(&caps_at(0, NOTIFY as u32, 4, DEVICE_CFG as u32 + 2));
        assert!(
            err.contains("device configuration") && err.contains("not 4-byte aligned") && err.contains("4.1.4.6"),
            "{err}"
        );
        let err = refused(&caps_at(0, NOTIFY as u32 + 1, 4, DEVICE_CFG as u32));
        assert!(err.contains("notification") && err.contains("not 2-byte aligned") && err.contains("4.1.4.4"), "{err}");
    }

    #[test]
    fn a_misaligned_notification_address_is_refused_at_queue_setup() {
        // An odd multiplier (4.1.4.4 asks for 0 or an even power of 2): queue q at 0x3000 + 3q.
        let regs = qemu_modern();
        let t =
            Modern::new(&caps_at(0, NOTIFY as u32, 3, DEVICE_CFG as u32), |_| Ok(regs.clone()), "x".into()).unwrap();
        let l = QueueLayout {
            index: 1,
            size: 256,
            desc_iova: 0,
            avail_iova: 0,
            used_iova: 0,
            desc_va: 0,
            avail_va: 0,
            used_va: 0,
        };
        regs.take_log();
        let err = t.setup_queue(&l).unwrap_err().to_string();
        assert!(err.contains("virtqueue 1") && err.contains("0x3003") && err.contains("not 2-byte aligned"), "{err}");
        let log = regs.take_log();
        assert!(!log.iter().any(|a| matches!(a, Access::Notifier { .. })), "no notifier made: {log:?}");
        assert!(!log.contains(&Access::Write { offset: QUEUE_ENABLE, width: 2, value: 1 }), "not enabled");
        // Even products are fine: queue 0 at 0x3000, queue 2 at 0x3006.
        t.setup_queue(&QueueLayout { index: 0, ..l }).unwrap();
        t.setup_queue(&QueueLayout { index: 2, size: 64, ..l }).unwrap();
        let log = regs.take_log();
        assert!(log.contains(&Access::Notifier { offset: NOTIFY, value: 0 }), "{log:?}");
        assert!(log.contains(&Access::Notifier { offset: NOTIFY + 6, value: 2 }), "{log:?}");
    }
}
