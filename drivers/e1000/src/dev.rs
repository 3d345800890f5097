//! The e1000 port: probe, and the control path ([`EthDev`], DPDK's `eth_em_ops`).

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PciId, PciProbe, PortConf, PortId,
    PortSettings, RxBurst, RxOffloads, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, XStat,
};
use std::sync::Arc;

use burst_mem::{Memory, PacketPool};
use burst_pci::{Bar, DeviceError, PciAddress, PciDevice};

use crate::error::E1000Error;
use crate::init;
use crate::regs::*;
use crate::ring::DescRing;
use crate::rx::{E1000Rx, RxRing};
use crate::stats::{HwStats, RxCounters};
use crate::tx::{E1000Tx, TxRing};

/// The driver's name (DPDK's for this family).
pub const DRIVER_NAME: &str = "net_e1000_em";

/// Descriptor limits, RX and TX: DPDK's em (`E1000_MIN_RING_DESC` 32, `E1000_MAX_RING_DESC`
/// 4096), in multiples of 8 since ring lengths are multiples of 128 bytes (SDM 13.4.29); at
/// most 255 segments a packet (DPDK's `EM_TX_MAX_SEG`), and fewer than the TX ring has
/// descriptors (a packet that could never fit is dropped and counted).
pub const DESC_LIMITS: DescLimits =
    DescLimits { min: 32, max: 4096, align: RING_ALIGN_DESCS, default: 512, nb_seg_max: 255 };

/// RX offloads (SDM 3.2): frames over several descriptors chained, VLAN tags stripped
/// (CTRL.VME), IPv4, TCP and UDP checksums checked (RXCSUM).
pub const RX_OFFLOADS: RxOffloads = RxOffloads::SCATTER.union(RxOffloads::VLAN_STRIP).union(RxOffloads::CHECKSUM);

/// TX offloads (SDM 3.3): chained packets, IPv4, TCP and UDP checksums and TCP segmentation
/// (TCP/IP context and data descriptors), VLAN tags inserted (VLE, with CTRL.VME).
pub const TX_OFFLOADS: TxOffloads = TxOffloads::MULTI_SEGS
    .union(TxOffloads::IPV4_CKSUM)
    .union(TxOffloads::UDP_CKSUM)
    .union(TxOffloads::TCP_CKSUM)
    .union(TxOffloads::TCP_TSO)
    .union(TxOffloads::VLAN_INSERT);

/// VLAN strip and insert are the device's (CTRL.VME), not a queue's: port offloads only.
const VLAN_OFFLOADS: (RxOffloads, TxOffloads) = (RxOffloads::VLAN_STRIP, TxOffloads::VLAN_INSERT);

/// The largest frame the 8254x receives with long packet enable, CRC included: 16128 bytes, as
/// DPDK's `em_get_max_pktlen` says for this family (SDM 13.4.22: LPE allows up to 16384 bytes;
/// QEMU drops longer ones).
pub const MAX_RX_PKTLEN: u32 = 16128;

/// One 8254x port.
pub struct E1000Dev {
    /// The open device: kept for as long as the port lives.
    _device: PciDevice,
    bar: Bar,
    memory: Memory,
    addr: PciAddress,
    id: PciId,
    port: PortId,
    socket: Option<u32>,
    /// The station address the device loaded at probe (or reset).
    default_mac: MacAddr,
    started: bool,
    nb_rx: u16,
    nb_tx: u16,
    /// RCTL.BSIZE bits and size for the RX queue's buffers (set at RX queue setup).
    rx_bsize: Option<(usize, u32)>,
    /// The port's VLAN strip (and insert): CTRL.VME at start.
    vlan: bool,
    /// RXCSUM for the RX queue's offloads (set at RX queue setup).
    rxcsum: u32,
    rx: Slot<RxRing>,
    tx: Slot<TxRing>,
    hw_stats: HwStats,
    /// The RX queue's own counters (xstats), kept across queue setups as the device's are.
    rx_counters: Arc<RxCounters>,
}

impl std::fmt::Debug for E1000Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E1000Dev").field("addr", &self.addr).field("id", &self.id).field("port", &self.port).finish()
    }
}

