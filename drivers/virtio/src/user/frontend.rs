//! The vhost-user front-end: a [`Transport`] whose "device" is a back-end process reached over a
//! unix socket (QEMU docs/interop/vhost-user.rst), the way DPDK's virtio-user
//! (`drivers/net/virtio/virtio_user/`) drives one.
//!
//! What the back-end sees and when, and how a failure with it is handled, is
//! [`super::backend`]'s.
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
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use burst_ethdev::EthError;
use burst_mem::shared::{MemoryListener, RegionSet, SharedSegment};

use super::backend::{connect, peer_closed, too_many_regions, Conn, Queue, State};
use super::msg;
use crate::error::VirtioError;
use crate::spec::ctrl::*;
use crate::spec::status::DRIVER_OK;
use crate::spec::{config, features as f};
use crate::transport::{CtrlCommand, Notifier, QueueLayout, Transport, TransportKind};

/// Features taken from the back-end when it offers them. Not `ACCESS_PLATFORM` (it would make
/// DPDK's back-end translate through an IOTLB we do not feed), nor offloads we do not use.
/// `IN_ORDER`, `RING_INDIRECT_DESC` and the offload bits are passed on: the net device
/// negotiates them when it wants them.
const FROM_BACKEND: u64 =
    f::VERSION_1 | f::MRG_RXBUF | f::ANY_LAYOUT | f::MQ | f::IN_ORDER | f::RING_INDIRECT_DESC | f::OFFLOADS;
/// Features this transport emulates, whatever the back-end offers.
const EMULATED: u64 = f::MAC | f::STATUS | f::CTRL_VQ | f::CTRL_RX | f::CTRL_MAC_ADDR | f::MQ;
/// Emulated features never sent to the back-end (`MQ` is: DPDK's back-end drops all but the
/// first queue pair without it).
pub(super) const NOT_SENT: u64 = f::MAC | f::STATUS | f::CTRL_VQ | f::CTRL_RX | f::CTRL_MAC_ADDR;

/// How often the monitor looks at the socket, and retries connecting.
const MONITOR_PERIOD: Duration = Duration::from_millis(100);

/// The emulated `struct virtio_net_config` (virtio 1.2, 5.1.4): up to `mtu`.
const CONFIG_LEN: usize = config::MTU + 2;

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
        if features & f::VERSION_1 == 0 && features & f::MRG_RXBUF == 0 {
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
            (VIRTIO_NET_CTRL_RX, _) | (VIRTIO_NET_CTRL_ANNOUNCE, _) => Ok(()),
            (VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET) => {
                let mac: [u8; 6] = cmd
                    .data
                    .get(..6)
                    .and_then(|d| d.try_into().ok())
                    .ok_or(VirtioError::VhostMacData { len: cmd.data.len() })?;
                *lock(&self.shared.mac) = mac;
                Ok(())
            }
            (VIRTIO_NET_CTRL_MAC, _) => Ok(()),
            (VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) => {
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
        let mut cfg = [0u8; CONFIG_LEN];
        cfg[..6].copy_from_slice(&*lock(&self.shared.mac));
        let link = if self.shared.connected.load(Ordering::Acquire) { config::VIRTIO_NET_S_LINK_UP } else { 0 };
        cfg[config::STATUS..config::STATUS + 2].copy_from_slice(&link.to_le_bytes());
        let pairs = config::MAX_VIRTQUEUE_PAIRS;
        cfg[pairs..pairs + 2].copy_from_slice(&self.shared.opts.queues.to_le_bytes());
        cfg[config::MTU..config::MTU + 2].copy_from_slice(&1500u16.to_le_bytes());
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
