//! The transport: how the net device reaches a virtio device's features, status, config space,
//! queues and notifications (virtio 1.2, 4: "Virtio Transport Options"). The PCI transports
//! (`pci/`: legacy I/O-port registers, modern capabilities) and virtio-user over vhost-user
//! (`user/`) implement it; the net device (`init.rs`, `dev.rs`) is written once against it, the
//! way DPDK's `virtio_ethdev.c` is written against `struct virtio_ops`.
//!
//! Only the control path goes through the trait (a `dyn Transport` call is fine there). The data
//! path gets a [`Notifier`] per queue at setup and never calls the transport again.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use burst_pci::Bar;

use crate::error::VirtioError;

/// Where a split virtqueue's three parts are (virtio 1.2, 2.7), both as the device addresses them
/// and as this process sees them. The net device lays a queue out once, in one IOVA-contiguous
/// memzone, with legacy's alignment (used ring on a 4096-byte boundary, virtio 1.2, 2.7.2), so
/// every transport can take the same layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Virtqueue index (RX of pair `i` is `2i`, TX `2i + 1`, the control queue after the pairs).
    pub index: u16,
    /// Descriptors in the ring (a power of two).
    pub size: u16,
    /// IOVA of the descriptor table (4096-byte aligned; legacy writes `desc_iova >> 12` as the PFN).
    pub desc_iova: u64,
    /// IOVA of the available ring (right after the table for legacy).
    pub avail_iova: u64,
    /// IOVA of the used ring (4096-byte aligned after the available ring for legacy).
    pub used_iova: u64,
    /// Virtual address of the descriptor table.
    pub desc_va: usize,
    /// Virtual address of the available ring.
    pub avail_va: usize,
    /// Virtual address of the used ring.
    pub used_va: usize,
}

/// Tells the device a queue has new available buffers ("driver notification", virtio 1.2, 2.9):
/// the data path's only transport operation, made without a `dyn` call.
pub enum Notifier {
    /// A 16-bit MMIO register in a mapped BAR (modern PCI, virtio 1.2, 4.1.4.4): write `value`
    /// (the queue index) at `reg`. `bar` keeps the mapping alive.
    Mmio {
        /// The notification address for this queue: inside `bar`'s mapping, 2-byte aligned.
        reg: *mut u16,
        /// What to write: the queue index.
        value: u16,
        /// The BAR `reg` points into.
        bar: Arc<Bar>,
    },
    /// A 16-bit register reached through [`Bar::write16`] (legacy I/O port `Queue Notify`,
    /// virtio 1.2, 4.1.4.8).
    Reg {
        /// The BAR.
        bar: Arc<Bar>,
        /// The register's offset in it.
        offset: usize,
        /// What to write: the queue index.
        value: u16,
    },
    /// An eventfd the vhost-user backend polls (`VHOST_USER_SET_VRING_KICK`): write 1 to it.
    EventFd(Arc<OwnedFd>),
}

// SAFETY: `reg` points into a shared mapping of device registers that `bar` keeps alive for as
// long as the Notifier lives; the only access is a volatile 16-bit store, which any thread may do.
unsafe impl Send for Notifier {}
// SAFETY: as for Send; `notify` takes `&self` and only stores to a device register or writes to
// an eventfd, both of which tolerate concurrent use.
unsafe impl Sync for Notifier {}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notifier::Mmio { reg, value, .. } => write!(f, "Notifier::Mmio({reg:?}, {value})"),
            Notifier::Reg { offset, value, .. } => write!(f, "Notifier::Reg({offset:#x}, {value})"),
            Notifier::EventFd(fd) => write!(f, "Notifier::EventFd({})", fd.as_raw_fd()),
        }
    }
}

impl Notifier {
    /// Notifies the device.
    #[inline]
    pub fn notify(&self) {
        match self {
            // SAFETY: `reg` is inside the live mapping of `bar`, 2-byte aligned (checked by the
            // transport that made it); a volatile store to a device register, no reference made.
            Notifier::Mmio { reg, value, .. } => unsafe { reg.write_volatile(value.to_le()) },
            Notifier::Reg { bar, offset, value } => bar.write16(*offset, *value),
            Notifier::EventFd(fd) => {
                let one = 1u64.to_ne_bytes();
                // SAFETY: writes 8 bytes from a live local buffer to a descriptor `fd` keeps open.
                let n = unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
                if n != 8 {
                    // EAGAIN (counter saturated) means a kick is pending anyway.
                    tracing::trace!("eventfd kick: {}", std::io::Error::last_os_error());
                }
            }
        }
    }
}