/// Brings a matched device to the probed state: BAR0 mapped, bus master on, then the SDM's
/// probe steps ([`init::probe`]: reset, interrupts masked, MAC read, link set up).
pub(crate) fn probe(p: PciProbe) -> Result<Box<dyn EthDev>, EthError> {
    let addr = p.device.address();
    let err = |e: E1000Error| EthError::driver(DRIVER_NAME, addr, e);
    // SDM 13: every register is in the memory BAR 0 (128 KiB).
    let bar = p.device.bar(0)?;
    if !bar.is_mmio() || bar.len() < BAR0_MIN_LEN {
        return Err(err(E1000Error::NotAn8254xBar { mmio: bar.is_mmio(), len: bar.len() }));
    }
    p.device.enable_bus_master().map_err(DeviceError::from)?;
    let mac = init::probe(&bar).map_err(err)?;
    let dev = E1000Dev {
        _device: p.device,
        bar,
        memory: p.memory,
        addr,
        id: p.id,
        port: p.port_id,
        socket: p.socket,
        default_mac: mac,
        started: false,
        nb_rx: 0,
        nb_tx: 0,
        rx_bsize: None,
        vlan: false,
        rxcsum: 0,
        rx: Slot::empty(),
        tx: Slot::empty(),
        hw_stats: HwStats::default(),
        rx_counters: Arc::default(),
    };
    // Counters start from zero at probe (a previous user may have left some).
    dev.hw_stats.reset(&dev.bar);
    tracing::debug!(%addr, %mac, link = %dev.link(false), "e1000 probed ({:04x}:{:04x})", p.id.vendor, p.id.device);
    Ok(Box::new(dev))
}

impl E1000Dev {
    /// The largest MTU: [`MAX_RX_PKTLEN`] less header and CRC, 16110.
    pub const MAX_MTU: u16 = (MAX_RX_PKTLEN - init::FRAME_OVERHEAD) as u16;

    fn error(&self, e: E1000Error) -> EthError {
        EthError::driver(DRIVER_NAME, self.addr, e)
    }

    /// RCTL for `settings`, EN when `on`.
    fn rctl(&self, settings: &PortSettings, on: bool) -> u32 {
        init::rctl(settings, self.rx_bsize.map_or(0, |(_, bits)| bits), on)
    }

    /// Rewrites RCTL for `settings` (filters or MTU changed): receiving when started with an RX
    /// queue.
    fn update_rctl(&self, settings: &PortSettings, started: bool) {
        self.bar.write32(RCTL, self.rctl(settings, started && self.nb_rx > 0));
    }

    /// A unique memzone name for one of this port's rings.
    fn ring_name(&self, dir: Dir) -> String {
        format!("e1000_{}_{}_{}", self.addr, if dir == Dir::Rx { "rx" } else { "tx" }, self.port)
    }

    /// Turns receive and transmit off and takes every buffer back from both rings.
    fn quiesce(&mut self) {
        init::stop(&self.bar, self.tx.get_mut(), self.rx.get_mut());
    }
}

impl EthDev for E1000Dev {
    fn info(&self) -> DevInfo {
        DevInfo {
            driver: DRIVER_NAME,
            device: DeviceName::Pci(self.addr),
            max_rx_queues: 1,
            max_tx_queues: 1,
            rx_desc_lim: DESC_LIMITS,
            tx_desc_lim: DESC_LIMITS,
            rx_offload_capa: RX_OFFLOADS,
            rx_queue_offload_capa: RX_OFFLOADS - VLAN_OFFLOADS.0,
            tx_offload_capa: TX_OFFLOADS,
            tx_queue_offload_capa: TX_OFFLOADS - VLAN_OFFLOADS.1,
            min_mtu: 68,
            max_mtu: Self::MAX_MTU,
            max_rx_pktlen: MAX_RX_PKTLEN,
            min_rx_bufsize: init::MIN_RX_BUFSIZE as u32,
            socket: self.socket,
        }
    }

    fn default_mac(&self) -> MacAddr {
        self.default_mac
    }

    fn configure(&mut self, conf: &PortConf, _settings: &PortSettings) -> Result<(), EthError> {
        let (strip, insert) = VLAN_OFFLOADS;
        if conf.tx_offloads.contains(insert) && !conf.rx_offloads.contains(strip) {
            return Err(self.error(E1000Error::VlanInsertWithoutStrip));
        }
        self.nb_rx = conf.nb_rx_queues;
        self.nb_tx = conf.nb_tx_queues;
        self.vlan = conf.rx_offloads.contains(strip);
        Ok(())
    }

    fn rx_queue_setup(&mut self, _queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let room = usize::from(conf.pool.data_room());
        let (bsize, bits) = init::rx_buffer_size(room)
            .ok_or_else(|| self.error(E1000Error::RxBufTooSmall { room, min: init::MIN_RX_BUFSIZE }))?;
        // The old ring (and its memzone name) goes before the new one is made.
        drop(self.rx.replace(None));
        let ring = DescRing::new(&self.memory, &self.ring_name(Dir::Rx), conf.nb_desc, conf.socket.or(self.socket))?;
        self.rx_bsize = Some((bsize, bits));
        self.rxcsum = init::rxcsum(conf.offloads);
        let rx =
            RxRing::new(ring, conf.pool.clone(), bsize, conf.offloads, conf.counters.clone(), self.rx_counters.clone());
        self.rx.replace(Some(rx));
        Ok(())
    }

