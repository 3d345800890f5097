//! Register offsets and bits of the 8254x family, named as in the Intel 8254x Family of Gigabit
//! Ethernet Controllers Software Developer's Manual (SDM, revision 4.0), section 13 ("Register
//! Descriptions") unless noted. Only what this driver uses.

// 13.4.1 Device Control Register (CTRL).
/// Device Control.
pub const CTRL: usize = 0x0000;
/// Full duplex.
pub const CTRL_FD: u32 = 1 << 0;
/// Link reset.
pub const CTRL_LRST: u32 = 1 << 3;
/// Auto-speed detection enable.
pub const CTRL_ASDE: u32 = 1 << 5;
/// Set link up.
pub const CTRL_SLU: u32 = 1 << 6;
/// Invert loss-of-signal.
pub const CTRL_ILOS: u32 = 1 << 7;
/// Force speed.
pub const CTRL_FRCSPD: u32 = 1 << 11;
/// Force duplex.
pub const CTRL_FRCDPLX: u32 = 1 << 12;
/// Device reset (self-clearing).
pub const CTRL_RST: u32 = 1 << 26;
/// VLAN mode enable.
pub const CTRL_VME: u32 = 1 << 30;
/// PHY reset.
pub const CTRL_PHY_RST: u32 = 1 << 31;

// 13.4.2 Device Status Register (STATUS).
/// Device Status.
pub const STATUS: usize = 0x0008;
/// Full duplex.
pub const STATUS_FD: u32 = 1 << 0;
/// Link up.
pub const STATUS_LU: u32 = 1 << 1;
/// Link speed, bits 7:6: 00 10 Mb/s, 01 100 Mb/s, 1x 1000 Mb/s.
pub const STATUS_SPEED_SHIFT: u32 = 6;
/// Mask of the speed field after the shift.
pub const STATUS_SPEED_MASK: u32 = 0b11;

// VLAN Ether Type (VET, 00038h, SDM 13.4; VLANs: chapter 9): the TPID the device matches to
// strip (CTRL.VME) and inserts.
/// VLAN Ether Type.
pub const VET: usize = 0x0038;
/// 802.1Q's TPID.
pub const VET_8021Q: u32 = 0x8100;

// 13.4.4 EEPROM Read Register (EERD), 82540EM/82545EM (the 82544GC has none: its MAC comes from
// RAL0/RAH0, which the device loads from the EEPROM at reset).
/// EEPROM Read.
pub const EERD: usize = 0x0014;
/// Start a read.
pub const EERD_START: u32 = 1 << 0;
/// The read is done.
pub const EERD_DONE: u32 = 1 << 4;
/// Word address, bits 15:8.
pub const EERD_ADDR_SHIFT: u32 = 8;
/// Data, bits 31:16.
pub const EERD_DATA_SHIFT: u32 = 16;

// 13.4.17-13.4.21 Interrupt registers. Poll mode: everything masked.
/// Interrupt Cause Read (read-to-clear).
pub const ICR: usize = 0x00C0;
/// Interrupt Mask Clear.
pub const IMC: usize = 0x00D8;
/// Every interrupt cause.
pub const IMC_ALL: u32 = 0xFFFF_FFFF;

// 13.4.22 Receive Control Register (RCTL).
/// Receive Control.
pub const RCTL: usize = 0x0100;
/// Receiver enable.
pub const RCTL_EN: u32 = 1 << 1;
/// Store bad packets.
pub const RCTL_SBP: u32 = 1 << 2;
/// Unicast promiscuous.
pub const RCTL_UPE: u32 = 1 << 3;
/// Multicast promiscuous.
pub const RCTL_MPE: u32 = 1 << 4;
/// Long packet enable (frames up to 16384 bytes).
pub const RCTL_LPE: u32 = 1 << 5;
/// Broadcast accept mode.
pub const RCTL_BAM: u32 = 1 << 15;
/// Buffer size field, bits 17:16 (meaning depends on BSEX).
pub const RCTL_BSIZE_SHIFT: u32 = 16;
/// Buffer size extension: BSIZE counts 16 times larger.
pub const RCTL_BSEX: u32 = 1 << 25;
/// Strip the Ethernet CRC.
pub const RCTL_SECRC: u32 = 1 << 26;

