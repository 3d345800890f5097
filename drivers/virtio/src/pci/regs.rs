//! Register access for the PCI transports: a [`Bar`] in the driver, a fake register file in the
//! transports' unit tests. The transports are written once against [`Regs`].

use std::sync::Arc;

use burst_pci::Bar;

use crate::transport::Notifier;

/// A window of device registers: little-endian, naturally aligned accesses of 1, 2 or 4 bytes.
/// Offsets are the transport's constants or were checked against [`Regs::len`] first.
pub(crate) trait Regs: Send + Sync + 'static {
    /// Bytes in the window.
    fn len(&self) -> usize;
    /// Reads the 8-bit register at `offset`.
    fn read8(&self, offset: usize) -> u8;
    /// Reads the 16-bit register at `offset`.
    fn read16(&self, offset: usize) -> u16;
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 8-bit register at `offset`.
    fn write8(&self, offset: usize, value: u8);
    /// Writes the 16-bit register at `offset`.
    fn write16(&self, offset: usize, value: u16);
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
    /// A [`Notifier`] that writes `value` to the 16-bit register at `offset` of `regs`. The caller
    /// checked [`notify_reg_fits`]: the offset comes from the device (modern) and a register
    /// access outside the window or misaligned panics.
    fn notifier(regs: &Arc<Self>, offset: usize, value: u16) -> Notifier
    where
        Self: Sized;
}

impl Regs for Bar {
    fn len(&self) -> usize {
        Bar::len(self)
    }
    fn read8(&self, offset: usize) -> u8 {
        Bar::read8(self, offset)
    }
    fn read16(&self, offset: usize) -> u16 {
        Bar::read16(self, offset)
    }
    fn read32(&self, offset: usize) -> u32 {
        Bar::read32(self, offset)
    }
    fn write8(&self, offset: usize, value: u8) {
        Bar::write8(self, offset, value)
    }
    fn write16(&self, offset: usize, value: u16) {
        Bar::write16(self, offset, value)
    }
    fn write32(&self, offset: usize, value: u32) {
        Bar::write32(self, offset, value)
    }

    /// A mapped BAR gets a [`Notifier::Mmio`] (one volatile store per kick, no bounds check on
    /// the data path); only a BAR that is not mapped (an I/O-port BAR) gets a [`Notifier::Reg`]
    /// (one `pwrite`).
    fn notifier(bar: &Arc<Bar>, offset: usize, value: u16) -> Notifier {
        let fits = notify_reg_fits(bar.len(), offset);
        debug_assert!(fits, "notifier at {offset:#x} of a {:#x}-byte BAR: the transport did not check", bar.len());
        match bar.as_ptr() {
            Some(base) if fits => {
                // SAFETY: `offset + 2 <= len` was just checked and the mapping covers `len`
                // bytes from `base` while `bar` lives; `add` stays inside it. The pointer is
                // 2-byte aligned (the mapping is page-aligned, `offset` even).
                let reg = unsafe { base.add(offset) }.cast::<u16>();
                Notifier::Mmio { reg, value, bar: bar.clone() }
            }
            // Unreachable: both transports check `notify_reg_fits` first (modern in
            // `notify_addr`, legacy's register is a constant inside the BAR it checked). Said
            // loudly rather than degraded silently: `Reg` panics with the offset on the first
            // kick instead of storing outside the mapping.
            Some(_) => {
                tracing::error!(offset, len = bar.len(), "virtio notifier outside its BAR or misaligned: a driver bug");
                Notifier::Reg { bar: bar.clone(), offset, value }
            }
            None => Notifier::Reg { bar: bar.clone(), offset, value },
        }
    }
}

/// Whether a 16-bit notification register at `offset` lies inside a window of `len` bytes and is
/// 2-byte aligned: what [`Regs::notifier`] needs, checked by its caller.
pub(crate) fn notify_reg_fits(len: usize, offset: usize) -> bool {
    offset.checked_add(2).is_some_and(|end| end <= len) && offset % 2 == 0
}

