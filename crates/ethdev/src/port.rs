//! [`Port`]: what an application holds for one device. It keeps the port's state machine
//! (DPDK's `dev_configured`/`dev_started`), the port's settings ([`PortSettings`]: address,
//! filter modes, MTU) and its queues' software counters, once for every driver, as DPDK keeps
//! them in `rte_eth_dev_data`; it checks every request against the device's limits (queue and
//! descriptor counts, offloads, the MTU's range, a frame of the MTU fitting one RX buffer), and
//! hands out one [`RxQueue`]/[`TxQueue`] handle per queue at a time.
//!
//! Handles borrow the port, so the borrow checker orders the lifecycle: `stop`, `close` and the
//! other `&mut self` operations cannot run while a handle is out on some lcore.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use burst_mem::{PacketBuf, PacketPool};

use crate::error::Dir;
use crate::prepare::TxPrepareError;
use crate::{
    DevInfo, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortSettings, RxBurst, RxOffloads, RxQueueConf, Stats,
    SwStats, TxBurst, TxOffloads, TxQueueConf, XStat,
};

/// A port's number: its place in probe order (PCI devices by address, then `--vdev`s in order).
pub type PortId = u16;

/// Where a port is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// Probed, not configured (or reset).
    Probed,
    /// Configured; queues may be set up.
    Configured,
    /// Moving packets.
    Started,
    /// Stopped after a start; may be started again or reconfigured.
    Stopped,
    /// Closed: nothing more can be done with it.
    Closed,
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortState::Probed => "not configured",
            PortState::Configured => "configured",
            PortState::Started => "started",
            PortState::Stopped => "stopped",
            PortState::Closed => "closed",
        })
    }
}

/// One device, seen by the application.
pub struct Port {
    id: PortId,
    dev: Box<dyn EthDev>,
    info: DevInfo,
    state: PortState,
    conf: PortConf,
    /// The settings, held once here; the lock also serialises the `apply_*` hooks.
    settings: Mutex<PortSettings>,
    rx_ready: Vec<bool>,
    tx_ready: Vec<bool>,
    /// Per RX queue set up: the bytes of a frame one of its buffers takes (`None`: not checked,
    /// see [`EthDev::rx_frame_room`]).
    rx_room: Vec<Option<usize>>,
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
    /// Per TX queue: the offloads on for it, which `tx_prepare` checks packets against.
    tx_offloads: Vec<TxOffloads>,
    /// The queues' counters, handed to the driver at queue setup.
    sw: SwStats,
    /// What the port last counted, kept at close: a closed device is never called again (its
    /// registers may be unmapped), but its counters stay readable, as do its settings.
    closed: Option<Box<ClosedPort>>,
}

#[derive(Debug)]
struct ClosedPort {
    stats: Stats,
    xstats: Vec<XStat>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id)
            .field("driver", &self.info.driver)
            .field("device", &self.info.device)
            .field("state", &self.state)
            .finish()
    }
}

impl Port {
    /// Wraps a probed device as port `id`, with the device's address and default settings.
    pub fn new(id: PortId, dev: Box<dyn EthDev>) -> Port {
        let info = dev.info();
        let settings = PortSettings { mtu: dev.default_mtu(), ..PortSettings::new(dev.default_mac()) };
        Port {
            id,
            dev,
            info,
            state: PortState::Probed,
            conf: PortConf::default(),
            settings: Mutex::new(settings),
            rx_ready: Vec::new(),
            tx_ready: Vec::new(),
            rx_room: Vec::new(),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
            tx_offloads: Vec::new(),
            sw: SwStats::new(0, 0),
            closed: None,
        }
    }

    /// The port's number.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device's name: PCI address or vdev name.
    pub fn name(&self) -> String {
        self.info.device.to_string()
    }

