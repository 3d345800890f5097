//! A software virtio-net device for unit tests: a [`Transport`] whose queues live in the test's
//! own (no-hugepage, IOVA-as-VA) memory, and a [`TestDevice`] handle through which a test plays
//! the device: consume TX chains, fill RX buffers, write any used entry it likes. The control
//! queue is served by a thread while the device is live, like a real device would.
//!
//! The device honours the features it offers: TX chains follow `VRING_DESC_F_NEXT` and indirect
//! tables (`RING_INDIRECT_DESC`), [`TestDevice::tx_frames`] carries out checksum and segmentation
//! requests (`wire`), RX headers carry offload fields only where the driver negotiated them, and
//! a frame takes several buffers only with `MRG_RXBUF`.
//!
//! Also built with the `testdev` feature (hidden, not an API) for `benches/burst.rs`, which uses
//! the cheap device operations ([`TestDevice::complete_tx`], [`TestDevice::fill_rx`]) so that
//! the driver's cost dominates what it measures.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use burst_ethdev::{DeviceName, EthError, MacAddr, Port};

use crate::error::VirtioError;
use burst_mem::{Memory, PacketPool};

use crate::dev::{DevContext, VirtioNet};
pub use crate::offload::NetHdr;
use crate::spec::net_hdr::{VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_HDR_GSO_TCPV6};
use crate::spec::ring::{DESC_SIZE, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use crate::spec::{config, features as f, net_hdr, status};
use crate::transport::{CtrlCommand, Notifier, QueueLayout, Transport, TransportKind};
use crate::vring::RingView;

mod wire;

/// A chain the driver made available on a TX queue, as the device read it.
#[derive(Clone, Debug)]
pub struct TxChain {
    /// The bytes of its descriptors in order, the net header first.
    pub bytes: Vec<u8>,
    /// Ring descriptors it took.
    pub descs: usize,
    /// Entries of its indirect table; 0 for a chain in the ring.
    pub indirect: usize,
}

/// Descriptor `i` of the table at `table` (2.7.5): addr, len, flags, next.
///
/// # Safety
/// `table` is a descriptor table of more than `i` entries in test memory (IOVA as VA).
unsafe fn table_desc(table: u64, i: usize) -> (u64, u32, u16, u16) {
    // SAFETY: the caller's promise; 16 bytes of plain memory.
    let b = unsafe { (table as *const u8).add(i * DESC_SIZE).cast::<[u8; 16]>().read_unaligned() };
    let u = |r: std::ops::Range<usize>| b[r].iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x));
    (u(0..8), u(8..12) as u32, u(12..14) as u16, u(14..16) as u16)
}

/// The bytes at `addr` (`len` of them), which the driver made available.
fn bytes_at(addr: u64, len: u32) -> &'static [u8] {
    // SAFETY: test memory is IOVA as VA, and the driver under test put `len` bytes at `addr`
    // (what the tests check); the slice is copied before the chain is used.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// Reads the TX chain at `head` as a device does (2.7.5, 2.7.5.3), asserting what a driver
/// must do: device-readable descriptors, a chain no longer than the queue, indirect tables only
/// with `RING_INDIRECT_DESC`, never with NEXT nor nested.
fn read_chain(view: &RingView, size: u16, features: u64, head: u16) -> TxChain {
    let mut c = TxChain { bytes: Vec::new(), descs: 1, indirect: 0 };
    let (addr, len, flags, mut next) = view.desc(head);
    if flags & VRING_DESC_F_INDIRECT != 0 {
        assert_ne!(features & f::RING_INDIRECT_DESC, 0, "an indirect descriptor without RING_INDIRECT_DESC");
        assert_eq!(flags & (VRING_DESC_F_NEXT | VRING_DESC_F_WRITE), 0, "2.7.5.3.1: INDIRECT alone");
        let n = len as usize / DESC_SIZE;
        assert!(len as usize % DESC_SIZE == 0 && n > 0, "an indirect table of {len} bytes");
        assert!(n <= usize::from(size), "2.7.5.3.1: an indirect table of {n} entries in a queue of {size}");
        c.indirect = n;
        let mut i = 0usize;
        for seen in 1.. {
            // SAFETY: `i < n` entries of the table the driver gave.
            let (a, l, fl, nx) = unsafe { table_desc(addr, i) };
            assert_eq!(fl & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT), 0, "entry {i} of an indirect table");
            c.bytes.extend_from_slice(bytes_at(a, l));
            if fl & VRING_DESC_F_NEXT == 0 {
                break;
            }
            assert!(usize::from(nx) < n && seen < n, "the table's chain leaves it or loops");
            i = usize::from(nx);
        }
        return c;
    }
    let (mut addr, mut len, mut flags) = (addr, len, flags);
    loop {
        assert_eq!(flags & (VRING_DESC_F_WRITE | VRING_DESC_F_INDIRECT), 0, "TX descriptors are device-readable");
        c.bytes.extend_from_slice(bytes_at(addr, len));
        if flags & VRING_DESC_F_NEXT == 0 {
            return c;
        }
        c.descs += 1;
        assert!(c.descs <= usize::from(size), "a chain longer than the queue, or a loop");
        (addr, len, flags, next) = {
            let (a, l, fl, nx) = view.desc(next);
            (a, l, fl, nx)
        };
    }
}

