//! The legacy descriptor formats, each field named once: [`RxDesc`] (SDM 3.2.3, table 3-1) and
//! [`TxDesc`] (SDM 3.3.3, figure 3-10), as `#[repr(C)]` layouts, and their accessors on a
//! ring's [`Desc`] handle, so that rx.rs and tx.rs say `desc.status()` and
//! `desc.set_command(len, cmd)` rather than a byte offset.
//!
//! Every access is one volatile load or store through a raw pointer to the field's place; the
//! driver writes the second half of a descriptor whole ([`DescHalf`]), one 64-bit store as the
//! device reads it. What the device writes (RX length, status and errors; TX status) comes back
//! as plain integers: untrusted input, judged by rx.rs and tx.rs.
//!
//! The advanced formats of igb and ixgbe can follow the same pattern: one layout per format,
//! with the read and write-back views of the same 16 bytes as two layouts, a [`Descriptor`]
//! impl, and accessors on `Desc<'_, Format>`.
//!
//! The device-side writers at the end exist for the tests and the benchmark only.

use crate::regs::DESC_SIZE;
use crate::ring::{Desc, DescHalf, Descriptor};

/// A legacy receive descriptor (SDM 3.2.3, table 3-1).
#[repr(C, align(16))]
pub(crate) struct RxDesc {
    /// Buffer Address: where the device writes the frame (bytes 0-7).
    buffer: u64,
    /// What the device writes back when it is done with the descriptor (bytes 8-15).
    wb: RxWriteBack,
}

/// The part of a receive descriptor the device writes back.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct RxWriteBack {
    /// Length: bytes the device wrote into the buffer, CRC stripped here (RCTL.SECRC).
    length: u16,
    /// Packet Checksum: unused (no checksum offload).
    checksum: u16,
    /// Status: DD, EOP, and offload bits this driver does not ask for.
    status: u8,
    /// Errors: CE, SE, SEQ, CXE, RXE, and checksum errors.
    errors: u8,
    /// Special: the VLAN tag, when the device strips it (it does not here).
    special: u16,
}

/// A legacy transmit descriptor (SDM 3.3.3, figure 3-10).
#[repr(C, align(16))]
pub(crate) struct TxDesc {
    /// Buffer Address: where the device reads the frame (bytes 0-7).
    buffer: u64,
    /// Length, command and status (bytes 8-15).
    ctl: TxCtl,
}

/// The part of a transmit descriptor after its buffer address.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct TxCtl {
    /// Length: bytes to send from the buffer (3.3.3: at most 16288).
    length: u16,
    /// Checksum Offset: unused (no checksum offload).
    cso: u8,
    /// Command: EOP, IFCS, RS, ...
    cmd: u8,
    /// Status (the low nibble; the high one is reserved): DD, written back when RS is set.
    status: u8,
    /// Checksum Start: unused.
    css: u8,
    /// Special: the VLAN tag to insert (VLE unset here).
    special: u16,
}

const _: () = assert!(size_of::<RxDesc>() == DESC_SIZE && size_of::<TxDesc>() == DESC_SIZE);

// SAFETY: #[repr(C)], 16 bytes aligned to 16 (the ring is 128-aligned), integer fields only.
unsafe impl Descriptor for RxDesc {}
// SAFETY: as for RxDesc.
unsafe impl Descriptor for TxDesc {}
// SAFETY: #[repr(C, align(8))], fields of 2+2+1+1+2 bytes in that order: 8 bytes, no padding.
unsafe impl DescHalf for RxWriteBack {}
// SAFETY: #[repr(C, align(8))], fields of 2+1+1+1+1+2 bytes in that order: 8 bytes, no padding.
unsafe impl DescHalf for TxCtl {}

