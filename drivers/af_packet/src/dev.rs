//! The net_af_packet device: probe and the control path ([`EthDev`]). The port's settings go
//! to the interface over netlink (`burst_netif::Iface`, put back as found at close); the queue
//! pairs' sockets exist while the port is started.

use std::sync::{Arc, Mutex};

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings,
    QueueCounters, RxBurst, RxOffloads, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, VdevProbe, XStat,
};
use burst_mem::PacketPool;
use burst_netif::{Iface, NetifError, Setting};

use crate::init::{open_socket, Fanout, PacketSocket};
use crate::rx::{PacketRx, RxState};
use crate::tpacket::{RX_DATA_OFFSET, TX_DATA_OFFSET};
use crate::tx::{PacketTx, TxState};
use crate::{PacketArgs, PacketError};

/// The driver's name.
pub(crate) const DRIVER: &str = "net_af_packet";

/// An RX queue as set up: its pool, offloads and counters.
struct RxSetup {
    pool: PacketPool,
    offloads: RxOffloads,
    counters: Arc<QueueCounters>,
}

/// What the kernel counted on the queues' sockets: `PACKET_STATISTICS` zeroes on read, so the
/// reads add up here.
#[derive(Default)]
struct KernelCounts {
    /// Per queue pair: frames that reached the socket, and those dropped for want of room.
    packets: Vec<u64>,
    drops: Vec<u64>,
}

/// A net_af_packet port.
pub struct PacketDev {
    name: String,
    port: PortId,
    args: PacketArgs,
    iface: Iface,
    mac: MacAddr,
    nb_rx: u16,
    nb_tx: u16,
    rx_setup: Vec<Option<RxSetup>>,
    tx_setup: Vec<Option<Arc<QueueCounters>>>,
    /// The queue pairs' sockets while started.
    socks: Vec<Arc<PacketSocket>>,
    rx: Vec<Slot<RxState>>,
    tx: Vec<Slot<TxState>>,
    kernel: Mutex<KernelCounts>,
}

impl std::fmt::Debug for PacketDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketDev").field("name", &self.name).field("args", &self.args).finish()
    }
}

/// Makes a net_af_packet port from `--vdev net_af_packet0,iface=NAME,...`.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let args = PacketArgs::parse(p.args)?;
    PacketDev::open(p.name, p.port_id, args).map(|d| Box::new(d) as Box<dyn EthDev>)
}

impl PacketDev {
    /// The port `name`, number `port`, on the interface `args` names in the calling thread's
    /// network namespace: it must be there and up, and packet sockets must be allowed.
    pub fn open(name: &str, port: PortId, args: PacketArgs) -> Result<PacketDev, EthError> {
        let err = |e| EthError::driver(DRIVER, name, e);
        let iface = Iface::open(&args.iface).map_err(|e| err(PacketError::Iface(e)))?;
        if !iface.found().up {
            return Err(err(PacketError::Down { iface: args.iface.clone() }));
        }
        // CAP_NET_RAW now, at probe, rather than at start.
        drop(open_socket().map_err(err)?);
        let mac = iface.found().mac.unwrap_or_else(|| burst_ethdev::soft::default_mac(port));
        tracing::debug!(device = name, iface = %args.iface, ?args, "net_af_packet probed");
        Ok(PacketDev {
            name: name.to_string(),
            port,
            args,
            iface,
            mac,
            nb_rx: 0,
            nb_tx: 0,
            rx_setup: Vec::new(),
            tx_setup: Vec::new(),
            socks: Vec::new(),
            rx: Vec::new(),
            tx: Vec::new(),
            kernel: Mutex::default(),
        })
    }

    /// What the port was probed with.
    pub fn args(&self) -> &PacketArgs {
        &self.args
    }

    fn err(&self, e: PacketError) -> EthError {
        EthError::driver(DRIVER, &self.name, e)
    }

    fn apply_err(&self, what: String, source: NetifError) -> EthError {
        self.err(PacketError::Apply { what, iface: self.args.iface.clone(), source })
    }

    /// The largest MTU a ring frame carries: a frame's packet after its header, less the
    /// Ethernet header and a VLAN tag.
    fn ring_max_mtu(&self) -> u32 {
        let frame = self.args.framesz as usize - RX_DATA_OFFSET.max(TX_DATA_OFFSET);
        (frame - 18) as u32
    }

    /// At start: the port's settings to the interface (the MTU and address if asked for).
    fn apply_all(&self, s: &PortSettings) -> Result<(), EthError> {
        let all = [
            Setting::Mtu(u32::from(s.mtu)),
            Setting::Mac(s.mac),
            Setting::Promisc(s.promiscuous),
            Setting::Allmulti(s.allmulticast),
        ];
        self.iface.apply_asked(&all).map_err(|(s, e)| self.apply_err(s.to_string(), e))
    }