// Receive Checksum Control (RXCSUM, 05000h, SDM 13.4; what it enables: 3.2.9). Written while
// the receiver is off.
/// Receive Checksum Control.
pub const RXCSUM: usize = 0x5000;
/// IP (IPv4 header) checksum offload enable.
pub const RXCSUM_IPOFLD: u32 = 1 << 8;
/// TCP/UDP checksum offload enable.
pub const RXCSUM_TUOFLD: u32 = 1 << 9;

// 13.4.33 Transmit Control Register (TCTL).
/// Transmit Control.
pub const TCTL: usize = 0x0400;
/// Transmitter enable.
pub const TCTL_EN: u32 = 1 << 1;
/// Pad short packets.
pub const TCTL_PSP: u32 = 1 << 3;
/// Collision threshold, bits 11:4.
pub const TCTL_CT_SHIFT: u32 = 4;
/// Collision distance, bits 21:12.
pub const TCTL_COLD_SHIFT: u32 = 12;
/// The recommended collision threshold (SDM 14.5).
pub const TCTL_CT_DEFAULT: u32 = 0x0F;
/// The recommended collision distance for full duplex (SDM 14.5).
pub const TCTL_COLD_FD: u32 = 0x40;

// 13.4.34 Transmit IPG Register (TIPG).
/// Transmit inter-packet gap.
pub const TIPG: usize = 0x0410;
/// IPGT 10, IPGR1 8, IPGR2 6: the copper values of SDM 13.4.34 (table 13-77).
pub const TIPG_COPPER: u32 = 10 | (8 << 10) | (6 << 20);

// 13.4.27-13.4.31 Receive descriptor ring.
/// RX descriptor base, low 32 bits.
pub const RDBAL: usize = 0x2800;
/// RX descriptor base, high 32 bits.
pub const RDBAH: usize = 0x2804;
/// RX descriptor ring length in bytes (a multiple of 128).
pub const RDLEN: usize = 0x2808;
/// RX descriptor head.
pub const RDH: usize = 0x2810;
/// RX descriptor tail.
pub const RDT: usize = 0x2818;

// 13.4.38-13.4.42 Transmit descriptor ring.
/// TX descriptor base, low 32 bits.
pub const TDBAL: usize = 0x3800;
/// TX descriptor base, high 32 bits.
pub const TDBAH: usize = 0x3804;
/// TX descriptor ring length in bytes (a multiple of 128).
pub const TDLEN: usize = 0x3808;
/// TX descriptor head.
pub const TDH: usize = 0x3810;
/// TX descriptor tail.
pub const TDT: usize = 0x3818;

// 13.5.1 Multicast Table Array (MTA[127:0]).
/// First Multicast Table Array entry.
pub const MTA: usize = 0x5200;
/// Entries in the MTA.
pub const MTA_LEN: usize = 128;

// 13.5.2-13.5.3 Receive Address Low/High (RAL0/RAH0: the station address).
/// Receive Address Low 0.
pub const RAL0: usize = 0x5400;
/// Receive Address High 0.
pub const RAH0: usize = 0x5404;
/// Address valid.
pub const RAH_AV: u32 = 1 << 31;

