//! The vhost-user front-end: a [`Transport`] whose "device" is a back-end process reached over a
//! unix socket (QEMU docs/interop/vhost-user.rst), the way DPDK's virtio-user
//! (`drivers/net/virtio/virtio_user/`) drives one.
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
//! answered for every queue. Whatever goes wrong while it may hold them (a refused or
//! unanswered message during start, stop, a memory update or `VQ_PAIRS_SET`) closes the socket:
//! a vhost-user back-end destroys the device (stops using the rings) when its front-end goes
//! away, and the monitor reconnects and replays. A reply that does not match its request is a
//! protocol violation, handled the same way (the stream cannot be trusted to be in step).
//!
//! The device config space, the status byte and the control queue are emulated here, as DPDK
//! does: MAC (`mac=` or random), link up while connected, `max_virtqueue_pairs` = `queues=`.
//! The back-end never sees `MAC`, `STATUS`, `CTRL_*` features nor a control queue. The config
//! and the link are read without the state lock, so they never wait on the socket.
//!
//! Reconnection: a monitor thread polls the socket every 100 ms. When the back-end goes away the
//! link goes down and the thread retries connecting every 100 ms; once back, the handshake runs
//! on the new connection without the state lock, then, if the port was started, the whole start
//! sequence is replayed (under the lock) with each ring's base set to the used ring's index
//! (read from our ring memory) and the same kick and call eventfds, and every queue is kicked.
//! The data path never notices (kicks go to an eventfd nobody reads meanwhile).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use burst_ethdev::EthError;
use burst_mem::shared::{MemoryListener, RegionSet, SharedSegment};

use crate::error::VirtioError;
use crate::transport::{CtrlCommand, Notifier, QueueLayout, Transport, TransportKind};
use crate::user::msg::{self, proto, req, MemRegion, Message};
use crate::vring::RingView;

/// Virtio feature bits this transport deals with (virtio 1.2, 5.1.3 and 6).
pub(crate) mod bits {
    pub const MAC: u64 = 1 << 5;
    pub const MRG_RXBUF: u64 = 1 << 15;
    pub const STATUS: u64 = 1 << 16;
    pub const CTRL_VQ: u64 = 1 << 17;
    pub const CTRL_RX: u64 = 1 << 18;
    pub const MQ: u64 = 1 << 22;
    pub const CTRL_MAC_ADDR: u64 = 1 << 23;
    pub const ANY_LAYOUT: u64 = 1 << 27;
    pub const VERSION_1: u64 = 1 << 32;
    pub const IN_ORDER: u64 = 1 << 35;
}

/// Features taken from the back-end when it offers them. Not `ACCESS_PLATFORM` (it would make
/// DPDK's back-end translate through an IOTLB we do not feed), nor offloads we do not use.
/// `IN_ORDER` is passed on: the net device negotiates it if it wants it.
const FROM_BACKEND: u64 = bits::VERSION_1 | bits::MRG_RXBUF | bits::ANY_LAYOUT | bits::MQ | bits::IN_ORDER;
/// Features this transport emulates, whatever the back-end offers.
const EMULATED: u64 = bits::MAC | bits::STATUS | bits::CTRL_VQ | bits::CTRL_RX | bits::CTRL_MAC_ADDR | bits::MQ;
/// Emulated features never sent to the back-end (`MQ` is: DPDK's back-end drops all but the
/// first queue pair without it).
const NOT_SENT: u64 = bits::MAC | bits::STATUS | bits::CTRL_VQ | bits::CTRL_RX | bits::CTRL_MAC_ADDR;
/// Protocol features we use.
const PROTOCOL_WANTED: u64 = proto::REPLY_ACK | proto::MQ;

/// Device status bits (virtio 1.2, 2.1).
const DRIVER_OK: u8 = 4;

/// How long a reply may take before the back-end is taken for dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the monitor looks at the socket, and retries connecting.
const MONITOR_PERIOD: Duration = Duration::from_millis(100);

/// `struct virtio_net_config` offsets (virtio 1.2, 5.1.4).
const CFG_STATUS: usize = 6;
const CFG_MAX_PAIRS: usize = 8;
const CFG_MTU: usize = 10;
const CFG_LEN: usize = 12;
const LINK_UP: u16 = 1;

