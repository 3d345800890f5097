//! The virtio-net port: feature negotiation and the control path ([`EthDev`], DPDK's
//! `virtio_eth_dev_ops`), written once against [`Transport`].
//!
//! Device initialisation follows virtio 1.2, 3.1.1: reset, ACKNOWLEDGE, DRIVER, read the
//! device's features, write ours, FEATURES_OK (and check the device kept it), set up the
//! virtqueues, DRIVER_OK. Probe does it up to the features to learn the MAC, link, queue pairs
//! and ring sizes, then resets the device again; every start does it all.
//!
//! Queues: RX of pair `i` is virtqueue `2i`, TX `2i + 1`, the control queue `2 * max_pairs`
//! (5.1.2). Every queue's `avail.flags` says `VRING_AVAIL_F_NO_INTERRUPT`: we poll.
//!
//! What it does not: offloads (checksum, TSO, VLAN), multi-buffer frames (a frame longer than
//! one buffer is dropped and counted), packed rings, indirect descriptors, event index, RSS,
//! interrupts.

use std::sync::Mutex;

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings, RxBurst,
    RxOffloads, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, XStat,
};
use burst_mem::{Memory, MemzoneFlags};

use crate::ctrl::{self, CtrlQueue};
use crate::error::VirtioError;
use crate::rx::{RxQueue, VirtioRx};
use crate::spec::ctrl::*;
use crate::spec::{config, features as f, net_hdr, status};
use crate::stats::PortStats;
use crate::transport::{CtrlCommand, Transport, TransportKind};
use crate::tx::{TxQueue, VirtioTx};
use crate::vring::{ring_size, Vring};

/// What a transport's probe hands the net device besides the transport.
pub(crate) struct DevContext {
    /// [`crate::DRIVER_NAME`] or [`crate::USER_DRIVER_NAME`].
    pub driver: &'static str,
    /// The PCI address or the vdev name.
    pub device: DeviceName,
    /// DMA memory for rings and the header area.
    pub memory: Memory,
    /// The port number the runtime gives it.
    pub port: PortId,
    /// NUMA socket of the device, if known.
    pub socket: Option<u32>,
    /// A MAC to use instead of the device's (virtio-user `mac=`).
    pub mac: Option<MacAddr>,
    /// Whatever must live as long as the port (the open `PciDevice`).
    pub keep: Option<Box<dyn Send + Sync>>,
}

/// The largest frame without an MTU from the device (DPDK's `VIRTIO_MAX_RX_PKTLEN`).
pub const MAX_RX_PKTLEN: u32 = 9728;

/// Ethernet header, VLAN tag and CRC around the MTU (DPDK's virtio counts the same).
const FRAME_OVERHEAD: u32 = 14 + 4 + 4;

/// Speed reported with the link up: virtio has none (DPDK's virtio reports 10G by default too).
const LINK_SPEED_MBPS: u32 = 10_000;

/// Fewest descriptors asked for (the device's size is used anyway unless it is settable).
const MIN_DESC: u16 = 32;

/// Largest control queue used.
const CTRL_RING_MAX: u16 = 64;

/// One virtio-net port.
pub struct VirtioNet {
    transport: Box<dyn Transport>,
    driver: &'static str,
    device: DeviceName,
    memory: Memory,
    port: PortId,
    socket: Option<u32>,
    _keep: Option<Box<dyn Send + Sync>>,
    /// Negotiated at probe (the same set is asked for at every start).
    features: u64,
    hdr_len: usize,
    max_pairs: u16,
    /// The device's `max_virtqueue_pairs` (1 without MQ): the control queue is virtqueue
    /// `2 * cfg_pairs` (5.1.2) even when fewer pairs are usable.
    cfg_pairs: u16,
    max_mtu: u16,
    /// The address the port comes with: the context's, the device's config, or a random one.
    default_mac: MacAddr,
    /// The address in the device's config (with MAC): the one it filters on until told another.
    config_mac: Option<MacAddr>,
    started: bool,
    /// The port is unusable: the device did not finish a reset, so its queues were kept.
    wedged: bool,
    nb_rx: u16,
    nb_tx: u16,
    rx: Vec<Slot<RxQueue>>,
    tx: Vec<Slot<TxQueue>>,
    ctrl: Mutex<Option<CtrlQueue>>,
    stats: PortStats,
}

impl std::fmt::Debug for VirtioNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioNet")
            .field("device", &self.device)
            .field("transport", &self.transport.kind())
            .field("features", &f::describe(self.features))
            .finish()
    }
}

