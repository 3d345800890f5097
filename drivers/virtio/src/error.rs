//! What can go wrong in the virtio-net driver, each failure with what to do about it. A port's
//! operations return these wrapped in [`burst_ethdev::EthError::Driver`] (built with
//! `EthError::driver(driver, device, e)`, which adds the driver and device names);
//! `err.driver_error::<VirtioError>()` gets one back.
//!
//! Grouped by where they arise: device initialisation and the control path (`init`, `dev`), the
//! control queue (`ctrl`), the PCI transports and probe (`pci`), and virtio-user's conversation
//! with its vhost-user back-end (`user`).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use burst_pci::{ConfigError, DeviceError};

use crate::spec::features::describe;

/// A virtio-net driver error.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    // Device initialisation and the control path (virtio 1.2, 3.1.1).
    /// A modern device must offer VERSION_1 (6.1).
    #[error(
        "the modern device does not offer VERSION_1 (it offers {}): a virtio 1.x device must; check the device or \
         its emulator",
        describe(*offered)
    )]
    NoVersion1 {
        /// The device's features.
        offered: u64,
    },
    /// The device cleared FEATURES_OK after the driver wrote its features (3.1.1 step 6).
    #[error(
        "the device refused the features {} (FEATURES_OK not kept): check what it offers ({})",
        describe(*wanted),
        describe(*offered)
    )]
    FeaturesRefused {
        /// What the driver asked for.
        wanted: u64,
        /// What the device offered.
        offered: u64,
    },
    /// A start negotiated other features than the probe did.
    #[error("the device now offers different features ({}, was {}): reset the port", describe(*now), describe(*was))]
    FeaturesChanged {
        /// Negotiated now.
        now: u64,
        /// Negotiated at probe.
        was: u64,
    },
    /// Virtqueues 0 and 1 (RX and TX of the first pair, 5.1.2) do not exist.
    #[error("the device has no RX or TX queue 0: is it a network device?")]
    NoQueuePair,
    /// A ring size the driver cannot use.
    #[error("virtqueue {index} has a size of {max}: the device must offer a queue whose size is a power of two")]
    QueueSize {
        /// The virtqueue.
        index: u16,
        /// Its size (or largest size).
        max: u16,
    },
    /// The control queue is too small for a command's chain.
    #[error("the control queue has {size} descriptors: 4 needed")]
    CtrlQueueTooSmall {
        /// Its descriptors.
        size: u16,
    },
    /// The pool's headroom cannot hold the net header in front of the frame.
    #[error(
        "the pool's headroom is {headroom} bytes: the virtio-net header needs {hdr_len}; use a pool with a headroom \
         of at least {hdr_len} (the default is 128)"
    )]
    Headroom {
        /// The pool's headroom.
        headroom: usize,
        /// The net header's length.
        hdr_len: usize,
    },
    /// LRO asked for on a queue that cannot chain: a coalesced packet spans many buffers.
    #[error(
        "RX queue {queue}: TCP_LRO delivers packets of up to 64 KiB, which take several buffers: turn on \
         RxOffloads::SCATTER too"
    )]
    LroNeedsScatter {
        /// The RX queue.
        queue: u16,
    },
    /// Not one buffer could be posted on an RX ring.
    #[error("RX queue {queue}: its pool has no free buffer to fill the ring: make it larger")]
    RxPoolEmpty {
        /// The RX queue.
        queue: u16,
    },
    /// A reset did not finish earlier, so the queues' memory was kept.
    #[error(
        "the device did not finish its last reset and may still use the queues' memory, which is kept: this port \
         can only be closed; unbind and rebind the device"
    )]
    Wedged,
    /// A legacy device's status did not read 0 after a reset (4.1.4.8).
    #[error(
        "the legacy device still reports status {status:#04x} after a reset: it may still use its queues' memory, \
         which is kept; unbind and rebind the device"
    )]
    LegacyResetFailed {
        /// The status read back.
        status: u8,
    },
    /// `device_status` did not read 0 in time after a reset (4.1.4.3.2).
    #[error(
        "device_status is still not 0 {waited:?} after a reset: the device may still use its queues' memory, which \
         is kept; unbind and rebind the device"
    )]
    ResetTimeout {
        /// How long the driver waited.
        waited: Duration,
    },

    // The control queue (5.1.6.5).
    /// A command is sent before the port started the control queue.
    #[error("the control queue is not running: start the port first")]
    CtrlNotRunning,
    /// A command's data does not fit the queue's buffer (a driver bug).
    #[error("control command data of {len} bytes is too long: at most {max} fit")]
    CtrlDataTooLong {
        /// The data's length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// An earlier command went wrong, so no other goes out until the next start.
    #[error(
        "control command {class}/{command} not sent: an earlier command timed out and the device may still answer \
         it; stop and start the port"
    )]
    CtrlStuck {
        /// The command's class.
        class: u8,
        /// The command.
        command: u8,
    },
    /// The device did not use the command's chain in time.
    #[error(
        "the device did not answer control command {class}/{command} within {timeout:?}: no other goes out until \
         the port is stopped and started"
    )]
    CtrlTimeout {
        /// The command's class.
        class: u8,
        /// The command.
        command: u8,
        /// How long the driver waited.
        timeout: Duration,
    },
    /// The device's `used.idx` claimed more than the one command in flight.
    #[error("the device used more control commands than were sent ({class}/{command}): stop and start the port")]
    CtrlOverclaim {
        /// The command's class.
        class: u8,
        /// The command.
        command: u8,
    },
    /// The device answered the command with an ack other than `VIRTIO_NET_OK`.
    #[error("the device refused control command {class}/{command} (ack {ack})")]
    CtrlRefused {
        /// The command's class.
        class: u8,
        /// The command.
        command: u8,
        /// The ack byte it wrote.
        ack: u8,
    },

    // The PCI transports and probe (4.1).
    /// The PCI layer failed.
    #[error(transparent)]
    Pci(#[from] DeviceError),
    /// Reading the PCI config space failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A device ID the driver's table does not name (4.1.2).
    #[error("device ID {device:04x} is not a virtio network device this driver knows (1000 or 1041)")]
    UnknownDevice {
        /// The PCI device ID.
        device: u16,
    },
    /// A transitional device's BAR 0 is not the I/O-port BAR of its legacy registers.
    #[error(
        "BAR0 is a memory BAR of {len:#x} bytes: a transitional virtio device has its legacy registers in an I/O-port \
         BAR 0"
    )]
    LegacyBarIsMmio {
        /// The BAR's length.
        len: usize,
    },
    /// A legacy BAR 0 too short for the registers before the device config (4.1.4.8).
    #[error("BAR0 is {len:#x} bytes: a legacy virtio device has {need:#x} bytes of registers before its config")]
    LegacyBarTooShort {
        /// The BAR's length.
        len: usize,
        /// The registers' length.
        need: usize,
    },
    /// A required virtio structure capability is missing (4.1.4).
    #[error(
        "no usable virtio {what} capability (virtio 1.2, 4.1.4): is this a modern (1.x) virtio device? A \
         transitional device (1af4:1000) is driven through its legacy registers"
    )]
    NoCapability {
        /// Which structure.
        what: &'static str,
    },
    /// A virtio structure does not fit its BAR or is misplaced (4.1.4).
    #[error(
        "the {what} structure ({length:#x} bytes at {offset:#x} in BAR{bar}) {problem} (BAR of {bar_len:#x} bytes): \
         the device is misconfigured"
    )]
    BadStructure {
        /// Which structure.
        what: &'static str,
        /// Its length.
        length: u32,
        /// Its offset in the BAR.
        offset: u32,
        /// The BAR.
        bar: u8,
        /// The BAR's length.
        bar_len: usize,
        /// What is wrong with it.
        problem: StructureProblem,
    },
    /// The device's DMA bypasses the IOMMU, which translates IOVAs that are virtual addresses.
    #[error(
        "{} bypasses the IOMMU and DMAs to physical addresses, but IOVA is VA: run with `--iova-mode pa` (it stays \
         bound to vfio-pci), or bind it to uio_pci_generic",
        if *legacy { "a legacy (transitional) virtio device" } else {
            "this virtio device does not offer VIRTIO_F_ACCESS_PLATFORM, so it"
        }
    )]
    IommuBypass {
        /// A legacy device (else a modern one without ACCESS_PLATFORM).
        legacy: bool,
    },
    /// Driver features a legacy device cannot take (a driver bug).
    #[error("driver features {features:#x} include bits above 31, which a legacy device does not have: a driver bug")]
    LegacyFeatureBits {
        /// The features.
        features: u64,
    },
    /// A virtqueue the device does not have.
    #[error("the device has no virtqueue {index}{}", has.map(|n| format!(" (it has {n})")).unwrap_or_default())]
    NoVirtqueue {
        /// The virtqueue.
        index: u16,
        /// How many the device has, when it says.
        has: Option<u16>,
    },
    /// A ring size a legacy device does not take (a driver bug).
    #[error(
        "virtqueue {index} has {size} descriptors and a legacy device takes no other size, {laid_out} were laid out: \
         a driver bug"
    )]
    LegacyQueueSize {
        /// The virtqueue.
        index: u16,
        /// The device's size.
        size: u16,
        /// The ring's size.
        laid_out: u16,
    },
    /// A ring not laid out as a legacy device needs (2.7.2; a driver bug).
    #[error(
        "queue {index} is not laid out as a legacy device needs (desc {desc:#x} 4096-aligned, avail {avail:#x}, used \
         {used:#x}; got avail {got_avail:#x}, used {got_used:#x}): a driver bug"
    )]
    LegacyLayout {
        /// The virtqueue.
        index: u16,
        /// The descriptor table's IOVA.
        desc: u64,
        /// Where the available ring must be.
        avail: u64,
        /// Where the used ring must be.
        used: u64,
        /// Where it is.
        got_avail: u64,
        /// Where it is.
        got_used: u64,
    },
    /// A ring above what a 32-bit page frame number reaches (4.1.4.8).
    #[error(
        "queue {index} is at IOVA {desc:#x}, above the 16 TiB a legacy device can address (a 32-bit page number): \
         run with `--iova-mode pa`"
    )]
    LegacyAbove16TiB {
        /// The virtqueue.
        index: u16,
        /// The descriptor table's IOVA.
        desc: u64,
    },
    /// The device did not keep the page frame number written.
    #[error("virtqueue {index}: page frame {pfn:#x} written, the device reads back {back:#x}")]
    LegacyPfnReadBack {
        /// The virtqueue.
        index: u16,
        /// Written.
        pfn: u32,
        /// Read back.
        back: u32,
    },
    /// A ring size a modern device does not take (a driver bug).
    #[error(
        "virtqueue {index}: {size} descriptors laid out, the device takes a power of two up to {max}: a driver bug"
    )]
    ModernQueueSize {
        /// The virtqueue.
        index: u16,
        /// The ring's size.
        size: u16,
        /// The device's largest.
        max: u16,
    },
    /// A queue's notification register outside the notification structure (4.1.4.4).
    #[error(
        "virtqueue {index}: notification offset {notify_off} x multiplier {multiplier} is outside the {len:#x}-byte \
         notification structure (virtio 1.2, 4.1.4.4): the device is misconfigured"
    )]
    NotifyOutside {
        /// The virtqueue.
        index: u16,
        /// Its `queue_notify_off`.
        notify_off: u16,
        /// `notify_off_multiplier`.
        multiplier: u32,
        /// The structure's length.
        len: usize,
    },
    /// A queue's notification register not 2-byte aligned (4.1.4.4).
    #[error(
        "virtqueue {index}: notification offset {notify_off} x multiplier {multiplier} puts the notification register \
         at {addr:#x}, which is not 2-byte aligned (virtio 1.2, 4.1.4.4): the device is misconfigured"
    )]
    NotifyMisaligned {
        /// The virtqueue.
        index: u16,
        /// Its `queue_notify_off`.
        notify_off: u16,
        /// `notify_off_multiplier`.
        multiplier: u32,
        /// The register's offset in its BAR.
        addr: usize,
    },

    // virtio-user and its vhost-user back-end (QEMU docs/interop/vhost-user.rst).
    /// The back-end's socket cannot be reached.
    #[error(
        "cannot connect to the vhost-user socket {}: {source}: start the back-end first (e.g. `dpdk-testpmd --vdev \
         net_vhost0,iface={}`), or fix path=",
        path.display(),
        path.display()
    )]
    VhostConnect {
        /// The socket.
        path: PathBuf,
        /// What connect said.
        source: io::Error,
    },
    /// The first messages of a connection failed.
    #[error("vhost-user handshake on {}: {source}", path.display())]
    VhostHandshake {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: Box<VirtioError>,
    },
    /// A step with the back-end failed.
    #[error("{what}: {source}")]
    VhostStep {
        /// The step (`starting the vhost-user rings`).
        what: &'static str,
        /// What failed.
        source: Box<VirtioError>,
    },
    /// The memory table could not be updated for memory added while live.
    #[error("updating the vhost-user memory table: {source}")]
    VhostMemTable {
        /// What failed.
        source: Box<VirtioError>,
    },
    /// The reconnecting thread could not start.
    #[error("cannot start the vhost-user monitor thread: {source}")]
    MonitorThread {
        /// What the system said.
        source: io::Error,
    },
    /// A queue's kick or call eventfd could not be made.
    #[error("cannot make an eventfd for queue {queue}: {source}")]
    EventFd {
        /// The virtqueue.
        queue: u16,
        /// What the system said.
        source: io::Error,
    },
    /// The net device wrote features the transport did not offer (a driver bug).
    #[error("features {extra:#x} were not offered (offered {offered:#x})")]
    VhostNotOffered {
        /// The bits not offered.
        extra: u64,
        /// What was offered.
        offered: u64,
    },
    /// `VIRTIO_NET_CTRL_MAC_ADDR_SET` without a whole address.
    #[error("MAC_ADDR_SET with {len} bytes of data, 6 needed")]
    VhostMacData {
        /// The data's length.
        len: usize,
    },
    /// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET` outside the pairs `queues=` gave.
    #[error("VQ_PAIRS_SET {pairs}: the device has 1..={max} queue pairs")]
    VhostPairs {
        /// Asked for.
        pairs: u16,
        /// `queues=`.
        max: u16,
    },
    /// A control command virtio-user does not emulate (a driver bug).
    #[error("control command {class}/{command} is not one virtio-user emulates (RX, MAC, ANNOUNCE, MQ)")]
    VhostCtrlUnsupported {
        /// The command's class.
        class: u8,
        /// The command.
        command: u8,
    },
    /// The socket broke (closed, timed out, failed): the monitor reconnects.
    #[error(transparent)]
    VhostSocket(io::Error),
    /// No connection to the back-end now (the monitor is reconnecting).
    #[error("not connected")]
    VhostNotConnected,
    /// The back-end acked a message with a failure status.
    #[error("the back-end refused {request} (status {status})")]
    VhostRefused {
        /// The message.
        request: &'static str,
        /// Its status.
        status: u64,
    },
    /// A `REPLY_ACK` without its status.
    #[error("REPLY_ACK to {request} without a status")]
    VhostNoStatus {
        /// The message acked.
        request: &'static str,
    },
    /// A reply to another request than the one sent: the stream is out of step.
    #[error(
        "expected the reply to {expected}, got request {got} with flags {flags:#x}: out of step with the back-end"
    )]
    VhostOutOfStep {
        /// The request sent.
        expected: &'static str,
        /// The request in the reply.
        got: u32,
        /// The reply's flags.
        flags: u32,
    },
    /// A reply shorter than its request's answer.
    #[error("{request} reply too short")]
    VhostShortReply {
        /// The request.
        request: &'static str,
    },
    /// `queues=` above one without a multiqueue back-end.
    #[error(
        "queues={queues} needs a back-end with multiqueue (VIRTIO_NET_F_MQ and the MQ protocol feature); this one has \
         none: use queues=1, or start the back-end with queues={queues}"
    )]
    VhostNoMultiqueue {
        /// `queues=`.
        queues: u16,
    },
    /// `queues=` above what the back-end takes.
    #[error(
        "queues={queues}, but the back-end takes at most {max} queue pairs: start it with queues={queues} or more"
    )]
    VhostTooFewPairs {
        /// `queues=`.
        queues: u16,
        /// `GET_QUEUE_NUM`.
        max: u64,
    },
    /// The port started before any DMA memory was shared.
    #[error("there is no DMA memory to share with the back-end yet")]
    VhostNoMemory,
    /// More memory regions than one `SET_MEM_TABLE` carries.
    #[error(
        "the DMA memory is {regions} regions, a vhost-user back-end takes at most {max}: run with \
         --single-file-segments (one file per socket's memory) and keep the memory in few pieces (e.g. reserve it up \
         front with --socket-mem / -m)"
    )]
    VhostTooManyRegions {
        /// Regions.
        regions: usize,
        /// `VHOST_MEMORY_BASELINE_NREGIONS`.
        max: usize,
    },
    /// A reconnected back-end lacks features the started port uses.
    #[error("the back-end now offers features {offered:#x}, without {missing:#x} that the port uses")]
    VhostFeaturesLost {
        /// What it offers now.
        offered: u64,
        /// What the port needs and it lacks.
        missing: u64,
    },
}

impl VirtioError {
    /// Whether this failure of a vhost-user conversation leaves the socket unusable: it broke,
    /// or the back-end broke the protocol so the stream is out of step. Only a new connection
    /// helps; the others are refusals on a stream still in step.
    pub(crate) fn breaks_connection(&self) -> bool {
        matches!(
            self,
            VirtioError::VhostSocket(_)
                | VirtioError::VhostNotConnected
                | VirtioError::VhostNoStatus { .. }
                | VirtioError::VhostOutOfStep { .. }
                | VirtioError::VhostShortReply { .. }
        )
    }
}

/// What is wrong with a virtio structure's place ([`VirtioError::BadStructure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StructureProblem {
    /// Shorter than its type needs.
    #[error("is shorter than {min:#x} bytes")]
    TooShort {
        /// The least length.
        min: u32,
    },
    /// It runs past the end of its BAR.
    #[error("ends past its BAR")]
    PastBar,
    /// Its offset is not aligned as its section requires.
    #[error("is not {align}-byte aligned (virtio 1.2, {section})")]
    Misaligned {
        /// The alignment.
        align: u32,
        /// The section that requires it.
        section: &'static str,
    },
}