impl Desc<'_, RxDesc> {
    /// Status, as the device last wrote it.
    #[inline(always)]
    pub(crate) fn status(self) -> u8 {
        // SAFETY: the handle points at a descriptor inside its ring (checked at `DescRing::desc`)
        // for as long as it lives; a volatile load of one field, no reference made.
        unsafe { (&raw const (*self.as_ptr()).wb.status).read_volatile() }
    }

    /// Errors, as the device last wrote them.
    #[inline(always)]
    pub(crate) fn errors(self) -> u8 {
        // SAFETY: as in `status`.
        unsafe { (&raw const (*self.as_ptr()).wb.errors).read_volatile() }
    }

    /// Length, as the device last wrote it: not yet checked against anything.
    #[inline(always)]
    pub(crate) fn length(self) -> u16 {
        // SAFETY: as in `status`; the field is 2-byte aligned inside the 16-aligned descriptor.
        u16::from_le(unsafe { (&raw const (*self.as_ptr()).wb.length).read_volatile() })
    }

    /// Hands the descriptor to the device with the buffer at `iova`: the address, and the
    /// write-back half cleared (status 0), so no DD from an earlier use survives.
    #[inline(always)]
    pub(crate) fn arm(self, iova: u64) {
        // SAFETY: as in `status`; 8-byte aligned field, a volatile store.
        unsafe { (&raw mut (*self.as_ptr()).buffer).write_volatile(iova.to_le()) };
        self.clear_write_back();
    }

    /// Clears the write-back half, status included.
    #[inline(always)]
    pub(crate) fn clear_write_back(self) {
        // SAFETY: as in `status`; the half is 8-byte aligned (its layout), one volatile store.
        unsafe { (&raw mut (*self.as_ptr()).wb).cast::<u64>().write_volatile(0) };
    }

    /// The buffer address the descriptor holds.
    #[cfg(test)]
    pub(crate) fn buffer(self) -> u64 {
        // SAFETY: as in `status`.
        u64::from_le(unsafe { (&raw const (*self.as_ptr()).buffer).read_volatile() })
    }

    /// The device's write-back (tests and benchmark): `length`, `status` and `errors`, checksum
    /// and special 0.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn device_write_back(self, length: u16, status: u8, errors: u8) {
        let wb = RxWriteBack { length: length.to_le(), checksum: 0, status, errors, special: 0 };
        // SAFETY: as in `clear_write_back`.
        unsafe { (&raw mut (*self.as_ptr()).wb).cast::<u64>().write_volatile(wb.to_bits()) };
    }
}

