//! Interrupts in user space: a file descriptor that becomes readable when the device interrupts.
//!
//! - **VFIO**: one eventfd per vector, handed to the kernel with `VFIO_DEVICE_SET_IRQS` for the
//!   INTx, MSI or MSI-X index. Reading an eventfd gives the interrupts since the last read.
//!   INTx is level-triggered and shared, so VFIO masks it when it fires (`AUTOMASKED`): the
//!   driver clears the cause in the device, then [`Irq::unmask`]s. MSI and MSI-X need nothing.
//! - **UIO** (`uio_pci_generic`): INTx only. The kernel masks the device's INTx with the command
//!   register's interrupt-disable bit when it fires (`pci_check_and_mask_intx`) and counts;
//!   reading 4 bytes of `/dev/uioN` gives the count since the device was bound. uio_pci_generic
//!   has no `irqcontrol`, so writing to `/dev/uioN` fails with ENOSYS (seen in the lab, Linux
//!   6.1): [`Irq::unmask`] clears the interrupt-disable bit through config space instead, as
//!   DPDK's `uio_intx_intr_enable` does. Again: clear the cause first, then unmask.
//!
//! [`Irq::wait`] polls with a timeout and returns how many interrupts came since the previous
//! wait, the same for both. Poll-mode drivers use interrupts only to sleep when idle (DPDK's
//! `rte_eth_dev_rx_intr_*`), so this is a slow path.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vfio_bindings::bindings::vfio::VFIO_PCI_INTX_IRQ_INDEX;
use vmm_sys_util::eventfd::EventFd;

use crate::address::PciAddress;
use crate::config::{ConfigError, ConfigFile, COMMAND, COMMAND_INTX_DISABLE};
use crate::vfio::OpenDevice;

/// The kind of interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqKind {
    /// Legacy level-triggered INTx (PCI 3.0, 2.2.6).
    Intx,
    /// Message-signalled interrupts (6.8.1).
    Msi,
    /// MSI-X (6.8.2).
    Msix,
}

impl std::fmt::Display for IrqKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IrqKind::Intx => "intx",
            IrqKind::Msi => "msi",
            IrqKind::Msix => "msix",
        })
    }
}

/// How many vectors of each kind a device offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqInfo {
    /// 1 if the device has an INTx pin.
    pub intx: u32,
    /// MSI vectors (0 without an MSI capability).
    pub msi: u32,
    /// MSI-X vectors (0 without an MSI-X capability).
    pub msix: u32,
}

impl IrqInfo {
    /// The count for `kind`.
    pub fn count(&self, kind: IrqKind) -> u32 {
        match kind {
            IrqKind::Intx => self.intx,
            IrqKind::Msi => self.msi,
            IrqKind::Msix => self.msix,
        }
    }
}

/// Setting up or waiting for interrupts failed.
#[derive(Debug, thiserror::Error)]
pub enum IrqError {
    /// The device does not have that many vectors of that kind.
    #[error("{addr} has {available} {kind} vector(s), {asked} asked for{hint}")]
    NotAvailable {
        /// The device.
        addr: PciAddress,
        /// Kind asked for.
        kind: IrqKind,
        /// Vectors asked for.
        asked: u32,
        /// Vectors the device has.
        available: u32,
        /// What to do instead, for the message.
        hint: &'static str,
    },
    /// The kernel refused to route the interrupts to our eventfds.
    #[error("routing {kind} interrupts of {addr} to eventfds failed: {source}")]
    Setup {
        /// The device.
        addr: PciAddress,
        /// Kind.
        kind: IrqKind,
        /// What vfio-ioctls said.
        source: vfio_ioctls::VfioError,
    },
    /// Masking or unmasking INTx through config space failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A system call on the interrupt's file descriptor failed.
    #[error("{op} interrupt file of {addr} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The device.
        addr: PciAddress,
        /// What the kernel said.
        source: std::io::Error,
    },
}

enum Source {
    /// VFIO: the eventfd; for INTx, the device to unmask through (which keeps it open, and
    /// counted in its container, while the `Irq` lives).
    Eventfd { fd: EventFd, intx_device: Option<Arc<OpenDevice>> },
    /// UIO: our own open of `/dev/uioN`, the count last seen, and config space for unmasking.
    Uio { file: File, seen: AtomicU32, config: Arc<ConfigFile> },
}

/// One interrupt vector of an open device.
pub struct Irq {
    addr: PciAddress,
    kind: IrqKind,
    vector: u32,
    source: Source,
}

impl std::fmt::Debug for Irq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Irq").field("addr", &self.addr).field("kind", &self.kind).field("vector", &self.vector).finish()
    }
}

impl Irq {
    pub(crate) fn eventfd(
        addr: PciAddress,
        kind: IrqKind,
        vector: u32,
        fd: EventFd,
        intx_device: Option<Arc<OpenDevice>>,
    ) -> Irq {
        Irq { addr, kind, vector, source: Source::Eventfd { fd, intx_device } }
    }