/// Control-queue classes and commands (virtio 1.2, 5.1.6.5).
const CTRL_RX_CLASS: u8 = 0;
const CTRL_MAC_CLASS: u8 = 1;
const CTRL_MAC_ADDR_SET: u8 = 1;
const CTRL_ANNOUNCE_CLASS: u8 = 3;
const CTRL_MQ_CLASS: u8 = 4;
const CTRL_MQ_VQ_PAIRS_SET: u8 = 0;

/// What `--vdev virtio_user0,...` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// The back-end's socket.
    pub path: PathBuf,
    /// Queue pairs (the emulated `max_virtqueue_pairs`).
    pub queues: u16,
    /// Ring size of every queue.
    pub queue_size: u16,
    /// The emulated config's MAC.
    pub mac: [u8; 6],
    /// The device name, for errors.
    pub name: String,
}

/// A queue given at `setup_queue`, kept to replay on reconnect.
struct Queue {
    layout: QueueLayout,
    kick: Arc<OwnedFd>,
    call: OwnedFd,
}

/// One connection to the back-end: the socket and what was negotiated on it.
struct Conn {
    sock: UnixStream,
    /// Protocol features negotiated on this connection.
    protocol: u64,
}

/// Everything that changes with the connection and the port, under one lock. Lock order: the
/// memory's locks, then this (the memory listener is called with the former held), then
/// [`Shared::mac`]; nothing here calls into the memory.
struct State {
    conn: Option<Conn>,
    /// GET_FEATURES of the current (or last) connection.
    backend_features: u64,
    /// What the net device wrote (emulated bits included).
    driver_features: u64,
    status: u8,
    /// Queues set up since the last reset, by index (the control queue is not here).
    queues: BTreeMap<u16, Queue>,
    /// Queue pairs enabled (VQ_PAIRS_SET; 1 until then).
    pairs: u16,
    /// Whether the back-end has the rings (start sequence done on this connection).
    live: bool,
    /// Whether the back-end may be using our rings: from the first `SET_VRING_ADDR` of a start
    /// until a stop got every `GET_VRING_BASE` answered, or the socket is closed.
    held: bool,
    regions: RegionSet,
}

struct Shared {
    opts: Options,
    state: Mutex<State>,
    /// The emulated config's MAC: its own lock, so the config never waits on the socket.
    mac: Mutex<[u8; 6]>,
    connected: AtomicBool,
    stop: AtomicBool,
}

/// The virtio-user transport.
pub(crate) struct VhostUser {
    shared: Arc<Shared>,
    monitor: Option<JoinHandle<()>>,
    /// The DMA memory's registration of our listener, undone on drop.
    memory: Option<(burst_mem::Memory, burst_mem::shared::ListenerId)>,
}