/// One queue as the device sees it.
pub struct DevQueue {
    pub layout: QueueLayout,
    pub(crate) view: RingView,
    pub last_avail: u16,
    pub used_idx: u16,
    pub kick: Arc<OwnedFd>,
}

/// The device's state, shared by the transport and the test.
pub struct Shared {
    pub kind: TransportKind,
    pub features: u64,
    pub driver_features: u64,
    pub status: u8,
    /// FEATURES_OK is refused when the driver asks for any of these.
    pub refuse: u64,
    pub config: [u8; 16],
    pub queue_max: u16,
    pub settable: bool,
    pub uses_va: bool,
    pub queues: BTreeMap<u16, DevQueue>,
    pub resets: usize,
    pub generation: u64,
    /// Control commands seen: on the queue, or through `Transport::control`.
    pub ctrl_log: Vec<(u8, u8, Vec<u8>)>,
    pub ctrl_ack: u8,
    /// `Transport::control` answers (as virtio-user does).
    pub emulate_ctrl: bool,
    /// Set `VRING_USED_F_NO_NOTIFY` on every queue (a polling backend).
    pub no_notify: bool,
    pub connected: bool,
    /// Leave the control queue unanswered (a device that hangs).
    pub ctrl_silent: bool,
    /// Never finish a reset (the device keeps its queues).
    pub reset_stuck: bool,
}

impl Shared {
    fn max_pairs(&self) -> u16 {
        if self.features & f::MQ != 0 {
            u16::from_le_bytes([self.config[config::MAX_VIRTQUEUE_PAIRS], self.config[config::MAX_VIRTQUEUE_PAIRS + 1]])
                .max(1)
        } else {
            1
        }
    }

    fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        self.queues.clear();
        self.resets += 1;
        self.generation += 1;
    }
}

/// The test's handle on the device.
#[derive(Clone)]
pub struct TestDevice(pub Arc<Mutex<Shared>>);