/// Reads `buf.len()` bytes at `base` of `regs` in naturally aligned pieces of 4, 2 or 1 bytes
/// (virtio 1.2, 4.1.3.1: fields are accessed with their own width; 4-byte fields are 4-aligned in
/// `struct virtio_net_config`). Bytes past `limit` (the end of the config area) read as 0.
pub(crate) fn read_chunked<R: Regs + ?Sized>(regs: &R, base: usize, limit: usize, buf: &mut [u8]) {
    buf.fill(0);
    let mut i = 0;
    while i < buf.len() {
        let at = base + i;
        let left = buf.len() - i;
        let avail = limit.saturating_sub(at);
        if avail == 0 {
            break;
        }
        if at % 4 == 0 && left >= 4 && avail >= 4 {
            buf[i..i + 4].copy_from_slice(&regs.read32(at).to_le_bytes());
            i += 4;
        } else if at % 2 == 0 && left >= 2 && avail >= 2 {
            buf[i..i + 2].copy_from_slice(&regs.read16(at).to_le_bytes());
            i += 2;
        } else {
            buf[i] = regs.read8(at);
            i += 1;
        }
    }
}

/// Writes `data` at `base` of `regs` the same way; bytes past `limit` are not written.
pub(crate) fn write_chunked<R: Regs + ?Sized>(regs: &R, base: usize, limit: usize, data: &[u8]) {
    let mut i = 0;
    while i < data.len() {
        let at = base + i;
        let left = data.len() - i;
        let avail = limit.saturating_sub(at);
        if avail == 0 {
            break;
        }
        if at % 4 == 0 && left >= 4 && avail >= 4 {
            regs.write32(at, u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]));
            i += 4;
        } else if at % 2 == 0 && left >= 2 && avail >= 2 {
            regs.write16(at, u16::from_le_bytes([data[i], data[i + 1]]));
            i += 2;
        } else {
            regs.write8(at, data[i]);
            i += 1;
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A register file in memory that logs every access, with a hook that plays the device's
    //! part after each write (feature windows, queue selection, reset).

    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::{Arc, Mutex};

    use super::Regs;
    use crate::transport::Notifier;

    /// One access, as the device saw it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Access {
        Read {
            offset: usize,
            width: usize,
        },
        Write {
            offset: usize,
            width: usize,
            value: u32,
        },
        /// A notifier was made for the 16-bit register at `offset`, writing `value`.
        Notifier {
            offset: usize,
            value: u16,
        },
    }

    /// The device's reaction to a write: gets the register memory, the offset, width and value.
    pub(crate) type Hook = Box<dyn Fn(&mut Vec<u8>, usize, usize, u32) + Send + Sync>;

    pub(crate) struct FakeRegs {
        pub(crate) mem: Mutex<Vec<u8>>,
        pub(crate) log: Mutex<Vec<Access>>,
        hook: Option<Hook>,
    }

    impl FakeRegs {
        pub(crate) fn new(len: usize, hook: Option<Hook>) -> FakeRegs {
            FakeRegs { mem: Mutex::new(vec![0; len]), log: Mutex::new(Vec::new()), hook }
        }

        /// Sets bytes without logging (the device's own state).
        pub(crate) fn poke(&self, offset: usize, bytes: &[u8]) {
            self.mem.lock().unwrap()[offset..offset + bytes.len()].copy_from_slice(bytes);
        }

        pub(crate) fn peek(&self, offset: usize, len: usize) -> Vec<u8> {
            self.mem.lock().unwrap()[offset..offset + len].to_vec()
        }

        /// The writes logged so far, as (offset, width, value), and clears the log.
        pub(crate) fn take_writes(&self) -> Vec<(usize, usize, u32)> {
            let log = std::mem::take(&mut *self.log.lock().unwrap());
            log.into_iter()
                .filter_map(|a| match a {
                    Access::Write { offset, width, value } => Some((offset, width, value)),
                    _ => None,
                })
                .collect()
        }

        pub(crate) fn take_log(&self) -> Vec<Access> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }

        fn read(&self, offset: usize, width: usize) -> u32 {
            assert!(offset + width <= self.len() && offset % width == 0, "bad read {offset:#x}/{width}");
            self.log.lock().unwrap().push(Access::Read { offset, width });
            let mem = self.mem.lock().unwrap();
            let mut b = [0u8; 4];
            b[..width].copy_from_slice(&mem[offset..offset + width]);
            u32::from_le_bytes(b)
        }

        fn write(&self, offset: usize, width: usize, value: u32) {
            assert!(offset + width <= self.len() && offset % width == 0, "bad write {offset:#x}/{width}");
            self.log.lock().unwrap().push(Access::Write { offset, width, value });
            let mut mem = self.mem.lock().unwrap();
            mem[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
            if let Some(hook) = &self.hook {
                hook(&mut mem, offset, width, value);
            }
        }
    }

    impl Regs for FakeRegs {
        fn len(&self) -> usize {
            self.mem.lock().unwrap().len()
        }
        fn read8(&self, offset: usize) -> u8 {
            self.read(offset, 1) as u8
        }
        fn read16(&self, offset: usize) -> u16 {
            self.read(offset, 2) as u16
        }
        fn read32(&self, offset: usize) -> u32 {
            self.read(offset, 4)
        }
        fn write8(&self, offset: usize, value: u8) {
            self.write(offset, 1, value.into())
        }
        fn write16(&self, offset: usize, value: u16) {
            self.write(offset, 2, value.into())
        }
        fn write32(&self, offset: usize, value: u32) {
            self.write(offset, 4, value)
        }
        /// Logs the request and hands back an eventfd notifier (nothing listens to it).
        fn notifier(regs: &Arc<Self>, offset: usize, value: u16) -> Notifier {
            assert!(super::notify_reg_fits(regs.len(), offset), "notifier outside the registers or misaligned");
            regs.log.lock().unwrap().push(Access::Notifier { offset, value });
            // SAFETY: eventfd has no memory effects; the descriptor it returns is new and ours.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            Notifier::EventFd(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Access, FakeRegs};
    use super::*;

    #[test]
    fn config_reads_use_natural_widths_and_stop_at_the_limit() {
        let regs = FakeRegs::new(0x20, None);
        regs.poke(0x14, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut mac = [0u8; 6];
        read_chunked(&regs, 0x14, 0x20, &mut mac);
        assert_eq!(mac, [1, 2, 3, 4, 5, 6]);
        assert_eq!(
            regs.take_log(),
            [Access::Read { offset: 0x14, width: 4 }, Access::Read { offset: 0x18, width: 2 }],
            "a 4-byte and a 2-byte read"
        );
        // Odd start, then past the end: a byte, a 16-bit read, then zeros without any access.
        let mut buf = [0xffu8; 6];
        read_chunked(&regs, 0x1d, 0x20, &mut buf);
        assert_eq!(buf, [10, 11, 12, 0, 0, 0]);
        let log = regs.take_log();
        assert_eq!(log, [Access::Read { offset: 0x1d, width: 1 }, Access::Read { offset: 0x1e, width: 2 }]);
    }

    #[test]
    fn config_writes_use_natural_widths() {
        let regs = FakeRegs::new(0x20, None);
        write_chunked(&regs, 0x14, 0x20, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(regs.take_writes(), [(0x14, 4, 0x0403_0201), (0x18, 2, 0x0605)]);
        write_chunked(&regs, 0x1f, 0x20, &[9, 9]);
        assert_eq!(regs.take_writes(), [(0x1f, 1, 9)], "nothing past the end");
        assert_eq!(regs.peek(0x14, 6), [1, 2, 3, 4, 5, 6]);
    }
}
