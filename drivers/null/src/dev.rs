//! The net_null device: its control path ([`EthDev`]) and probe. Mirrors DPDK's `eth_dev_ops`
//! for `net_null`: configure and queue setup only record, start and stop only move the link.

use std::sync::Arc;

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, PortSettings, RxBurst, RxQueueConf,
    Slot, TxBurst, TxOffloads, TxQueueConf, VdevProbe,
};
use burst_mem::PacketPool;

use crate::rx::{NullRx, NullRxCopy, NullRxNone, RxState};
use crate::tx::{NullTx, NullTxCopy, TxState};
use crate::{NullArgs, NullError};

/// The driver's name.
pub(crate) const DRIVER: &str = "net_null";

/// Most RX (and TX) queues a null port has (DPDK's `dev_info->max_rx_queues` is
/// `RTE_MAX_QUEUES_PER_PORT`, 1024).
pub const MAX_QUEUES: u16 = 1024;

/// EtherType of the copy-mode template: IEEE 802 "local experimental" 1, so nothing mistakes it
/// for real traffic.
const TEMPLATE_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

pub use burst_ethdev::soft::default_mac;

/// The frame copy-mode RX writes into every buffer: `size` bytes of a broadcast Ethernet frame
/// from `src`, EtherType 0x88b5, zero payload (DPDK copies a zeroed `dummy_packet`; the header
/// makes the copy visible). Frames shorter than 14 bytes are the header cut short.
pub fn template(size: u16, src: MacAddr) -> Vec<u8> {
    let mut header = [0u8; 14];
    header[..6].copy_from_slice(&MacAddr::BROADCAST.bytes());
    header[6..12].copy_from_slice(&src.bytes());
    header[12..].copy_from_slice(&TEMPLATE_ETHERTYPE);
    let mut frame = vec![0u8; usize::from(size)];
    let n = header.len().min(frame.len());
    frame[..n].copy_from_slice(&header[..n]);
    frame
}

/// A net_null port.
pub struct NullDev {
    name: String,
    port: PortId,
    args: NullArgs,
    /// The address the port comes with (`mac=`, or [`default_mac`]).
    mac: MacAddr,
    /// The template copy-mode RX writes, made at probe from the port's first address.
    template: Box<[u8]>,
    rx: Vec<Slot<RxState>>,
    tx: Vec<Slot<TxState>>,
}

impl std::fmt::Debug for NullDev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NullDev").field("name", &self.name).field("port", &self.port).field("args", &self.args).finish()
    }
}

/// Makes a net_null port from `--vdev net_nullX,...`.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let args = NullArgs::parse(p.args)?;
    tracing::debug!(device = p.name, port = p.port_id, ?args, "net_null probed");
    Ok(Box::new(NullDev::new(p.name, p.port_id, args)))
}

impl NullDev {
    /// A port called `name`, number `port`, as `args` says.
    pub fn new(name: &str, port: PortId, args: NullArgs) -> NullDev {
        let mac = args.mac.unwrap_or_else(|| default_mac(port));
        NullDev {
            name: name.to_string(),
            port,
            template: template(args.size, mac).into_boxed_slice(),
            mac,
            args,
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }

    /// What the port was probed with.
    pub fn args(&self) -> &NullArgs {
        &self.args
    }

    fn no_queue(&self, dir: Dir, queue: u16) -> EthError {
        let count = match dir {
            Dir::Rx => self.rx.len(),
            Dir::Tx => self.tx.len(),
        } as u16;
        EthError::NoQueue { port: self.port, dir, queue, count }
    }
}

impl EthDev for NullDev {
    fn info(&self) -> DevInfo {
        // TX frees a chain whole and counts its `pkt_len`, so it takes several segments (DPDK's
        // `eth_dev_info` offers RTE_ETH_TX_OFFLOAD_MULTI_SEGS). RX makes one-segment packets of
        // `size=` bytes: no scatter.
        DevInfo {
            tx_offload_capa: TxOffloads::MULTI_SEGS,
            ..DevInfo::software(DRIVER, DeviceName::Vdev(self.name.clone()), MAX_QUEUES)
        }
    }

    fn default_mac(&self) -> MacAddr {
        self.mac
    }

    fn configure(&mut self, conf: &PortConf, _settings: &PortSettings) -> Result<(), EthError> {
        // Reconfiguring drops the old queues: the port asks for every queue to be set up again.
        self.rx = (0..conf.nb_rx_queues).map(|_| Slot::empty()).collect();
        self.tx = (0..conf.nb_tx_queues).map(|_| Slot::empty()).collect();
        Ok(())
    }

    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let room = conf.pool.data_room();
        if self.args.size > room {
            let e = NullError::PacketTooBig { queue, size: self.args.size, room };
            return Err(EthError::driver(DRIVER, &self.name, e));
        }
        let state = RxState {
            pool: conf.pool.clone(),
            size: self.args.size,
            port: self.port,
            template: if self.args.copy { self.template.clone() } else { Box::default() },
            counters: Arc::clone(&conf.counters),
        };
        let err = self.no_queue(Dir::Rx, queue);
        self.rx.get_mut(queue as usize).ok_or(err)?.replace(Some(state));
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        let scratch = if self.args.copy { vec![0u8; usize::from(self.args.size)] } else { Vec::new() };
        let state = TxState { scratch: scratch.into_boxed_slice(), counters: Arc::clone(&conf.counters) };
        let err = self.no_queue(Dir::Tx, queue);
        self.tx.get_mut(queue as usize).ok_or(err)?.replace(Some(state));
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        self.rx.clear();
        self.tx.clear();
        Ok(())
    }

    // Start and stop: the defaults. Queues keep their settings for the next start, as in DPDK;
    // a null port holds no buffer between bursts.

    fn link(&self, started: bool) -> LinkStatus {
        burst_ethdev::soft::link(started)
    }

    /// Received packets are made to `size=`, whatever the MTU: there is no frame to check.
    fn rx_frame_room(&self, _pool: &PacketPool) -> Option<usize> {
        None
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let slot = self.rx.get(queue as usize).ok_or_else(|| self.no_queue(Dir::Rx, queue))?;
        let state = slot.take().ok_or(EthError::QueueNotSetUp { port: self.port, dir: Dir::Rx, queue })?;
        let counters = Arc::clone(&state.counters);
        // One burst function per mode, chosen here as DPDK chooses `rx_pkt_burst` at probe.
        Ok(if self.args.no_rx {
            Box::new(NullRxNone { _state: state })
        } else if self.args.copy {
            Box::new(NullRxCopy { state, counters })
        } else {
            Box::new(NullRx { state, counters })
        })
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let slot = self.tx.get(queue as usize).ok_or_else(|| self.no_queue(Dir::Tx, queue))?;
        let state = slot.take().ok_or(EthError::QueueNotSetUp { port: self.port, dir: Dir::Tx, queue })?;
        let counters = Arc::clone(&state.counters);
        Ok(if self.args.copy {
            Box::new(NullTxCopy { state, counters })
        } else {
            Box::new(NullTx { _state: state, counters })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_broadcast_frame_cut_to_size() {
        let src = default_mac(1);
        let t = template(64, src);
        assert_eq!(t.len(), 64);
        assert_eq!(&t[..6], &[0xff; 6]);
        assert_eq!(&t[6..12], &src.bytes());
        assert_eq!(&t[12..14], &TEMPLATE_ETHERTYPE);
        assert!(t[14..].iter().all(|&b| b == 0));
        assert_eq!(template(3, src), vec![0xff; 3]);
    }
}