/// The transport the port gets.
pub(crate) struct TestTransport(Arc<Mutex<Shared>>);

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A modern device with every feature the driver wants, MAC 52:54:00:12:34:56, link up, 2 pairs,
/// rings of 64.
pub fn device() -> TestDevice {
    let mut config = [0u8; 16];
    config[..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    config[config::STATUS..config::STATUS + 2].copy_from_slice(&config::VIRTIO_NET_S_LINK_UP.to_le_bytes());
    config[config::MAX_VIRTQUEUE_PAIRS..config::MAX_VIRTQUEUE_PAIRS + 2].copy_from_slice(&2u16.to_le_bytes());
    config[config::MTU..config::MTU + 2].copy_from_slice(&9000u16.to_le_bytes());
    TestDevice(Arc::new(Mutex::new(Shared {
        kind: TransportKind::Modern,
        // IN_ORDER only where a test asks for it: the default exercises the general path.
        features: (f::WANTED & !f::IN_ORDER) | f::OFFLOADS | f::RING_EVENT_IDX,
        driver_features: 0,
        status: 0,
        refuse: 0,
        config,
        queue_max: 64,
        settable: false,
        uses_va: false,
        queues: BTreeMap::new(),
        resets: 0,
        generation: 0,
        ctrl_log: Vec::new(),
        ctrl_ack: 0,
        emulate_ctrl: false,
        ctrl_silent: false,
        reset_stuck: false,
        no_notify: false,
        connected: true,
    })))
}

/// Memory (4 KiB pages, IOVA as VA: the device can follow addresses), names and pools, as
/// every driver's tests take them.
pub use burst_mem::testing::{memory, packet_pool as pool, unique_name as name};

impl TestDevice {
    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, Shared> {
        lock(&self.0)
    }

    /// The port on this device, as an application holds it.
    pub fn probe(&self, mem: &Memory, mac: Option<MacAddr>) -> Result<Port, EthError> {
        Ok(Port::new(3, Box::new(self.probe_dev(mem, mac)?)))
    }

    /// The driver's device on this device, for tests of its internals.
    pub fn probe_dev(&self, mem: &Memory, mac: Option<MacAddr>) -> Result<VirtioNet, EthError> {
        let ctx = DevContext {
            driver: crate::DRIVER_NAME,
            device: DeviceName::Vdev(name("testdev")),
            memory: mem.clone(),
            port: 3,
            socket: None,
            mac,
            keep: None,
        };
        VirtioNet::new(Box::new(TestTransport(Arc::clone(&self.0))), ctx)
    }

    fn with_queue<R>(&self, index: u16, f: impl FnOnce(&mut DevQueue) -> R) -> R {
        let mut s = self.state();
        let q = s.queues.get_mut(&index).unwrap_or_else(|| panic!("queue {index} is not set up"));
        f(q)
    }

    /// Takes every chain the driver made available on TX queue `index` and returns each one's
    /// bytes (header included) and ring descriptor count; marks them used.
    pub fn tx_pop(&self, index: u16) -> Vec<(Vec<u8>, usize)> {
        self.tx_chains(index).into_iter().map(|c| (c.bytes, c.descs)).collect()
    }

    /// Takes every chain the driver made available on TX queue `index`, as the device read
    /// them; marks them used.
    pub fn tx_chains(&self, index: u16) -> Vec<TxChain> {
        let features = self.state().driver_features;
        self.with_queue(index, |q| {
            let mut out = Vec::new();
            let end = q.view.avail_idx();
            while q.last_avail != end {
                let head = q.view.avail_ring(q.last_avail);
                q.last_avail = q.last_avail.wrapping_add(1);
                out.push(read_chain(&q.view, q.layout.size, features, head));
                q.view.set_used_elem(q.used_idx, u32::from(head), 0);
                q.used_idx = q.used_idx.wrapping_add(1);
            }
            q.view.set_used_idx(q.used_idx);
            out
        })
    }

    /// Takes every chain the driver made available on TX queue `index` and returns the frames
    /// they became on the wire: headers stripped, checksums finished, TCP segmented, as the
    /// driver's headers asked (`wire`).
    pub fn tx_frames(&self, index: u16) -> Vec<Vec<u8>> {
        let features = self.state().driver_features;
        let hdr_len = crate::init::hdr_len(features);
        self.tx_chains(index).iter().flat_map(|c| wire::transmit(features, hdr_len, &c.bytes)).collect()
    }

    /// Buffers available on queue `index` not taken yet.
    pub fn avail_pending(&self, index: u16) -> u16 {
        self.with_queue(index, |q| q.view.avail_idx().wrapping_sub(q.last_avail))
    }

    /// Delivers `frame` on RX queue `index` behind a header of `hdr_len` bytes (num_buffers in
    /// it when `hdr_len` is 12), over as many buffers as it needs; false if there are not
    /// enough.
    pub fn rx_push(&self, index: u16, frame: &[u8], hdr_len: usize) -> bool {
        self.rx_push_hdr(index, frame, hdr_len, NetHdr::ZERO)
    }

    /// As [`TestDevice::rx_push`], the header carrying `hdr`'s offload fields, which the device
    /// sets only as the driver negotiated (5.1.6.4: `flags` with `GUEST_CSUM`, a TCPv4 or TCPv6
    /// `gso_type` with `GUEST_TSO4` or `GUEST_TSO6`). Without `MRG_RXBUF` a frame takes one
    /// buffer or is not delivered (false).
    pub fn rx_push_hdr(&self, index: u16, frame: &[u8], hdr_len: usize, hdr: NetHdr) -> bool {
        let features = self.state().driver_features;
        if hdr.flags != 0 {
            assert_ne!(features & f::GUEST_CSUM, 0, "a device sends checksum flags only with GUEST_CSUM");
        }
        let need = match hdr.gso_type & !VIRTIO_NET_HDR_GSO_ECN {
            VIRTIO_NET_HDR_GSO_NONE => 0,
            VIRTIO_NET_HDR_GSO_TCPV6 => f::GUEST_TSO6,
            _ => f::GUEST_TSO4,
        };
        assert_eq!(features & need, need, "a device sends gso_type {:#x} only with GUEST_TSO4/6", hdr.gso_type);
        self.with_queue(index, |q| {
            let avail = q.view.avail_idx().wrapping_sub(q.last_avail);
            let mut data = hdr.to_bytes()[..hdr_len].to_vec();
            data.extend_from_slice(frame);
            // How many buffers it takes.
            let mut need = 0u16;
            let mut left = data.len();
            while left > 0 {
                if need == avail {
                    return false;
                }
                let (_, len, _, _) = q.view.desc(q.view.avail_ring(q.last_avail.wrapping_add(need)));
                left = left.saturating_sub(len as usize);
                need += 1;
            }
            if need > 1 && features & f::MRG_RXBUF == 0 {
                // 5.1.6.3.1: without mergeable buffers a frame is one buffer.
                return false;
            }
            if hdr_len == 12 {
                data[10..12].copy_from_slice(&need.to_le_bytes());
            }
            let mut off = 0;
            for _ in 0..need {
                let id = q.view.avail_ring(q.last_avail);
                q.last_avail = q.last_avail.wrapping_add(1);
                let (addr, len, flags, _) = q.view.desc(id);
                assert_ne!(flags & VRING_DESC_F_WRITE, 0, "RX descriptors are device-writable");
                let k = (data.len() - off).min(len as usize);
                // SAFETY: test memory is IOVA as VA; the driver gave this `len`-byte buffer.
                unsafe { std::ptr::copy_nonoverlapping(data[off..].as_ptr(), addr as *mut u8, k) };
                off += k;
                q.view.set_used_elem(q.used_idx, u32::from(id), k as u32);
                q.used_idx = q.used_idx.wrapping_add(1);
            }
            q.view.set_used_idx(q.used_idx);
            true
        })
    }

    /// As [`TestDevice::rx_push`], but reports the buffers the frame takes as one in-order batch
    /// (virtio 1.2, 2.7.9): one used entry, at the batch's first slot, with the id and length of
    /// its last buffer, and `used.idx` moved by the batch's size. The other slots keep what an
    /// earlier lap left.
    pub fn rx_push_batched(&self, index: u16, frame: &[u8], hdr_len: usize) -> bool {
        self.with_queue(index, |q| {
            let avail = q.view.avail_idx().wrapping_sub(q.last_avail);
            let mut data = vec![0u8; hdr_len];
            data.extend_from_slice(frame);
            let mut ids = Vec::new();
            let mut left = data.len();
            while left > 0 {
                if ids.len() == usize::from(avail) {
                    return false;
                }
                let id = q.view.avail_ring(q.last_avail.wrapping_add(ids.len() as u16));
                left = left.saturating_sub(q.view.desc(id).1 as usize);
                ids.push(id);
            }
            if hdr_len == 12 {
                data[10..12].copy_from_slice(&(ids.len() as u16).to_le_bytes());
            }
            let (mut off, mut last_len) = (0, 0);
            for &id in &ids {
                let (addr, len, _, _) = q.view.desc(id);
                let k = (data.len() - off).min(len as usize);
                // SAFETY: test memory is IOVA as VA; the driver gave this `len`-byte buffer.
                unsafe { std::ptr::copy_nonoverlapping(data[off..].as_ptr(), addr as *mut u8, k) };
                off += k;
                last_len = k as u32;
            }
            let last = *ids.last().expect("at least one buffer");
            q.view.set_used_elem(q.used_idx, u32::from(last), last_len);
            q.last_avail = q.last_avail.wrapping_add(ids.len() as u16);
            q.used_idx = q.used_idx.wrapping_add(ids.len() as u16);
            q.view.set_used_idx(q.used_idx);
            true
        })
    }

    /// Takes the next available buffer id on queue `index` without using it.
    pub fn take_avail(&self, index: u16) -> Option<u16> {
        self.with_queue(index, |q| {
            if q.view.avail_idx() == q.last_avail {
                return None;
            }
            let id = q.view.avail_ring(q.last_avail);
            q.last_avail = q.last_avail.wrapping_add(1);
            Some(id)
        })
    }

    /// Writes any used entries the test likes on queue `index` and publishes them.
    pub fn used_raw(&self, index: u16, entries: &[(u32, u32)]) {
        self.with_queue(index, |q| {
            for &(id, len) in entries {
                q.view.set_used_elem(q.used_idx, id, len);
                q.used_idx = q.used_idx.wrapping_add(1);
            }
            q.view.set_used_idx(q.used_idx);
        })
    }

    /// Moves `used.idx` by `k` without writing entries.
    pub fn used_jump(&self, index: u16, k: u16) {
        self.with_queue(index, |q| {
            q.used_idx = q.used_idx.wrapping_add(k);
            q.view.set_used_idx(q.used_idx);
        })
    }

    /// Writes into the buffer of descriptor `id` of queue `index` at `off`.
    pub fn write_buffer(&self, index: u16, id: u16, off: usize, bytes: &[u8]) {
        self.with_queue(index, |q| {
            let (addr, len, _, _) = q.view.desc(id);
            assert!(off + bytes.len() <= len as usize);
            // SAFETY: test memory is IOVA as VA; inside the buffer the driver gave.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), (addr as *mut u8).add(off), bytes.len()) };
        })
    }

    /// Notifications received on queue `index` since the last call.
    pub fn kicks(&self, index: u16) -> u64 {
        self.with_queue(index, |q| {
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into a live local from an eventfd we own (non-blocking).
            let n = unsafe { libc::read(q.kick.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
            if n == 8 {
                v
            } else {
                0
            }
        })
    }

    /// Whether queue `index` is set up.
    pub fn has_queue(&self, index: u16) -> bool {
        self.state().queues.contains_key(&index)
    }

    /// `avail.flags` of queue `index`.
    pub fn avail_flags(&self, index: u16) -> u16 {
        self.with_queue(index, |q| q.view.avail_flags())
    }

    // The cheap device: what `benches/burst.rs` plays, so the driver's cost dominates.

    /// Completes every chain available on TX queue `index`: each head goes to the used ring
    /// with length 0, in order, and `used.idx` is published once. No descriptor or data is read
    /// (a device that has sent the frames). Returns how many.
    pub fn complete_tx(&self, index: u16) -> u16 {
        self.with_queue(index, |q| {
            let end = q.view.avail_idx();
            let n = end.wrapping_sub(q.last_avail);
            for _ in 0..n {
                let head = q.view.avail_ring(q.last_avail);
                q.last_avail = q.last_avail.wrapping_add(1);
                q.view.set_used_elem(q.used_idx, u32::from(head), 0);
                q.used_idx = q.used_idx.wrapping_add(1);
            }
            q.view.set_used_idx(q.used_idx);
            n
        })
    }

    /// Delivers a frame of `len` bytes into every buffer available on RX queue `index`: writes
    /// only the net header in place (zeroes, `num_buffers` 1 when the header has it), leaves the
    /// data as it is, uses each buffer with header + `len` bytes and publishes `used.idx` once.
    /// Allocates nothing. Returns how many.
    pub fn fill_rx(&self, index: u16, len: u32) -> u16 {
        let mut s = self.state();
        let hdr_len = crate::init::hdr_len(s.driver_features);
        let q = s.queues.get_mut(&index).unwrap_or_else(|| panic!("queue {index} is not set up"));
        let end = q.view.avail_idx();
        let n = end.wrapping_sub(q.last_avail);
        for _ in 0..n {
            let id = q.view.avail_ring(q.last_avail);
            q.last_avail = q.last_avail.wrapping_add(1);
            let (addr, room, flags, _) = q.view.desc(id);
            assert!(
                flags & VRING_DESC_F_WRITE != 0 && room as usize >= hdr_len,
                "an RX buffer with room for the header"
            );
            let p = addr as *mut u8;
            // SAFETY: test memory is IOVA as VA; `addr` is a device-writable buffer of `room`
            // bytes the driver posted, and the header (10 or 12 bytes) fits in it (checked).
            unsafe {
                p.cast::<u64>().write_unaligned(0);
                if hdr_len == net_hdr::LEN_MRG {
                    // csum_offset 0, num_buffers 1 (little-endian).
                    p.add(8).cast::<u32>().write_unaligned((1u32 << 16).to_le());
                } else {
                    p.add(8).cast::<u16>().write_unaligned(0);
                }
            }
            q.view.set_used_elem(q.used_idx, u32::from(id), hdr_len as u32 + len);
            q.used_idx = q.used_idx.wrapping_add(1);
        }
        q.view.set_used_idx(q.used_idx);
        n
    }

    /// Plays the driver for a benchmark of the device side alone: moves `avail.idx` of queue
    /// `index` on by `k`, offering again the entries of a lap earlier (for RX, the buffers still
    /// in flight). The driver must not use the queue again, only stop: its used ring no longer
    /// matches what it made available.
    pub fn replay_avail(&self, index: u16, k: u16) {
        self.with_queue(index, |q| {
            let idx = q.view.avail_idx().wrapping_add(k);
            q.view.publish_avail(idx);
        })
    }
}

/// Serves the control queue: answers each chain with `ctrl_ack`, logging the command.
fn serve_ctrl(s: &mut Shared, index: u16) {
    if s.ctrl_silent {
        return;
    }
    let ack = s.ctrl_ack;
    let Some(q) = s.queues.get_mut(&index) else { return };
    let end = q.view.avail_idx();
    let mut log = Vec::new();
    while q.last_avail != end {
        let head = q.view.avail_ring(q.last_avail);
        q.last_avail = q.last_avail.wrapping_add(1);
        let (mut bytes, mut i, mut ack_at) = (Vec::new(), head, None);
        for _ in 0..4 {
            let (addr, len, flags, next) = q.view.desc(i);
            if flags & VRING_DESC_F_WRITE != 0 {
                ack_at = Some(addr as *mut u8);
            } else {
                // SAFETY: test memory is IOVA as VA; the driver's command buffer.
                bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) });
            }
            if flags & VRING_DESC_F_NEXT == 0 {
                break;
            }
            i = next;
        }
        if let Some(p) = ack_at {
            // SAFETY: the driver's one-byte ack buffer.
            unsafe { p.write_volatile(ack) };
        }
        if bytes.len() >= 2 {
            log.push((bytes[0], bytes[1], bytes[2..].to_vec()));
        }
        q.view.set_used_elem(q.used_idx, u32::from(head), 1);
        q.used_idx = q.used_idx.wrapping_add(1);
        q.view.set_used_idx(q.used_idx);
    }
    s.ctrl_log.extend(log);
}

