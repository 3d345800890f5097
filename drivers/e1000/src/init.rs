//! Bringing the device up and down as the SDM's lists of steps, each citing its section:
//!
//! - [`probe`]: from whatever state the device was left in to reset, silent, its station
//!   address read and its link set up (SDM 14.3 "General Configuration").
//! - [`start`]: the port's address, VLAN mode and receive checksums, then transmit (SDM 14.5
//!   "Transmit Initialization") and receive (SDM 14.4 "Receive Initialization"): ring base,
//!   length, head and tail, TIPG, TCTL, the first RDT write, RCTL last.
//! - [`stop`]: queued frames drained, receiver and transmitter off, every buffer taken back.
//!
//! Below them, the register-level steps they are made of: reset, interrupt mask, MAC address,
//! EEPROM, link, and the RCTL and TCTL values.

use std::time::{Duration, Instant};

use burst_ethdev::{Duplex, LinkStatus, MacAddr, PortSettings, RxOffloads};
use burst_pci::Bar;

use crate::error::E1000Error;
use crate::regs::*;
use crate::ring::{DescRing, Descriptor};
use crate::rx::RxRing;
use crate::tx::TxRing;

/// How long a global reset may take. The SDM asks for at least 1 us before touching the device
/// again (14.3); QEMU resets at once, real parts within a few milliseconds.
const RESET_TIMEOUT: Duration = Duration::from_millis(100);

/// How long an EEPROM word read may take (SDM 13.4.4; QEMU answers at once).
const EERD_TIMEOUT: Duration = Duration::from_millis(10);

/// How long `stop` waits for queued frames to leave before turning the transmitter off.
const TX_DRAIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Ethernet header and CRC around the MTU.
pub(crate) const FRAME_OVERHEAD: u32 = 18;

/// The largest frame received with LPE clear: 1518 plus a VLAN tag (SDM 13.4.22).
const STANDARD_MAX_FRAME: u32 = 1522;

/// Probe (SDM 14.3): the device reset and silent, its station address read, its link set up.
pub(crate) fn probe(bar: &Bar) -> Result<MacAddr, E1000Error> {
    // 1. Global reset, every interrupt masked before and after (14.3, 13.4.1).
    reset(bar)?;
    // 2. The station address: RAL0/RAH0 as the device loaded them from its EEPROM, or the
    //    EEPROM itself (13.5.2, 13.4.4).
    let mac = read_mac(bar).filter(|m| m.is_valid_unicast()).ok_or(E1000Error::NoValidMac)?;
    // 3. Link setup: the MAC follows what the PHY resolved (14.3, 8.6); MTA cleared (14.4).
    link_up(bar);
    Ok(mac)
}

/// What [`start`] programs beside the rings: RCTL, the VLAN mode and the receive checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartRegs {
    /// RCTL, written last.
    pub rctl: u32,
    /// CTRL.VME: strip VLAN tags on receive, insert them where a TX descriptor asks.
    pub vlan: bool,
    /// RXCSUM.
    pub rxcsum: u32,
}

/// Start: the port's address `mac`, the VLAN mode and receive checksum offloads, then the
/// transmit ring (SDM 14.5) and the receive ring (SDM 14.4) handed to the device, and RCTL set
/// last. Fails, with the transmitter off again and the receiver never turned on, when the RX pool
/// cannot fill the ring.
pub(crate) fn start(
    bar: &Bar,
    mac: MacAddr,
    tx: Option<&mut TxRing>,
    rx: Option<&mut RxRing>,
    regs: StartRegs,
) -> Result<(), E1000Error> {
    // 1. Interrupts masked: the driver polls (13.4.20).
    mask_interrupts(bar);
    // 2. The station address in RAL0/RAH0 (14.4).
    write_mac(bar, mac);
    // 3. VLAN mode (CTRL.VME with VET, chapter 9) and receive checksum offload (RXCSUM, 3.2.9),
    //    both while the receiver is off, as RXCSUM asks.
    set_vlan_mode(bar, regs.vlan);
    bar.write32(RXCSUM, regs.rxcsum);
    // 4. Transmit initialisation (14.5).
    if let Some(tx) = tx {
        start_tx(bar, tx);
    }
    // 5. Receive initialisation (14.4), up to the first RDT write.
    if let Some(rx) = rx {
        if let Err(e) = start_rx(bar, rx) {
            bar.write32(TCTL, 0);
            return Err(e);
        }
    }
    // 6. RCTL last, the receive ring in place (14.4).
    bar.write32(RCTL, regs.rctl);
    Ok(())
}

