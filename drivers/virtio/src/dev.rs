//! The virtio-net port: the control path ([`EthDev`], DPDK's `virtio_eth_dev_ops`), written
//! once against [`Transport`]. Bringing the device up and resetting it is [`crate::init`]'s; the
//! configuration space is [`crate::config`]'s.
//!
//! Queues: RX of pair `i` is virtqueue `2i`, TX `2i + 1`, the control queue `2 * max_pairs`
//! (virtio 1.2, 5.1.2). Every queue's `avail.flags` says `VRING_AVAIL_F_NO_INTERRUPT`: we poll.
//! Control commands (5.1.6.5) go on the control queue, or to a transport that answers them
//! itself (virtio-user).
//!
//! Offloads are features (5.1.3): the device's offer makes the port's capabilities, and what
//! the configuration turns on decides which offload features every start negotiates (as DPDK's
//! `virtio_dev_configure` does): RX `SCATTER` with `MRG_RXBUF` (a frame over several buffers
//! becomes a chain), RX `TCP_CKSUM`/`UDP_CKSUM` with `GUEST_CSUM`, RX `TCP_LRO` with
//! `GUEST_TSO4` and `GUEST_TSO6`, TX `MULTI_SEGS` always (indirect descriptors where
//! `RING_INDIRECT_DESC` was negotiated), TX `TCP_CKSUM`/`UDP_CKSUM` with `CSUM`, TX `TCP_TSO` with
//! `HOST_TSO4` and `HOST_TSO6`.
//!
//! What it does not: IPv4 header checksums (virtio has none), VLAN strip and insert, UDP
//! segmentation, packed rings, event index, RSS, interrupts.

use std::sync::Mutex;

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings, RxBurst,
    RxOffloads, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, XStat,
};
use burst_mem::{Memory, MemzoneFlags};

use crate::config;
use crate::ctrl::CtrlQueue;
use crate::error::VirtioError;
use crate::rx::{RxQueue, VirtioRx};
use crate::spec::ctrl::*;
use crate::spec::features as f;
use crate::stats::PortStats;
use crate::transport::{CtrlCommand, Transport};
use crate::tx::{TxLayout, TxQueue, VirtioTx, INDIRECT_ENTRIES, TX_SEG_MAX};
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

/// The offload features ([`f::OFFLOADS`]) that `rx` and `tx` offloads need (DPDK's
/// `virtio_dev_configure`): a checksum offload its direction's checksum feature, LRO and TSO
/// both segmentation features of their direction and its checksum feature too (5.1.3.1).
pub(crate) fn offload_features(rx: RxOffloads, tx: TxOffloads) -> u64 {
    let mut bits = 0;
    if rx.intersects(RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM) {
        bits |= f::GUEST_CSUM;
    }
    if rx.contains(RxOffloads::TCP_LRO) {
        bits |= f::GUEST_CSUM | f::GUEST_TSO4 | f::GUEST_TSO6;
    }
    if tx.intersects(TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM) {
        bits |= f::CSUM;
    }
    if tx.contains(TxOffloads::TCP_TSO) {
        bits |= f::CSUM | f::HOST_TSO4 | f::HOST_TSO6;
    }
    bits
}

/// The largest frame without an MTU from the device (DPDK's `VIRTIO_MAX_RX_PKTLEN`).
pub const MAX_RX_PKTLEN: u32 = 9728;

/// Ethernet header, VLAN tag and CRC around the MTU (DPDK's virtio counts the same).
pub(crate) const FRAME_OVERHEAD: u32 = 14 + 4 + 4;

/// Speed reported with the link up: virtio has none (DPDK's virtio reports 10G by default too).
const LINK_SPEED_MBPS: u32 = 10_000;

/// Fewest descriptors asked for (the device's size is used anyway unless it is settable).
const MIN_DESC: u16 = 32;

/// One virtio-net port. Its fields are the crate's: `init.rs` brings the device up and resets
/// it, `dev.rs` serves the port, on the same state.
pub struct VirtioNet {
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) driver: &'static str,
    pub(crate) device: DeviceName,
    pub(crate) memory: Memory,
    pub(crate) port: PortId,
    pub(crate) socket: Option<u32>,
    pub(crate) _keep: Option<Box<dyn Send + Sync>>,
    /// Negotiated at probe: what every start asks for, with the offload bits in `offloads`.
    pub(crate) features: u64,
    /// What the device offered at probe: its offload bits are the port's capabilities.
    pub(crate) offered: u64,
    /// The offload features ([`f::OFFLOADS`]) the configuration asked for.
    pub(crate) offloads: u64,
    pub(crate) hdr_len: usize,
    pub(crate) max_pairs: u16,
    /// The device's `max_virtqueue_pairs` (1 without MQ): the control queue is virtqueue
    /// `2 * cfg_pairs` (5.1.2) even when fewer pairs are usable.
    pub(crate) cfg_pairs: u16,
    pub(crate) max_mtu: u16,
    /// The address the port comes with: the context's, the device's config, or a random one.
    pub(crate) default_mac: MacAddr,
    pub(crate) started: bool,
    /// The port is unusable: the device did not finish a reset, so its queues were kept.
    pub(crate) wedged: bool,
    pub(crate) nb_rx: u16,
    pub(crate) nb_tx: u16,
    pub(crate) rx: Vec<Slot<RxQueue>>,
    pub(crate) tx: Vec<Slot<TxQueue>>,
    pub(crate) ctrl: Mutex<Option<CtrlQueue>>,
    pub(crate) stats: PortStats,
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

