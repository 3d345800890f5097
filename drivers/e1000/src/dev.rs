//! The e1000 port: probe, and the control path ([`EthDev`], DPDK's `eth_em_ops`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use burst_ethdev::error::Dir;
use burst_ethdev::{
    DescLimits, DevInfo, DeviceName, EthDev, EthError, LinkStatus, MacAddr, PciId, PciProbe, PortConf, PortId, RxBurst,
    RxOffloads, RxQueueConf, Slot, Stats, TxBurst, TxOffloads, TxQueueConf, XStat,
};
use burst_mem::Memory;
use burst_pci::{Bar, DeviceError, PciAddress, PciDevice};

use crate::init;
use crate::regs::*;
use crate::ring::DescRing;
use crate::rx::{E1000Rx, RxRing};
use crate::stats::{HwStats, SwCounters};
use crate::tx::{E1000Tx, TxRing};

/// The driver's name (DPDK's for this family).
pub const DRIVER_NAME: &str = "net_e1000_em";

/// Descriptor limits, RX and TX: DPDK's em (`E1000_MIN_RING_DESC` 32, `E1000_MAX_RING_DESC`
/// 4096), in multiples of 8 since ring lengths are multiples of 128 bytes (SDM 13.4.29).
pub const DESC_LIMITS: DescLimits = DescLimits { min: 32, max: 4096, align: RING_ALIGN_DESCS, default: 512 };

/// The largest frame the 8254x receives with long packet enable, CRC included: 16128 bytes, as
/// DPDK's `em_get_max_pktlen` says for this family (SDM 13.4.22: LPE allows up to 16384 bytes;
/// QEMU drops longer ones).
pub const MAX_RX_PKTLEN: u32 = 16128;

/// Ethernet header and CRC around the MTU.
const FRAME_OVERHEAD: u32 = 18;

/// The largest frame received with LPE clear: 1518 plus a VLAN tag (SDM 13.4.22).
const STANDARD_MAX_FRAME: u32 = 1522;

/// The MTU of a fresh port.
const DEFAULT_MTU: u16 = 1500;

/// How long `stop` waits for queued frames to leave before turning the transmitter off.
const TX_DRAIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Filters set through `&self` calls.
#[derive(Clone, Copy, Debug, Default)]
struct Filters {
    promiscuous: bool,
    allmulticast: bool,
}

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
    mac: Mutex<MacAddr>,
    filters: Mutex<Filters>,
    mtu: u16,
    started: bool,
    nb_rx: u16,
    nb_tx: u16,
    /// RCTL.BSIZE bits and size for the RX queue's buffers (set at RX queue setup).
    rx_bsize: Option<(usize, u32)>,
    rx: Slot<RxRing>,
    tx: Slot<TxRing>,
    hw_stats: HwStats,
    sw: SwCounters,
}

impl std::fmt::Debug for E1000Dev {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E1000Dev").field("addr", &self.addr).field("id", &self.id).field("port", &self.port).finish()
    }
}

/// Brings a matched device to the probed state: BAR0 mapped, bus master on, reset, interrupts
/// masked, MAC read, link set up.
pub(crate) fn probe(p: PciProbe) -> Result<Box<dyn EthDev>, EthError> {
    let addr = p.device.address();
    let err = |message: String| EthError::Device { driver: DRIVER_NAME, device: addr.to_string(), message };
    // SDM 13: every register is in the memory BAR 0 (128 KiB).
    let bar = p.device.bar(0)?;
    if !bar.is_mmio() || bar.len() < BAR0_MIN_LEN {
        return Err(err(format!(
            "BAR0 is {} and {:#x} bytes long: an 8254x has its registers in a memory BAR of 128 KiB; is this the \
             right device?",
            if bar.is_mmio() { "mapped" } else { "not mappable" },
            bar.len()
        )));
    }
    p.device.enable_bus_master().map_err(DeviceError::from)?;
    init::reset(&bar).map_err(err)?;
    let mac = init::read_mac(&bar)
        .filter(|m| m.is_valid_unicast())
        .ok_or_else(|| err("no valid MAC address in RAL0/RAH0 or the EEPROM: check the device's EEPROM".into()))?;
    init::link_up(&bar);
    let dev = E1000Dev {
        _device: p.device,
        bar,
        memory: p.memory,
        addr,
        id: p.id,
        port: p.port_id,
        socket: p.socket,
        mac: Mutex::new(mac),
        filters: Mutex::new(Filters::default()),
        mtu: DEFAULT_MTU,
        started: false,
        nb_rx: 0,
        nb_tx: 0,
        rx_bsize: None,
        rx: Slot::empty(),
        tx: Slot::empty(),
        hw_stats: HwStats::default(),
        sw: SwCounters::default(),
    };
    // Counters start from zero at probe (a previous user may have left some).
    dev.hw_stats.reset(&dev.bar, &dev.sw);
    tracing::debug!(%addr, %mac, link = %dev.link(), "e1000 probed ({:04x}:{:04x})", p.id.vendor, p.id.device);
    Ok(Box::new(dev))
}