/// Tells the transport of memory changes ([`burst_mem::Memory::add_memory_listener`]).
pub(crate) struct Listener(Arc<Shared>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory arguments; it returns a new descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects to the back-end's socket.
fn connect(path: &Path) -> io::Result<UnixStream> {
    let sock = UnixStream::connect(path)?;
    sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
    sock.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(sock)
}

impl Conn {
    fn new(sock: UnixStream) -> Conn {
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
    fn handshake(&mut self, queues: u16) -> Result<u64, VirtioError> {
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
            if features & bits::MQ == 0 || self.protocol & proto::MQ == 0 {
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
    fn send_mem_table(&self) -> Result<(), VirtioError> {
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

    fn enable_rings(&self, on: bool) -> Result<(), VirtioError> {
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
    fn start(&mut self, resume: bool) -> Result<(), VirtioError> {
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
    fn stop(&mut self) -> Result<(), VirtioError> {
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
    fn disconnect(&mut self, shared_connected: &AtomicBool) {
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

fn too_many_regions(regions: usize) -> VirtioError {
    VirtioError::VhostTooManyRegions { regions, max: msg::MAX_REGIONS }
}

impl Shared {
    /// Handles a failed conversation. A broken socket or a protocol violation disconnects (the
    /// monitor reconnects); so does any failure while the back-end may hold the rings: closing
    /// the socket is what makes it let go of them.
    fn failed(&self, st: &mut State, what: &'static str, fail: VirtioError) -> VirtioError {
        if fail.breaks_connection() {
            tracing::warn!(device = %self.opts.name, "vhost-user back-end lost during {what}: {fail}; reconnecting");
            st.disconnect(&self.connected);
        } else if st.held {
            tracing::warn!(device = %self.opts.name,
                "{what}: {fail}; closing the connection so the back-end lets go of the rings, then reconnecting");
            st.disconnect(&self.connected);
        }
        VirtioError::VhostStep { what, source: Box::new(fail) }
    }

    /// Watches the socket and reconnects; runs until `stop`.
    fn monitor(self: Arc<Self>) {
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(MONITOR_PERIOD);
            if self.connected.load(Ordering::Acquire) {
                let mut st = lock(&self.state);
                if st.conn.as_ref().is_some_and(|c| peer_closed(&c.sock)) {
                    tracing::warn!(device = %self.opts.name, path = %self.opts.path.display(),
                        "the vhost-user back-end went away: link down, reconnecting");
                    st.disconnect(&self.connected);
                }
            } else {
                self.reconnect();
            }
        }
    }

    /// One reconnection attempt. Connecting and the handshake run without the state lock
    /// (they wait on the back-end); the replay of the start sequence runs under it, as memory
    /// updates and stops must not interleave with it.
    fn reconnect(&self) {
        let Ok(sock) = connect(&self.opts.path) else { return };
        let mut conn = Conn::new(sock);
        let features = match conn.handshake(self.opts.queues) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(device = %self.opts.name, "reconnecting to the vhost-user back-end: {e}");
                return;
            }
        };
        let mut st = lock(&self.state);
        st.conn = Some(conn);
        st.backend_features = features;
        let started = st.status & DRIVER_OK != 0;
        let wanted = st.driver_features & !NOT_SENT & FROM_BACKEND;
        let outcome = if started && features & wanted != wanted {
            Err(VirtioError::VhostFeaturesLost { offered: features, missing: wanted & !features })
        } else if started {
            st.start(true)
        } else {
            Ok(())
        };
        match outcome {
            Ok(()) => {
                self.connected.store(true, Ordering::Release);
                tracing::info!(device = %self.opts.name, path = %self.opts.path.display(),
                    "reconnected to the vhost-user back-end");
            }
            Err(e) => {
                tracing::warn!(device = %self.opts.name, "reconnecting to the vhost-user back-end: {e}");
                st.disconnect(&self.connected);
            }
        }
    }
}

/// Whether the peer closed the socket (or it broke). Called with the state lock held, so no
/// reply is in flight: anything readable is an end of file or an unexpected message.
fn peer_closed(sock: &UnixStream) -> bool {
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

impl VhostUser {
    /// Connects to the back-end at `opts.path` and does the handshake. The monitor thread
    /// starts here. Memory to share comes through [`VhostUser::listener`].
    pub(crate) fn connect(opts: Options) -> Result<VhostUser, VirtioError> {
        let sock =
            connect(&opts.path).map_err(|source| VirtioError::VhostConnect { path: opts.path.clone(), source })?;
        let mut conn = Conn::new(sock);
        let features = conn
            .handshake(opts.queues)
            .map_err(|e| VirtioError::VhostHandshake { path: opts.path.clone(), source: Box::new(e) })?;
        if features & bits::VERSION_1 == 0 && features & bits::MRG_RXBUF == 0 {
            tracing::info!(device = %opts.name, "the back-end offers neither VERSION_1 nor MRG_RXBUF: 10-byte net headers");
        }
        let st = State {
            conn: Some(conn),
            backend_features: features,
            driver_features: 0,
            status: 0,
            queues: BTreeMap::new(),
            pairs: 1,
            live: false,
            held: false,
            regions: RegionSet::new(),
        };
        let shared = Arc::new(Shared {
            mac: Mutex::new(opts.mac),
            opts,
            state: Mutex::new(st),
            connected: AtomicBool::new(true),
            stop: AtomicBool::new(false),
        });
        let monitor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vhost-user-mon".into())
                .spawn(move || shared.monitor())
                .map_err(|source| VirtioError::MonitorThread { source })?
        };
        Ok(VhostUser { shared, monitor: Some(monitor), memory: None })
    }

    /// The memory listener that keeps the back-end's memory table current.
    pub(crate) fn listener(&self) -> Arc<Listener> {
        Arc::new(Listener(Arc::clone(&self.shared)))
    }

    /// Registers [`VhostUser::listener`] with `memory`, undone when the transport drops.
    pub(crate) fn share(&mut self, memory: &burst_mem::Memory) -> Result<(), EthError> {
        let id = memory.add_memory_listener(self.listener())?;
        self.memory = Some((memory.clone(), id));
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Control-queue command answers, shared by [`Transport::control`].
    fn answer(&self, cmd: CtrlCommand<'_>) -> Result<(), VirtioError> {
        match (cmd.class, cmd.command) {
            (CTRL_RX_CLASS, _) | (CTRL_ANNOUNCE_CLASS, _) => Ok(()),
            (CTRL_MAC_CLASS, CTRL_MAC_ADDR_SET) => {
                let mac: [u8; 6] = cmd
                    .data
                    .get(..6)
                    .and_then(|d| d.try_into().ok())
                    .ok_or(VirtioError::VhostMacData { len: cmd.data.len() })?;
                *lock(&self.shared.mac) = mac;
                Ok(())
            }
            (CTRL_MAC_CLASS, _) => Ok(()),
            (CTRL_MQ_CLASS, CTRL_MQ_VQ_PAIRS_SET) => {
                let n = cmd.data.get(..2).map(|d| u16::from_le_bytes([d[0], d[1]])).unwrap_or(0);
                if n == 0 || n > self.shared.opts.queues {
                    return Err(VirtioError::VhostPairs { pairs: n, max: self.shared.opts.queues });
                }
                let mut st = self.lock();
                st.pairs = n;
                if st.live {
                    if let Err(e) = st.enable_rings(true) {
                        return Err(self.shared.failed(&mut st, "enabling queue pairs", e));
                    }
                }
                Ok(())
            }
            (class, command) => Err(VirtioError::VhostCtrlUnsupported { class, command }),
        }
    }
}

impl Drop for VhostUser {
    fn drop(&mut self) {
        if let Some((memory, id)) = self.memory.take() {
            memory.remove_memory_listener(id);
        }
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.monitor.take() {
            let _ = t.join();
        }
        let mut st = self.lock();
        if let Err(e) = st.stop() {
            tracing::debug!("stopping the vhost-user rings on close: {e}");
        }
        st.disconnect(&self.shared.connected);
    }
}

impl Transport for VhostUser {
    fn kind(&self) -> TransportKind {
        TransportKind::VhostUser
    }

    fn device_features(&self) -> u64 {
        (self.lock().backend_features & FROM_BACKEND) | EMULATED
    }

    fn set_driver_features(&self, features: u64) -> Result<(), VirtioError> {
        let offered = self.device_features();
        if features & !offered != 0 {
            return Err(VirtioError::VhostNotOffered { extra: features & !offered, offered });
        }
        self.lock().driver_features = features;
        Ok(())
    }

    fn status(&self) -> u8 {
        self.lock().status
    }

    fn set_status(&self, status: u8) -> Result<(), VirtioError> {
        if status == 0 {
            return self.reset();
        }
        let mut st = self.lock();
        let was = st.status;
        st.status = status;
        if status & DRIVER_OK != 0 && was & DRIVER_OK == 0 && st.conn.is_some() {
            if let Err(e) = st.start(false) {
                st.status = was;
                st.live = false;
                // With rings sent, this closes the socket: the back-end stops before the net
                // device frees the buffers.
                return Err(self.shared.failed(&mut st, "starting the vhost-user rings", e));
            }
        }
        Ok(())
    }

    /// Takes the rings back. When that fails the socket is closed before this returns, so the
    /// back-end no longer holds the rings either way (it destroys the device on close): this
    /// never fails.
    fn reset(&self) -> Result<(), VirtioError> {
        let mut st = self.lock();
        if let Err(e) = st.stop() {
            tracing::warn!(device = %self.shared.opts.name,
                "stopping the vhost-user rings: {e}; the back-end may still own the rings: closing the \
                 connection so it lets go of them (the monitor reconnects)");
            st.disconnect(&self.shared.connected);
        }
        st.status = 0;
        st.queues.clear();
        st.pairs = 1;
        Ok(())
    }

    fn read_config(&self, offset: usize, buf: &mut [u8]) {
        let mut cfg = [0u8; CFG_LEN];
        cfg[..6].copy_from_slice(&*lock(&self.shared.mac));
        let link = if self.shared.connected.load(Ordering::Acquire) { LINK_UP } else { 0 };
        cfg[CFG_STATUS..CFG_STATUS + 2].copy_from_slice(&link.to_le_bytes());
        cfg[CFG_MAX_PAIRS..CFG_MAX_PAIRS + 2].copy_from_slice(&self.shared.opts.queues.to_le_bytes());
        cfg[CFG_MTU..CFG_MTU + 2].copy_from_slice(&1500u16.to_le_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = offset.checked_add(i).and_then(|o| cfg.get(o)).copied().unwrap_or(0);
        }
    }

    fn write_config(&self, offset: usize, data: &[u8]) {
        let mut mac = lock(&self.shared.mac);
        for (i, &b) in data.iter().enumerate() {
            if let Some(slot) = offset.checked_add(i).and_then(|o| mac.get_mut(o)) {
                *slot = b;
            }
        }
    }

    fn queue_max_size(&self, index: u16) -> u16 {
        if index <= 2 * self.shared.opts.queues {
            self.shared.opts.queue_size
        } else {
            0
        }
    }

    fn queue_size_settable(&self) -> bool {
        false
    }

    fn setup_queue(&self, layout: &QueueLayout) -> Result<Notifier, VirtioError> {
        let io_err = |source| VirtioError::EventFd { queue: layout.index, source };
        let kick = Arc::new(eventfd().map_err(io_err)?);
        if layout.index == 2 * self.shared.opts.queues {
            // The control queue is emulated: nothing reads it, nobody needs the kick.
            return Ok(Notifier::EventFd(kick));
        }
        if layout.index > 2 * self.shared.opts.queues {
            return Err(VirtioError::NoVirtqueue { index: layout.index, has: None });
        }
        let call = eventfd().map_err(io_err)?;
        let mut st = self.lock();
        st.queues.insert(layout.index, Queue { layout: *layout, kick: Arc::clone(&kick), call });
        Ok(Notifier::EventFd(kick))
    }

    fn uses_va(&self) -> bool {
        true
    }

    fn control(&self, cmd: CtrlCommand<'_>) -> Option<Result<(), VirtioError>> {
        Some(self.answer(cmd))
    }

    fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }
}

impl MemoryListener for Listener {
    fn segment_added(&self, seg: &SharedSegment<'_>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut st = lock(&self.0.state);
        st.regions.insert(seg)?;
        let n = st.regions.regions().len();
        if n > msg::MAX_REGIONS {
            st.regions.remove(seg.va);
            return Err(too_many_regions(n).into());
        }
        self.update(&mut st).map_err(|e| {
            // The memory rolls the segment back: no later table may name it.
            st.regions.remove(seg.va);
            e.into()
        })
    }

    fn segment_removed(&self, seg: &SharedSegment<'_>) {
        let mut st = lock(&self.0.state);
        st.regions.remove(seg.va);
        if let Err(e) = self.update(&mut st) {
            tracing::warn!(device = %self.0.opts.name, "{e}");
        }
    }
}

impl Listener {
    /// Re-sends the memory table if the back-end has the rings (DPDK's
    /// `virtio_user_mem_event_cb`: pause the rings, new table, resume). Any failure closes the
    /// connection (the back-end may have dropped its old table and has the rings paused): the
    /// link goes down and the monitor replays the whole start with the current table. A broken
    /// socket is not an error here (the reconnect sends the whole table, this segment included);
    /// a refusal is (the segment is refused, so the reservation fails).
    fn update(&self, st: &mut State) -> Result<(), VirtioError> {
        if !st.live || st.conn.is_none() {
            return Ok(());
        }
        let n = st.regions.regions().len();
        if n > msg::MAX_REGIONS {
            return Err(too_many_regions(n));
        }
        let outcome = st.enable_rings(false).and_then(|()| st.send_mem_table()).and_then(|()| st.enable_rings(true));
        match outcome {
            Ok(()) => Ok(()),
            Err(e) if e.breaks_connection() => {
                tracing::warn!(device = %self.0.opts.name,
                    "vhost-user back-end lost while updating its memory table: {e}; reconnecting");
                st.disconnect(&self.0.connected);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(device = %self.0.opts.name,
                    "updating the vhost-user memory table: {e}; closing the connection (link down), the \
                     monitor reconnects and replays the start");
                st.disconnect(&self.0.connected);
                Err(VirtioError::VhostMemTable { source: Box::new(e) })
            }
        }
    }
}
