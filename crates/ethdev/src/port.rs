//! [`Port`]: what an application holds for one device. It keeps the port's state machine
//! (DPDK's `dev_configured`/`dev_started`), checks every request against the device's limits,
//! and hands out one [`RxQueue`]/[`TxQueue`] handle per queue at a time.
//!
//! Handles borrow the port, so the borrow checker orders the lifecycle: `stop`, `close` and the
//! other `&mut self` operations cannot run while a handle is out on some lcore.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use burst_mem::{PacketBuf, PacketPool};

use crate::error::Dir;
use crate::{
    DevInfo, EthDev, EthError, LinkStatus, MacAddr, PortConf, RxBurst, RxQueueConf, Stats, TxBurst, TxQueueConf, XStat,
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
    rx_ready: Vec<bool>,
    tx_ready: Vec<bool>,
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
    /// What the port last reported, kept at close: a closed device is never called again (its
    /// registers may be unmapped), but its last MAC, MTU and counters stay readable.
    closed: Option<Box<ClosedPort>>,
}

#[derive(Debug)]
struct ClosedPort {
    mac: MacAddr,
    mtu: u16,
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
    /// Wraps a probed device as port `id`.
    pub fn new(id: PortId, dev: Box<dyn EthDev>) -> Port {
        let info = dev.info();
        Port {
            id,
            dev,
            info,
            state: PortState::Probed,
            conf: PortConf::default(),
            rx_ready: Vec::new(),
            tx_ready: Vec::new(),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
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
                dir: Dir::Rx,
                missing: rx_missing.to_string(),
                capa: info.rx_offload_capa.to_string(),
            });
        }
        let tx_missing = conf.tx_offloads.missing_from(info.tx_offload_capa);
        if !tx_missing.is_empty() {
            return Err(EthError::Offloads {
                port: self.id,
                dir: Dir::Tx,
                missing: tx_missing.to_string(),
                capa: info.tx_offload_capa.to_string(),
            });
        }
        if let Some(mtu) = conf.mtu {
            self.check_mtu(mtu)?;
        }
        self.dev.configure(conf)?;
        self.conf = conf.clone();
        self.rx_ready = vec![false; conf.nb_rx_queues as usize];
        self.tx_ready = vec![false; conf.nb_tx_queues as usize];
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
    /// `pool` (`rte_eth_rx_queue_setup`).
    pub fn rx_queue_setup(&mut self, queue: u16, nb_desc: u16, pool: &PacketPool) -> Result<(), EthError> {
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
        if u32::from(pool.data_room()) < self.info.min_rx_bufsize {
            return Err(EthError::Device {
                driver: self.info.driver,
                device: self.name(),
                message: format!(
                    "RX buffers of {} bytes are too small: the device needs at least {}; make the pool's data room larger",
                    pool.data_room(),
                    self.info.min_rx_bufsize
                ),
            });
        }
        let conf = RxQueueConf { nb_desc, pool: pool.clone(), socket: self.info.socket };
        self.dev.rx_queue_setup(queue, &conf)?;
        self.rx_ready[queue as usize] = true;
        Ok(())
    }

    /// Sets up TX queue `queue` with `nb_desc` descriptors (0: the device's default).
    pub fn tx_queue_setup(&mut self, queue: u16, nb_desc: u16) -> Result<(), EthError> {
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
        let conf = TxQueueConf { nb_desc, socket: self.info.socket };
        self.dev.tx_queue_setup(queue, &conf)?;
        self.tx_ready[queue as usize] = true;
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
        self.dev.start()?;
        self.state = PortState::Started;
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). No queue handle can be out: they borrow the port.
    pub fn stop(&mut self) -> Result<(), EthError> {
        if self.state != PortState::Started {
            return Ok(());
        }
        self.dev.stop()?;
        self.state = PortState::Stopped;
        Ok(())
    }

    /// Stops the port if started and releases the device (`rte_eth_dev_close`). Closing twice is
    /// harmless.
    pub fn close(&mut self) -> Result<(), EthError> {
        if self.state == PortState::Closed {
            return Ok(());
        }
        let stopped = self.stop();
        self.closed = Some(Box::new(ClosedPort {
            mac: self.dev.mac(),
            mtu: self.dev.mtu(),
            stats: self.dev.stats(),
            xstats: self.dev.xstats(),
        }));
        let closed = self.dev.close();
        self.state = PortState::Closed;
        stopped.and(closed)
    }

    /// Resets the device (`rte_eth_dev_reset`): it must be configured again.
    pub fn reset(&mut self) -> Result<(), EthError> {
        if self.state == PortState::Closed {
            return Err(self.state_error("reset", "probe the device again"));
        }
        self.stop()?;
        self.dev.reset()?;
        self.info = self.dev.info();
        self.state = PortState::Probed;
        Ok(())
    }

    /// The link now (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> LinkStatus {
        if self.closed.is_some() {
            return LinkStatus::DOWN;
        }
        self.dev.link()
    }

    /// The port's MAC address.
    pub fn mac(&self) -> MacAddr {
        match &self.closed {
            Some(c) => c.mac,
            None => self.dev.mac(),
        }
    }

    /// Sets the port's MAC address (`rte_eth_dev_default_mac_addr_set`).
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), EthError> {
        self.check_open("set_mac")?;
        if !mac.is_valid_unicast() {
            return Err(EthError::BadMac { port: self.id, mac });
        }
        self.dev.set_mac(mac)
    }

    /// Promiscuous mode on or off.
    pub fn set_promiscuous(&self, on: bool) -> Result<(), EthError> {
        self.check_open("set_promiscuous")?;
        self.dev.set_promiscuous(on)
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        self.closed.is_none() && self.dev.promiscuous()
    }

    /// All-multicast mode on or off.
    pub fn set_allmulticast(&self, on: bool) -> Result<(), EthError> {
        self.check_open("set_allmulticast")?;
        self.dev.set_allmulticast(on)
    }

    /// Whether all-multicast mode is on.
    pub fn allmulticast(&self) -> bool {
        self.closed.is_none() && self.dev.allmulticast()
    }

    fn check_open(&self, op: &'static str) -> Result<(), EthError> {
        match self.state {
            PortState::Closed => Err(self.state_error(op, "probe the device again")),
            _ => Ok(()),
        }
    }

    fn check_mtu(&self, mtu: u16) -> Result<(), EthError> {
        if mtu < self.info.min_mtu || mtu > self.info.max_mtu {
            return Err(EthError::Mtu { port: self.id, mtu, min: self.info.min_mtu, max: self.info.max_mtu });
        }
        Ok(())
    }

    /// Sets the MTU (`rte_eth_dev_set_mtu`).
    pub fn set_mtu(&mut self, mtu: u16) -> Result<(), EthError> {
        if self.state == PortState::Closed {
            return Err(self.state_error("set_mtu", "probe the device again"));
        }
        self.check_mtu(mtu)?;
        self.dev.set_mtu(mtu)
    }

    /// The MTU.
    pub fn mtu(&self) -> u16 {
        match &self.closed {
            Some(c) => c.mtu,
            None => self.dev.mtu(),
        }
    }

    /// Counters since the last reset (`rte_eth_stats_get`); after close, the last ones.
    pub fn stats(&self) -> Stats {
        match &self.closed {
            Some(c) => c.stats.clone(),
            None => self.dev.stats(),
        }
    }

    /// Zeroes the counters.
    pub fn stats_reset(&self) {
        if self.closed.is_none() {
            self.dev.stats_reset()
        }
    }

    /// Named counters (`rte_eth_xstats_get` with names).
    pub fn xstats(&self) -> Vec<XStat> {
        match &self.closed {
            Some(c) => c.xstats.clone(),
            None => self.dev.xstats(),
        }
    }

    /// Zeroes the named counters.
    pub fn xstats_reset(&self) {
        if self.closed.is_none() {
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
            Ok(inner) => Ok(TxQueue { inner, taken, port: self.id, queue }),
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
}

impl TxQueue<'_> {
    /// Takes packets from the front of `bufs` for sending and returns how many it took
    /// (`rte_eth_tx_burst`). The rest stay in `bufs`, in order: send them again later, or drop
    /// them (dropping frees them).
    #[inline]
    pub fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        self.inner.tx_burst(bufs)
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
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::{DevInfo, DeviceName, EthDev};

    /// A device that fails the test if it is called after `close`.
    #[derive(Default)]
    struct Strict {
        closed: AtomicBool,
    }

    impl Strict {
        fn live(&self) {
            assert!(!self.closed.load(Ordering::Relaxed), "the port called a closed device");
        }
    }

    impl EthDev for Strict {
        fn info(&self) -> DevInfo {
            DevInfo::software("strict", DeviceName::Vdev("strict0".into()), 1)
        }
        fn configure(&mut self, _: &PortConf) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn rx_queue_setup(&mut self, _: u16, _: &RxQueueConf) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn tx_queue_setup(&mut self, _: u16, _: &TxQueueConf) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn start(&mut self) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn stop(&mut self) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn close(&mut self) -> Result<(), EthError> {
            self.live();
            self.closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        fn link(&self) -> LinkStatus {
            self.live();
            LinkStatus::up(1000)
        }
        fn mac(&self) -> MacAddr {
            self.live();
            MacAddr([2, 0, 0, 0, 0, 9])
        }
        fn set_mac(&self, _: MacAddr) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn set_promiscuous(&self, _: bool) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn promiscuous(&self) -> bool {
            self.live();
            true
        }
        fn set_allmulticast(&self, _: bool) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn allmulticast(&self) -> bool {
            self.live();
            true
        }
        fn set_mtu(&mut self, _: u16) -> Result<(), EthError> {
            self.live();
            Ok(())
        }
        fn mtu(&self) -> u16 {
            self.live();
            1500
        }
        fn stats(&self) -> Stats {
            self.live();
            Stats { ipackets: 7, ..Stats::default() }
        }
        fn stats_reset(&self) {
            self.live();
        }
        fn rx_queue(&self, _: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
            Err(EthError::NotSupported { driver: "strict", what: "queues" })
        }
        fn tx_queue(&self, _: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
            Err(EthError::NotSupported { driver: "strict", what: "queues" })
        }
    }

    #[test]
    fn a_closed_port_never_calls_its_device_and_keeps_its_last_values() {
        let mut port = Port::new(3, Box::new(Strict::default()));
        port.configure(&PortConf::queues(0, 1)).unwrap();
        port.close().unwrap();
        assert_eq!(port.state(), PortState::Closed);
        assert_eq!(port.link(), LinkStatus::DOWN);
        assert_eq!(port.mac(), MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!((port.mtu(), port.stats().ipackets), (1500, 7));
        assert!(!port.promiscuous() && !port.allmulticast());
        port.stats_reset();
        port.xstats_reset();
        assert!(port.xstats().iter().any(|x| x.name == "rx_good_packets" && x.value == 7));
        for err in [
            port.set_mac(MacAddr([2, 0, 0, 0, 0, 1])).unwrap_err(),
            port.set_promiscuous(true).unwrap_err(),
            port.set_allmulticast(true).unwrap_err(),
            port.set_mtu(1400).unwrap_err(),
            port.configure(&PortConf::queues(0, 1)).unwrap_err(),
            port.start().unwrap_err(),
            port.tx_queue(0).unwrap_err(),
        ] {
            assert!(err.to_string().contains("while the port is closed"), "{err}");
        }
        port.close().unwrap();
    }

    #[test]
    fn queue_setup_is_checked_against_the_state_and_counts() {
        let mut port = Port::new(0, Box::new(Strict::default()));
        let err = port.tx_queue_setup(0, 0).unwrap_err().to_string();
        assert!(err.contains("call configure first"), "{err}");
        port.configure(&PortConf::queues(0, 1)).unwrap();
        let err = port.tx_queue_setup(1, 0).unwrap_err().to_string();
        assert!(err.contains("there is no TX queue 1"), "{err}");
        let err = port.start().unwrap_err().to_string();
        assert!(err.contains("TX queue 0 was not set up"), "{err}");
        port.tx_queue_setup(0, 0).unwrap();
        port.start().unwrap();
        let err = port.configure(&PortConf::queues(0, 1)).unwrap_err().to_string();
        assert!(err.contains("stop the port first"), "{err}");
        let err = port.configure(&PortConf::queues(2, 1)).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("stop the port first"), "{err}");
        port.stop().unwrap();
        let err = port.configure(&PortConf::queues(2, 1)).unwrap_err().to_string();
        assert!(err.contains("at most 1 and 1"), "{err}");
    }
}
