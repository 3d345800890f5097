//! The net_af_xdp device: probe and the control path ([`EthDev`]). Probe checks what can be
//! checked before anything is made (the interface, its queues, the permissions, an XDP program
//! already there); start makes one socket per queue, each queue's UMEM from its RX pool, then
//! loads and attaches the program and puts the sockets in its map; stop undoes it all in the
//! other order and takes every buffer back. A start that fails half way undoes what it did:
//! nothing of ours is left attached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings,
    QueueCounters, RxBurst, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, VdevProbe, XStat,
};
use burst_mem::PacketPool;
use burst_netif::{Iface, NetifError, Setting};

use crate::if_xdp::{XdpStatistics, XDP_PACKET_HEADROOM};
use crate::init::{open_socket, SocketConf, XskSocket};
use crate::prog::{default_program, XdpProgram};
use crate::rx::{RxState, XdpRx};
use crate::tx::{TxState, XdpTx};
use crate::umem::{page_size, Umem};
use crate::{XdpArgs, XdpError};

/// The driver's name.
pub(crate) const DRIVER: &str = "net_af_xdp";

/// DPDK's default ring size (`ETH_AF_XDP_DFLT_NUM_DESCS`).
const DEFAULT_DESCS: u16 = 2048;

/// An RX queue as set up.
struct RxSetup {
    pool: PacketPool,
    umem: Arc<Umem>,
    nb_desc: u16,
    counters: Arc<QueueCounters>,
}

/// A TX queue as set up.
struct TxSetup {
    nb_desc: u16,
    counters: Arc<QueueCounters>,
}

/// A net_af_xdp port.
pub struct XdpDev {
    name: String,
    port: PortId,
    args: XdpArgs,
    prog_path: PathBuf,
    iface: Iface,
    mac: MacAddr,
    nb_rx: u16,
    nb_tx: u16,
    rx_setup: Vec<Option<RxSetup>>,
    tx_setup: Vec<Option<TxSetup>>,
    /// While started: the program (dropped first), the sockets, and the UMEMs.
    prog: Option<XdpProgram>,
    socks: Vec<Arc<XskSocket>>,
    rx: Vec<Slot<RxState>>,
    tx: Vec<Slot<TxState>>,
    /// The kernel's counts of sockets closed since the last reset, per queue.
    closed_counts: Mutex<Vec<XdpStatistics>>,
}

impl std::fmt::Debug for XdpDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpDev").field("name", &self.name).field("args", &self.args).finish()
    }
}

/// Makes a net_af_xdp port from `--vdev net_af_xdp0,iface=NAME,...`.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let args = XdpArgs::parse(p.args)?;
    XdpDev::open(p.name, p.port_id, args).map(|d| Box::new(d) as Box<dyn EthDev>)
}

fn add(a: &mut XdpStatistics, b: &XdpStatistics) {
    a.rx_dropped += b.rx_dropped;
    a.rx_invalid_descs += b.rx_invalid_descs;
    a.tx_invalid_descs += b.tx_invalid_descs;
    a.rx_ring_full += b.rx_ring_full;
    a.rx_fill_ring_empty_descs += b.rx_fill_ring_empty_descs;
    a.tx_ring_empty_descs += b.tx_ring_empty_descs;
}