/// A random locally administered unicast address.
fn random_mac() -> MacAddr {
    let mut b = [0u8; 6];
    // SAFETY: writes at most 6 bytes into a live local buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 6 {
        // No entropy source: something unlikely to collide still.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        b = [0, (t >> 24) as u8, (t >> 16) as u8, (t >> 8) as u8, t as u8, pid as u8];
    }
    b[0] = (b[0] & 0xfe) | 0x02;
    MacAddr(b)
}

/// What features to ask for from what the device offers: everything [`f::WANTED`], minus what
/// depends on a feature that is missing (virtio 1.2, 5.1.3.1: the control queue's commands and
/// MQ need CTRL_VQ).
pub(crate) fn choose_features(offered: u64) -> u64 {
    let mut want = offered & f::WANTED;
    if want & f::CTRL_VQ == 0 {
        want &= !(f::CTRL_RX | f::CTRL_MAC_ADDR | f::MQ);
    }
    want
}

/// The net header's length for `features` (5.1.6: `num_buffers` is there with MRG_RXBUF or
/// VERSION_1).
pub(crate) fn hdr_len(features: u64) -> usize {
    if features & (f::MRG_RXBUF | f::VERSION_1) != 0 {
        net_hdr::LEN_MRG
    } else {
        net_hdr::LEN
    }
}

impl VirtioNet {
    /// Probes the device behind `transport`: reset, negotiate, read MAC, link and queue counts.
    pub(crate) fn new(transport: Box<dyn Transport>, ctx: DevContext) -> Result<VirtioNet, EthError> {
        let mut dev = VirtioNet {
            transport,
            driver: ctx.driver,
            device: ctx.device,
            memory: ctx.memory,
            port: ctx.port,
            socket: ctx.socket,
            _keep: ctx.keep,
            features: 0,
            hdr_len: net_hdr::LEN,
            max_pairs: 1,
            cfg_pairs: 1,
            max_mtu: (MAX_RX_PKTLEN - FRAME_OVERHEAD) as u16,
            default_mac: MacAddr::ZERO,
            config_mac: None,
            started: false,
            wedged: false,
            nb_rx: 0,
            nb_tx: 0,
            rx: Vec::new(),
            tx: Vec::new(),
            ctrl: Mutex::new(None),
            stats: PortStats::new(0, 0),
        };
        let result = dev.negotiate();
        let features = match result {
            Ok(v) => v,
            Err(e) => {
                // No queue was given yet: nothing to keep if the reset fails too.
                let _ = dev.transport.reset();
                return Err(dev.error(e));
            }
        };
        dev.features = features;
        dev.hdr_len = hdr_len(features);
        if features & f::MQ != 0 {
            let pairs = dev.config_u16(config::MAX_VIRTQUEUE_PAIRS);
            // The spec allows 0x8000 pairs, but then the control queue (2 * pairs) would be
            // virtqueue 65536, past a u16 index: one pair fewer keeps it addressable.
            dev.max_pairs = pairs.clamp(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX - 1);
            dev.cfg_pairs = dev.max_pairs;
        }
        if features & f::MTU != 0 {
            let mtu = dev.config_u16(config::MTU);
            if mtu >= 68 {
                dev.max_mtu = mtu;
            }
        }
        // Pairs whose queues exist (a device may offer MQ but fewer queues).
        while dev.max_pairs > 1
            && (dev.transport.queue_max_size(2 * (dev.max_pairs - 1)) == 0
                || dev.transport.queue_max_size(2 * dev.max_pairs - 1) == 0)
        {
            dev.max_pairs -= 1;
        }
        if dev.transport.queue_max_size(0) == 0 || dev.transport.queue_max_size(1) == 0 {
            let _ = dev.transport.reset();
            return Err(dev.error(VirtioError::NoQueuePair));
        }
        dev.config_mac = (features & f::MAC != 0).then(|| dev.config_mac()).filter(|m| m.is_valid_unicast());
        let mac = ctx.mac.or(dev.config_mac).unwrap_or_else(random_mac);
        dev.default_mac = mac;
        // Quiet until start.
        dev.transport.reset().map_err(|e| dev.error(e))?;
        tracing::debug!(
            device = %dev.device,
            transport = %dev.transport.kind(),
            %mac,
            pairs = dev.max_pairs,
            features = %f::describe(features),
            "virtio-net probed"
        );
        Ok(dev)
    }

    fn modern(&self) -> bool {
        self.transport.kind() == TransportKind::Modern
    }

    /// `e`, for this port's driver and device.
    fn error(&self, e: VirtioError) -> EthError {
        EthError::driver(self.driver, &self.device, e)
    }

    fn config_u16(&self, off: usize) -> u16 {
        let mut b = [0u8; 2];
        self.transport.read_config(off, &mut b);
        u16::from_le_bytes(b)
    }