/// The frame size an MTU allows, CRC included.
fn max_frame(mtu: u16) -> u32 {
    u32::from(mtu) + FRAME_OVERHEAD
}

/// RCTL (SDM 13.4.22): broadcast accepted, CRC stripped, the RX buffers' size bits, long packets
/// when the MTU needs them, the filters; EN when `on`.
fn rctl_value(f: Filters, mtu: u16, bsize_bits: u32, on: bool) -> u32 {
    let mut v = RCTL_BAM | RCTL_SECRC | bsize_bits;
    if max_frame(mtu) > STANDARD_MAX_FRAME {
        v |= RCTL_LPE;
    }
    if f.promiscuous {
        v |= RCTL_UPE | RCTL_MPE;
    }
    if f.allmulticast {
        v |= RCTL_MPE;
    }
    if on {
        v |= RCTL_EN;
    }
    v
}

/// Whether frames of `mtu` fit one RX buffer of `bsize` bytes: without scatter they must (DPDK's
/// `eth_em_mtu_set` and `eth_em_rx_init` refuse the same); the error says what to change.
fn frame_fits(mtu: u16, bsize: usize) -> Result<(), String> {
    let frame = max_frame(mtu);
    if frame as usize > bsize {
        return Err(format!(
            "MTU {mtu} needs frames of {frame} bytes and the RX buffers hold {bsize}: use a packet pool with a data \
             room of at least {frame} bytes for the RX queue, or a smaller MTU"
        ));
    }
    Ok(())
}

impl E1000Dev {
    /// The largest MTU: [`MAX_RX_PKTLEN`] less header and CRC, 16110.
    pub const MAX_MTU: u16 = (MAX_RX_PKTLEN - FRAME_OVERHEAD) as u16;

    fn error(&self, message: String) -> EthError {
        EthError::Device { driver: DRIVER_NAME, device: self.addr.to_string(), message }
    }

    /// RCTL for the current settings, EN when `on`.
    fn rctl(&self, on: bool) -> u32 {
        let f = *self.filters.lock().unwrap_or_else(|e| e.into_inner());
        rctl_value(f, self.mtu, self.rx_bsize.map_or(0, |(_, bits)| bits), on)
    }

    /// Rewrites RCTL (filters or MTU changed).
    fn update_rctl(&self) {
        self.bar.write32(RCTL, self.rctl(self.started && self.nb_rx > 0));
    }

    /// A unique memzone name for one of this port's rings.
    fn ring_name(&self, dir: Dir) -> String {
        format!("e1000_{}_{}_{}", self.addr, if dir == Dir::Rx { "rx" } else { "tx" }, self.port)
    }

    /// Lets queued frames leave (TDH reaching TDT), for a little while.
    fn drain_tx(&self) {
        let deadline = Instant::now() + TX_DRAIN_TIMEOUT;
        while self.bar.read32(TDH) != self.bar.read32(TDT) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Turns receive and transmit off and takes every buffer back from both rings.
    fn quiesce(&mut self) {
        if self.tx.get_mut().is_some() {
            self.drain_tx();
        }
        self.bar.write32(RCTL, self.rctl(false));
        self.bar.write32(TCTL, 0);
        // Reading STATUS flushes the posted writes. A real part may still finish a descriptor in
        // flight (QEMU stops at once): give DMA a moment before the buffers go back to the pool.
        let _ = self.bar.read32(STATUS);
        std::thread::sleep(Duration::from_millis(1));
        if let Some(rx) = self.rx.get_mut() {
            rx.release();
        }
        if let Some(tx) = self.tx.get_mut() {
            tx.release();
        }
        for reg in [RDH, RDT, TDH, TDT] {
            self.bar.write32(reg, 0);
        }
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
            rx_offload_capa: RxOffloads::NONE,
            tx_offload_capa: TxOffloads::NONE,
            min_mtu: 68,
            max_mtu: Self::MAX_MTU,
            max_rx_pktlen: MAX_RX_PKTLEN,
            min_rx_bufsize: 256,
            socket: self.socket,
        }
    }

