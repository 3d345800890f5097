//! The conversation with a vhost-user back-end (QEMU docs/interop/vhost-user.rst): one
//! connection ([`Conn`]: a request, its reply or ack, the handshake) and what the back-end holds
//! of the port ([`State`]: its rings, its memory table), the way DPDK's virtio-user
//! (`drivers/net/virtio/virtio_user/virtio_user_dev.c`) drives one. The front-end
//! ([`super::frontend`]) decides when each step runs.
//!
//! What the back-end sees, in order:
//! - On connect: `SET_OWNER`, `GET_FEATURES`, and with `VHOST_USER_F_PROTOCOL_FEATURES`
//!   `GET_PROTOCOL_FEATURES` / `SET_PROTOCOL_FEATURES` (we take `REPLY_ACK` and `MQ`), then
//!   `GET_QUEUE_NUM` with `MQ`.
//! - At `DRIVER_OK` (port start): `SET_VRING_CALL` per queue, `SET_FEATURES`, `SET_MEM_TABLE`,
//!   per queue `SET_VRING_NUM`, `SET_VRING_BASE`, `SET_VRING_ADDR` (our virtual addresses),
//!   `SET_VRING_KICK`, then `SET_VRING_ENABLE` for the enabled pairs (with protocol features),
//!   then a kick on every queue's eventfd.
//! - At reset (port stop): `SET_VRING_ENABLE 0` on every queue, then `GET_VRING_BASE` on every
//!   queue, which stops the back-end's use of the rings.
//! - When memory is added or removed while live: `SET_VRING_ENABLE 0`, `SET_MEM_TABLE`,
//!   `SET_VRING_ENABLE 1`, synchronously, before the new memory can hold a buffer.
//!
//! With `REPLY_ACK`, every message but the `GET_*` ones asks for an ack, so a refusal is seen
//! where it happens.
//!
//! The back-end may hold our rings from the first `SET_VRING_ADDR` until `GET_VRING_BASE` has
//! answered for every queue ([`State::held`]). Whatever goes wrong while it may hold them (a
//! refused or unanswered message during start, stop, a memory update or `VQ_PAIRS_SET`) closes
//! the socket: a vhost-user back-end destroys the device (stops using the rings) when its
//! front-end goes away, and the monitor reconnects and replays. A reply that does not match its
//! request is a protocol violation, handled the same way (the stream cannot be trusted to be in
//! step): [`VirtioError::breaks_connection`].

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use burst_mem::shared::RegionSet;

use super::frontend::NOT_SENT;
use super::msg::{self, proto, req, MemRegion, Message};
use crate::error::VirtioError;
use crate::spec::features::MQ;
use crate::transport::{Notifier, QueueLayout};
use crate::vring::RingView;

/// Protocol features we use.
const PROTOCOL_WANTED: u64 = proto::REPLY_ACK | proto::MQ;

/// How long a reply may take before the back-end is taken for dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A queue given at `setup_queue`, kept to replay on reconnect.
pub(super) struct Queue {
    pub(super) layout: QueueLayout,
    pub(super) kick: Arc<OwnedFd>,
    pub(super) call: OwnedFd,
}

/// One connection to the back-end: the socket and what was negotiated on it.
pub(super) struct Conn {
    pub(super) sock: UnixStream,
    /// Protocol features negotiated on this connection.
    protocol: u64,
}

/// Everything that changes with the connection and the port, under one lock. Lock order: the
/// memory's locks, then this (the memory listener is called with the former held), then
/// the front-end's emulated MAC; nothing here calls into the memory.
pub(super) struct State {
    pub(super) conn: Option<Conn>,
    /// GET_FEATURES of the current (or last) connection.
    pub(super) backend_features: u64,
    /// What the net device wrote (emulated bits included).
    pub(super) driver_features: u64,
    pub(super) status: u8,
    /// Queues set up since the last reset, by index (the control queue is not here).
    pub(super) queues: BTreeMap<u16, Queue>,
    /// Queue pairs enabled (VQ_PAIRS_SET; 1 until then).
    pub(super) pairs: u16,
    /// Whether the back-end has the rings (start sequence done on this connection).
    pub(super) live: bool,
    /// Whether the back-end may be using our rings: from the first `SET_VRING_ADDR` of a start
    /// until a stop got every `GET_VRING_BASE` answered, or the socket is closed.
    pub(super) held: bool,
    pub(super) regions: RegionSet,
}

/// Connects to the back-end's socket.
pub(super) fn connect(path: &Path) -> io::Result<UnixStream> {
    let sock = UnixStream::connect(path)?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
    sock.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(sock)
}

impl Conn {
    pub(super) fn new(sock: UnixStream) -> Conn {
        Conn { sock, protocol: 0 }
    }