    fn tx_queue_setup(&mut self, _queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        drop(self.tx.replace(None));
        let ring = DescRing::new(&self.memory, &self.ring_name(Dir::Tx), conf.nb_desc, conf.socket.or(self.socket))?;
        self.tx.replace(Some(TxRing::new(ring, conf.offloads, conf.counters.clone())));
        Ok(())
    }

    /// The RX buffer size RCTL.BSIZE can express within the pool's data room (SDM 13.4.22): a
    /// frame must fit it without scatter (DPDK's `eth_em_mtu_set` and `eth_em_rx_init` refuse
    /// the same).
    fn rx_frame_room(&self, pool: &PacketPool) -> Option<usize> {
        Some(init::rx_buffer_size(usize::from(pool.data_room())).map_or(0, |(bsize, _)| bsize))
    }

    fn start(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        let regs = init::StartRegs { rctl: self.rctl(settings, self.nb_rx > 0), vlan: self.vlan, rxcsum: self.rxcsum };
        init::start(&self.bar, settings.mac, self.tx.get_mut(), self.rx.get_mut(), regs).map_err(|e| self.error(e))?;
        self.started = true;
        Ok(())
    }

    fn stop(&mut self) -> Result<(), EthError> {
        self.quiesce();
        self.started = false;
        Ok(())
    }

    fn close(&mut self) -> Result<(), EthError> {
        self.quiesce();
        self.started = false;
        self.rx.replace(None);
        self.tx.replace(None);
        self.rx_bsize = None;
        // Fold the counters (a reset clears the registers), then leave the device reset and
        // silent. The port read its last counters before closing.
        let [rx, rx_bytes, tx, tx_bytes, missed, errors] = self.hw_stats.device_totals(&self.bar);
        tracing::debug!(
            "e1000 {} closing: ipackets {rx} ibytes {rx_bytes} opackets {tx} obytes {tx_bytes} imissed {missed} \
             ierrors {errors} (the device's counters)",
            self.addr,
        );
        init::reset(&self.bar).map_err(|e| self.error(e))
    }

    fn reset(&mut self) -> Result<(), EthError> {
        self.close()?;
        init::link_up(&self.bar);
        self.nb_rx = 0;
        self.nb_tx = 0;
        if let Some(mac) = init::read_mac(&self.bar).filter(|m| m.is_valid_unicast()) {
            self.default_mac = mac;
        }
        Ok(())
    }

    fn link(&self, _started: bool) -> LinkStatus {
        init::link_status(&self.bar)
    }

    /// Receive address 0 (SDM 13.4.26): written at once, started or not.
    fn apply_mac(&self, settings: &PortSettings, _started: bool) -> Result<(), EthError> {
        init::write_mac(&self.bar, settings.mac);
        Ok(())
    }

    /// RCTL.UPE and MPE (SDM 13.4.22).
    fn apply_promiscuous(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.update_rctl(settings, started);
        Ok(())
    }

    /// RCTL.MPE.
    fn apply_allmulticast(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.update_rctl(settings, started);
        Ok(())
    }

    /// RCTL.LPE (the port checked that the frames fit the RX buffers).
    fn apply_mtu(&mut self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        self.update_rctl(settings, started);
        Ok(())
    }

    fn stats(&self, sw: Stats) -> Stats {
        self.hw_stats.stats(&self.bar, &sw)
    }

    fn stats_reset(&self) {
        self.hw_stats.reset(&self.bar);
        self.rx_counters.reset();
    }

    fn xstats(&self, sw: &Stats) -> Vec<XStat> {
        let mut all = self.hw_stats.xstats(&self.bar, sw);
        all.extend(self.rx_counters.xstats());
        all
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let ring = self.rx.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue })?;
        Ok(Box::new(E1000Rx { ring, bar: &self.bar, port: self.port }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let ring = self.tx.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue })?;
        Ok(Box::new(E1000Tx { ring, bar: &self.bar }))
    }
}

impl Drop for E1000Dev {
    fn drop(&mut self) {
        // Port::drop closes first; this covers a device dropped without a port around it.
        if self.started {
            self.quiesce();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_frame_is_the_devices() {
        assert_eq!(u32::from(E1000Dev::MAX_MTU) + init::FRAME_OVERHEAD, MAX_RX_PKTLEN);
    }
}