    fn config_mac(&self) -> MacAddr {
        let mut b = [0u8; 6];
        self.transport.read_config(config::MAC, &mut b);
        MacAddr(b)
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (virtio 1.2, 3.1.1 steps 1-6).
    /// Returns the negotiated features; the device is left in FEATURES_OK (or DRIVER, legacy).
    fn negotiate(&self) -> Result<u64, VirtioError> {
        let t = &*self.transport;
        t.reset()?;
        t.set_status(status::ACKNOWLEDGE)?;
        t.set_status(status::ACKNOWLEDGE | status::DRIVER)?;
        let offered = t.device_features();
        if self.modern() && offered & f::VERSION_1 == 0 {
            return Err(VirtioError::NoVersion1 { offered });
        }
        let want = choose_features(offered);
        t.set_driver_features(want)?;
        if want & f::VERSION_1 != 0 {
            // 3.1.1 step 5-6: FEATURES_OK, then check the device kept it.
            t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK)?;
            if t.status() & status::FEATURES_OK == 0 {
                let _ = t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FAILED);
                return Err(VirtioError::FeaturesRefused { wanted: want, offered });
            }
        }
        Ok(want)
    }

    fn base_status(&self) -> u8 {
        let s = status::ACKNOWLEDGE | status::DRIVER;
        if self.features & f::VERSION_1 != 0 {
            s | status::FEATURES_OK
        } else {
            s
        }
    }

    fn has(&self, bits: u64) -> bool {
        self.features & bits == bits
    }

    /// A name for one of this port's memzones.
    fn zone_name(&self, what: &str) -> String {
        let mut dev = self.device.to_string();
        dev.truncate(28);
        format!("vnet_{dev}_{}_{what}", self.port)
    }

    /// A ring for virtqueue `index` sized for `nb_desc`.
    fn make_vring(&self, index: u16, nb_desc: u16, socket: Option<u32>, cap: u16) -> Result<Vring, EthError> {
        let max = self.transport.queue_max_size(index);
        let settable = self.transport.queue_size_settable();
        // A legacy device takes only its own size: the cap applies where the size is ours to pick.
        let limit = if settable { max.min(cap) } else { max };
        let size =
            ring_size(limit, settable, nb_desc).ok_or_else(|| self.error(VirtioError::QueueSize { index, max }))?;
        Vring::new(&self.memory, &self.zone_name(&format!("vq{index}")), index, size, socket)
    }

    /// Sends a control command: through the transport when it answers them itself, else on the
    /// control queue (the device must be started).
    fn control(&self, class: u8, command: u8, data: &[u8]) -> Result<(), EthError> {
        if let Some(r) = self.transport.control(CtrlCommand { class, command, data }) {
            return r.map_err(|e| self.error(e));
        }
        let mut g = self.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = g.as_mut() else {
            return Err(self.error(VirtioError::CtrlNotRunning));
        };
        q.command(class, command, data).map_err(|e| self.error(e))
    }

    fn send_promiscuous(&self, on: bool) -> Result<(), EthError> {
        self.control(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &[u8::from(on)])
    }

    fn send_allmulticast(&self, on: bool) -> Result<(), EthError> {
        self.control(VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &[u8::from(on)])
    }

    /// Gives the device `mac`: the control queue with CTRL_MAC_ADDR, the config space on a
    /// legacy device with MAC (4.1.4.8: legacy config is writable).
    fn send_mac(&self, mac: MacAddr) -> Result<(), EthError> {
        if self.has(f::CTRL_VQ | f::CTRL_MAC_ADDR) {
            self.control(VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, &mac.0)
        } else if self.has(f::MAC) && !self.has(f::VERSION_1) {
            self.transport.write_config(config::MAC, &mac.0);
            Ok(())
        } else {
            Err(EthError::NotSupported { driver: self.driver, what: "changing the MAC address (no CTRL_MAC_ADDR)" })
        }
    }

    fn mac_settable(&self) -> bool {
        self.has(f::CTRL_VQ | f::CTRL_MAC_ADDR) || (self.has(f::MAC) && !self.has(f::VERSION_1))
    }

    /// The queue pairs in use: as many as the larger queue count.
    fn pairs(&self) -> u16 {
        self.nb_rx.max(self.nb_tx).max(1)
    }

    /// Resets the device and takes every buffer back. If the device does not confirm its reset,
    /// it may still write into the buffers and rings it was given: they are kept (leaked on
    /// purpose, see [`VirtioNet::keep_queues`]) and the port refuses to start again.
    fn quiesce(&mut self) -> Result<(), EthError> {
        self.started = false;
        if let Err(e) = self.transport.reset() {
            self.keep_queues();
            self.wedged = true;
            return Err(self.error(e));
        }
        for q in &mut self.rx {
            if let Some(q) = q.get_mut() {
                q.release();
            }
        }
        for q in &mut self.tx {
            if let Some(q) = q.get_mut() {
                q.release();
            }
        }
        if let Some(q) = self.ctrl.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut() {
            q.reset(false);
        }
        Ok(())
    }

    /// Gives up every queue without freeing anything: their buffers stay out of their pools and
    /// their rings stay reserved for the life of the process, since a device that did not
    /// finish its reset may still DMA into them. The queues must be set up again to use the port,
    /// which `wedged` refuses.
    fn keep_queues(&mut self) {
        for q in &mut self.rx {
            std::mem::forget(q.replace(None));
        }
        for q in &mut self.tx {
            std::mem::forget(q.replace(None));
        }
        if let Some(q) = self.ctrl.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            std::mem::forget(q);
        }
        tracing::error!(device = %self.device, "the device did not finish its reset: its buffers and rings are kept, never reused");
    }

    /// Refuses what needs a device that reset: after a reset that did not finish, only close.
    fn check_usable(&self) -> Result<(), EthError> {
        if self.wedged {
            return Err(self.error(VirtioError::Wedged));
        }
        Ok(())
    }

    /// The start sequence after negotiation: queues, DRIVER_OK, pairs, filters, MAC.
    fn bring_up(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        let features = self.negotiate().map_err(|e| self.error(e))?;
        if features != self.features {
            return Err(self.error(VirtioError::FeaturesChanged { now: features, was: self.features }));
        }
        let va = self.transport.uses_va();
        let (driver, device) = (self.driver, &self.device);
        let wrap = |e: VirtioError| EthError::driver(driver, device, e);
        for (i, slot) in self.rx.iter_mut().enumerate() {
            let Some(q) = slot.get_mut() else { continue };
            q.va = va;
            q.port = self.port;
            q.extra = std::sync::Arc::clone(&self.stats.rx[i]);
            if q.arm() == 0 {
                return Err(wrap(VirtioError::RxPoolEmpty { queue: i as u16 }));
            }
            q.vq.set_notifier(self.transport.setup_queue(&q.vq.ring().layout()).map_err(wrap)?);
        }
        for (i, slot) in self.tx.iter_mut().enumerate() {
            let Some(q) = slot.get_mut() else { continue };
            q.va = va;
            q.extra = std::sync::Arc::clone(&self.stats.tx[i]);
            q.release();
            q.vq.set_notifier(self.transport.setup_queue(&q.vq.ring().layout()).map_err(wrap)?);
        }
        if self.has(f::CTRL_VQ) {
            let index = 2 * self.cfg_pairs;
            let mut g = self.ctrl.lock().unwrap_or_else(|e| e.into_inner());
            if g.is_none() {
                let vq = self.make_vring(index, CTRL_RING_MAX, self.socket, CTRL_RING_MAX)?;
                if vq.size() < 4 {
                    return Err(self.error(VirtioError::CtrlQueueTooSmall { size: vq.size() }));
                }
                let buf = self.memory.reserve(
                    &self.zone_name("ctrl"),
                    ctrl::BUF_LEN,
                    self.socket,
                    64,
                    MemzoneFlags::IOVA_CONTIG,
                )?;
                *g = Some(CtrlQueue::new(vq, buf));
            }
            if let Some(q) = g.as_mut() {
                q.reset(va);
                q.vq.set_notifier(self.transport.setup_queue(&q.vq.ring().layout()).map_err(|e| self.error(e))?);
            }
        }
        self.transport.set_status(self.base_status() | status::DRIVER_OK).map_err(|e| self.error(e))?;
        self.started = true;
        // The RX rings were filled before the device was live.
        for slot in &mut self.rx {
            if let Some(q) = slot.get_mut() {
                q.vq.notify();
            }
        }
        if self.has(f::CTRL_VQ | f::MQ) && self.pairs() > 1 {
            self.control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &self.pairs().to_le_bytes())?;
        }
        if self.has(f::CTRL_VQ | f::CTRL_RX) {
            if let Err(e) = self.send_promiscuous(settings.promiscuous) {
                tracing::warn!(device = %self.device, "promiscuous mode not applied: {e}");
            }
            if let Err(e) = self.send_allmulticast(settings.allmulticast) {
                tracing::warn!(device = %self.device, "all-multicast mode not applied: {e}");
            }
        }
        if Some(settings.mac) != self.config_mac && self.mac_settable() {
            if let Err(e) = self.send_mac(settings.mac) {
                tracing::warn!(device = %self.device, "MAC {} not applied: {e}", settings.mac);
            }
        }
        Ok(())
    }
}