// 13.7 Statistics registers: all read-to-clear; 64-bit ones clear when the high half is read.
/// CRC Error Count.
pub const CRCERRS: usize = 0x4000;
/// Alignment Error Count.
pub const ALGNERRC: usize = 0x4004;
/// Symbol Error Count.
pub const SYMERRS: usize = 0x4008;
/// RX Error Count.
pub const RXERRC: usize = 0x400C;
/// Missed Packets Count (no descriptor free).
pub const MPC: usize = 0x4010;
/// Single Collision Count.
pub const SCC: usize = 0x4014;
/// Excessive Collisions Count.
pub const ECOL: usize = 0x4018;
/// Multiple Collision Count.
pub const MCC: usize = 0x401C;
/// Late Collisions Count.
pub const LATECOL: usize = 0x4020;
/// Collision Count.
pub const COLC: usize = 0x4028;
/// Defer Count.
pub const DC: usize = 0x4030;
/// Transmit with No CRS.
pub const TNCRS: usize = 0x4034;
/// Carrier Extension Error Count.
pub const CEXTERR: usize = 0x403C;
/// Receive Length Error Count.
pub const RLEC: usize = 0x4040;
/// XON Received Count.
pub const XONRXC: usize = 0x4048;
/// XON Transmitted Count.
pub const XONTXC: usize = 0x404C;
/// XOFF Received Count.
pub const XOFFRXC: usize = 0x4050;
/// XOFF Transmitted Count.
pub const XOFFTXC: usize = 0x4054;
/// Good Packets Received Count.
pub const GPRC: usize = 0x4074;
/// Broadcast Packets Received Count.
pub const BPRC: usize = 0x4078;
/// Multicast Packets Received Count.
pub const MPRC: usize = 0x407C;
/// Good Packets Transmitted Count.
pub const GPTC: usize = 0x4080;
/// Good Octets Received Count, low (the high half at +4).
pub const GORCL: usize = 0x4088;
/// Good Octets Transmitted Count, low (the high half at +4).
pub const GOTCL: usize = 0x4090;
/// Receive No Buffers Count.
pub const RNBC: usize = 0x40A0;
/// Receive Undersize Count.
pub const RUC: usize = 0x40A4;
/// Receive Fragment Count.
pub const RFC: usize = 0x40A8;
/// Receive Oversize Count (frames longer than allowed: LPE off, or over 16384).
pub const ROC: usize = 0x40AC;
/// Receive Jabber Count.
pub const RJC: usize = 0x40B0;
/// Total Octets Received, low (the high half at +4).
pub const TORL: usize = 0x40C0;
/// Total Octets Transmitted, low (the high half at +4).
pub const TOTL: usize = 0x40C8;
/// Total Packets Received.
pub const TPR: usize = 0x40D0;
/// Total Packets Transmitted.
pub const TPT: usize = 0x40D4;
/// Multicast Packets Transmitted Count.
pub const MPTC: usize = 0x40F0;
/// Broadcast Packets Transmitted Count.
pub const BPTC: usize = 0x40F4;

/// The last register this driver touches, plus 4: BAR0 must be at least this long.
pub const BAR0_MIN_LEN: usize = RAH0 + 4;

// 3.2.3 Receive Descriptor Format (legacy): status (3.2.3.1, table 3-2) and errors (3.2.3.2,
// table 3-3).
/// RX descriptor status: descriptor done.
pub const RXD_STAT_DD: u8 = 1 << 0;
/// RX descriptor status: end of packet.
pub const RXD_STAT_EOP: u8 = 1 << 1;
/// RX descriptor status: ignore checksum indication (IPCS and TCPCS say nothing).
pub const RXD_STAT_IXSM: u8 = 1 << 2;
/// RX descriptor status: the frame matched VET and CTRL.VME stripped its tag into `special`.
pub const RXD_STAT_VP: u8 = 1 << 3;
/// RX descriptor status: the TCP/UDP checksum was checked (TCPE holds the verdict).
pub const RXD_STAT_TCPCS: u8 = 1 << 5;
/// RX descriptor status: the IPv4 header checksum was checked (IPE holds the verdict).
pub const RXD_STAT_IPCS: u8 = 1 << 6;
/// RX descriptor error: CRC or alignment error.
pub const RXD_ERR_CE: u8 = 1 << 0;
/// RX descriptor error: symbol error.
pub const RXD_ERR_SE: u8 = 1 << 1;
/// RX descriptor error: sequence error.
pub const RXD_ERR_SEQ: u8 = 1 << 2;
/// RX descriptor error: carrier extension error.
pub const RXD_ERR_CXE: u8 = 1 << 4;
/// RX descriptor error: TCP/UDP checksum error (valid with TCPCS).
pub const RXD_ERR_TCPE: u8 = 1 << 5;
/// RX descriptor error: IPv4 checksum error (valid with IPCS).
pub const RXD_ERR_IPE: u8 = 1 << 6;
/// RX descriptor error: RX data error.
pub const RXD_ERR_RXE: u8 = 1 << 7;
/// The errors that make a frame bad (TCPE and IPE only report checksums: such a frame is
/// delivered with its verdict, as DPDK's em does).
pub const RXD_ERR_FRAME: u8 = RXD_ERR_CE | RXD_ERR_SE | RXD_ERR_SEQ | RXD_ERR_CXE | RXD_ERR_RXE;