impl Desc<'_, TxDesc> {
    /// Status, as the device last wrote it.
    #[inline(always)]
    pub(crate) fn status(self) -> u8 {
        // SAFETY: the handle points at a descriptor inside its ring (checked at `DescRing::desc`)
        // for as long as it lives; a volatile load of one field, no reference made.
        unsafe { (&raw const (*self.as_ptr()).ctl.status).read_volatile() }
    }

    /// Points the descriptor at the buffer at `iova`.
    #[inline(always)]
    pub(crate) fn set_buffer(self, iova: u64) {
        // SAFETY: as in `status`; 8-byte aligned field, a volatile store.
        unsafe { (&raw mut (*self.as_ptr()).buffer).write_volatile(iova.to_le()) };
    }

    /// Sends `length` bytes with command `cmd`: no checksum offload, no VLAN tag, status 0 (so
    /// no DD from an earlier use survives). One store of the whole half.
    #[inline(always)]
    pub(crate) fn set_command(self, length: u16, cmd: u8) {
        let ctl = TxCtl { length: length.to_le(), cso: 0, cmd, status: 0, css: 0, special: 0 };
        // SAFETY: as in `status`; the half is 8-byte aligned (its layout), one volatile store.
        unsafe { (&raw mut (*self.as_ptr()).ctl).cast::<u64>().write_volatile(ctl.to_bits()) };
    }

    /// The buffer address the descriptor holds.
    #[cfg(test)]
    pub(crate) fn buffer(self) -> u64 {
        // SAFETY: as in `status`.
        u64::from_le(unsafe { (&raw const (*self.as_ptr()).buffer).read_volatile() })
    }

    /// The length to send.
    #[cfg(test)]
    pub(crate) fn length(self) -> u16 {
        // SAFETY: as in `status`.
        u16::from_le(unsafe { (&raw const (*self.as_ptr()).ctl.length).read_volatile() })
    }

    /// The command.
    #[cfg(test)]
    pub(crate) fn cmd(self) -> u8 {
        // SAFETY: as in `status`.
        unsafe { (&raw const (*self.as_ptr()).ctl.cmd).read_volatile() }
    }

    /// The device's write-back (tests and benchmark): `status` bits set, the rest as it was.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn device_set_status(self, status: u8) {
        let p = self.as_ptr();
        // SAFETY: as in `status`; a volatile load and store of one byte.
        unsafe { (&raw mut (*p).ctl.status).write_volatile((&raw const (*p).ctl.status).read_volatile() | status) };
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;
    use crate::regs::{TXD_CMD_EOP, TXD_CMD_IFCS, TXD_CMD_RS};
    use crate::ring::DescRing;
    use crate::testing::{memory, ring};

    #[test]
    fn the_layouts_are_the_sdms() {
        // Table 3-1: address 0, length 8, checksum 10, status 12, errors 13, special 14.
        let wb = offset_of!(RxDesc, wb);
        let rx = [
            offset_of!(RxDesc, buffer),
            wb + offset_of!(RxWriteBack, length),
            wb + offset_of!(RxWriteBack, checksum),
            wb + offset_of!(RxWriteBack, status),
            wb + offset_of!(RxWriteBack, errors),
            wb + offset_of!(RxWriteBack, special),
        ];
        assert_eq!(rx, [0, 8, 10, 12, 13, 14]);
        // Figure 3-10: address 0, length 8, CSO 10, CMD 11, STA 12, CSS 13, special 14.
        let ctl = offset_of!(TxDesc, ctl);
        let tx = [
            offset_of!(TxDesc, buffer),
            ctl + offset_of!(TxCtl, length),
            ctl + offset_of!(TxCtl, cso),
            ctl + offset_of!(TxCtl, cmd),
            ctl + offset_of!(TxCtl, status),
            ctl + offset_of!(TxCtl, css),
            ctl + offset_of!(TxCtl, special),
        ];
        assert_eq!(tx, [0, 8, 10, 11, 12, 13, 14]);
    }

    /// The descriptor's 16 bytes as the device sees them.
    fn bytes<D: Descriptor>(ring: &DescRing<D>, i: u16) -> [u8; 16] {
        let p = ring.desc(i).as_ptr().cast::<u8>();
        // SAFETY: the descriptor is 16 bytes inside the ring; volatile byte loads.
        std::array::from_fn(|k| unsafe { p.add(k).read_volatile() })
    }

    #[test]
    fn a_tx_descriptor_holds_address_length_and_command_where_the_device_reads_them() {
        let mem = memory();
        let ring: DescRing<TxDesc> = ring(&mem, 8);
        let d = ring.desc(3);
        d.set_buffer(0x1122_3344_5566_7788);
        d.set_command(60, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS);
        let b = bytes(&ring, 3);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 0x1122_3344_5566_7788);
        assert_eq!(u16::from_le_bytes([b[8], b[9]]), 60, "length at byte 8");
        assert_eq!(b[10], 0, "CSO");
        assert_eq!(b[11], TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS, "CMD at byte 11");
        assert_eq!(&b[12..], &[0, 0, 0, 0], "status, CSS, special");
        d.device_set_status(1);
        assert_eq!((d.status(), bytes(&ring, 3)[12]), (1, 1), "STA at byte 12");
        assert_eq!(
            (d.length(), d.cmd(), d.buffer()),
            (60, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS, 0x1122_3344_5566_7788)
        );
        assert_eq!(bytes(&ring, 2), [0; 16], "its neighbours untouched");
        assert_eq!(bytes(&ring, 4), [0; 16]);
    }

    #[test]
    fn an_rx_descriptor_reads_what_the_device_wrote_where_it_wrote_it() {
        let mem = memory();
        let ring: DescRing<RxDesc> = ring(&mem, 8);
        let d = ring.desc(5);
        d.arm(0x0000_7f00_dead_b000);
        d.device_write_back(0x05ea, 0x03, 0x80);
        let b = bytes(&ring, 5);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 0x0000_7f00_dead_b000);
        assert_eq!(&b[8..], &[0xea, 0x05, 0, 0, 0x03, 0x80, 0, 0], "length, checksum, status, errors, special");
        assert_eq!((d.length(), d.status(), d.errors()), (0x05ea, 0x03, 0x80));
        d.clear_write_back();
        assert_eq!(&bytes(&ring, 5)[8..], &[0; 8]);
        assert_eq!(d.buffer(), 0x0000_7f00_dead_b000, "the address stays");
        d.arm(0x1000);
        assert_eq!((d.buffer(), d.status()), (0x1000, 0));
        assert_eq!(bytes(&ring, 4), [0; 16], "its neighbours untouched");
        assert_eq!(bytes(&ring, 6), [0; 16]);
    }

    #[test]
    #[should_panic(expected = "outside a ring of 8")]
    fn an_index_past_the_ring_stops_at_the_boundary() {
        let mem = memory();
        let ring: DescRing<RxDesc> = ring(&mem, 8);
        ring.desc(8);
    }
}