impl Transport for TestTransport {
    fn kind(&self) -> TransportKind {
        lock(&self.0).kind
    }

    fn device_features(&self) -> u64 {
        let s = lock(&self.0);
        if s.kind == TransportKind::Legacy {
            s.features & 0xffff_ffff
        } else {
            s.features
        }
    }

    fn set_driver_features(&self, features: u64) -> Result<(), VirtioError> {
        let mut s = lock(&self.0);
        assert_eq!(features & !s.features, 0, "the driver asked for features the device does not offer");
        s.driver_features = features;
        Ok(())
    }

    fn status(&self) -> u8 {
        lock(&self.0).status
    }

    fn set_status(&self, v: u8) -> Result<(), VirtioError> {
        let mut s = lock(&self.0);
        if v == 0 {
            s.reset();
            return Ok(());
        }
        let mut v = v;
        if v & status::FEATURES_OK != 0 && s.driver_features & s.refuse != 0 {
            v &= !status::FEATURES_OK;
        }
        if v & status::DRIVER_OK != 0 {
            assert!(
                s.driver_features & f::VERSION_1 == 0 || v & status::FEATURES_OK != 0,
                "DRIVER_OK without FEATURES_OK"
            );
        }
        s.status = v;
        Ok(())
    }

    fn reset(&self) -> Result<(), VirtioError> {
        let mut s = lock(&self.0);
        if s.reset_stuck {
            return Err(VirtioError::ResetTimeout { waited: Duration::from_secs(1) });
        }
        s.reset();
        Ok(())
    }