    /// Sends a message that gets no reply of its own; with REPLY_ACK, asks for an ack and
    /// checks it (every such message does, so no refusal goes unseen).
    fn send(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> Result<(), VirtioError> {
        let ack = self.protocol & proto::REPLY_ACK != 0;
        msg::send(&self.sock, request, if ack { msg::FLAG_NEED_REPLY } else { 0 }, payload, fds)
            .map_err(VirtioError::VhostSocket)?;
        if ack {
            let reply = self.reply(request)?;
            let request = req::name(request);
            match reply.u64() {
                Some(0) => {}
                Some(status) => return Err(VirtioError::VhostRefused { request, status }),
                None => return Err(VirtioError::VhostNoStatus { request }),
            }
        }
        Ok(())
    }

    /// Sends a request that has a reply, and returns the reply.
    fn get(&self, request: u32, payload: &[u8]) -> Result<Message, VirtioError> {
        msg::send(&self.sock, request, 0, payload, &[]).map_err(VirtioError::VhostSocket)?;
        self.reply(request)
    }

    fn reply(&self, request: u32) -> Result<Message, VirtioError> {
        let reply = msg::recv(&self.sock).map_err(VirtioError::VhostSocket)?;
        if reply.request != request || reply.flags & msg::FLAG_REPLY == 0 {
            return Err(VirtioError::VhostOutOfStep {
                expected: req::name(request),
                got: reply.request,
                flags: reply.flags,
            });
        }
        Ok(reply)
    }

    fn get_u64(&self, request: u32) -> Result<u64, VirtioError> {
        let reply = self.get(request, &[])?;
        reply.u64().ok_or(VirtioError::VhostShortReply { request: req::name(request) })
    }

    /// The first messages of a connection: owner, features, protocol features, queue count.
    /// Returns the back-end's features.
    pub(super) fn handshake(&mut self, queues: u16) -> Result<u64, VirtioError> {
        self.protocol = 0;
        self.send(req::SET_OWNER, &[], &[])?;
        let features = self.get_u64(req::GET_FEATURES)?;
        if features & msg::F_PROTOCOL_FEATURES != 0 {
            let offered = self.get_u64(req::GET_PROTOCOL_FEATURES)?;
            let take = offered & PROTOCOL_WANTED;
            self.send(req::SET_PROTOCOL_FEATURES, &msg::u64_payload(take), &[])?;
            self.protocol = take;
        }
        if queues > 1 {
            if features & MQ == 0 || self.protocol & proto::MQ == 0 {
                return Err(VirtioError::VhostNoMultiqueue { queues });
            }
            let max = self.get_u64(req::GET_QUEUE_NUM)?;
            if max < u64::from(queues) {
                return Err(VirtioError::VhostTooFewPairs { queues, max });
            }
        }
        Ok(features)
    }
}

impl State {
    fn conn(&self) -> Result<&Conn, VirtioError> {
        self.conn.as_ref().ok_or(VirtioError::VhostNotConnected)
    }