impl EthDev for VirtioNet {
    fn info(&self) -> DevInfo {
        let lim = |index: u16| {
            let size = self.transport.queue_max_size(index).max(1);
            DescLimits { min: MIN_DESC.min(size), max: u16::MAX, align: 1, default: size }
        };
        DevInfo {
            driver: self.driver,
            device: self.device.clone(),
            max_rx_queues: self.max_pairs,
            max_tx_queues: self.max_pairs,
            rx_desc_lim: lim(0),
            tx_desc_lim: lim(1),
            rx_offload_capa: RxOffloads::NONE,
            tx_offload_capa: TxOffloads::NONE,
            min_mtu: 68,
            max_mtu: self.max_mtu,
            max_rx_pktlen: u32::from(self.max_mtu) + FRAME_OVERHEAD,
            min_rx_bufsize: 64,
            socket: self.socket,
        }
    }

    fn default_mac(&self) -> MacAddr {
        self.default_mac
    }

    fn configure(&mut self, conf: &PortConf, _settings: &PortSettings) -> Result<(), EthError> {
        self.nb_rx = conf.nb_rx_queues;
        self.nb_tx = conf.nb_tx_queues;
        self.rx.resize_with(usize::from(self.nb_rx), Slot::empty);
        self.tx.resize_with(usize::from(self.nb_tx), Slot::empty);
        self.stats = PortStats::new(self.nb_rx, self.nb_tx);
        Ok(())
    }

    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let headroom = usize::from(conf.pool.headroom());
        if headroom < self.hdr_len {
            return Err(self.error(VirtioError::Headroom { headroom, hdr_len: self.hdr_len }));
        }
        let slot = &mut self.rx[usize::from(queue)];
        drop(slot.replace(None));
        let vq = self.make_vring(2 * queue, conf.nb_desc, conf.socket.or(self.socket), u16::MAX)?;
        let (mergeable, in_order) = (self.has(f::MRG_RXBUF), self.has(f::IN_ORDER));
        let q = RxQueue::new(vq, conf.pool.clone(), self.hdr_len, mergeable, in_order, conf.counters.clone());
        self.rx[usize::from(queue)].replace(Some(q));
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        drop(self.tx[usize::from(queue)].replace(None));
        let socket = conf.socket.or(self.socket);
        let vq = self.make_vring(2 * queue + 1, conf.nb_desc, socket, u16::MAX)?;
        let hdrs = self.memory.reserve(
            &self.zone_name(&format!("hdr{}", 2 * queue + 1)),
            usize::from(vq.size()) * self.hdr_len,
            socket,
            64,
            MemzoneFlags::IOVA_CONTIG,
        )?;
        let can_push = self.features & (f::ANY_LAYOUT | f::VERSION_1) != 0;
        let in_order = self.features & f::IN_ORDER != 0;
        let q = TxQueue::new(vq, hdrs, self.hdr_len, can_push, in_order, conf.counters.clone());
        self.tx[usize::from(queue)].replace(Some(q));
        Ok(())
    }

    fn start(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        self.check_usable()?;
        if let Err(e) = self.bring_up(settings) {
            self.quiesce()?;
            return Err(e);
        }
        tracing::debug!(device = %self.device, rx = self.nb_rx, tx = self.nb_tx, "virtio-net started");
        Ok(())
    }

    fn stop(&mut self) -> Result<(), EthError> {
        self.quiesce()
    }

    fn close(&mut self) -> Result<(), EthError> {
        if !self.wedged {
            // A failed reset has kept the queues; close still forgets the rest.
            let _ = self.quiesce();
        }
        for q in &mut self.rx {
            q.replace(None);
        }
        for q in &mut self.tx {
            q.replace(None);
        }
        *self.ctrl.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    fn reset(&mut self) -> Result<(), EthError> {
        self.close()?;
        self.rx.clear();
        self.tx.clear();
        self.nb_rx = 0;
        self.nb_tx = 0;
        self.stats = PortStats::new(0, 0);
        Ok(())
    }

    fn link(&self) -> LinkStatus {
        if !self.transport.connected() {
            return LinkStatus::DOWN;
        }
        if self.has(f::STATUS) && self.config_u16(config::STATUS) & config::VIRTIO_NET_S_LINK_UP == 0 {
            return LinkStatus::DOWN;
        }
        LinkStatus { autoneg: false, ..LinkStatus::up(LINK_SPEED_MBPS) }
    }

    /// CTRL_MAC_ADDR_SET on the control queue, or the config space of a legacy device.
    fn apply_mac(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        if !self.mac_settable() {
            return Err(EthError::NotSupported {
                driver: self.driver,
                what: "changing the MAC address (the device has no CTRL_MAC_ADDR)",
            });
        }
        if started {
            self.send_mac(settings.mac)?;
        }
        Ok(())
    }

    /// CTRL_RX_PROMISC on the control queue.
    fn apply_promiscuous(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        if !self.has(f::CTRL_VQ | f::CTRL_RX) {
            return Err(EthError::NotSupported { driver: self.driver, what: "promiscuous mode (no CTRL_RX)" });
        }
        if started {
            self.send_promiscuous(settings.promiscuous)?;
        }
        Ok(())
    }

    /// CTRL_RX_ALLMULTI on the control queue.
    fn apply_allmulticast(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        if !self.has(f::CTRL_VQ | f::CTRL_RX) {
            return Err(EthError::NotSupported { driver: self.driver, what: "all-multicast mode (no CTRL_RX)" });
        }
        if started {
            self.send_allmulticast(settings.allmulticast)?;
        }
        Ok(())
    }

    fn xstats(&self, _sw: &Stats) -> Vec<XStat> {
        self.stats.xstats()
    }

    fn xstats_reset(&self) {
        self.stats.reset();
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let busy = EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue };
        let q = self.rx.get(usize::from(queue)).and_then(Slot::take).ok_or(busy)?;
        Ok(Box::new(VirtioRx { q }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let busy = EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue };
        let q = self.tx.get(usize::from(queue)).and_then(Slot::take).ok_or(busy)?;
        Ok(Box::new(VirtioTx { q }))
    }
}