    fn read_config(&self, offset: usize, buf: &mut [u8]) {
        let s = lock(&self.0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = s.config.get(offset + i).copied().unwrap_or(0);
        }
    }

    fn write_config(&self, offset: usize, data: &[u8]) {
        let mut s = lock(&self.0);
        if s.kind == TransportKind::Legacy {
            for (i, b) in data.iter().enumerate() {
                if let Some(c) = s.config.get_mut(offset + i) {
                    *c = *b;
                }
            }
        }
    }

    fn queue_max_size(&self, index: u16) -> u16 {
        let s = lock(&self.0);
        let ctrl = if s.features & f::CTRL_VQ != 0 { 1 } else { 0 };
        if index < 2 * s.max_pairs() + ctrl {
            s.queue_max
        } else {
            0
        }
    }

    fn queue_size_settable(&self) -> bool {
        lock(&self.0).settable
    }

    fn setup_queue(&self, layout: &QueueLayout) -> Result<Notifier, VirtioError> {
        let mut s = lock(&self.0);
        assert_eq!(s.status & status::DRIVER_OK, 0, "queues are set up before DRIVER_OK");
        assert!(layout.size.is_power_of_two() && layout.size <= s.queue_max);
        assert_eq!(layout.desc_iova as usize, layout.desc_va, "IOVA as VA");
        assert_eq!(layout.desc_va % 4096, 0);
        assert_eq!(layout.used_va % 4096, 0);
        // SAFETY: eventfd(2) with valid flags; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor nobody else owns.
        let kick = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: the layout describes a live ring (the driver keeps it until reset, which
        // drops this queue under the lock before the memory can go).
        let view = unsafe { RingView::from_layout(layout) };
        if s.no_notify {
            view.set_used_flags(crate::spec::ring::VRING_USED_F_NO_NOTIFY);
        }
        let q = DevQueue { layout: *layout, view, last_avail: 0, used_idx: 0, kick: Arc::clone(&kick) };
        s.queues.insert(layout.index, q);
        if s.features & f::CTRL_VQ != 0 && layout.index == 2 * s.max_pairs() {
            let weak: Weak<Mutex<Shared>> = Arc::downgrade(&self.0);
            let (generation, index) = (s.generation, layout.index);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_micros(200));
                let Some(shared) = weak.upgrade() else { return };
                let mut s = lock(&shared);
                if s.generation != generation {
                    return;
                }
                serve_ctrl(&mut s, index);
            });
        }
        Ok(Notifier::EventFd(kick))
    }

    fn uses_va(&self) -> bool {
        lock(&self.0).uses_va
    }

    fn control(&self, cmd: CtrlCommand<'_>) -> Option<Result<(), VirtioError>> {
        let mut s = lock(&self.0);
        if !s.emulate_ctrl {
            return None;
        }
        s.ctrl_log.push((cmd.class, cmd.command, cmd.data.to_vec()));
        Some(Ok(()))
    }

    fn connected(&self) -> bool {
        lock(&self.0).connected
    }
}