impl XdpDev {
    /// The port `name`, number `port`, on the interface `args` names in the calling thread's
    /// network namespace: there, up, with the queues asked for, with AF_XDP sockets allowed and
    /// no XDP program of someone else's attached.
    pub fn open(name: &str, port: PortId, args: XdpArgs) -> Result<XdpDev, EthError> {
        let err = |e| EthError::driver(DRIVER, name, e);
        let iface = Iface::open(&args.iface).map_err(|e| err(XdpError::Iface(e)))?;
        let found = iface.found().clone();
        if !found.up {
            return Err(err(XdpError::Down { iface: args.iface.clone() }));
        }
        let last = args.start_queue + u32::from(args.queue_count) - 1;
        if last >= found.rx_queues {
            return Err(err(XdpError::NoSuchQueue {
                iface: args.iface.clone(),
                have: found.rx_queues,
                start: args.start_queue,
                count: u32::from(args.queue_count),
                last,
            }));
        }
        if let Some((id, mode)) = found.xdp {
            return Err(err(XdpError::Occupied { iface: args.iface.clone(), id, how: format!("a {mode}") }));
        }
        drop(open_socket(args.start_queue).map_err(err)?);
        let prog_path = match &args.xdp_prog {
            Some(p) => p.clone(),
            None => default_program().map_err(err)?,
        };
        let mac = found.mac.unwrap_or_else(|| burst_ethdev::soft::default_mac(port));
        tracing::debug!(device = name, iface = %args.iface, ?args, "net_af_xdp probed");
        Ok(XdpDev {
            name: name.to_string(),
            port,
            args,
            prog_path,
            iface,
            mac,
            nb_rx: 0,
            nb_tx: 0,
            rx_setup: Vec::new(),
            tx_setup: Vec::new(),
            prog: None,
            socks: Vec::new(),
            rx: Vec::new(),
            tx: Vec::new(),
            closed_counts: Mutex::default(),
        })
    }

    /// What the port was probed with.
    pub fn args(&self) -> &XdpArgs {
        &self.args
    }

    /// The id of the XDP program attached while the port is started.
    pub fn program_id(&self) -> Option<u32> {
        self.prog.as_ref().map(XdpProgram::id)
    }

    fn err(&self, e: XdpError) -> EthError {
        EthError::driver(DRIVER, &self.name, e)
    }

