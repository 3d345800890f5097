//! The descriptor formats, each field named once: [`RxDesc`] (legacy, SDM 3.2.3, table 3-1)
//! and [`TxDesc`], whose 16 bytes are read by the device in one of three formats: legacy (SDM
//! 3.3.3, figure 3-10), TCP/IP context (3.3.6) or TCP/IP data (3.3.7), told apart by DEXT and
//! DTYP. Each is a `#[repr(C)]` layout with accessors on a ring's [`Desc`] handle, so that rx.rs
//! and tx.rs say `desc.status()` and `desc.set_data(...)` rather than a byte offset.
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

use crate::regs::{DESC_SIZE, TXD_CMD_DEXT, TXD_CMD_RS, TXD_DTYP_CONTEXT, TXD_DTYP_DATA};
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
    /// Errors: CE, SE, SEQ, CXE, RXE, and the checksum verdicts IPE and TCPE.
    errors: u8,
    /// Special: the VLAN tag the device stripped (status VP).
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
    /// Checksum Offset: unused (checksums go through the TCP/IP descriptors).
    cso: u8,
    /// Command: EOP, IFCS, RS, VLE.
    cmd: u8,
    /// Status (the low nibble; the high one is reserved): DD, written back when RS is set.
    status: u8,
    /// Checksum Start: unused.
    css: u8,
    /// Special: the VLAN tag to insert when VLE is set.
    special: u16,
}

/// The second half of a TCP/IP data descriptor (SDM 3.3.7): the bytes of [`TxCtl`]
/// as the device reads them when DEXT is set and DTYP says data.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct TxDataCtl {
    /// DTALEN bits 15:0: bytes to send from the buffer (a segment is shorter than 64 KiB, so
    /// bits 19:16 stay 0).
    dtalen: u16,
    /// DTALEN bits 19:16 (low nibble) and DTYP (high nibble, 0001b).
    dtyp: u8,
    /// DCMD: EOP, IFCS, TSE, RS, DEXT, VLE.
    dcmd: u8,
    /// Status: DD, as in the legacy format.
    status: u8,
    /// POPTS: IXSM, TXSM (read from a packet's first data descriptor).
    popts: u8,
    /// Special: the VLAN tag to insert when VLE is set.
    special: u16,
}

/// The first half of a TCP/IP context descriptor (SDM 3.3.6): where the IP and
/// TCP/UDP checksums start, go and end (byte offsets from the frame's start; an end of 0 is the
/// packet's end).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct TxContextOffsets {
    ipcss: u8,
    ipcso: u8,
    ipcse: u16,
    tucss: u8,
    tucso: u8,
    tucse: u16,
}

/// The second half of a TCP/IP context descriptor (SDM 3.3.6).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct TxContextCmd {
    /// PAYLEN bits 15:0: the TCP payload to segment (TSE).
    paylen: u16,
    /// PAYLEN bits 19:16 (low nibble) and DTYP (high nibble, 0000b).
    dtyp: u8,
    /// TUCMD: TCP, IP, TSE, RS, DEXT.
    tucmd: u8,
    /// Status: DD.
    status: u8,
    /// HDRLEN: the header bytes each segment repeats (TSE).
    hdrlen: u8,
    /// MSS: the TCP payload bytes of each segment (TSE).
    mss: u16,
}