impl Drop for VirtioNet {
    fn drop(&mut self) {
        // Port::drop closes first; this covers a device dropped without a port around it. The
        // device forgets the rings before their buffers go back (fields drop after this), or
        // they are kept.
        if self.transport.reset().is_err() {
            self.keep_queues();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ring::VRING_DESC_F_NEXT;
    use crate::testdev::{device, frames, memory, pool, started};

    #[test]
    fn probe_reads_mac_link_and_pairs_and_leaves_the_device_reset() {
        let dev = device();
        let mem = memory();
        let port = dev.probe(&mem, None).unwrap();
        assert_eq!(port.mac().to_string(), "52:54:00:12:34:56");
        assert!(port.link().up);
        let info = port.info();
        assert_eq!((info.max_rx_queues, info.max_tx_queues, info.max_mtu), (2, 2, 9000));
        assert_eq!(info.rx_desc_lim.default, 64);
        assert_eq!(dev.state().status, 0, "quiet until start");
        assert_eq!(
            dev.probe_dev(&mem, None).unwrap().features,
            f::WANTED & !f::IN_ORDER,
            "CSUM and EVENT_IDX are not asked for"
        );
        dev.state().config[config::STATUS] = 0;
        assert!(!port.link().up, "link from config status");
        dev.state().config[config::STATUS] = 1;
        dev.state().connected = false;
        assert!(!port.link().up, "and from the transport");
        // A MAC from the context wins.
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        assert_eq!(dev.probe(&mem, Some(mac)).unwrap().mac(), mac);
    }

    #[test]
    fn a_modern_device_without_version_1_is_refused() {
        let dev = device();
        dev.state().features &= !f::VERSION_1;
        let err = dev.probe(&memory(), None).unwrap_err().to_string();
        assert!(err.contains("does not offer VERSION_1"), "{err}");
        // The same features on a transport that is not modern are fine.
        dev.state().kind = TransportKind::VhostUser;
        assert!(dev.probe(&memory(), None).is_ok());
    }

    #[test]
    fn a_refused_feature_set_is_an_error_naming_it() {
        let dev = device();
        dev.state().refuse = f::MRG_RXBUF;
        let err = dev.probe(&memory(), None).unwrap_err();
        assert!(
            matches!(err.driver_error::<VirtioError>(), Some(VirtioError::FeaturesRefused { wanted, .. }) if wanted & f::MRG_RXBUF != 0),
            "the driver's own error, typed: {err:?}"
        );
        let err = err.to_string();
        assert!(err.contains("refused the features") && err.contains("MRG_RXBUF"), "{err}");
        assert_eq!(dev.state().status, 0, "left reset");
    }

    #[test]
    fn missing_optional_features_are_no_error() {
        let dev = device();
        dev.state().kind = TransportKind::VhostUser;
        dev.state().features = f::CTRL_RX | f::MQ | f::CTRL_MAC_ADDR; // without CTRL_VQ: unusable
        let mem = memory();
        let pool = pool(&mem, 256);
        let probed = dev.probe_dev(&mem, None).unwrap();
        assert_eq!(probed.features, 0, "the control queue's features need CTRL_VQ");
        assert_eq!(probed.hdr_len, net_hdr::LEN);
        drop(probed);
        let port = started(&dev, &mem, 1, &pool);
        assert!(port.mac().is_local() && port.mac().is_valid_unicast(), "a random local MAC");
        assert!(matches!(port.set_promiscuous(true), Err(EthError::NotSupported { .. })));
        assert!(matches!(port.set_allmulticast(true), Err(EthError::NotSupported { .. })));
        assert!(matches!(port.set_mac(port.mac()), Err(EthError::NotSupported { .. })));
        assert_eq!(port.info().max_rx_queues, 1);
        assert!(dev.has_queue(0) && dev.has_queue(1) && !dev.has_queue(2), "no control queue");
        assert!(port.link().up, "no STATUS: up");
        // The data path works: TX (two descriptors, no ANY_LAYOUT) and RX (10-byte header).
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 1, 60);
        assert_eq!(tx.tx_burst(&mut bufs), 1);
        let got = dev.tx_pop(1);
        assert_eq!((got[0].0.len(), got[0].1), (70, 2));
        assert!(dev.rx_push(0, &[7u8; 60], net_hdr::LEN));
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        assert_eq!(rx.rx_burst(&mut out, 32), 1);
        assert_eq!(out[0].data(), &[7u8; 60]);
    }

    #[test]
    fn start_sets_up_the_queues_and_stop_and_close_return_every_buffer() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 2, &pool);
        {
            let s = dev.state();
            assert_eq!(s.status, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
            assert_eq!(s.queues.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4], "2 pairs and control");
        }
        for q in [0, 1, 2, 3, 4] {
            assert_eq!(dev.avail_flags(q), crate::spec::ring::VRING_AVAIL_F_NO_INTERRUPT);
        }
        assert_eq!(dev.avail_pending(0), 64, "RX ring full");
        assert_eq!(pool.mempool().in_use(), 128);
        {
            let mut tx = port.tx_queue(1).unwrap();
            let mut bufs = frames(&pool, 10, 100);
            assert_eq!(tx.tx_burst(&mut bufs), 10);
        }
        assert_eq!(pool.mempool().in_use(), 138, "TX buffers held until the device is done");
        port.stop().unwrap();
        assert!(pool.mempool().is_full(), "stop gives every buffer back");
        assert_eq!(dev.state().status, 0);
        port.start().unwrap();
        assert_eq!(pool.mempool().in_use(), 128);
        assert!(dev.rx_push(2, &[1u8; 64], 12), "the refilled rings work again");
        let mut out = Vec::new();
        assert_eq!(port.rx_queue(1).unwrap().rx_burst(&mut out, 8), 1);
        drop(out);
        port.close().unwrap();
        assert!(pool.mempool().is_full(), "close too");
        assert!(dev.state().queues.is_empty());
    }

    #[test]
    fn control_commands_go_on_the_control_queue() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 2, &pool);
        let log = std::mem::take(&mut dev.state().ctrl_log);
        assert_eq!(
            log,
            [
                (VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, vec![2, 0]),
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, vec![0]),
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, vec![0]),
            ]
        );
        port.set_promiscuous(true).unwrap();
        port.set_allmulticast(true).unwrap();
        let mac: MacAddr = "02:11:22:33:44:55".parse().unwrap();
        port.set_mac(mac).unwrap();
        let log = std::mem::take(&mut dev.state().ctrl_log);
        assert_eq!(
            log,
            [
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, vec![1]),
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, vec![1]),
                (VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac.0.to_vec()),
            ]
        );
        assert!(port.promiscuous() && port.allmulticast() && port.mac() == mac);
        // A refusal is an error and changes nothing.
        dev.state().ctrl_ack = VIRTIO_NET_ERR;
        let err = port.set_promiscuous(false).unwrap_err().to_string();
        assert!(err.contains("refused control command"), "{err}");
        assert!(port.promiscuous());
    }

    #[test]
    fn control_commands_take_descriptors_in_ring_order() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 1, &pool);
        port.set_promiscuous(true).unwrap();
        port.set_allmulticast(true).unwrap();
        let s = dev.state();
        let (_, q) = s.queues.iter().next_back().expect("the control queue, last");
        let heads: Vec<u16> = (0..q.view.avail_idx()).map(|k| q.view.avail_ring(k)).collect();
        // Each command is header, data, ack: consecutive descriptors, chains back to back.
        assert_eq!(heads, (0..heads.len() as u16).map(|k| 3 * k).collect::<Vec<_>>());
        let (_, _, flags, next) = q.view.desc(heads[1]);
        assert_eq!((flags & VRING_DESC_F_NEXT, next), (VRING_DESC_F_NEXT, heads[1] + 1));
    }

    #[test]
    fn after_a_control_timeout_no_command_goes_out_until_the_next_start() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        dev.state().ctrl_silent = true;
        let err = port.set_promiscuous(true).unwrap_err().to_string();
        assert!(err.contains("did not answer"), "{err}");
        // The device wakes up and answers the old chain: the next command must not take that
        // answer for its own.
        dev.state().ctrl_silent = false;
        let t = std::time::Instant::now();
        let err = port.set_allmulticast(true).unwrap_err().to_string();
        assert!(err.contains("stop and start the port"), "{err}");
        assert!(t.elapsed() < crate::ctrl::TIMEOUT, "refused at once, without waiting");
        port.stop().unwrap();
        port.start().unwrap();
        port.set_allmulticast(true).unwrap();
        assert!(port.allmulticast());
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }

    #[test]
    fn a_device_that_does_not_finish_its_reset_keeps_its_buffers() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        let posted = pool.mempool().in_use();
        assert!(posted > 0, "the RX ring holds buffers");
        dev.state().reset_stuck = true;
        let err = port.stop().unwrap_err().to_string();
        assert!(err.contains("still not 0"), "{err}");
        // The device may still write into them: none went back to the pool.
        assert_eq!(pool.mempool().in_use(), posted);
        assert!(dev.state().queues.contains_key(&0), "the device kept its queues");
        let err = port.start().unwrap_err().to_string();
        assert!(err.contains("can only be closed"), "{err}");
        port.close().unwrap();
        assert_eq!(pool.mempool().in_use(), posted, "kept for the life of the process");
        dev.state().reset_stuck = false;
    }

    #[test]
    fn settings_made_while_stopped_are_applied_at_start() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        port.stop().unwrap();
        dev.state().ctrl_log.clear();
        port.set_promiscuous(true).unwrap();
        let mac: MacAddr = "02:11:22:33:44:66".parse().unwrap();
        port.set_mac(mac).unwrap();
        assert!(dev.state().ctrl_log.is_empty(), "nothing sent while stopped");
        port.start().unwrap();
        let log = std::mem::take(&mut dev.state().ctrl_log);
        assert_eq!(
            log,
            [
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, vec![1]),
                (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, vec![0]),
                (VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac.0.to_vec()),
            ],
            "one pair: no VQ_PAIRS_SET"
        );
    }

    #[test]
    fn a_transport_that_answers_commands_itself_gets_them() {
        let dev = device();
        dev.state().emulate_ctrl = true;
        let mem = memory();
        let pool = pool(&mem, 300);
        let port = started(&dev, &mem, 2, &pool);
        port.set_promiscuous(true).unwrap();
        let log = std::mem::take(&mut dev.state().ctrl_log);
        assert_eq!(log.len(), 4);
        assert_eq!(log[0], (VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, vec![2, 0]));
        assert_eq!(log[3], (VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, vec![1]));
    }

    #[test]
    fn a_legacy_device_takes_a_new_mac_in_its_config() {
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::Legacy;
            s.features = f::MAC | f::STATUS | f::MRG_RXBUF | f::ANY_LAYOUT;
        }
        let mem = memory();
        let pool = pool(&mem, 200);
        let port = started(&dev, &mem, 1, &pool);
        let mac: MacAddr = "02:11:22:33:44:77".parse().unwrap();
        port.set_mac(mac).unwrap();
        assert_eq!(&dev.state().config[..6], &mac.0);
    }

    #[test]
    fn queue_sizes_follow_a_settable_device() {
        let dev = device();
        dev.state().settable = true;
        let mem = memory();
        let pool = pool(&mem, 200);
        let mut port = dev.probe(&mem, None).unwrap();
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 40, &pool).unwrap();
        port.tx_queue_setup(0, 1000).unwrap();
        port.start().unwrap();
        assert_eq!(dev.state().queues[&0].layout.size, 64, "rounded up to a power of two");
        assert_eq!(dev.state().queues[&1].layout.size, 64, "clamped to the device's");
    }

    #[test]
    fn the_mtu_must_fit_the_rx_buffers() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 200);
        let mut port = started(&dev, &mem, 1, &pool);
        port.stop().unwrap();
        assert!(port.set_mtu(2000).is_ok());
        let err = port.set_mtu(4000).unwrap_err().to_string();
        assert!(err.contains("buffers hold 2048"), "{err}");
        assert!(matches!(port.set_mtu(9001), Err(EthError::Mtu { max: 9000, .. })));
    }
}