    /// `setting`, asked for by the program, to the interface (now if `started`).
    fn apply(&self, setting: Setting, started: bool) -> Result<(), EthError> {
        self.iface.apply(setting, started).map_err(|(s, e)| self.apply_err(s.to_string(), e))
    }

    /// Adds what the sockets counted since the last read to the running totals.
    fn collect_kernel_counts(&self) {
        let mut k = self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.socks.len().max(k.packets.len());
        k.packets.resize(n, 0);
        k.drops.resize(n, 0);
        for (q, sock) in self.socks.iter().enumerate() {
            let st = sock.take_stats();
            k.packets[q] += u64::from(st.tp_packets);
            k.drops[q] += u64::from(st.tp_drops);
        }
    }

    fn open_sockets(&mut self) -> Result<(), EthError> {
        let pairs = self.nb_rx.max(self.nb_tx);
        let mut socks: Vec<Arc<PacketSocket>> = Vec::with_capacity(usize::from(pairs));
        let mut fanout = if self.nb_rx > 1 { Fanout::New(self.args.fanout_mode) } else { Fanout::None };
        for q in 0..pairs {
            let (rx, tx) = (q < self.nb_rx, q < self.nb_tx);
            let sock =
                PacketSocket::open(self.iface.index(), q, &self.args, rx, tx, if rx { fanout } else { Fanout::None })
                    .map_err(|e| self.err(e))?;
            if let Fanout::New(mode) = fanout {
                fanout = Fanout::Join { id: sock.fanout_id(q).map_err(|e| self.err(e))?, mode };
            }
            socks.push(Arc::new(sock));
        }
        for (q, sock) in socks.iter().enumerate() {
            if let (Some(ring), Some(setup)) = (sock.rx, self.rx_setup.get(q).and_then(Option::as_ref)) {
                self.rx[q].replace(Some(RxState {
                    _sock: Arc::clone(sock),
                    ring,
                    next: 0,
                    pool: setup.pool.clone(),
                    port: self.port,
                    scatter: setup.offloads.contains(RxOffloads::SCATTER),
                    strip: setup.offloads.contains(RxOffloads::VLAN_STRIP),
                    counters: Arc::clone(&setup.counters),
                }));
            }
            if let (Some(ring), Some(counters)) = (sock.tx, self.tx_setup.get(q).and_then(Option::as_ref)) {
                self.tx[q].replace(Some(TxState {
                    sock: Arc::clone(sock),
                    ring,
                    next: 0,
                    counters: Arc::clone(counters),
                }));
            }
        }
        self.socks = socks;
        Ok(())
    }

    fn close_sockets(&mut self) {
        self.collect_kernel_counts();
        for slot in self.rx.iter_mut() {
            slot.replace(None);
        }
        for slot in self.tx.iter_mut() {
            slot.replace(None);
        }
        self.socks.clear();
    }

    fn no_queue(&self, dir: Dir, queue: u16) -> EthError {
        let count = match dir {
            Dir::Rx => self.nb_rx,
            Dir::Tx => self.nb_tx,
        };
        EthError::NoQueue { port: self.port, dir, queue, count }
    }
}

impl EthDev for PacketDev {
    fn info(&self) -> DevInfo {
        let found = self.iface.found();
        let mut info = DevInfo::software(DRIVER, DeviceName::Vdev(self.name.clone()), self.args.qpairs);
        info.rx_desc_lim = DescLimits::ANY;
        info.tx_desc_lim = DescLimits::ANY;
        info.rx_offload_capa = RxOffloads::SCATTER | RxOffloads::VLAN_STRIP;
        info.rx_queue_offload_capa = RxOffloads::SCATTER | RxOffloads::VLAN_STRIP;
        info.tx_offload_capa = TxOffloads::MULTI_SEGS;
        let max = if found.max_mtu > 0 { found.max_mtu.min(self.ring_max_mtu()) } else { self.ring_max_mtu() };
        info.max_mtu = max.min(u32::from(u16::MAX - 18)) as u16;
        // The interface's word, untrusted: the limits stay in order whatever it says.
        info.min_mtu = found.min_mtu.max(68).min(u32::from(info.max_mtu)) as u16;
        info.max_rx_pktlen = u32::from(info.max_mtu) + 18;
        info
    }

    fn default_mac(&self) -> MacAddr {
        self.mac
    }

    /// The interface's own MTU when it is below DPDK's 1500 (a cloud network's 1460: no larger
    /// frame can leave), else 1500, within what the port carries. Either way the interface
    /// keeps its MTU until the program asks for another.
    fn default_mtu(&self) -> u16 {
        let info = self.info();
        let mtu = self.iface.found().mtu.min(u32::from(burst_ethdev::settings::DEFAULT_MTU));
        mtu.clamp(u32::from(info.min_mtu), u32::from(info.max_mtu)) as u16
    }