    fn apply_err(&self, what: String, source: NetifError) -> EthError {
        self.err(XdpError::Apply { what, iface: self.args.iface.clone(), source })
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

    /// The sockets, their fill rings filled, the program attached and fed them.
    fn open_queues(&mut self) -> Result<(), EthError> {
        let ifindex = self.iface.index();
        // With shared_umem, the first socket of each pool registers it; the others share it.
        let mut first_of_pool: HashMap<String, usize> = HashMap::new();
        let mut socks: Vec<Arc<XskSocket>> = Vec::new();
        for q in 0..self.nb_rx {
            let setup = self.rx_setup[usize::from(q)].as_ref().ok_or(EthError::QueueNotSetUp {
                port: self.port,
                dir: Dir::Rx,
                queue: q,
            })?;
            let tx_desc =
                self.tx_setup.get(usize::from(q)).and_then(Option::as_ref).map_or(DEFAULT_DESCS, |t| t.nb_desc);
            let share = if self.args.shared_umem {
                first_of_pool.get(setup.pool.mempool().name()).map(|&i| &*socks[i])
            } else {
                None
            };
            let queue_id = self.args.start_queue + u32::from(q);
            let conf = SocketConf {
                ifindex,
                queue_id,
                umem: &setup.umem,
                share_with: share,
                rx_size: u32::from(setup.nb_desc).next_power_of_two(),
                tx_size: u32::from(tx_desc).next_power_of_two(),
                force_copy: self.args.force_copy,
            };
            let (sock, rings) = XskSocket::open(&conf).map_err(|e| self.err(e))?;
            first_of_pool.entry(setup.pool.mempool().name().to_string()).or_insert(socks.len());
            let sock = Arc::new(sock);
            let busy = self.args.busy_budget > 0 && sock.busy_poll(self.args.busy_budget);
            let mut rx = RxState {
                rx: rings.rx,
                fill: rings.fill,
                umem: Arc::clone(&setup.umem),
                sock: Arc::clone(&sock),
                port: self.port,
                busy,
                owed: 0,
                scratch: Vec::with_capacity(usize::from(setup.nb_desc)),
                counters: Arc::clone(&setup.counters),
            };
            let want = u32::from(setup.nb_desc);
            if rx.refill(want) != want {
                return Err(self.err(XdpError::PoolTooSmall { queue: q, want }));
            }
            self.rx[usize::from(q)].replace(Some(rx));
            if let Some(t) = self.tx_setup.get(usize::from(q)).and_then(Option::as_ref) {
                self.tx[usize::from(q)].replace(Some(TxState {
                    tx: rings.tx,
                    comp: rings.comp,
                    umem: Arc::clone(&setup.umem),
                    sock: Arc::clone(&sock),
                    busy,
                    done: Vec::with_capacity(usize::from(t.nb_desc)),
                    counters: Arc::clone(&t.counters),
                }));
            }
            socks.push(sock);
        }
        self.socks = socks;
        // The program last: until it is attached and fed the sockets, frames go to the kernel.
        let queues = self.iface.found().rx_queues.max(self.args.start_queue + u32::from(self.args.queue_count));
        let prog = XdpProgram::attach(&self.prog_path, &self.args.iface, ifindex, self.args.mode, queues)
            .map_err(|e| self.err(e))?;
        for sock in &self.socks {
            prog.insert(sock.queue_id, sock.raw_fd()).map_err(|e| self.err(e))?;
        }
        tracing::debug!(device = %self.name, prog = prog.id(), "XDP program attached");
        self.prog = Some(prog);
        Ok(())
    }

    /// Detaches the program, closes the sockets, and takes every buffer back.
    fn close_queues(&mut self) {
        drop(self.prog.take());
        {
            let mut closed = self.closed_counts.lock().unwrap_or_else(|e| e.into_inner());
            let n = self.socks.len().max(closed.len());
            closed.resize(n, XdpStatistics::default());
            for (q, s) in self.socks.iter().enumerate() {
                add(&mut closed[q], &s.statistics());
            }
        }
        for slot in self.rx.iter_mut() {
            slot.replace(None);
        }
        for slot in self.tx.iter_mut() {
            slot.replace(None);
        }
        self.socks.clear();
        for setup in self.rx_setup.iter().flatten() {
            setup.umem.reclaim();
        }
    }

    /// The kernel's counts per queue: the open sockets' and the closed ones'.
    fn kernel_counts(&self) -> Vec<XdpStatistics> {
        let mut all = self.closed_counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all.resize(all.len().max(self.socks.len()), XdpStatistics::default());
        for (q, s) in self.socks.iter().enumerate() {
            add(&mut all[q], &s.statistics());
        }
        all
    }

    fn no_queue(&self, dir: Dir, queue: u16) -> EthError {
        let count = match dir {
            Dir::Rx => self.nb_rx,
            Dir::Tx => self.nb_tx,
        };
        EthError::NoQueue { port: self.port, dir, queue, count }
    }
}

impl EthDev for XdpDev {
    fn info(&self) -> DevInfo {
        let found = self.iface.found();
        let mut info = DevInfo::software(DRIVER, DeviceName::Vdev(self.name.clone()), self.args.queue_count);
        let lim = DescLimits { min: 64, max: 4096, align: 1, default: DEFAULT_DESCS, nb_seg_max: u16::MAX };
        info.rx_desc_lim = lim;
        info.tx_desc_lim = lim;
        info.tx_offload_capa = TxOffloads::MULTI_SEGS;
        // A frame fits one chunk, at most a page, after the kernel's headroom.
        let chunk_mtu = (page_size() - XDP_PACKET_HEADROOM - 18) as u32;
        let max = if found.max_mtu > 0 { found.max_mtu.min(chunk_mtu) } else { chunk_mtu };
        info.max_mtu = max as u16;
        // The interface's word, untrusted: the limits stay in order whatever it says.
        info.min_mtu = found.min_mtu.max(68).min(max) as u16;
        info.max_rx_pktlen = max + 18;
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
        if conf.nb_tx_queues > conf.nb_rx_queues {
            return Err(self.err(XdpError::TxWithoutRx { tx: conf.nb_tx_queues, rx: conf.nb_rx_queues }));
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
        // Queues of one pool share its UMEM's table of held buffers, registered or not.
        let same_pool = self.rx_setup.iter().flatten().find(|s| s.pool.mempool().name() == conf.pool.mempool().name());
        let umem = match same_pool {
            Some(s) => Arc::clone(&s.umem),
            None => Arc::new(Umem::new(&conf.pool).map_err(|e| self.err(e))?),
        };
        *self.rx_setup.get_mut(usize::from(queue)).ok_or(err)? = Some(RxSetup {
            pool: conf.pool.clone(),
            umem,
            nb_desc: conf.nb_desc,
            counters: Arc::clone(&conf.counters),
        });
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        let err = self.no_queue(Dir::Tx, queue);
        *self.tx_setup.get_mut(usize::from(queue)).ok_or(err)? =
            Some(TxSetup { nb_desc: conf.nb_desc, counters: Arc::clone(&conf.counters) });
        Ok(())
    }

    fn start(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        let now = self.iface.now().map_err(|e| self.err(XdpError::Iface(e)))?;
        if !now.up {
            return Err(self.err(XdpError::Down { iface: self.args.iface.clone() }));
        }
        if let Some((id, mode)) = now.xdp {
            return Err(self.err(XdpError::Occupied { iface: self.args.iface.clone(), id, how: format!("a {mode}") }));
        }
        self.apply_all(settings)?;
        if let Err(e) = self.open_queues() {
            self.close_queues();
            return Err(e);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), EthError> {
        self.close_queues();
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        self.close_queues();
        self.rx_setup.clear();
        self.tx_setup.clear();
        self.iface.restore().map_err(|e| self.apply_err("settings, put back as found,".into(), e))
    }

    fn link(&self, started: bool) -> LinkStatus {
        match self.iface.now() {
            Ok(l) if started && l.running() => LinkStatus::up(0),
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

    /// A frame lands [`XDP_PACKET_HEADROOM`] bytes into its buffer.
    fn rx_frame_room(&self, pool: &PacketPool) -> Option<usize> {
        Some((usize::from(pool.headroom()) + usize::from(pool.data_room())).saturating_sub(XDP_PACKET_HEADROOM))
    }

    /// The queues' counts, with what the kernel dropped for want of room as missed.
    fn stats(&self, mut sw: Stats) -> Stats {
        for k in self.kernel_counts() {
            sw.imissed += k.rx_dropped + k.rx_ring_full;
        }
        sw
    }

    /// The kernel's counts per queue (`XDP_STATISTICS`) and the interface's own drops.
    fn xstats(&self, _sw: &Stats) -> Vec<XStat> {
        let mut out = Vec::new();
        for (q, k) in self.kernel_counts().iter().enumerate() {
            for (name, v) in [
                ("rx_dropped", k.rx_dropped),
                ("rx_invalid_descs", k.rx_invalid_descs),
                ("rx_ring_full", k.rx_ring_full),
                ("rx_fill_ring_empty_descs", k.rx_fill_ring_empty_descs),
                ("tx_invalid_descs", k.tx_invalid_descs),
                ("tx_ring_empty_descs", k.tx_ring_empty_descs),
            ] {
                out.push(XStat::new(format!("q{q}_kernel_{name}"), v));
            }
        }
        if let Ok(l) = self.iface.now() {
            out.push(XStat::new("if_rx_dropped", l.drops.rx_dropped));
            out.push(XStat::new("if_tx_dropped", l.drops.tx_dropped));
            out.push(XStat::new("if_rx_missed_errors", l.drops.rx_missed));
        }
        out
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let slot = self.rx.get(usize::from(queue)).ok_or_else(|| self.no_queue(Dir::Rx, queue))?;
        let state = slot.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue })?;
        Ok(Box::new(XdpRx { state }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let slot = self.tx.get(usize::from(queue)).ok_or_else(|| self.no_queue(Dir::Tx, queue))?;
        let state = slot.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue })?;
        Ok(Box::new(XdpTx { state }))
    }
}