    fn send(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> Result<(), VirtioError> {
        self.conn()?.send(request, payload, fds)
    }

    /// Features for SET_FEATURES: what the net device took that the back-end offered, plus
    /// the protocol-features bit when the back-end has it.
    fn features_to_send(&self) -> u64 {
        (self.driver_features & !NOT_SENT & self.backend_features) | (self.backend_features & msg::F_PROTOCOL_FEATURES)
    }

    /// The memory table from the regions we know.
    pub(super) fn send_mem_table(&self) -> Result<(), VirtioError> {
        let regions = self.regions.regions();
        if regions.is_empty() {
            return Err(VirtioError::VhostNoMemory);
        }
        if regions.len() > msg::MAX_REGIONS {
            return Err(too_many_regions(regions.len()));
        }
        let table: Vec<MemRegion> = regions
            .iter()
            .map(|r| MemRegion {
                guest_phys_addr: r.va as u64,
                memory_size: r.len as u64,
                userspace_addr: r.va as u64,
                mmap_offset: r.offset,
            })
            .collect();
        let fds: Vec<RawFd> = regions.iter().map(|r| r.fd.as_raw_fd()).collect();
        self.send(req::SET_MEM_TABLE, &msg::mem_table(&table), &fds)
    }

    pub(super) fn enable_rings(&self, on: bool) -> Result<(), VirtioError> {
        if self.backend_features & msg::F_PROTOCOL_FEATURES == 0 {
            return Ok(());
        }
        for &index in self.queues.keys() {
            let enable = on && index / 2 < self.pairs;
            self.send(req::SET_VRING_ENABLE, &msg::vring_state(u32::from(index), u32::from(enable)), &[])?;
        }
        Ok(())
    }

    /// Gives the back-end every queue: DPDK's `virtio_user_start_device` order. `resume`: the
    /// rings were in use before (reconnect), so each starts at its used ring's index. On
    /// failure with `held` set, the caller must close the socket ([`State::disconnect`]).
    pub(super) fn start(&mut self, resume: bool) -> Result<(), VirtioError> {
        for (&index, q) in &self.queues {
            let payload = msg::u64_payload(u64::from(index));
            self.send(req::SET_VRING_CALL, &payload, &[q.call.as_raw_fd()])?;
        }
        self.send(req::SET_FEATURES, &msg::u64_payload(self.features_to_send()), &[])?;
        self.send_mem_table()?;
        for (&index, q) in &self.queues {
            let l = &q.layout;
            let i = u32::from(index);
            let conn = self.conn()?;
            conn.send(req::SET_VRING_NUM, &msg::vring_state(i, u32::from(l.size)), &[])?;
            let base = if resume { used_idx(l) } else { 0 };
            conn.send(req::SET_VRING_BASE, &msg::vring_state(i, u32::from(base)), &[])?;
            let addr = msg::vring_addr(i, l.desc_va as u64, l.used_va as u64, l.avail_va as u64);
            // From here on the back-end may use this ring (DPDK's starts once a ring has its
            // addresses and kick, even if a later message fails).
            self.held = true;
            let conn = self.conn()?;
            conn.send(req::SET_VRING_ADDR, &addr, &[])?;
            conn.send(req::SET_VRING_KICK, &msg::u64_payload(u64::from(index)), &[q.kick.as_raw_fd()])?;
        }
        self.enable_rings(true)?;
        self.live = true;
        // Announce what is already in the rings: RX buffers posted before a restart, TX chains
        // left when the ring filled. A back-end that waits for kicks would otherwise never start.
        for q in self.queues.values() {
            Notifier::EventFd(Arc::clone(&q.kick)).notify();
        }
        Ok(())
    }

    /// Takes the rings back from the back-end (DPDK's `virtio_user_stop_device`): disables
    /// every ring, then asks every ring's base, going on after a refusal so that every ring
    /// the back-end accepts is stopped. On error the caller must close the socket.
    pub(super) fn stop(&mut self) -> Result<(), VirtioError> {
        self.live = false;
        if !self.held {
            return Ok(());
        }
        let mut first: Option<VirtioError> = None;
        let mut note = |r: Result<(), VirtioError>| -> bool {
            match r {
                Ok(()) => true,
                Err(e) => {
                    let broken = e.breaks_connection();
                    first.get_or_insert(e);
                    // A broken socket answers nothing more: stop trying.
                    !broken
                }
            }
        };
        let indices: Vec<u16> = self.queues.keys().copied().collect();
        let mut go_on = true;
        if self.backend_features & msg::F_PROTOCOL_FEATURES != 0 {
            for &index in &indices {
                go_on = go_on && note(self.send(req::SET_VRING_ENABLE, &msg::vring_state(u32::from(index), 0), &[]));
            }
        }
        for &index in &indices {
            go_on = go_on
                && note(
                    self.conn()
                        .and_then(|c| c.get(req::GET_VRING_BASE, &msg::vring_state(u32::from(index), 0)))
                        .map(drop),
                );
        }
        match first {
            None => {
                self.held = false;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    /// Closes the socket: the back-end stops using the rings and forgets the device.
    pub(super) fn disconnect(&mut self, shared_connected: &AtomicBool) {
        self.conn = None;
        self.live = false;
        self.held = false;
        shared_connected.store(false, Ordering::Release);
    }
}

/// The used ring's `idx` (virtio 1.2, 2.7.8: `flags` u16, then `idx` u16), read from our ring
/// memory: where a new back-end continues.
fn used_idx(l: &QueueLayout) -> u16 {
    // SAFETY: the layout is of a queue the net device set up, laid out by `virtqueue`, and keeps
    // alive until it resets the transport (which forgets the queue).
    unsafe { RingView::from_layout(l) }.used_idx()
}

pub(super) fn too_many_regions(regions: usize) -> VirtioError {
    VirtioError::VhostTooManyRegions { regions, max: msg::MAX_REGIONS }
}

/// Whether the peer closed the socket (or it broke). Called with the state lock held, so no
/// reply is in flight: anything readable is an end of file or an unexpected message.
pub(super) fn peer_closed(sock: &UnixStream) -> bool {
    let mut pfd = libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: polls one descriptor we own, without waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n <= 0 {
        return false;
    }
    if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLRDHUP) != 0 {
        return true;
    }
    let mut byte = 0u8;
    // SAFETY: peeks at most one byte into a local.
    let r =
        unsafe { libc::recv(sock.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    r == 0
}