    fn configure(&mut self, conf: &PortConf) -> Result<(), EthError> {
        if let Some(mtu) = conf.mtu {
            self.set_mtu(mtu)?;
        }
        self.nb_rx = conf.nb_rx_queues;
        self.nb_tx = conf.nb_tx_queues;
        Ok(())
    }

    fn rx_queue_setup(&mut self, _queue: u16, conf: &RxQueueConf) -> Result<(), EthError> {
        let room = usize::from(conf.pool.data_room());
        let (bsize, bits) = init::rx_buffer_size(room).ok_or_else(|| {
            self.error(format!("RX buffers of {room} bytes are too small: the e1000 needs at least 256"))
        })?;
        frame_fits(self.mtu, bsize).map_err(|m| self.error(m))?;
        // The old ring (and its memzone name) goes before the new one is made.
        drop(self.rx.replace(None));
        let ring = DescRing::new(&self.memory, &self.ring_name(Dir::Rx), conf.nb_desc, conf.socket.or(self.socket))?;
        self.rx_bsize = Some((bsize, bits));
        self.rx.replace(Some(RxRing::new(ring, conf.pool.clone(), bsize)));
        Ok(())
    }

    fn tx_queue_setup(&mut self, _queue: u16, conf: &TxQueueConf) -> Result<(), EthError> {
        drop(self.tx.replace(None));
        let ring = DescRing::new(&self.memory, &self.ring_name(Dir::Tx), conf.nb_desc, conf.socket.or(self.socket))?;
        self.tx.replace(Some(TxRing::new(ring)));
        Ok(())
    }

    fn start(&mut self) -> Result<(), EthError> {
        init::mask_interrupts(&self.bar);
        init::write_mac(&self.bar, self.mac());
        // SDM 14.5: transmit ring, then TIPG and TCTL.
        if let Some(tx) = self.tx.get_mut() {
            tx.release();
            let (iova, bytes) = (tx.ring().iova(), tx.ring().bytes());
            self.bar.write32(TDBAL, iova as u32);
            self.bar.write32(TDBAH, (iova >> 32) as u32);
            self.bar.write32(TDLEN, bytes);
            self.bar.write32(TDH, 0);
            self.bar.write32(TDT, 0);
            self.bar.write32(TIPG, TIPG_COPPER);
            self.bar.write32(TCTL, init::TCTL_RUNNING);
        }
        // SDM 14.4: receive ring filled, head 0, tail at the last armed descriptor, then RCTL.
        let mut rx_tail = None;
        if let Some(rx) = self.rx.get_mut() {
            let n = rx.ring().len();
            if let Err(free) = rx.arm() {
                let message = format!(
                    "the RX ring needs {n} buffers and its pool has {free} free: make the pool larger or the ring \
                     smaller"
                );
                self.bar.write32(TCTL, 0);
                return Err(self.error(message));
            }
            let (iova, bytes) = (rx.ring().iova(), rx.ring().bytes());
            self.bar.write32(RDBAL, iova as u32);
            self.bar.write32(RDBAH, (iova >> 32) as u32);
            self.bar.write32(RDLEN, bytes);
            self.bar.write32(RDH, 0);
            rx_tail = Some(rx.tail());
        }
        if let Some(tail) = rx_tail {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            self.bar.write32(RDT, u32::from(tail));
        }
        self.started = true;
        self.update_rctl();
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
        // Keep the counters (a reset clears the registers), then leave the device reset and silent.
        let s = self.hw_stats.stats(&self.bar, &self.sw);
        tracing::debug!(
            "e1000 {} closing: ipackets {} ibytes {} opackets {} obytes {} imissed {} ierrors {} oerrors {} \
             rx_nombuf {}",
            self.addr,
            s.ipackets,
            s.ibytes,
            s.opackets,
            s.obytes,
            s.imissed,
            s.ierrors,
            s.oerrors,
            s.rx_nombuf
        );
        init::reset(&self.bar).map_err(|m| self.error(m))
    }

    fn reset(&mut self) -> Result<(), EthError> {
        self.close()?;
        init::link_up(&self.bar);
        *self.filters.lock().unwrap_or_else(|e| e.into_inner()) = Filters::default();
        self.mtu = DEFAULT_MTU;
        self.nb_rx = 0;
        self.nb_tx = 0;
        let mac = init::read_mac(&self.bar).filter(|m| m.is_valid_unicast()).unwrap_or_else(|| self.mac());
        *self.mac.lock().unwrap_or_else(|e| e.into_inner()) = mac;
        Ok(())
    }

