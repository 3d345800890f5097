//! The net_null device: its control path ([`EthDev`]) and probe. Mirrors DPDK's `eth_dev_ops`
//! for `net_null`: configure and queue setup only record, start and stop only move the link.

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PortConf, PortId, RxBurst, RxQueueConf, Slot,
    SoftSettings, Stats, SwStats, TxBurst, TxQueueConf, VdevProbe,
};

use crate::rx::{NullRx, NullRxCopy, NullRxNone, RxState};
use crate::tx::{NullTx, NullTxCopy, TxState};
use crate::NullArgs;

/// The driver's name.
const DRIVER: &str = "net_null";

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
    /// The template copy-mode RX writes, made at probe from the port's first address.
    template: Box<[u8]>,
    settings: SoftSettings,
    started: bool,
    stats: SwStats,
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
            args,
            settings: SoftSettings::new(port, mac),
            started: false,
            stats: SwStats::new(0, 0),
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
        DevInfo::software(DRIVER, DeviceName::Vdev(self.name.clone()), MAX_QUEUES)
    }

    fn configure(&mut self, conf: &PortConf) -> Result<(), EthError> {
        // Reconfiguring drops the old queues: the port asks for every queue to be set up again.
        self.stats = SwStats::new(conf.nb_rx_queues, conf.nb_tx_queues);
        self.rx = (0..conf.nb_rx_queues).map(|_| Slot::empty()).collect();
        self.tx = (0..conf.nb_tx_queues).map(|_| Slot::empty()).collect();
        if let Some(mtu) = conf.mtu {
            self.settings.set_mtu(mtu)?;
        }
        Ok(())
    }

    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let room = conf.pool.data_room();
        if self.args.size > room {
            return Err(EthError::Device {
                driver: DRIVER,
                device: self.name.clone(),
                message: format!(
                    "RX queue {queue}: packets of size={} bytes do not fit the pool's {room}-byte data room: \
                     use a pool with a larger data room or a smaller size=",
                    self.args.size
                ),
            });
        }
        let state = RxState {
            pool: conf.pool.clone(),
            size: self.args.size,
            port: self.port,
            template: if self.args.copy { self.template.clone() } else { Box::default() },
        };
        let err = self.no_queue(Dir::Rx, queue);
        self.rx.get_mut(queue as usize).ok_or(err)?.replace(Some(state));
        Ok(())
    }

    fn tx_queue_setup(&mut self, queue: u16, _conf: &TxQueueConf) -> Result<(), EthError> {
        let scratch = if self.args.copy { vec![0u8; usize::from(self.args.size)] } else { Vec::new() };
        let err = self.no_queue(Dir::Tx, queue);
        self.tx.get_mut(queue as usize).ok_or(err)?.replace(Some(TxState { scratch: scratch.into_boxed_slice() }));
        Ok(())
    }

    fn start(&mut self) -> Result<(), EthError> {
        self.started = true;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), EthError> {
        // Queues keep their settings for the next start, as in DPDK; a null port holds no
        // buffer between bursts.
        self.started = false;
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        self.started = false;
        self.rx.clear();
        self.tx.clear();
        Ok(())
    }

    fn link(&self) -> LinkStatus {
        burst_ethdev::soft::link(self.started)
    }

    burst_ethdev::soft_settings_methods!(settings);

    fn stats(&self) -> Stats {
        self.stats.get()
    }

    fn stats_reset(&self) {
        self.stats.reset();
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let slot = self.rx.get(queue as usize).ok_or_else(|| self.no_queue(Dir::Rx, queue))?;
        let state = slot.take().ok_or(EthError::QueueNotSetUp { port: self.port, dir: Dir::Rx, queue })?;
        let counters = self.stats.rx(queue);
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
        let counters = self.stats.tx(queue);
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
    fn default_macs_carry_the_port_number() {
        assert_eq!(default_mac(0).to_string(), "02:62:75:00:00:00");
        assert_eq!(default_mac(0x1a).to_string(), "02:62:75:00:00:1a");
        assert!(default_mac(3).is_valid_unicast() && default_mac(3).is_local());
    }

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