    /// A UIO device's INTx through `file` (an open of `/dev/uioN`); `count` is the device's
    /// interrupt count now (sysfs `uio/uioN/event`), from which [`Irq::wait`] counts.
    pub(crate) fn uio(addr: PciAddress, file: File, count: u32, config: Arc<ConfigFile>) -> Irq {
        let seen = AtomicU32::new(count);
        Irq { addr, kind: IrqKind::Intx, vector: 0, source: Source::Uio { file, seen, config } }
    }

    /// INTx, MSI or MSI-X.
    pub fn kind(&self) -> IrqKind {
        self.kind
    }

    /// The vector number within its kind.
    pub fn vector(&self) -> u32 {
        self.vector
    }

    fn io_err(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> IrqError + '_ {
        move |source| IrqError::Io { op, addr: self.addr, source }
    }

    /// Waits up to `timeout` (`None`: for ever) for the interrupt; returns how many came since
    /// the previous call (0: timed out). Does not unmask: see [`Irq::unmask`].
    pub fn wait(&self, timeout: Option<Duration>) -> Result<u64, IrqError> {
        let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        let mut pfd = libc::pollfd { fd: self.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ready = loop {
            // SAFETY: `pfd` is one valid pollfd that lives across the call.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n >= 0 {
                break n > 0;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(self.io_err("polling")(e));
            }
        };
        if !ready {
            return Ok(0);
        }
        self.read_count()
    }

    /// Interrupts since the previous call, without waiting.
    pub fn take_count(&self) -> Result<u64, IrqError> {
        self.wait(Some(Duration::ZERO))
    }

    fn read_count(&self) -> Result<u64, IrqError> {
        match &self.source {
            Source::Eventfd { fd, .. } => match fd.read() {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                Err(e) => Err(self.io_err("reading")(e)),
            },
            Source::Uio { file, seen, .. } => {
                // uio_read: exactly 4 bytes, the total count; it does not block after POLLIN.
                let mut b = [0u8; 4];
                (&*file).read_exact(&mut b).map_err(self.io_err("reading"))?;
                let total = u32::from_ne_bytes(b);
                let before = seen.swap(total, Ordering::Relaxed);
                Ok(u64::from(total.wrapping_sub(before)))
            }
        }
    }

    /// Lets a level-triggered INTx fire again, after the driver has cleared the cause in the
    /// device (unmasking first would take the same interrupt again at once). VFIO:
    /// `VFIO_IRQ_SET_ACTION_UNMASK`; UIO: clear the command register's interrupt-disable bit.
    /// Nothing for MSI and MSI-X.
    pub fn unmask(&self) -> Result<(), IrqError> {
        match &self.source {
            Source::Eventfd { intx_device: Some(dev), .. } => dev
                .unmask_irq(VFIO_PCI_INTX_IRQ_INDEX)
                .map_err(|source| IrqError::Setup { addr: self.addr, kind: IrqKind::Intx, source }),
            Source::Eventfd { intx_device: None, .. } => Ok(()),
            Source::Uio { config, .. } => Ok(set_intx_disable(config, false)?),
        }
    }
}

/// Sets or clears the command register's INTx-disable bit (PCI 3.0, 6.2.2). Only the kernel's
/// interrupt handler sets it meanwhile, and only while it is clear, so this read-modify-write
/// loses nothing: at worst an interrupt that came in between fires once more.
pub(crate) fn set_intx_disable(config: &ConfigFile, disable: bool) -> Result<(), ConfigError> {
    let cmd = config.read16(COMMAND)?;
    let new = if disable { cmd | COMMAND_INTX_DISABLE } else { cmd & !COMMAND_INTX_DISABLE };
    if new != cmd {
        config.write16(COMMAND, new)?;
    }
    Ok(())
}

impl AsRawFd for Irq {
    /// The descriptor to put in an epoll set: readable when the interrupt has fired.
    fn as_raw_fd(&self) -> RawFd {
        match &self.source {
            Source::Eventfd { fd, .. } => fd.as_raw_fd(),
            Source::Uio { file, .. } => file.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eventfd_irq_counts_what_was_signalled_since_the_last_wait() {
        let fd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let writer = fd.try_clone().unwrap();
        let irq = Irq::eventfd("00:02.0".parse().unwrap(), IrqKind::Msix, 3, fd, None);
        assert_eq!((irq.kind(), irq.vector()), (IrqKind::Msix, 3));
        assert_eq!(irq.wait(Some(Duration::from_millis(10))).unwrap(), 0, "nothing yet: times out");
        writer.write(1).unwrap();
        writer.write(1).unwrap();
        assert_eq!(irq.wait(Some(Duration::from_secs(5))).unwrap(), 2);
        assert_eq!(irq.take_count().unwrap(), 0);
        irq.unmask().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.write(1).unwrap();
        });
        assert_eq!(irq.wait(None).unwrap(), 1);
        t.join().unwrap();
    }

    #[test]
    fn irq_info_counts_by_kind() {
        let info = IrqInfo { intx: 1, msi: 0, msix: 3 };
        assert_eq!([IrqKind::Intx, IrqKind::Msi, IrqKind::Msix].map(|k| info.count(k)), [1, 0, 3]);
        assert_eq!(IrqKind::Msix.to_string(), "msix");
    }
}