    /// The driver's name.
    pub fn driver(&self) -> &'static str {
        self.info.driver
    }

    /// What the device is and can do.
    pub fn info(&self) -> &DevInfo {
        &self.info
    }

    /// Where the port is in its life.
    pub fn state(&self) -> PortState {
        self.state
    }

    /// The configuration last applied.
    pub fn conf(&self) -> &PortConf {
        &self.conf
    }

    /// The port's settings now: address, filter modes, MTU.
    pub fn settings(&self) -> PortSettings {
        *self.lock_settings()
    }

    fn lock_settings(&self) -> MutexGuard<'_, PortSettings> {
        // The settings are plain values, whole after any panic: a poisoned lock is still right.
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_error(&self, op: &'static str, hint: &'static str) -> EthError {
        EthError::State { port: self.id, op, state: self.state, hint }
    }

    /// Configures queue counts, offloads and MTU (`rte_eth_dev_configure`). The port must not be
    /// started; queue setups follow.
    pub fn configure(&mut self, conf: &PortConf) -> Result<(), EthError> {
        match self.state {
            PortState::Probed | PortState::Configured | PortState::Stopped => {}
            PortState::Started => return Err(self.state_error("configure", "stop the port first")),
            PortState::Closed => return Err(self.state_error("configure", "probe the device again")),
        }
        let info = &self.info;
        if (conf.nb_rx_queues == 0 && conf.nb_tx_queues == 0)
            || conf.nb_rx_queues > info.max_rx_queues
            || conf.nb_tx_queues > info.max_tx_queues
        {
            return Err(EthError::QueueCount {
                port: self.id,
                rx: conf.nb_rx_queues,
                tx: conf.nb_tx_queues,
                max_rx: info.max_rx_queues,
                max_tx: info.max_tx_queues,
            });
        }
        let rx_missing = conf.rx_offloads.missing_from(info.rx_offload_capa);
        if !rx_missing.is_empty() {
            return Err(EthError::Offloads {
                port: self.id,
                driver: info.driver,
                dir: Dir::Rx,
                missing: rx_missing.to_string(),
                capa: info.rx_offload_capa.to_string(),
            });
        }
        let tx_missing = conf.tx_offloads.missing_from(info.tx_offload_capa);
        if !tx_missing.is_empty() {
            return Err(EthError::Offloads {
                port: self.id,
                driver: info.driver,
                dir: Dir::Tx,
                missing: tx_missing.to_string(),
                capa: info.tx_offload_capa.to_string(),
            });
        }
        let mut settings = self.settings();
        if let Some(mtu) = conf.mtu {
            // The queues are set up again after a configure: the frames are checked then.
            self.check_mtu_range(mtu)?;
            settings.mtu = mtu;
        }
        self.dev.configure(conf, &settings)?;
        *self.settings.get_mut().unwrap_or_else(|e| e.into_inner()) = settings;
        self.conf = conf.clone();
        // The queues' counters count on across a reconfiguration, as the device's own do.
        self.sw.resize(conf.nb_rx_queues, conf.nb_tx_queues);
        self.rx_ready = vec![false; conf.nb_rx_queues as usize];
        self.tx_ready = vec![false; conf.nb_tx_queues as usize];
        self.rx_room = vec![None; conf.nb_rx_queues as usize];
        self.tx_offloads = vec![conf.tx_offloads; conf.nb_tx_queues as usize];
        self.rx_taken = (0..conf.nb_rx_queues).map(|_| AtomicBool::new(false)).collect();
        self.tx_taken = (0..conf.nb_tx_queues).map(|_| AtomicBool::new(false)).collect();
        self.state = PortState::Configured;
        Ok(())
    }

    fn check_setup(&self, op: &'static str, dir: Dir, queue: u16) -> Result<(), EthError> {
        match self.state {
            PortState::Configured | PortState::Stopped => {}
            PortState::Probed => return Err(self.state_error(op, "call configure first")),
            PortState::Started => return Err(self.state_error(op, "stop the port first")),
            PortState::Closed => return Err(self.state_error(op, "probe the device again")),
        }
        let count = match dir {
            Dir::Rx => self.conf.nb_rx_queues,
            Dir::Tx => self.conf.nb_tx_queues,
        };
        if queue >= count {
            return Err(EthError::NoQueue { port: self.id, dir, queue, count });
        }
        Ok(())
    }

    /// Sets up RX queue `queue` with `nb_desc` descriptors (0: the device's default), filled from
    /// `pool` (`rte_eth_rx_queue_setup`), with the port's offloads.
    pub fn rx_queue_setup(&mut self, queue: u16, nb_desc: u16, pool: &PacketPool) -> Result<(), EthError> {
        self.rx_queue_setup_with(queue, nb_desc, pool, RxOffloads::NONE)
    }

    /// [`Port::rx_queue_setup`] with `offloads` on for this queue besides the port's (the
    /// `offloads` of DPDK's `rte_eth_rxconf`): each one the port does not have already must be
    /// among the device's per-queue capabilities.
    pub fn rx_queue_setup_with(
        &mut self,
        queue: u16,
        nb_desc: u16,
        pool: &PacketPool,
        offloads: RxOffloads,
    ) -> Result<(), EthError> {
        self.check_setup("rx_queue_setup", Dir::Rx, queue)?;
        let lim = self.info.rx_desc_lim;
        let nb_desc = lim.resolve(nb_desc).ok_or(EthError::DescCount {
            port: self.id,
            dir: Dir::Rx,
            n: nb_desc,
            min: lim.min,
            max: lim.max,
            align: lim.align,
            default: lim.default,
        })?;
        let per_queue = offloads - self.conf.rx_offloads;
        let missing = per_queue.missing_from(self.info.rx_queue_offload_capa);
        if !missing.is_empty() {
            return Err(EthError::QueueOffloads {
                port: self.id,
                driver: self.info.driver,
                dir: Dir::Rx,
                queue,
                missing: missing.to_string(),
                capa: self.info.rx_queue_offload_capa.to_string(),
            });
        }
        let offloads = offloads | self.conf.rx_offloads;
        if u32::from(pool.data_room()) < self.info.min_rx_bufsize {
            return Err(EthError::RxBufTooSmall {
                port: self.id,
                room: u32::from(pool.data_room()),
                min: self.info.min_rx_bufsize,
            });
        }
        // With scatter a frame may take several buffers: only the MTU's range limits it.
        let room = if offloads.contains(RxOffloads::SCATTER) { None } else { self.dev.rx_frame_room(pool) };
        if let Some(room) = room {
            self.check_frame_fits(self.settings().mtu, queue, room)?;
        }
        let conf = RxQueueConf {
            nb_desc,
            pool: pool.clone(),
            socket: self.info.socket,
            offloads,
            counters: self.sw.rx(queue),
        };
        // A driver may drop the queue's old ring before it fails to make the new one: until it
        // succeeds, the queue is not set up.
        self.rx_ready[queue as usize] = false;
        self.rx_room[queue as usize] = None;
        self.dev.rx_queue_setup(queue, &conf)?;
        self.rx_ready[queue as usize] = true;
        self.rx_room[queue as usize] = room;
        Ok(())
    }

    /// Sets up TX queue `queue` with `nb_desc` descriptors (0: the device's default), with the
    /// port's offloads.
    pub fn tx_queue_setup(&mut self, queue: u16, nb_desc: u16) -> Result<(), EthError> {
        self.tx_queue_setup_with(queue, nb_desc, TxOffloads::NONE)
    }

    /// [`Port::tx_queue_setup`] with `offloads` on for this queue besides the port's: each one
    /// the port does not have already must be among the device's per-queue capabilities.
    pub fn tx_queue_setup_with(&mut self, queue: u16, nb_desc: u16, offloads: TxOffloads) -> Result<(), EthError> {
        self.check_setup("tx_queue_setup", Dir::Tx, queue)?;
        let lim = self.info.tx_desc_lim;
        let nb_desc = lim.resolve(nb_desc).ok_or(EthError::DescCount {
            port: self.id,
            dir: Dir::Tx,
            n: nb_desc,
            min: lim.min,
            max: lim.max,
            align: lim.align,
            default: lim.default,
        })?;
        let per_queue = offloads - self.conf.tx_offloads;
        let missing = per_queue.missing_from(self.info.tx_queue_offload_capa);
        if !missing.is_empty() {
            return Err(EthError::QueueOffloads {
                port: self.id,
                driver: self.info.driver,
                dir: Dir::Tx,
                queue,
                missing: missing.to_string(),
                capa: self.info.tx_queue_offload_capa.to_string(),
            });
        }
        let offloads = offloads | self.conf.tx_offloads;
        let conf = TxQueueConf { nb_desc, socket: self.info.socket, offloads, counters: self.sw.tx(queue) };
        self.tx_ready[queue as usize] = false;
        self.dev.tx_queue_setup(queue, &conf)?;
        self.tx_ready[queue as usize] = true;
        self.tx_offloads[queue as usize] = offloads;
        Ok(())
    }

    /// Starts the port (`rte_eth_dev_start`): every configured queue must be set up.
    pub fn start(&mut self) -> Result<(), EthError> {
        match self.state {
            PortState::Configured | PortState::Stopped => {}
            PortState::Started => return Ok(()),
            PortState::Probed => return Err(self.state_error("start", "call configure and set up the queues first")),
            PortState::Closed => return Err(self.state_error("start", "probe the device again")),
        }
        if let Some(q) = self.rx_ready.iter().position(|r| !r) {
            return Err(EthError::QueueNotSetUp { port: self.id, dir: Dir::Rx, queue: q as u16 });
        }
        if let Some(q) = self.tx_ready.iter().position(|r| !r) {
            return Err(EthError::QueueNotSetUp { port: self.id, dir: Dir::Tx, queue: q as u16 });
        }
        let settings = self.settings();
        self.dev.start(&settings)?;
        self.state = PortState::Started;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). No queue handle can be out: they borrow the port.
    /// The port is stopped even when the driver reports an error (a device that did not confirm
    /// its reset, say): no queue is handed out again, and the driver refuses another start if
    /// the device cannot be trusted with one.
    pub fn stop(&mut self) -> Result<(), EthError> {
        if self.state != PortState::Started {
            return Ok(());
        }
        let stopped = self.dev.stop();
        self.state = PortState::Stopped;
        stopped
    }

    /// Stops the port if started and releases the device (`rte_eth_dev_close`). Closing twice is
    /// harmless.
    pub fn close(&mut self) -> Result<(), EthError> {
        if self.state == PortState::Closed {
            return Ok(());
        }
        let stopped = self.stop();
        self.closed = Some(Box::new(ClosedPort { stats: self.stats(), xstats: self.xstats() }));
        let closed = self.dev.close();
        self.state = PortState::Closed;
        stopped.and(closed)
    }

    /// Resets the device (`rte_eth_dev_reset`): it must be configured again, and its queues
    /// set up again. When the driver's reset fails the port is left the same way (unconfigured,
    /// no queue set up), since the driver may have released its queues on the way.
    pub fn reset(&mut self) -> Result<(), EthError> {
        if self.state == PortState::Closed {
            return Err(self.state_error("reset", "probe the device again"));
        }
        self.stop()?;
        let reset = self.dev.reset();
        self.state = PortState::Probed;
        self.rx_ready.clear();
        self.tx_ready.clear();
        self.rx_room.clear();
        self.rx_taken.clear();
        self.tx_taken.clear();
        reset?;
        self.info = self.dev.info();
        *self.settings.get_mut().unwrap_or_else(|e| e.into_inner()) =
            PortSettings { mtu: self.dev.default_mtu(), ..PortSettings::new(self.dev.default_mac()) };
        Ok(())
    }

    /// The link now (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> LinkStatus {
        if self.closed.is_some() {
            return LinkStatus::DOWN;
        }
        self.dev.link(self.state == PortState::Started)
    }

    /// The port's MAC address (after close, the last one).
    pub fn mac(&self) -> MacAddr {
        self.lock_settings().mac
    }

    /// Changes one setting: the driver applies the new settings, and only if it succeeds do they
    /// become the port's. The settings' lock is held throughout, so changes apply in order.
    fn change(
        &self,
        op: &'static str,
        edit: impl FnOnce(&mut PortSettings),
        apply: impl FnOnce(&dyn EthDev, &PortSettings, bool) -> Result<(), EthError>,
    ) -> Result<(), EthError> {
        self.check_open(op)?;
        let mut settings = self.lock_settings();
        let mut new = *settings;
        edit(&mut new);
        apply(&*self.dev, &new, self.state == PortState::Started)?;
        *settings = new;
        Ok(())
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`).
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), EthError> {
        if !mac.is_valid_unicast() {
            self.check_open("set_mac")?;
            return Err(EthError::BadMac { port: self.id, mac });
        }
        self.change("set_mac", |s| s.mac = mac, |dev, s, started| dev.apply_mac(s, started))
    }

    /// Promiscuous mode on or off (`rte_eth_promiscuous_enable`/`disable`).
    pub fn set_promiscuous(&self, on: bool) -> Result<(), EthError> {
        self.change("set_promiscuous", |s| s.promiscuous = on, |dev, s, started| dev.apply_promiscuous(s, started))
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        self.lock_settings().promiscuous
    }

    /// All-multicast mode on or off (`rte_eth_allmulticast_enable`/`disable`).
    pub fn set_allmulticast(&self, on: bool) -> Result<(), EthError> {
        self.change("set_allmulticast", |s| s.allmulticast = on, |dev, s, started| dev.apply_allmulticast(s, started))
    }

    /// Whether all-multicast mode is on.
    pub fn allmulticast(&self) -> bool {
        self.lock_settings().allmulticast
    }

    fn check_open(&self, op: &'static str) -> Result<(), EthError> {
        match self.state {
            PortState::Closed => Err(self.state_error(op, "probe the device again")),
            _ => Ok(()),
        }
    }

    fn check_mtu_range(&self, mtu: u16) -> Result<(), EthError> {
        if mtu < self.info.min_mtu || mtu > self.info.max_mtu {
            return Err(EthError::Mtu { port: self.id, mtu, min: self.info.min_mtu, max: self.info.max_mtu });
        }
        Ok(())
    }

    /// A frame of `mtu` must fit one buffer of RX queue `queue`, whose buffers take `room` bytes
    /// of a frame (DPDK's drivers refuse the same without scatter).
    fn check_frame_fits(&self, mtu: u16, queue: u16, room: usize) -> Result<(), EthError> {
        let frame = u32::from(mtu) + crate::settings::frame_overhead(&self.info);
        if frame as usize > room {
            return Err(EthError::FrameTooLong { port: self.id, mtu, frame, queue, room });
        }
        Ok(())
    }

    /// Sets the MTU (`rte_eth_dev_set_mtu`): within the device's range, and a frame of it must
    /// fit one buffer of every RX queue set up.
    pub fn set_mtu(&mut self, mtu: u16) -> Result<(), EthError> {
        self.check_open("set_mtu")?;
        self.check_mtu_range(mtu)?;
        for (q, room) in self.rx_room.iter().enumerate() {
            if let Some(room) = *room {
                self.check_frame_fits(mtu, q as u16, room)?;
            }
        }
        let started = self.state == PortState::Started;
        let settings = self.settings.get_mut().unwrap_or_else(|e| e.into_inner());
        let new = PortSettings { mtu, ..*settings };
        self.dev.apply_mtu(&new, started)?;
        *settings = new;
        Ok(())
    }

    /// The MTU (after close, the last one).
    pub fn mtu(&self) -> u16 {
        self.lock_settings().mtu
    }

    /// Counters since the last reset (`rte_eth_stats_get`): the queues' own, merged with the
    /// device's where it counts; after close, the last ones.
    pub fn stats(&self) -> Stats {
        match &self.closed {
            Some(c) => c.stats.clone(),
            None => self.dev.stats(self.sw.get()),
        }
    }

    /// Zeroes the counters (`rte_eth_stats_reset`).
    pub fn stats_reset(&self) {
        if self.closed.is_none() {
            self.sw.reset();
            self.dev.stats_reset()
        }
    }

    /// Named counters (`rte_eth_xstats_get` with names): the basic ones under DPDK's names, then
    /// the driver's own.
    pub fn xstats(&self) -> Vec<XStat> {
        match &self.closed {
            Some(c) => c.xstats.clone(),
            None => {
                let sw = self.sw.get();
                let mut all = self.dev.stats(sw.clone()).to_xstats();
                all.extend(self.dev.xstats(&sw));
                all
            }
        }
    }

    /// Zeroes the named counters, the basic ones included (`rte_eth_xstats_reset`).
    pub fn xstats_reset(&self) {
        if self.closed.is_none() {
            self.stats_reset();
            self.dev.xstats_reset()
        }
    }

    fn take_flag<'a>(&self, flags: &'a [AtomicBool], dir: Dir, queue: u16) -> Result<&'a AtomicBool, EthError> {
        if self.state != PortState::Started {
            return Err(self.state_error(
                match dir {
                    Dir::Rx => "rx_queue",
                    Dir::Tx => "tx_queue",
                },
                "start the port first",
            ));
        }
        let flag = flags.get(queue as usize).ok_or(EthError::NoQueue {
            port: self.id,
            dir,
            queue,
            count: flags.len() as u16,
        })?;
        if flag.swap(true, Ordering::Acquire) {
            return Err(EthError::QueueBusy { port: self.id, dir, queue });
        }
        Ok(flag)
    }

    /// The handle of started RX queue `queue`, to move to the lcore that polls it. One handle per
    /// queue at a time; dropping it frees the queue for another.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue<'_>, EthError> {
        let taken = self.take_flag(&self.rx_taken, Dir::Rx, queue)?;
        match self.dev.rx_queue(queue) {
            Ok(inner) => Ok(RxQueue { inner, taken, port: self.id, queue }),
            Err(e) => {
                taken.store(false, Ordering::Release);
                Err(e)
            }
        }
    }

    /// The handle of started TX queue `queue`.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue<'_>, EthError> {
        let taken = self.take_flag(&self.tx_taken, Dir::Tx, queue)?;
        match self.dev.tx_queue(queue) {
            Ok(inner) => Ok(TxQueue {
                inner,
                taken,
                port: self.id,
                queue,
                offloads: self.tx_offloads.get(usize::from(queue)).copied().unwrap_or_default(),
                nb_seg_max: self.info.tx_desc_lim.nb_seg_max,
            }),
            Err(e) => {
                taken.store(false, Ordering::Release);
                Err(e)
            }
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(port = self.id, "closing the port failed: {e}");
        }
    }
}

/// A started RX queue, owned by the lcore that polls it. `Send`, not `Sync`.
pub struct RxQueue<'p> {
    inner: Box<dyn RxBurst + 'p>,
    taken: &'p AtomicBool,
    port: PortId,
    queue: u16,
}

impl RxQueue<'_> {
    /// Appends up to `max` received packets to `bufs` and returns how many
    /// (`rte_eth_rx_burst`). Keep `bufs`'s capacity at least `max` past its length and nothing is
    /// allocated.
    #[inline]
    pub fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.inner.rx_burst(bufs, max)
    }

    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue<'_> {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

impl fmt::Debug for RxQueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RxQueue(port {}, queue {})", self.port, self.queue)
    }
}

/// A started TX queue, owned by the lcore that sends on it. `Send`, not `Sync`.
pub struct TxQueue<'p> {
    inner: Box<dyn TxBurst + 'p>,
    taken: &'p AtomicBool,
    port: PortId,
    queue: u16,
    /// The offloads on for the queue.
    offloads: TxOffloads,
    /// The most segments the device takes per packet.
    nb_seg_max: u16,
}

impl TxQueue<'_> {
    /// Takes packets from the front of `bufs` for sending and returns how many it took
    /// (`rte_eth_tx_burst`). The rest stay in `bufs`, in order: send them again later, or drop
    /// them (dropping frees them).
    #[inline]
    pub fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        self.inner.tx_burst(bufs)
    }

    /// Checks a burst against the queue's offloads and the device's limits, and fixes up what
    /// the device needs (pseudo-header checksums) before [`TxQueue::tx_burst`]
    /// (`rte_eth_tx_prepare`). On a packet that cannot be sent as asked it stops: the packets
    /// before it are prepared, the error names it and says why. A burst with no offload request
    /// and one segment per packet needs no call.
    pub fn tx_prepare(&mut self, bufs: &mut [PacketBuf]) -> Result<(), TxPrepareError> {
        let bad = bufs.iter().enumerate().find_map(|(index, b)| {
            crate::prepare::check(b, self.offloads, self.nb_seg_max).err().map(|fault| TxPrepareError { index, fault })
        });
        let good = bad.as_ref().map_or(bufs.len(), |e| e.index);
        self.inner.tx_prepare(&mut bufs[..good])?;
        bad.map_or(Ok(()), Err)
    }

    /// The offloads on for this queue.
    pub fn offloads(&self) -> TxOffloads {
        self.offloads
    }

    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for TxQueue<'_> {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

impl fmt::Debug for TxQueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxQueue(port {}, queue {})", self.port, self.queue)
    }
}

#[cfg(test)]
mod tests;