impl VirtioNet {
    /// `e`, for this port's driver and device.
    pub(crate) fn error(&self, e: VirtioError) -> EthError {
        EthError::driver(self.driver, &self.device, e)
    }

    /// Whether every feature in `bits` was negotiated.
    pub(crate) fn has(&self, bits: u64) -> bool {
        self.features & bits == bits
    }

    /// Whether every feature in `bits` is negotiated at start: at probe, or as an offload the
    /// configuration asked for.
    pub(crate) fn will_have(&self, bits: u64) -> bool {
        (self.features | self.offloads) & bits == bits
    }

    /// Whether the device offered every feature in `bits`.
    fn offers(&self, bits: u64) -> bool {
        self.offered & bits == bits
    }

    /// The offloads the device's offer allows: (per RX queue, RX, TX).
    fn offload_capa(&self) -> (RxOffloads, RxOffloads, TxOffloads) {
        let mut rx = RxOffloads::NONE;
        // Chains come from mergeable buffers (5.1.6.3.1: without them a frame is one buffer).
        if self.has(f::MRG_RXBUF) {
            rx |= RxOffloads::SCATTER;
        }
        let rx_queue = rx;
        if self.offers(f::GUEST_CSUM) {
            rx |= RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM;
            // 5.1.3.1: GUEST_TSO4/6 need GUEST_CSUM; the coalesced packets need chains.
            if self.offers(f::GUEST_TSO4 | f::GUEST_TSO6) && self.has(f::MRG_RXBUF) {
                rx |= RxOffloads::TCP_LRO;
            }
        }
        let mut tx = TxOffloads::MULTI_SEGS;
        if self.offers(f::CSUM) {
            tx |= TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM;
            // 5.1.3.1: HOST_TSO4/6 need CSUM.
            if self.offers(f::HOST_TSO4 | f::HOST_TSO6) {
                tx |= TxOffloads::TCP_TSO;
            }
        }
        (rx_queue, rx, tx)
    }

    /// A name for one of this port's memzones.
    pub(crate) fn zone_name(&self, what: &str) -> String {
        let mut dev = self.device.to_string();
        dev.truncate(28);
        format!("vnet_{dev}_{}_{what}", self.port)
    }