    fn link(&self) -> LinkStatus {
        init::link_status(&self.bar)
    }

    fn mac(&self) -> MacAddr {
        *self.mac.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_mac(&self, mac: MacAddr) -> Result<(), EthError> {
        if !mac.is_valid_unicast() {
            return Err(EthError::BadMac { port: self.port, mac });
        }
        let mut cur = self.mac.lock().unwrap_or_else(|e| e.into_inner());
        init::write_mac(&self.bar, mac);
        *cur = mac;
        Ok(())
    }

    fn set_promiscuous(&self, on: bool) -> Result<(), EthError> {
        self.filters.lock().unwrap_or_else(|e| e.into_inner()).promiscuous = on;
        self.update_rctl();
        Ok(())
    }

    fn promiscuous(&self) -> bool {
        self.filters.lock().unwrap_or_else(|e| e.into_inner()).promiscuous
    }

    fn set_allmulticast(&self, on: bool) -> Result<(), EthError> {
        self.filters.lock().unwrap_or_else(|e| e.into_inner()).allmulticast = on;
        self.update_rctl();
        Ok(())
    }

    fn allmulticast(&self) -> bool {
        self.filters.lock().unwrap_or_else(|e| e.into_inner()).allmulticast
    }

    fn set_mtu(&mut self, mtu: u16) -> Result<(), EthError> {
        if let Some((bsize, _)) = self.rx_bsize {
            frame_fits(mtu, bsize).map_err(|m| self.error(m))?;
        }
        self.mtu = mtu;
        self.update_rctl();
        Ok(())
    }

    fn mtu(&self) -> u16 {
        self.mtu
    }

    fn stats(&self) -> Stats {
        self.hw_stats.stats(&self.bar, &self.sw)
    }

    fn stats_reset(&self) {
        self.hw_stats.reset(&self.bar, &self.sw);
    }

    fn xstats(&self) -> Vec<XStat> {
        self.hw_stats.xstats(&self.bar, &self.sw)
    }

    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError> {
        let ring = self.rx.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Rx, queue })?;
        Ok(Box::new(E1000Rx { ring, bar: &self.bar, sw: &self.sw, port: self.port }))
    }

    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError> {
        let ring = self.tx.take().ok_or(EthError::QueueBusy { port: self.port, dir: Dir::Tx, queue })?;
        Ok(Box::new(E1000Tx { ring, bar: &self.bar, sw: &self.sw }))
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
    fn rctl_follows_filters_and_mtu() {
        let off = Filters::default();
        let base = RCTL_BAM | RCTL_SECRC;
        assert_eq!(rctl_value(off, 1500, 0, true), base | RCTL_EN, "broadcast, CRC strip, 2048-byte buffers");
        assert_eq!(rctl_value(off, 1500, 0, false), base);
        assert_eq!(rctl_value(off, 1504, 0, true) & RCTL_LPE, 0, "1522 bytes fit without LPE");
        assert_ne!(rctl_value(off, 1505, 0, true) & RCTL_LPE, 0);
        let promisc = Filters { promiscuous: true, allmulticast: false };
        assert_eq!(rctl_value(promisc, 1500, 0, true) & (RCTL_UPE | RCTL_MPE), RCTL_UPE | RCTL_MPE);
        let allmulti = Filters { promiscuous: false, allmulticast: true };
        assert_eq!(rctl_value(allmulti, 1500, 0, true) & (RCTL_UPE | RCTL_MPE), RCTL_MPE);
        let (_, bits) = init::rx_buffer_size(9216).unwrap();
        assert_eq!(rctl_value(off, 9000, bits, true), base | RCTL_EN | RCTL_LPE | RCTL_BSEX | (2 << RCTL_BSIZE_SHIFT));
    }

    #[test]
    fn the_mtu_must_fit_one_buffer() {
        assert!(frame_fits(1500, 2048).is_ok());
        assert!(frame_fits(2030, 2048).is_ok());
        let err = frame_fits(9000, 2048).unwrap_err();
        assert!(err.contains("MTU 9000 needs frames of 9018 bytes and the RX buffers hold 2048"), "{err}");
        assert!(frame_fits(9000, 16384).is_ok());
        assert_eq!(u32::from(E1000Dev::MAX_MTU) + FRAME_OVERHEAD, MAX_RX_PKTLEN);
    }
}