/// Which transport carries the device: the PCI interfaces of virtio 1.2, 4.1 (the legacy one of
/// a transitional device, 4.1.4.8, or the modern one, 4.1.4), or vhost-user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// The legacy PCI interface: I/O-port registers, 32 feature bits, fixed ring sizes.
    Legacy,
    /// The modern PCI interface: the virtio capabilities' structures, virtio 1.x.
    Modern,
    /// A vhost-user back-end over a unix socket (virtio-user).
    VhostUser,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Legacy => "legacy",
            TransportKind::Modern => "modern",
            TransportKind::VhostUser => "vhost-user",
        })
    }
}

/// A control-queue command a transport answers itself (virtio-user emulates the control queue,
/// as DPDK's does): class and command of virtio 1.2, 5.1.6.5, and the command's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtrlCommand<'a> {
    /// `VIRTIO_NET_CTRL_RX`, `VIRTIO_NET_CTRL_MAC`, `VIRTIO_NET_CTRL_MQ`, ...
    pub class: u8,
    /// The command within the class.
    pub command: u8,
    /// Its data (little-endian, as on the queue).
    pub data: &'a [u8],
}

/// The operations a virtio transport gives the net device. Feature bits, status bits and config
/// offsets are the spec's (see [`crate::spec`]).
///
/// Calls come from the control path only, one at a time (the port's `&mut self` methods, or
/// under its lock); implementations may block briefly (a vhost-user round trip).
pub trait Transport: Send + Sync {
    /// Which transport this is: what the device can do follows from it (a legacy device has no
    /// VERSION_1 and bypasses the IOMMU), and logs name it.
    fn kind(&self) -> TransportKind;

    /// The device's feature bits (virtio 1.2, 2.2). Legacy devices have only the low 32.
    fn device_features(&self) -> u64;

    /// Writes the driver's feature bits: a subset of [`Transport::device_features`]. The
    /// transport may refuse a set it cannot carry (vhost-user: the backend's reply).
    fn set_driver_features(&self, features: u64) -> Result<(), VirtioError>;

    /// The device status byte (virtio 1.2, 2.1).
    fn status(&self) -> u8;

    /// Writes the device status byte. Writing `DRIVER_OK` makes the device live: for vhost-user
    /// that is when the memory table and every queue set up since the last reset go to the
    /// backend. Writing 0 is [`Transport::reset`].
    fn set_status(&self, status: u8) -> Result<(), VirtioError>;

    /// Resets the device (status 0) and waits until it reports the reset done (virtio 1.2,
    /// 4.1.4.3.2): afterwards the device touches no queue memory, and every queue set up before
    /// is forgotten.
    ///
    /// `Err`: the device did not confirm the reset in time. It may still read and write the
    /// memory of every queue it was given, so the caller must never free or reuse that memory
    /// (nor the buffers posted in it).
    fn reset(&self) -> Result<(), VirtioError>;

    /// Reads `buf.len()` bytes of the device-specific config space (`struct virtio_net_config`,
    /// virtio 1.2, 5.1.4) at `offset`. Bytes beyond what the device has read as 0.
    fn read_config(&self, offset: usize, buf: &mut [u8]);

    /// Writes the device-specific config space (legacy devices take a new MAC this way).
    /// Transports where the driver may not write it do nothing.
    fn write_config(&self, offset: usize, data: &[u8]);

    /// The largest ring queue `index` takes (legacy: the only size it takes), or 0 if the queue
    /// does not exist.
    fn queue_max_size(&self, index: u16) -> u16;

    /// Whether the ring size may be smaller than [`Transport::queue_max_size`] (not on legacy).
    fn queue_size_settable(&self) -> bool;

    /// Gives the device a queue, laid out as `layout` says, and returns how to notify it. For
    /// vhost-user the queue reaches the backend at `DRIVER_OK`.
    fn setup_queue(&self, layout: &QueueLayout) -> Result<Notifier, VirtioError>;

    /// Whether descriptors carry virtual addresses instead of IOVAs (vhost-user: the memory table
    /// gives each region's virtual address as its "guest physical" address, as DPDK's
    /// virtio-user does).
    fn uses_va(&self) -> bool {
        false
    }

    /// Answers a control-queue command without a control queue, for transports that emulate it.
    /// `None`: the device has a real control queue; put the command on it.
    fn control(&self, cmd: CtrlCommand<'_>) -> Option<Result<(), VirtioError>> {
        let _ = cmd;
        None
    }

    /// Whether the device is reachable now. Only vhost-user can lose its device (the backend
    /// went away); it reconnects by itself, and reports the link down meanwhile.
    fn connected(&self) -> bool {
        true
    }
}