// 3.3.3 Legacy Transmit Descriptor Format.
/// TX command: end of packet.
pub const TXD_CMD_EOP: u8 = 1 << 0;
/// TX command: insert FCS.
pub const TXD_CMD_IFCS: u8 = 1 << 1;
/// TX command: report status (write DD back).
pub const TXD_CMD_RS: u8 = 1 << 3;
/// TX command (TCP/IP data descriptor, 3.3.7.1): this descriptor is part of a TCP
/// segmentation context.
pub const TXD_CMD_TSE: u8 = 1 << 2;
/// TX command: extended descriptor (a TCP/IP context or data descriptor, 3.3.5).
pub const TXD_CMD_DEXT: u8 = 1 << 5;
/// TX command: insert the `special` field as a VLAN tag (with CTRL.VME, SDM 3.3.3.1, 9).
pub const TXD_CMD_VLE: u8 = 1 << 6;
/// TX status: descriptor done.
pub const TXD_STAT_DD: u8 = 1 << 0;

// 3.3.6 TCP/IP Context Descriptor: TUCMD (3.3.6.1) beside the DEXT, RS and TSE of the commands
// above.
/// Context command: the L4 protocol is TCP (clear: UDP).
pub const TXC_TUCMD_TCP: u8 = 1 << 0;
/// Context command: the L3 protocol is IPv4 (clear: IPv6).
pub const TXC_TUCMD_IP: u8 = 1 << 1;
/// Descriptor type of a TCP/IP context descriptor (DTYP, 3.3.6).
pub const TXD_DTYP_CONTEXT: u8 = 0x0;
/// Descriptor type of a TCP/IP data descriptor (DTYP, 3.3.7).
pub const TXD_DTYP_DATA: u8 = 0x1;

// 3.3.7.2 TCP/IP data descriptor option field (POPTS), read from a packet's first descriptor.
/// Insert the IP checksum the context describes.
pub const TXD_POPTS_IXSM: u8 = 1 << 0;
/// Insert the TCP/UDP checksum the context describes.
pub const TXD_POPTS_TXSM: u8 = 1 << 1;

/// Descriptor size (RX and TX, legacy): 16 bytes (3.2.3, 3.3.3).
pub const DESC_SIZE: usize = 16;
/// Ring lengths are multiples of 128 bytes, 8 descriptors (13.4.29, 13.4.40).
pub const RING_ALIGN_DESCS: u16 = 8;
/// Most bytes one legacy TX descriptor can carry (3.3.3: "the maximum length is 16288"), and
/// the largest frame this driver sends without segmentation.
pub const TXD_MAX_LEN: usize = 16288;
/// Most bytes of TCP payload one segmentation context describes (PAYLEN, 20 bits, 3.3.6).
pub const TXC_MAX_PAYLEN: usize = (1 << 20) - 1;
/// The longest frame the device receives with long packet enable (13.4.22: LPE "up to 16384
/// bytes"): anything a device reports past it is a lie.
pub const RX_MAX_FRAME: usize = 16384;
