//! Device initialisation (virtio 1.2, 3.1.1 "Driver Requirements: Device Initialization") and
//! its undoing, the reset (2.4), written once against [`Transport`].
//!
//! Every start runs the whole sequence ([`VirtioNet::bring_up`]):
//!
//! 1. Reset the device.
//! 2. Set ACKNOWLEDGE: the guest noticed the device.
//! 3. Set DRIVER: the guest knows how to drive it.
//! 4. Read the device's feature bits and write the subset the driver understands.
//! 5. Set FEATURES_OK (a legacy device has none, and skips 5 and 6: 3.1.2).
//! 6. Read the status again: FEATURES_OK must still be set, else the device refused the subset.
//! 7. Device-specific setup: each virtqueue's ring given to the device (4.1.5.1.3), the RX
//!    rings filled with buffers first (5.1.5, 5.1.6.3).
//! 8. Set DRIVER_OK: the device is live.
//!
//! Then what only a live device takes, on the control queue (5.1.5, 5.1.6.5): the queue pairs
//! in use, the receive modes and the MAC.
//!
//! The probe ([`VirtioNet::new`]) runs steps 1 to 6, reads the device's configuration
//! ([`crate::config`]) and which queues exist, and resets the device again: it stays quiet until
//! the port starts. A stop resets it and takes every buffer back ([`VirtioNet::quiesce`]); a
//! device that does not confirm its reset may still write into them, so they are kept instead.

use std::sync::{Arc, Mutex};

use burst_ethdev::{EthError, PortSettings};
use burst_mem::MemzoneFlags;

use crate::config::{self, random_mac};
use crate::ctrl::{self, CtrlQueue};
use crate::dev::{DevContext, VirtioNet, FRAME_OVERHEAD, MAX_RX_PKTLEN};
use crate::error::VirtioError;
use crate::spec::{features as f, net_hdr, status};
use crate::stats::PortStats;
use crate::transport::{Transport, TransportKind};

/// Largest control queue used.
const CTRL_RING_MAX: u16 = 64;