    fn configure(&mut self, conf: &PortConf, _settings: &PortSettings) -> Result<(), EthError> {
        if let Some(mtu) = conf.mtu {
            self.apply(Setting::Mtu(u32::from(mtu)), false)?; // asked for: set at start
        }
        (self.nb_rx, self.nb_tx) = (conf.nb_rx_queues, conf.nb_tx_queues);
        self.rx_setup = (0..self.nb_rx).map(|_| None).collect();
        self.tx_setup = (0..self.nb_tx).map(|_| None).collect();
        self.rx = (0..self.nb_rx).map(|_| Slot::empty()).collect();
        self.tx = (0..self.nb_tx).map(|_| Slot::empty()).collect();
        Ok(())
    }

    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let err = self.no_queue(Dir::Rx, queue);
        *self.rx_setup.get_mut(usize::from(queue)).ok_or(err)? =
            Some(RxSetup { pool: conf.pool.clone(), offloads: conf.offloads, counters: Arc::clone(&conf.counters) });
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        let err = self.no_queue(Dir::Tx, queue);
        *self.tx_setup.get_mut(usize::from(queue)).ok_or(err)? = Some(Arc::clone(&conf.counters));
        Ok(())
    }

    fn start(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        let now = self.iface.now().map_err(|e| self.err(PacketError::Iface(e)))?;
        if !now.up {
            return Err(self.err(PacketError::Down { iface: self.args.iface.clone() }));
        }
        self.apply_all(settings)?;
        if let Err(e) = self.open_sockets() {
            self.close_sockets();
            return Err(e);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), EthError> {
        self.close_sockets();
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        self.close_sockets();
        self.rx_setup.clear();
        self.tx_setup.clear();
        self.iface.restore().map_err(|e| self.apply_err("settings, put back as found,".into(), e))
    }

    fn link(&self, started: bool) -> LinkStatus {
        match self.iface.now() {
            // Speed is the interface's business; a veth has none to tell.
            Ok(l) if started && l.running() => LinkStatus { speed_mbps: 0, ..LinkStatus::up(0) },
            _ => LinkStatus::DOWN,
        }
    }

    fn apply_mac(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.apply(Setting::Mac(settings.mac), started)
    }

    fn apply_promiscuous(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.apply(Setting::Promisc(settings.promiscuous), started)
    }

    fn apply_allmulticast(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.apply(Setting::Allmulti(settings.allmulticast), started)
    }

    fn apply_mtu(&mut self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.apply(Setting::Mtu(u32::from(settings.mtu)), started)
    }

    /// A frame lands in one buffer from its headroom on (or in a chain, with scatter).
    fn rx_frame_room(&self, pool: &PacketPool) -> Option<usize> {
        Some(usize::from(pool.data_room()))
    }

    /// The queues' counts, with the frames the kernel dropped for want of ring room as missed.
    fn stats(&self, mut sw: Stats) -> Stats {
        self.collect_kernel_counts();
        let k = self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        sw.imissed += k.drops.iter().sum::<u64>();
        sw
    }

    fn stats_reset(&self) {
        self.collect_kernel_counts();
        let k = &mut *self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        k.packets.iter_mut().chain(k.drops.iter_mut()).for_each(|c| *c = 0);
    }

    /// The kernel's counts per queue pair (`PACKET_STATISTICS`) and the interface's own drops.
    fn xstats(&self, _sw: &Stats) -> Vec<XStat> {
        self.collect_kernel_counts();
        let k = self.kernel.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![XStat::new("rx_kernel_drops", k.drops.iter().sum())];
        for (q, (p, d)) in k.packets.iter().zip(&k.drops).enumerate() {
            out.push(XStat::new(format!("rx_q{q}_kernel_packets"), *p));
            out.push(XStat::new(format!("rx_q{q}_kernel_drops"), *d));
        }
        if let Ok(l) = self.iface.now() {
            out.push(XStat::new("if_rx_dropped", l.drops.rx_dropped));
            out.push(XStat::new("if_tx_dropped", l.drops.tx_dropped));
            out.push(XStat::new("if_rx_missed_errors", l.drops.rx_missed));
        }
        out
    }

    fn xstats_reset(&self) {
        self.stats_reset();
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let slot = self.rx.get(usize::from(queue)).ok_or_else(|| self.no_queue(Dir::Rx, queue))?;
        let state = slot.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue })?;
        Ok(Box::new(PacketRx { state }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let slot = self.tx.get(usize::from(queue)).ok_or_else(|| self.no_queue(Dir::Tx, queue))?;
        let state = slot.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue })?;
        Ok(Box::new(PacketTx { state }))
    }
}