/// VLAN mode (CTRL.VME, 13.4.1; chapter 9): on, the device strips the 802.1Q tag (VET's type)
/// of every frame it receives into the descriptor (status VP, the tag in `special`) and inserts
/// `special` as a tag where a TX descriptor has VLE; off, it does neither.
fn set_vlan_mode(bar: &Bar, on: bool) {
    let ctrl = bar.read32(CTRL) & !CTRL_RST;
    if on {
        bar.write32(VET, VET_8021Q);
        bar.write32(CTRL, ctrl | CTRL_VME);
    } else {
        bar.write32(CTRL, ctrl & !CTRL_VME);
    }
}

/// RXCSUM for RX `offloads` (3.2.9): the IPv4 header checksum checked (IPOFLD) when IPv4
/// checksums are asked for, TCP and UDP ones (TUOFLD) when either is.
pub(crate) fn rxcsum(offloads: RxOffloads) -> u32 {
    let mut v = 0;
    if offloads.contains(RxOffloads::IPV4_CKSUM) {
        v |= RXCSUM_IPOFLD;
    }
    if offloads.intersects(RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM) {
        v |= RXCSUM_TUOFLD;
    }
    v
}

/// Transmit initialisation (SDM 14.5): an empty ring, its base, length, head and tail 0, the
/// inter-packet gap, then the transmitter on.
fn start_tx(bar: &Bar, tx: &mut TxRing) {
    tx.release();
    set_ring(bar, TDBAL, TDBAH, TDLEN, tx.ring());
    bar.write32(TDH, 0);
    bar.write32(TDT, 0);
    bar.write32(TIPG, TIPG_COPPER); // 13.4.34
    bar.write32(TCTL, TCTL_RUNNING); // 13.4.33
}

/// Receive initialisation (SDM 14.4) without RCTL: every descriptor given a buffer, the ring's
/// base, length and head 0, then RDT one short of the head, so that all but one descriptor are
/// the device's (3.2.6).
fn start_rx(bar: &Bar, rx: &mut RxRing) -> Result<(), E1000Error> {
    let ring = rx.ring().len();
    rx.arm().map_err(|free| E1000Error::RxPoolTooShort { ring, free })?;
    set_ring(bar, RDBAL, RDBAH, RDLEN, rx.ring());
    bar.write32(RDH, 0);
    // The descriptors are in memory before the device may fetch them.
    burst_mem::barrier::io_wmb();
    bar.write32(RDT, u32::from(rx.tail()));
    Ok(())
}

/// A ring's IOVA into its base registers (low, high) and its length in bytes into its length
/// register (SDM 13.4.27-13.4.29 for RX, 13.4.38-13.4.40 for TX).
fn set_ring<D: Descriptor>(bar: &Bar, base_lo: usize, base_hi: usize, len: usize, ring: &DescRing<D>) {
    let iova = ring.iova();
    bar.write32(base_lo, iova as u32);
    bar.write32(base_hi, (iova >> 32) as u32);
    bar.write32(len, ring.bytes());
}

/// Stop: queued frames let out, receiver and transmitter off (RCTL.EN, SDM 13.4.22; TCTL.EN,
/// 13.4.33), every buffer back from both rings, heads and tails 0. Leaves the rest of the
/// device as it is: the next [`start`] programs the rings and RCTL again.
pub(crate) fn stop(bar: &Bar, tx: Option<&mut TxRing>, rx: Option<&mut RxRing>) {
    // 1. Frames already queued leave (TDH reaches TDT), for a little while.
    if tx.is_some() {
        drain_tx(bar);
    }
    // 2. Receiver and transmitter off.
    bar.write32(RCTL, 0);
    bar.write32(TCTL, 0);
    // 3. Reading STATUS flushes the posted writes. A real part may still finish a descriptor in
    //    flight (QEMU stops at once): give DMA a moment before the buffers go back to the pool.
    let _ = bar.read32(STATUS);
    std::thread::sleep(Duration::from_millis(1));
    // 4. Every buffer back.
    if let Some(rx) = rx {
        rx.release();
    }
    if let Some(tx) = tx {
        tx.release();
    }
    // 5. Heads and tails 0, as the released rings are (13.4.30-31, 13.4.41-42).
    for reg in [RDH, RDT, TDH, TDT] {
        bar.write32(reg, 0);
    }
}