/// What features to ask for from what the device offers: everything [`f::WANTED`] and the
/// offload bits of `offloads` (the port's configuration asked for them), minus what depends on
/// a feature that is missing (virtio 1.2, 5.1.3.1: the control queue's commands and MQ need
/// CTRL_VQ, GUEST_TSO4/6 need GUEST_CSUM, HOST_TSO4/6 need CSUM).
pub(crate) fn choose_features(offered: u64, offloads: u64) -> u64 {
    let mut want = offered & (f::WANTED | (offloads & f::OFFLOADS));
    if want & f::CTRL_VQ == 0 {
        want &= !(f::CTRL_RX | f::CTRL_MAC_ADDR | f::MQ);
    }
    if want & f::GUEST_CSUM == 0 {
        want &= !(f::GUEST_TSO4 | f::GUEST_TSO6);
    }
    if want & f::CSUM == 0 {
        want &= !(f::HOST_TSO4 | f::HOST_TSO6);
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

/// The status after step 6 for `features`: ACKNOWLEDGE | DRIVER, and FEATURES_OK for a
/// virtio 1.x device.
fn negotiated_status(features: u64) -> u8 {
    let s = status::ACKNOWLEDGE | status::DRIVER;
    if features & f::VERSION_1 != 0 {
        s | status::FEATURES_OK
    } else {
        s
    }
}

/// Steps 1 to 6 of 3.1.1: reset, ACKNOWLEDGE, DRIVER, features (with the offload bits of
/// `offloads`), FEATURES_OK. Returns the negotiated features and the device's offer, the device
/// left at [`negotiated_status`].
pub(crate) fn negotiate(t: &dyn Transport, offloads: u64) -> Result<(u64, u64), VirtioError> {
    // 1. Reset; the transport waits until the device says it is done (4.1.4.3.2).
    t.reset()?;
    // 2, 3. ACKNOWLEDGE, then DRIVER (2.1).
    t.set_status(status::ACKNOWLEDGE)?;
    t.set_status(status::ACKNOWLEDGE | status::DRIVER)?;
    // 4. The device's features (2.2), of which a modern device must offer VERSION_1 (6); ours
    // are a subset of them.
    let offered = t.device_features();
    if t.kind() == TransportKind::Modern && offered & f::VERSION_1 == 0 {
        return Err(VirtioError::NoVersion1 { offered });
    }
    let want = choose_features(offered, offloads);
    t.set_driver_features(want)?;
    // 5, 6 (not for legacy, 3.1.2): FEATURES_OK, which the device keeps only if it takes the
    // subset; else the driver gives up on the device (3.1.1: "set the FAILED status bit").
    if want & f::VERSION_1 != 0 {
        t.set_status(negotiated_status(want))?;
        if t.status() & status::FEATURES_OK == 0 {
            let _ = t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FAILED);
            return Err(VirtioError::FeaturesRefused { wanted: want, offered });
        }
    }
    Ok((want, offered))
}

/// What the probe learns about a device.
struct Probed {
    features: u64,
    /// What the device offers (its offload bits are not negotiated until configured).
    offered: u64,
    /// The queue pairs whose queues exist.
    max_pairs: u16,
    /// The device's `max_virtqueue_pairs` (1 without MQ).
    cfg_pairs: u16,
    config: config::NetConfig,
}

/// Steps 1 to 6, the config and the queues the device has, then a reset.
fn probe(t: &dyn Transport) -> Result<Probed, VirtioError> {
    let (features, offered) = negotiate(t, 0).inspect_err(|_| {
        // No queue was given yet: nothing to keep if the reset fails too.
        let _ = t.reset();
    })?;
    let config = config::read(t, features);
    // Pairs whose queues exist (a device may offer MQ but fewer queues).
    let mut max_pairs = config.max_pairs;
    while max_pairs > 1 && (t.queue_max_size(2 * (max_pairs - 1)) == 0 || t.queue_max_size(2 * max_pairs - 1) == 0) {
        max_pairs -= 1;
    }
    if t.queue_max_size(0) == 0 || t.queue_max_size(1) == 0 {
        let _ = t.reset();
        return Err(VirtioError::NoQueuePair);
    }
    // Quiet until start.
    t.reset()?;
    Ok(Probed { features, offered, max_pairs, cfg_pairs: config.max_pairs, config })
}

impl VirtioNet {
    /// Probes the device behind `transport`: negotiates, reads the MAC, MTU and queue pairs,
    /// and leaves the device reset.
    pub(crate) fn new(transport: Box<dyn Transport>, ctx: DevContext) -> Result<VirtioNet, EthError> {
        let p = probe(&*transport).map_err(|e| EthError::driver(ctx.driver, &ctx.device, e))?;
        let mac = ctx.mac.or(p.config.mac).unwrap_or_else(random_mac);
        tracing::debug!(
            device = %ctx.device,
            transport = %transport.kind(),
            %mac,
            pairs = p.max_pairs,
            features = %f::describe(p.features),
            "virtio-net probed"
        );
        Ok(VirtioNet {
            transport,
            driver: ctx.driver,
            device: ctx.device,
            memory: ctx.memory,
            port: ctx.port,
            socket: ctx.socket,
            _keep: ctx.keep,
            features: p.features,
            offered: p.offered,
            offloads: 0,
            hdr_len: hdr_len(p.features),
            max_pairs: p.max_pairs,
            cfg_pairs: p.cfg_pairs,
            max_mtu: p.config.mtu.unwrap_or((MAX_RX_PKTLEN - FRAME_OVERHEAD) as u16),
            default_mac: mac,
            started: false,
            wedged: false,
            nb_rx: 0,
            nb_tx: 0,
            rx: Vec::new(),
            tx: Vec::new(),
            ctrl: Mutex::new(None),
            stats: PortStats::new(0, 0),
        })
    }

    /// The whole of 3.1.1 for a start, then the settings a live device takes. On error the
    /// caller resets the device ([`VirtioNet::quiesce`]).
    pub(crate) fn bring_up(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        // Steps 1 to 6, which must give what the probe got and the offloads the configuration
        // asked for: the queues were laid out for them.
        let (features, _) = negotiate(&*self.transport, self.offloads).map_err(|e| self.error(e))?;
        let was = choose_features(self.offered, self.offloads);
        if features != was {
            return Err(self.error(VirtioError::FeaturesChanged { now: features, was }));
        }
        // 7. The virtqueues.
        self.setup_queues()?;
        // 8. DRIVER_OK.
        self.transport.set_status(negotiated_status(features) | status::DRIVER_OK).map_err(|e| self.error(e))?;
        self.started = true;
        // The RX rings were filled before the device was live: tell it now.
        for slot in &mut self.rx {
            if let Some(q) = slot.get_mut() {
                q.vq.notify();
            }
        }
        self.apply_settings(settings)
    }

    /// Step 7: every queue set up gets its ring cleared (RX: filled from its pool) and given
    /// to the device, then the control queue (5.1.2: virtqueue `2 * max_virtqueue_pairs`), made
    /// at the first start.
    fn setup_queues(&mut self) -> Result<(), EthError> {
        let va = self.transport.uses_va();
        // RX headers carry offload fields only with GUEST_CSUM (5.1.6.4).
        let rx_offload = self.will_have(f::GUEST_CSUM);
        let (t, driver, device) = (&*self.transport, self.driver, &self.device);
        let wrap = |e: VirtioError| EthError::driver(driver, device, e);
        for (i, slot) in self.rx.iter_mut().enumerate() {
            let Some(q) = slot.get_mut() else { continue };
            q.va = va;
            q.port = self.port;
            q.offload = rx_offload;
            q.extra = Arc::clone(&self.stats.rx[i]);
            if q.arm() == 0 {
                return Err(wrap(VirtioError::RxPoolEmpty { queue: i as u16 }));
            }
            q.vq.set_notifier(t.setup_queue(&q.vq.ring().layout()).map_err(wrap)?);
        }
        for (i, slot) in self.tx.iter_mut().enumerate() {
            let Some(q) = slot.get_mut() else { continue };
            q.va = va;
            q.extra = Arc::clone(&self.stats.tx[i]);
            q.release();
            q.vq.set_notifier(t.setup_queue(&q.vq.ring().layout()).map_err(wrap)?);
        }
        if !self.has(f::CTRL_VQ) {
            return Ok(());
        }
        let mut g = self.ctrl.lock().unwrap_or_else(|e| e.into_inner());
        let q = match g.take() {
            Some(q) => q,
            None => self.make_ctrl_queue()?,
        };
        let q = g.insert(q);
        q.reset(va);
        q.vq.set_notifier(t.setup_queue(&q.vq.ring().layout()).map_err(wrap)?);
        Ok(())
    }

    /// The control queue's ring and command buffer.
    fn make_ctrl_queue(&self) -> Result<CtrlQueue, EthError> {
        let vq = self.make_vring(2 * self.cfg_pairs, CTRL_RING_MAX, self.socket, CTRL_RING_MAX)?;
        if vq.size() < 4 {
            return Err(self.error(VirtioError::CtrlQueueTooSmall { size: vq.size() }));
        }
        let name = self.zone_name("ctrl");
        let buf = self.memory.reserve(&name, ctrl::BUF_LEN, self.socket, 64, MemzoneFlags::IOVA_CONTIG)?;
        Ok(CtrlQueue::new(vq, buf))
    }

    /// Resets the device and takes every buffer back. If the device does not confirm its reset,
    /// it may still write into the buffers and rings it was given: they are kept (leaked on
    /// purpose, see [`VirtioNet::keep_queues`]) and the port refuses to start again.
    pub(crate) fn quiesce(&mut self) -> Result<(), EthError> {
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
    pub(crate) fn keep_queues(&mut self) {
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
    pub(crate) fn check_usable(&self) -> Result<(), EthError> {
        if self.wedged {
            return Err(self.error(VirtioError::Wedged));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use burst_ethdev::{MacAddr, PortConf, RxOffloads, TxOffloads};

    use super::*;
    use crate::spec::config::STATUS;
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
        dev.state().config[STATUS] = 0;
        assert!(!port.link().up, "link from config status");
        dev.state().config[STATUS] = 1;
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
    fn offloads_are_the_offers_and_negotiated_only_when_configured() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = dev.probe(&mem, None).unwrap();
        let info = port.info().clone();
        let rx_all = RxOffloads::SCATTER | RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM | RxOffloads::TCP_LRO;
        let tx_all = TxOffloads::MULTI_SEGS | TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM | TxOffloads::TCP_TSO;
        assert_eq!((info.rx_offload_capa, info.tx_offload_capa), (rx_all, tx_all));
        assert_eq!(
            (info.rx_queue_offload_capa, info.tx_queue_offload_capa),
            (RxOffloads::SCATTER, TxOffloads::MULTI_SEGS)
        );
        let mut start = |rx: RxOffloads, tx: TxOffloads| {
            port.configure(&PortConf { rx_offloads: rx, tx_offloads: tx, ..PortConf::queues(1, 1) }).unwrap();
            port.rx_queue_setup(0, 0, &pool).unwrap();
            port.tx_queue_setup(0, 0).unwrap();
            port.start().unwrap();
            let got = dev.state().driver_features;
            port.stop().unwrap();
            got
        };
        let got = start(RxOffloads::TCP_CKSUM, TxOffloads::TCP_TSO);
        assert_eq!(got & f::OFFLOADS, f::GUEST_CSUM | f::CSUM | f::HOST_TSO4 | f::HOST_TSO6, "{}", f::describe(got));
        assert_eq!(got & !f::OFFLOADS, f::WANTED & !f::IN_ORDER, "and the rest as at probe");
        let got = start(RxOffloads::NONE, TxOffloads::UDP_CKSUM | TxOffloads::MULTI_SEGS);
        assert_eq!(got & f::OFFLOADS, f::CSUM, "a later configuration asks for its own");
        let got = start(RxOffloads::SCATTER, TxOffloads::MULTI_SEGS);
        assert_eq!(got & f::OFFLOADS, 0, "chains need no feature but MRG_RXBUF");
        drop(port);
        assert!(pool.mempool().is_full());

        // A device offering no offload and no mergeable buffers: chains on TX alone, and a
        // request for more is refused naming the offload.
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::VhostUser;
            s.features = f::ANY_LAYOUT | f::MAC | f::CSUM;
            s.settable = true;
            s.queue_max = 256;
        }
        let mut port = dev.probe(&mem, None).unwrap();
        let info = port.info().clone();
        assert_eq!(info.rx_offload_capa, RxOffloads::NONE);
        assert_eq!(info.tx_offload_capa, TxOffloads::MULTI_SEGS | TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM);
        assert_eq!(info.tx_desc_lim.nb_seg_max, 31, "a settable ring may be as small as 32");
        let err = port.configure(&PortConf { tx_offloads: TxOffloads::TCP_TSO, ..PortConf::queues(1, 1) });
        assert!(err.unwrap_err().to_string().contains("tcp_tso"));
    }
}