    /// A ring for virtqueue `index` sized for `nb_desc`.
    pub(crate) fn make_vring(
        &self,
        index: u16,
        nb_desc: u16,
        socket: Option<u32>,
        cap: u16,
    ) -> Result<Vring, EthError> {
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
            self.transport.write_config(crate::spec::config::MAC, &mac.0);
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

    /// What a live device takes only on the control queue, after DRIVER_OK (5.1.5): the queue
    /// pairs in use, the receive modes, and the port's MAC when the device holds another. A
    /// refusal fails the start, as DPDK's `eth_dev_config_restore` does: a port must not say a
    /// mode is on that its device does not apply.
    pub(crate) fn apply_settings(&self, settings: &PortSettings) -> Result<(), EthError> {
        if self.has(f::CTRL_VQ | f::MQ) && self.pairs() > 1 {
            self.control(VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &self.pairs().to_le_bytes())?;
        }
        if self.has(f::CTRL_VQ | f::CTRL_RX) {
            self.send_promiscuous(settings.promiscuous)?;
            self.send_allmulticast(settings.allmulticast)?;
        }
        // What the device filters on now: its config after this start's reset. A device may
        // keep an address it was given before (a legacy config, a vhost-user back-end), so the
        // address read at probe says nothing of it.
        let held = crate::config::read(&*self.transport, self.features).mac;
        if Some(settings.mac) != held && self.mac_settable() {
            self.send_mac(settings.mac)?;
        }
        Ok(())
    }
}

impl EthDev for VirtioNet {
    fn info(&self) -> DevInfo {
        let settable = self.transport.queue_size_settable();
        let lim = |index: u16| {
            let size = self.transport.queue_max_size(index).max(1);
            // The smallest ring a queue can get: a packet's descriptors (and an indirect table's
            // entries, 2.7.5.3.1) never outnumber it.
            let ring_min = if settable { MIN_DESC.min(size) } else { size };
            let nb_seg_max = TX_SEG_MAX.min(ring_min.saturating_sub(1)).max(1);
            DescLimits { min: MIN_DESC.min(size), max: u16::MAX, align: 1, default: size, nb_seg_max }
        };
        let (rx_queue_capa, rx_capa, tx_capa) = self.offload_capa();
        DevInfo {
            driver: self.driver,
            device: self.device.clone(),
            max_rx_queues: self.max_pairs,
            max_tx_queues: self.max_pairs,
            rx_desc_lim: lim(0),
            tx_desc_lim: lim(1),
            rx_offload_capa: rx_capa,
            rx_queue_offload_capa: rx_queue_capa,
            tx_offload_capa: tx_capa,
            tx_queue_offload_capa: TxOffloads::MULTI_SEGS,
            min_mtu: config::MIN_MTU,
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
        self.offloads = offload_features(conf.rx_offloads, conf.tx_offloads) & self.offered;
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
        let scatter = conf.offloads.contains(RxOffloads::SCATTER);
        if conf.offloads.contains(RxOffloads::TCP_LRO) && !scatter {
            return Err(self.error(VirtioError::LroNeedsScatter { queue }));
        }
        let slot = &mut self.rx[usize::from(queue)];
        drop(slot.replace(None));
        let vq = self.make_vring(2 * queue, conf.nb_desc, conf.socket.or(self.socket), u16::MAX)?;
        let (mergeable, in_order) = (self.has(f::MRG_RXBUF), self.has(f::IN_ORDER));
        let q = RxQueue::new(vq, conf.pool.clone(), self.hdr_len, mergeable, in_order, scatter, conf.counters.clone());
        self.rx[usize::from(queue)].replace(Some(q));
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        drop(self.tx[usize::from(queue)].replace(None));
        let socket = conf.socket.or(self.socket);
        let index = 2 * queue + 1;
        let vq = self.make_vring(index, conf.nb_desc, socket, u16::MAX)?;
        let size = usize::from(vq.size());
        let zone = |what: &str, len: usize| {
            self.memory.reserve(&self.zone_name(&format!("{what}{index}")), len, socket, 64, MemzoneFlags::IOVA_CONTIG)
        };
        let hdrs = zone("hdr", size * self.hdr_len)?;
        let layout = TxLayout {
            hdr_len: self.hdr_len,
            can_push: self.features & (f::ANY_LAYOUT | f::VERSION_1) != 0,
            in_order: self.has(f::IN_ORDER),
            multi_segs: conf.offloads.contains(TxOffloads::MULTI_SEGS),
            offload: self.will_have(f::CSUM),
        };
        // Indirect tables only where chains are sent and the device takes them.
        let indirect = if layout.multi_segs && self.has(f::RING_INDIRECT_DESC) {
            Some(zone("ind", size * INDIRECT_ENTRIES * crate::spec::ring::DESC_SIZE)?)
        } else {
            None
        };
        let q = TxQueue::new(vq, hdrs, indirect, layout, conf.counters.clone());
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

    fn link(&self, _started: bool) -> LinkStatus {
        if !config::link_up(&*self.transport, self.features) {
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
    use crate::testdev::{device, memory, pool, started};
    use crate::transport::TransportKind;

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

    /// Review 15: the MAC a device holds after a restart is the port's. A device whose address
    /// outlives a reset (this legacy device's config, as virtio-user's `Shared::mac` does: its
    /// `reset` leaves the address CTRL_MAC_ADDR_SET wrote) keeps the last address it was given;
    /// start compares the port's address with the config MAC read at probe, not with what the
    /// device holds now, so setting the probe-time address back while stopped never reaches it.
    /// (Before the change, a port whose MAC had been set re-sent it at every start.)
    #[test]
    fn the_device_holds_the_ports_mac_after_a_restart() {
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::Legacy;
            s.features = f::MAC | f::STATUS | f::MRG_RXBUF | f::ANY_LAYOUT;
        }
        let mem = memory();
        let pool = pool(&mem, 200);
        let mut port = started(&dev, &mem, 1, &pool);
        let first = port.mac();
        port.set_mac("02:11:22:33:44:77".parse().unwrap()).unwrap();
        port.stop().unwrap();
        port.set_mac(first).unwrap();
        port.start().unwrap();
        assert_eq!(
            MacAddr(dev.state().config[..6].try_into().unwrap()),
            port.mac(),
            "the port says {} but the device filters on another address",
            port.mac()
        );
        port.stop().unwrap();
    }

    /// Review 15: a mode set while stopped and refused by the device at start is not the
    /// port's. `set_promiscuous` on a stopped port only checks CTRL_RX and records the mode;
    /// start sends it, and when the device refuses, only logs a warning and starts: the port
    /// then says promiscuous while the device filters. (DPDK's `eth_dev_config_restore` fails
    /// the start instead.)
    #[test]
    fn a_mode_the_device_refuses_at_start_is_not_reported_as_on() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        port.stop().unwrap();
        port.set_promiscuous(true).unwrap();
        dev.state().ctrl_ack = VIRTIO_NET_ERR;
        let started = port.start();
        assert!(
            started.is_err() || !port.promiscuous(),
            "started ({started:?}) with promiscuous mode refused by the device, yet the port says it is on"
        );
        port.stop().unwrap();
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