/// A probed, configured and started port on `dev` with `pairs` queue pairs, RX filled from
/// `pool`.
pub fn started(dev: &TestDevice, mem: &Memory, pairs: u16, pool: &PacketPool) -> Port {
    started_with(dev, mem, &burst_ethdev::PortConf::queues(pairs, pairs), pool)
}

/// As [`started`], configured with `conf` (its queue counts, offloads and MTU).
pub fn started_with(dev: &TestDevice, mem: &Memory, conf: &burst_ethdev::PortConf, pool: &PacketPool) -> Port {
    let mut port = dev.probe(mem, None).unwrap();
    port.configure(conf).unwrap();
    for q in 0..conf.nb_rx_queues {
        port.rx_queue_setup(q, 0, pool).unwrap();
    }
    for q in 0..conf.nb_tx_queues {
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
    port
}

/// `bytes` as a chained packet from `pool`, `seg` bytes a segment (the last one shorter).
pub fn chain_of(pool: &PacketPool, bytes: &[u8], seg: usize) -> burst_mem::PacketBuf {
    let mut b = burst_mem::ChainBuilder::new();
    for piece in bytes.chunks(seg.max(1)) {
        let mut s = pool.alloc().expect("a free buffer");
        assert!(s.set_data(piece), "a segment fits its buffer");
        b.push(s).map_err(|(_, e)| e).expect("a chain of one-segment packets");
    }
    b.take().expect("at least one segment")
}

/// A packet's bytes, across its segments.
pub fn bytes_of(pkt: &burst_mem::PacketBuf) -> Vec<u8> {
    pkt.segments().flat_map(|s| s.data().to_vec()).collect()
}

/// `n` frames of `len` bytes from `pool`, byte `k` of frame `i` being `i + k`.
pub fn frames(pool: &PacketPool, n: usize, len: usize) -> Vec<burst_mem::PacketBuf> {
    (0..n)
        .map(|i| {
            let mut b = pool.alloc().unwrap();
            let bytes: Vec<u8> = (0..len).map(|k| (i + k) as u8).collect();
            assert!(b.set_data(&bytes));
            b
        })
        .collect()
}