/// Lets queued frames leave (TDH reaching TDT), for up to [`TX_DRAIN_TIMEOUT`].
fn drain_tx(bar: &Bar) {
    let deadline = Instant::now() + TX_DRAIN_TIMEOUT;
    while bar.read32(TDH) != bar.read32(TDT) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Masks every interrupt and clears pending causes: the driver polls (SDM 13.4.20, 13.4.17).
pub(crate) fn mask_interrupts(bar: &Bar) {
    bar.write32(IMC, IMC_ALL);
    let _ = bar.read32(ICR);
}

/// Global reset (CTRL.RST, SDM 13.4.1 and 14.3): interrupts masked before and after, as the SDM
/// asks. Fails when RST does not clear in time.
pub(crate) fn reset(bar: &Bar) -> Result<(), E1000Error> {
    mask_interrupts(bar);
    // Quiesce receive and transmit first, so no DMA is in flight across the reset.
    bar.write32(RCTL, 0);
    bar.write32(TCTL, 0);
    let _ = bar.read32(STATUS); // flush the posted writes
    std::thread::sleep(Duration::from_millis(1));
    bar.write32(CTRL, bar.read32(CTRL) | CTRL_RST);
    std::thread::sleep(Duration::from_micros(10));
    let deadline = Instant::now() + RESET_TIMEOUT;
    while bar.read32(CTRL) & CTRL_RST != 0 {
        if Instant::now() > deadline {
            return Err(E1000Error::ResetTimeout { ms: RESET_TIMEOUT.as_millis() as u64 });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    mask_interrupts(bar);
    Ok(())
}

/// The station address the device loaded from its EEPROM into RAL0/RAH0 at reset (SDM 13.5.2),
/// or read from the EEPROM through EERD when RAH0 is not valid (SDM 13.4.4, EEPROM words 0-2,
/// table 5-2).
pub(crate) fn read_mac(bar: &Bar) -> Option<MacAddr> {
    let rah = bar.read32(RAH0);
    if rah & RAH_AV != 0 {
        let ral = bar.read32(RAL0);
        return Some(mac_from_ra(ral, rah));
    }
    let mut mac = [0u8; 6];
    for word in 0..3u8 {
        let v = eeprom_read(bar, word)?;
        mac[usize::from(word) * 2..][..2].copy_from_slice(&v.to_le_bytes());
    }
    Some(MacAddr(mac))
}

/// The address in RAL/RAH (little-endian, first byte lowest).
pub(crate) fn mac_from_ra(ral: u32, rah: u32) -> MacAddr {
    let l = ral.to_le_bytes();
    let h = rah.to_le_bytes();
    MacAddr([l[0], l[1], l[2], l[3], h[0], h[1]])
}

/// RAL and RAH (with AV) for `mac`.
pub(crate) fn ra_from_mac(mac: MacAddr) -> (u32, u32) {
    let m = mac.0;
    (u32::from_le_bytes([m[0], m[1], m[2], m[3]]), u32::from_le_bytes([m[4], m[5], 0, 0]) | RAH_AV)
}

/// Makes `mac` the station address (receive address 0, valid).
pub(crate) fn write_mac(bar: &Bar, mac: MacAddr) {
    let (ral, rah) = ra_from_mac(mac);
    // RAH last: the entry is valid only once both halves are right.
    bar.write32(RAH0, 0);
    bar.write32(RAL0, ral);
    bar.write32(RAH0, rah);
}

/// One EEPROM word through EERD; `None` if the read never completes (an 82544GC has no EERD).
fn eeprom_read(bar: &Bar, word: u8) -> Option<u16> {
    bar.write32(EERD, (u32::from(word) << EERD_ADDR_SHIFT) | EERD_START);
    let deadline = Instant::now() + EERD_TIMEOUT;
    loop {
        let v = bar.read32(EERD);
        if v & EERD_DONE != 0 {
            return Some((v >> EERD_DATA_SHIFT) as u16);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Link setup for the internal copper PHY (SDM 14.3 and 8.6.x: "MAC settings automatically based
/// on duplex and speed resolved by PHY"): set link up, auto-speed detection, nothing forced, no
/// PHY or link reset held, VLAN mode off. Clears the multicast table (SDM 14.4).
pub(crate) fn link_up(bar: &Bar) {
    let ctrl = bar.read32(CTRL);
    let ctrl = (ctrl | CTRL_SLU | CTRL_ASDE)
        & !(CTRL_LRST | CTRL_PHY_RST | CTRL_ILOS | CTRL_FRCSPD | CTRL_FRCDPLX | CTRL_VME | CTRL_RST);
    bar.write32(CTRL, ctrl);
    for i in 0..MTA_LEN {
        bar.write32(MTA + 4 * i, 0);
    }
}

/// The link as STATUS reports it (SDM 13.4.2).
pub(crate) fn link_status(bar: &Bar) -> LinkStatus {
    status_to_link(bar.read32(STATUS))
}

/// Decodes STATUS.
pub(crate) fn status_to_link(status: u32) -> LinkStatus {
    if status & STATUS_LU == 0 {
        return LinkStatus::DOWN;
    }
    let speed_mbps = match (status >> STATUS_SPEED_SHIFT) & STATUS_SPEED_MASK {
        0 => 10,
        1 => 100,
        _ => 1000,
    };
    let duplex = if status & STATUS_FD != 0 { Duplex::Full } else { Duplex::Half };
    LinkStatus { up: true, speed_mbps, duplex, autoneg: true }
}

/// The smallest receive buffer RCTL.BSIZE expresses (SDM 13.4.22).
pub(crate) const MIN_RX_BUFSIZE: usize = 256;

/// RCTL.BSIZE/BSEX for the largest receive buffer the device offers that fits in `room` bytes
/// (SDM 13.4.22): the size and the bits. `None` below [`MIN_RX_BUFSIZE`].
pub(crate) fn rx_buffer_size(room: usize) -> Option<(usize, u32)> {
    const SIZES: [(usize, u32); 7] = [
        (16384, RCTL_BSEX | (1 << RCTL_BSIZE_SHIFT)),
        (8192, RCTL_BSEX | (2 << RCTL_BSIZE_SHIFT)),
        (4096, RCTL_BSEX | (3 << RCTL_BSIZE_SHIFT)),
        (2048, 0),
        (1024, 1 << RCTL_BSIZE_SHIFT),
        (512, 2 << RCTL_BSIZE_SHIFT),
        (MIN_RX_BUFSIZE, 3 << RCTL_BSIZE_SHIFT),
    ];
    SIZES.into_iter().find(|&(size, _)| size <= room)
}

/// TCTL for a running transmitter (SDM 14.5): enabled, short frames padded, the recommended
/// collision threshold and full-duplex collision distance.
pub(crate) const TCTL_RUNNING: u32 =
    TCTL_EN | TCTL_PSP | (TCTL_CT_DEFAULT << TCTL_CT_SHIFT) | (TCTL_COLD_FD << TCTL_COLD_SHIFT);

/// The frame size an MTU allows, CRC included.
fn max_frame(mtu: u16) -> u32 {
    u32::from(mtu) + FRAME_OVERHEAD
}

/// RCTL (SDM 13.4.22): broadcast accepted, CRC stripped, the RX buffers' size bits, long packets
/// when the MTU needs them, the port's filter modes; EN when `on`.
pub(crate) fn rctl(s: &PortSettings, bsize_bits: u32, on: bool) -> u32 {
    let mut v = RCTL_BAM | RCTL_SECRC | bsize_bits;
    if max_frame(s.mtu) > STANDARD_MAX_FRAME {
        v |= RCTL_LPE;
    }
    if s.promiscuous {
        v |= RCTL_UPE | RCTL_MPE;
    }
    if s.allmulticast {
        v |= RCTL_MPE;
    }
    if on {
        v |= RCTL_EN;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(promiscuous: bool, allmulticast: bool, mtu: u16) -> PortSettings {
        PortSettings { promiscuous, allmulticast, mtu, ..PortSettings::new(MacAddr([2, 0, 0, 0, 0, 1])) }
    }

    #[test]
    fn rctl_follows_filters_and_mtu() {
        let off = settings(false, false, 1500);
        let base = RCTL_BAM | RCTL_SECRC;
        assert_eq!(rctl(&off, 0, true), base | RCTL_EN, "broadcast, CRC strip, 2048-byte buffers");
        assert_eq!(rctl(&off, 0, false), base);
        assert_eq!(rctl(&settings(false, false, 1504), 0, true) & RCTL_LPE, 0, "1522 bytes fit without LPE");
        assert_ne!(rctl(&settings(false, false, 1505), 0, true) & RCTL_LPE, 0);
        let promisc = settings(true, false, 1500);
        assert_eq!(rctl(&promisc, 0, true) & (RCTL_UPE | RCTL_MPE), RCTL_UPE | RCTL_MPE);
        let allmulti = settings(false, true, 1500);
        assert_eq!(rctl(&allmulti, 0, true) & (RCTL_UPE | RCTL_MPE), RCTL_MPE);
        let (_, bits) = rx_buffer_size(9216).unwrap();
        assert_eq!(
            rctl(&settings(false, false, 9000), bits, true),
            base | RCTL_EN | RCTL_LPE | RCTL_BSEX | (2 << RCTL_BSIZE_SHIFT)
        );
    }

    #[test]
    fn rxcsum_follows_the_checksum_offloads() {
        assert_eq!(rxcsum(RxOffloads::NONE), 0);
        assert_eq!(rxcsum(RxOffloads::SCATTER | RxOffloads::VLAN_STRIP), 0);
        assert_eq!(rxcsum(RxOffloads::IPV4_CKSUM), RXCSUM_IPOFLD);
        assert_eq!(rxcsum(RxOffloads::UDP_CKSUM), RXCSUM_TUOFLD);
        assert_eq!(rxcsum(RxOffloads::CHECKSUM), RXCSUM_IPOFLD | RXCSUM_TUOFLD);
    }

    #[test]
    fn mac_round_trips_through_ral_rah() {
        let mac = MacAddr([0x52, 0x54, 0x00, 0xb5, 0x00, 0x01]);
        let (ral, rah) = ra_from_mac(mac);
        assert_eq!(ral, 0xb500_5452);
        assert_eq!(rah, 0x8000_0100);
        assert_eq!(mac_from_ra(ral, rah), mac);
    }

    #[test]
    fn status_decodes_speed_duplex_and_link() {
        assert_eq!(status_to_link(0), LinkStatus::DOWN);
        let l = status_to_link(STATUS_LU | STATUS_FD | (2 << STATUS_SPEED_SHIFT));
        assert_eq!((l.up, l.speed_mbps, l.duplex), (true, 1000, Duplex::Full));
        let l = status_to_link(STATUS_LU | (1 << STATUS_SPEED_SHIFT));
        assert_eq!((l.speed_mbps, l.duplex), (100, Duplex::Half));
    }

    #[test]
    fn the_buffer_size_never_exceeds_the_room() {
        assert_eq!(rx_buffer_size(2048), Some((2048, 0)));
        assert_eq!(rx_buffer_size(2047), Some((1024, 1 << 16)));
        assert_eq!(rx_buffer_size(9216), Some((8192, RCTL_BSEX | (2 << 16))));
        assert_eq!(rx_buffer_size(65535), Some((16384, RCTL_BSEX | (1 << 16))));
        assert_eq!(rx_buffer_size(255), None);
        for room in 256..20000 {
            let (size, _) = rx_buffer_size(room).unwrap();
            assert!(size <= room, "{room}: {size}");
        }
    }
}
