//! The net_ring device: its control path ([`EthDev`]) and probe. Mirrors DPDK's `ops` for
//! net_ring: the rings exist from probe on, queue setup only checks the index, start and stop
//! only move the link.

use std::sync::Arc;

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings, QueueCounters, RxBurst,
    RxOffloads, RxQueueConf, Slot, TxBurst, TxOffloads, TxQueueConf, VdevProbe,
};
use burst_mem::ring::{Consumer, Producer};
use burst_mem::{PacketBuf, PacketPool};

use crate::pair::{self, Ends, Pairs};
use crate::rx::RingRx;
use crate::tx::RingTx;
use crate::RingArgs;

/// The driver's name.
const DRIVER: &str = "net_ring";

pub use burst_ethdev::soft::default_mac;

/// A net_ring port.
pub struct RingDev {
    name: String,
    port: PortId,
    args: RingArgs,
    /// The address the port comes with (`mac=`, or [`default_mac`]).
    mac: MacAddr,
    /// Queues configured each way (at most `args.queues`).
    nb_rx: u16,
    nb_tx: u16,
    /// The port's counters for each queue set up.
    rx_counters: Vec<Option<Arc<QueueCounters>>>,
    tx_counters: Vec<Option<Arc<QueueCounters>>>,
    /// RX queue `q`'s ring end; all `queues` of them from probe until close.
    rx: Vec<Slot<Consumer<PacketBuf>>>,
    /// TX queue `q`'s ring end.
    tx: Vec<Slot<Producer<PacketBuf>>>,
}

impl std::fmt::Debug for RingDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingDev").field("name", &self.name).field("port", &self.port).field("args", &self.args).finish()
    }
}

/// Makes a net_ring port from `--vdev net_ringX,...`: a loopback, or one side of a pair.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let args = RingArgs::parse(p.args)?;
    let ends = match &args.pair {
        None => pair::loopback(p.args, args.queues, args.size)?,
        Some(name) => {
            p.shared.get_or_default::<Pairs>(pair::SHARED_KEY).join(name, p.name, p.args, args.queues, args.size)?
        }
    };
    tracing::debug!(device = p.name, port = p.port_id, ?args, "net_ring probed");
    Ok(Box::new(RingDev::new(p.name, p.port_id, args, ends)))
}

impl RingDev {
    fn new(name: &str, port: PortId, args: RingArgs, ends: Ends) -> RingDev {
        RingDev {
            name: name.to_string(),
            port,
            mac: args.mac.unwrap_or_else(|| default_mac(port)),
            args,
            nb_rx: 0,
            nb_tx: 0,
            rx_counters: Vec::new(),
            tx_counters: Vec::new(),
            rx: ends.rx.into_iter().map(Slot::new).collect(),
            tx: ends.tx.into_iter().map(Slot::new).collect(),
        }
    }

    /// What the port was probed with.
    pub fn args(&self) -> &RingArgs {
        &self.args
    }

    /// `queue` is configured and its ring end is here (not closed).
    fn check_queue(&self, dir: Dir, queue: u16) -> Result<(), EthError> {
        let (configured, ends) = match dir {
            Dir::Rx => (self.nb_rx, self.rx.len()),
            Dir::Tx => (self.nb_tx, self.tx.len()),
        };
        let count = configured.min(ends as u16);
        if queue >= count {
            return Err(EthError::NoQueue { port: self.port, dir, queue, count });
        }
        Ok(())
    }
}

impl EthDev for RingDev {
    fn info(&self) -> DevInfo {
        // A ring carries a chained packet as it was sent: a chain goes in on TX and comes out on
        // RX, so the port scatters and sends several segments (DPDK's `eth_dev_info` offers
        // RTE_ETH_RX_OFFLOAD_SCATTER and RTE_ETH_TX_OFFLOAD_MULTI_SEGS for the same reason).
        DevInfo {
            rx_offload_capa: RxOffloads::SCATTER,
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            ..DevInfo::software(DRIVER, DeviceName::Vdev(self.name.clone()), self.args.queues)
        }
    }

    fn default_mac(&self) -> MacAddr {
        self.mac
    }

    fn configure(&mut self, conf: &PortConf, _settings: &PortSettings) -> Result<(), EthError> {
        // The port checked the counts against `info().max_rx_queues`, which is `queues=`.
        (self.nb_rx, self.nb_tx) = (conf.nb_rx_queues, conf.nb_tx_queues);
        self.rx_counters = vec![None; usize::from(self.nb_rx)];
        self.tx_counters = vec![None; usize::from(self.nb_tx)];
        Ok(())
    }

    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        // The ring is the queue; `nb_desc` and the pool are not used (buffers come from the
        // sender's pool), as in DPDK's `eth_rx_queue_setup`.
        self.check_queue(Dir::Rx, queue)?;
        self.rx_counters[usize::from(queue)] = Some(Arc::clone(&conf.counters));
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        self.check_queue(Dir::Tx, queue)?;
        self.tx_counters[usize::from(queue)] = Some(Arc::clone(&conf.counters));
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        // Dropping our ends; a ring and the packets in it go when the other side's end goes too.
        self.rx.clear();
        self.tx.clear();
        Ok(())
    }

    // Start and stop: the defaults. Packets in flight stay in the rings for the next start.

    fn link(&self, started: bool) -> LinkStatus {
        burst_ethdev::soft::link(started)
    }

    /// Received buffers are the ones the other side sent, from its pool: there is nothing to
    /// check against this queue's.
    fn rx_frame_room(&self, _pool: &PacketPool) -> Option<usize> {
        None
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        self.check_queue(Dir::Rx, queue)?;
        let not_set_up = EthError::QueueNotSetUp { port: self.port, dir: Dir::Rx, queue };
        let counters = self.rx_counters[usize::from(queue)].clone().ok_or(not_set_up)?;
        let ring =
            self.rx[queue as usize].take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue })?;
        Ok(Box::new(RingRx { ring, counters, port: self.port }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        self.check_queue(Dir::Tx, queue)?;
        let not_set_up = EthError::QueueNotSetUp { port: self.port, dir: Dir::Tx, queue };
        let counters = self.tx_counters[usize::from(queue)].clone().ok_or(not_set_up)?;
        let ring =
            self.tx[queue as usize].take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue })?;
        Ok(Box::new(RingTx { ring, counters }))
    }
}
