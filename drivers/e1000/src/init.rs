//! Bringing the device up, as a straight list of steps (SDM 14.3 "General Configuration", 14.4
//! "Receive Initialization", 14.5 "Transmit Initialization"), and the register-level helpers
//! for the MAC address and the link.

use std::time::{Duration, Instant};

use burst_ethdev::{Duplex, LinkStatus, MacAddr};
use burst_pci::Bar;

use crate::error::E1000Error;
use crate::regs::*;

/// How long a global reset may take. The SDM asks for at least 1 us before touching the device
/// again (14.3); QEMU resets at once, real parts within a few milliseconds.
const RESET_TIMEOUT: Duration = Duration::from_millis(100);

/// How long an EEPROM word read may take (SDM 13.4.4; QEMU answers at once).
const EERD_TIMEOUT: Duration = Duration::from_millis(10);

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

#[cfg(test)]
mod tests {
    use super::*;

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