/// What a TCP/IP context descriptor tells the device (SDM 3.3.6): the offload parameters that
/// stay with it for the packets after it, until the next context. tx.rs builds one per packet
/// that asks for a checksum or segmentation, and writes it only when it differs from the last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TxContext {
    /// IP checksum start: the IP header's first byte.
    pub ipcss: u8,
    /// IP checksum offset: where the IPv4 header checksum goes.
    pub ipcso: u8,
    /// IP checksum end: the IP header's last byte (0 for no IP checksum).
    pub ipcse: u16,
    /// TCP/UDP checksum start: the L4 header's first byte.
    pub tucss: u8,
    /// TCP/UDP checksum offset: where the L4 checksum goes.
    pub tucso: u8,
    /// TCP/UDP checksum end (0: the packet's end).
    pub tucse: u16,
    /// TCP payload bytes to segment (TSE), 20 bits.
    pub paylen: u32,
    /// TUCMD's TCP, IP and TSE bits (the driver adds DEXT and RS).
    pub tucmd: u8,
    /// Header bytes each segment repeats (TSE).
    pub hdrlen: u8,
    /// TCP payload bytes per segment (TSE).
    pub mss: u16,
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
// SAFETY: as for TxCtl.
unsafe impl DescHalf for TxDataCtl {}
// SAFETY: #[repr(C, align(8))], fields of 1+1+2+1+1+2 bytes in that order: 8 bytes, no padding.
unsafe impl DescHalf for TxContextOffsets {}
// SAFETY: as for TxCtl.
unsafe impl DescHalf for TxContextCmd {}

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

    /// Special: the VLAN tag the device stripped, as it last wrote it.
    #[inline(always)]
    pub(crate) fn special(self) -> u16 {
        // SAFETY: as in `length`.
        u16::from_le(unsafe { (&raw const (*self.as_ptr()).wb.special).read_volatile() })
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

    /// The device's write-back (tests and benchmark): `length`, `status`, `errors` and
    /// `special`, checksum 0.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn device_write_back(self, length: u16, status: u8, errors: u8, special: u16) {
        let wb = RxWriteBack { length: length.to_le(), checksum: 0, status, errors, special: special.to_le() };
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

    /// A legacy descriptor (3.3.3): sends `length` bytes with command `cmd` and, when `cmd` has
    /// VLE, the VLAN tag `special`; no checksum, status 0 (so no DD from an earlier use
    /// survives). One store of the whole half.
    #[inline(always)]
    pub(crate) fn set_command(self, length: u16, cmd: u8, special: u16) {
        let ctl = TxCtl { length: length.to_le(), cso: 0, cmd, status: 0, css: 0, special: special.to_le() };
        // SAFETY: as in `status`; the half is 8-byte aligned (its layout), one volatile store.
        unsafe { (&raw mut (*self.as_ptr()).ctl).cast::<u64>().write_volatile(ctl.to_bits()) };
    }

    /// A TCP/IP data descriptor (3.3.7): `length` bytes at `iova`, command `dcmd` (DEXT added),
    /// options `popts`, VLAN tag `special`, status 0.
    #[inline]
    pub(crate) fn set_data(self, iova: u64, length: u16, dcmd: u8, popts: u8, special: u16) {
        let ctl = TxDataCtl {
            dtalen: length.to_le(),
            dtyp: TXD_DTYP_DATA << 4,
            dcmd: dcmd | TXD_CMD_DEXT,
            status: 0,
            popts,
            special: special.to_le(),
        };
        self.set_buffer(iova);
        // SAFETY: as in `set_command`.
        unsafe { (&raw mut (*self.as_ptr()).ctl).cast::<u64>().write_volatile(ctl.to_bits()) };
    }

    /// A TCP/IP context descriptor (3.3.6) holding `ctx`, with DEXT and RS (so that its DD is
    /// written back like any other descriptor's), status 0. Two stores, one per half.
    #[inline]
    pub(crate) fn set_context(self, ctx: &TxContext) {
        let offsets = TxContextOffsets {
            ipcss: ctx.ipcss,
            ipcso: ctx.ipcso,
            ipcse: ctx.ipcse.to_le(),
            tucss: ctx.tucss,
            tucso: ctx.tucso,
            tucse: ctx.tucse.to_le(),
        };
        let cmd = TxContextCmd {
            paylen: (ctx.paylen as u16).to_le(),
            dtyp: ((ctx.paylen >> 16) & 0xf) as u8 | (TXD_DTYP_CONTEXT << 4),
            tucmd: ctx.tucmd | TXD_CMD_DEXT | TXD_CMD_RS,
            status: 0,
            hdrlen: ctx.hdrlen,
            mss: ctx.mss.to_le(),
        };
        let p = self.as_ptr();
        // SAFETY: as in `set_command`: the first half is the 8-byte aligned `buffer` field, the
        // second `ctl`; one volatile store each.
        unsafe {
            (&raw mut (*p).buffer).write_volatile(offsets.to_bits());
            (&raw mut (*p).ctl).cast::<u64>().write_volatile(cmd.to_bits());
        }
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

    /// The command (DCMD of a data descriptor, TUCMD of a context descriptor).
    #[cfg(test)]
    pub(crate) fn cmd(self) -> u8 {
        // SAFETY: as in `status`.
        unsafe { (&raw const (*self.as_ptr()).ctl.cmd).read_volatile() }
    }

    /// The descriptor's second half as a data descriptor reads it: DTYP, POPTS, special.
    #[cfg(test)]
    pub(crate) fn data_fields(self) -> (u8, u8, u16) {
        // SAFETY: as in `status`; the half is 8-byte aligned, one volatile load.
        let bits = unsafe { (&raw const (*self.as_ptr()).ctl).cast::<u64>().read_volatile() };
        let b = bits.to_ne_bytes();
        (b[2] >> 4, b[5], u16::from_le_bytes([b[6], b[7]]))
    }

    /// The descriptor as a context descriptor reads it, and its DTYP.
    #[cfg(test)]
    pub(crate) fn context(self) -> (TxContext, u8) {
        let p = self.as_ptr();
        // SAFETY: as in `data_fields`, for both halves.
        let (lo, hi) =
            unsafe { ((&raw const (*p).buffer).read_volatile(), (&raw const (*p).ctl).cast::<u64>().read_volatile()) };
        let (l, h) = (lo.to_ne_bytes(), hi.to_ne_bytes());
        let ctx = TxContext {
            ipcss: l[0],
            ipcso: l[1],
            ipcse: u16::from_le_bytes([l[2], l[3]]),
            tucss: l[4],
            tucso: l[5],
            tucse: u16::from_le_bytes([l[6], l[7]]),
            paylen: u32::from(u16::from_le_bytes([h[0], h[1]])) | (u32::from(h[2] & 0xf) << 16),
            tucmd: h[3],
            hdrlen: h[5],
            mss: u16::from_le_bytes([h[6], h[7]]),
        };
        (ctx, h[2] >> 4)
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
        // 3.3.7 (data): DTALEN 8, DTYP 10 (high nibble), DCMD 11, STA 12, POPTS 13, special 14.
        let data = [
            ctl + offset_of!(TxDataCtl, dtalen),
            ctl + offset_of!(TxDataCtl, dtyp),
            ctl + offset_of!(TxDataCtl, dcmd),
            ctl + offset_of!(TxDataCtl, status),
            ctl + offset_of!(TxDataCtl, popts),
            ctl + offset_of!(TxDataCtl, special),
        ];
        assert_eq!(data, [8, 10, 11, 12, 13, 14]);
        // 3.3.6 (context): IPCSS 0, IPCSO 1, IPCSE 2, TUCSS 4, TUCSO 5, TUCSE 6, PAYLEN 8,
        // DTYP 10, TUCMD 11, STA 12, HDRLEN 13, MSS 14.
        let context = [
            offset_of!(TxContextOffsets, ipcss),
            offset_of!(TxContextOffsets, ipcso),
            offset_of!(TxContextOffsets, ipcse),
            offset_of!(TxContextOffsets, tucss),
            offset_of!(TxContextOffsets, tucso),
            offset_of!(TxContextOffsets, tucse),
            8 + offset_of!(TxContextCmd, paylen),
            8 + offset_of!(TxContextCmd, dtyp),
            8 + offset_of!(TxContextCmd, tucmd),
            8 + offset_of!(TxContextCmd, status),
            8 + offset_of!(TxContextCmd, hdrlen),
            8 + offset_of!(TxContextCmd, mss),
        ];
        assert_eq!(context, [0, 1, 2, 4, 5, 6, 8, 10, 11, 12, 13, 14]);
    }

    #[test]
    fn data_and_context_descriptors_hold_their_fields_where_the_device_reads_them() {
        let mem = memory();
        let ring: DescRing<TxDesc> = ring(&mem, 8);
        let d = ring.desc(1);
        d.set_data(0xaabb_ccdd_0011_2200, 1448, TXD_CMD_EOP | TXD_CMD_RS, 0x03, 0x2064);
        let b = bytes(&ring, 1);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 0xaabb_ccdd_0011_2200);
        assert_eq!(&b[8..], &[0xa8, 0x05, 0x10, 0x29, 0, 0x03, 0x64, 0x20], "DTALEN, DTYP data, DCMD+DEXT, POPTS, tag");
        assert_eq!(d.data_fields(), (TXD_DTYP_DATA, 0x03, 0x2064));
        let ctx = TxContext {
            ipcss: 14,
            ipcso: 24,
            ipcse: 33,
            tucss: 34,
            tucso: 50,
            tucse: 0,
            paylen: 0x1_2345,
            tucmd: 0x07,
            hdrlen: 54,
            mss: 1448,
        };
        let c = ring.desc(2);
        c.set_context(&ctx);
        let b = bytes(&ring, 2);
        assert_eq!(&b[..8], &[14, 24, 33, 0, 34, 50, 0, 0], "IPCSS IPCSO IPCSE TUCSS TUCSO TUCSE");
        assert_eq!(&b[8..], &[0x45, 0x23, 0x01, 0x2f, 0, 54, 0xa8, 0x05], "PAYLEN, DTYP 0, TUCMD+DEXT+RS, HDRLEN, MSS");
        let (back, dtyp) = c.context();
        assert_eq!(dtyp, TXD_DTYP_CONTEXT);
        assert_eq!(back, TxContext { tucmd: 0x07 | TXD_CMD_DEXT | TXD_CMD_RS, ..ctx });
        assert_eq!(bytes(&ring, 0), [0; 16], "its neighbours untouched");
        assert_eq!(bytes(&ring, 3), [0; 16]);
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
        d.set_command(60, TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS, 0);
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
        d.device_write_back(0x05ea, 0x0b, 0x80, 0x2064);
        let b = bytes(&ring, 5);
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 0x0000_7f00_dead_b000);
        assert_eq!(&b[8..], &[0xea, 0x05, 0, 0, 0x0b, 0x80, 0x64, 0x20], "length, checksum, status, errors, special");
        assert_eq!((d.length(), d.status(), d.errors(), d.special()), (0x05ea, 0x0b, 0x80, 0x2064));
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
