//! burst-e1000: the poll-mode driver for the Intel 8254x family (DPDK's `net_e1000_em`) as QEMU
//! emulates it: `e1000` (82540EM, 8086:100e), `e1000-82545em` (82545EM copper, 8086:100f) and
//! `e1000-82544gc` (82544GC copper, 8086:100c). Register names and section numbers refer to the
//! Intel 8254x Family of Gigabit Ethernet Controllers Software Developer's Manual (SDM).
//!
//! Where to look, one idea a file:
//!
//! - `init`: the bring-up as the SDM's steps: probe (14.3: reset, interrupts masked, MAC from
//!   RAL0/RAH0 or the EEPROM, link), start (14.5 transmit and 14.4 receive initialisation) and
//!   stop, and the register values they program (RCTL, TCTL, buffer sizes).
//! - `rx`, `tx`: the burst functions (SDM 3.2 and 3.3), one tail write per burst, every
//!   written-back descriptor judged before a buffer leaves the driver; RX chains frames over
//!   several descriptors (scatter) and reads offload verdicts, TX posts chains and writes the
//!   TCP/IP context and data descriptors that checksum and TSO requests need.
//! - `desc`: the descriptor formats (legacy RX; legacy, TCP/IP context and TCP/IP data TX; SDM
//!   3.2.3, 3.3.3, 3.3.6, 3.3.7) as typed layouts with volatile field accessors.
//! - `ring`: descriptor memory, the index checked once per descriptor, ring index arithmetic.
//! - [`regs`]: register offsets and bits, and descriptor bits (SDM 13, 3).
//! - [`error`]: [`E1000Error`], every failure the driver reports.
//! - `stats`: read-to-clear counters (SDM 13.7) folded into 64-bit totals, and the RX queue's
//!   own counters (checksum errors, frames over descriptors dropped).
//! - `dev`: probe and the control path ([`burst_ethdev::EthDev`], DPDK's `eth_em_ops`).
//! - `testing` (tests and `benches/burst.rs` only, feature `bench`): the queues with no device,
//!   and (tests) the device's side of TX as the SDM describes it.
//!
//! What it does: one RX and one TX queue, polled (every interrupt masked); CRC stripping;
//! broadcast, promiscuous and all-multicast receive; MAC change; MTU up to 16110 with long
//! packet enable; start, stop and close leave the device quiet and every buffer back in its
//! pool. Offloads (DPDK's names): RX `scatter` (a frame over several buffers is one chained
//! packet, so jumbo frames fit 2 KiB buffers), `vlan_strip` (CTRL.VME: `vlan_tci`,
//! `RX_VLAN | RX_VLAN_STRIPPED`), `ipv4_cksum`, `udp_cksum`, `tcp_cksum` (RXCSUM: the
//! device's verdicts as `RX_IP_CKSUM_*`/`RX_L4_CKSUM_*`, a bad one delivered with its flag and
//! counted); TX `multi_segs` (a descriptor per segment, up to 255), `ipv4_cksum`, `udp_cksum`,
//! `tcp_cksum`, `tcp_tso` (a TCP/IP context written only when the parameters change),
//! `vlan_insert` (with `vlan_strip`: the device has one switch for both). Every descriptor the
//! device writes back is checked (length within the buffer, EOP, error bits, a frame within the
//! device's longest) before a buffer leaves the driver; one that lies costs its frame, counted.
//!
//! What it does not: VLAN filtering, QinQ, RSS (one queue), LRO, SCTP checksums, IPv6
//! header checksums (IPv6 has none), multicast address filters (only all-multicast),
//! interrupts, flow control settings, and the 8254x parts QEMU does not emulate (their IDs are
//! not in the table).

mod desc;
mod dev;
pub mod error;
mod init;
mod ring;
mod rx;
mod stats;
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
pub mod testing;
mod tx;

pub mod regs;

pub use dev::{E1000Dev, DESC_LIMITS, DRIVER_NAME, MAX_RX_PKTLEN, RX_OFFLOADS, TX_OFFLOADS};
pub use error::E1000Error;

use burst_ethdev::{PciDriver, PciId};

/// The devices this driver takes (QEMU's `hw/net/e1000.c` models).
pub const PCI_IDS: &[PciId] = &[
    PciId::new(0x8086, 0x100e), // 82540EM, QEMU `e1000`
    PciId::new(0x8086, 0x100f), // 82545EM copper, QEMU `e1000-82545em`
    PciId::new(0x8086, 0x100c), // 82544GC copper, QEMU `e1000-82544gc`
];

/// The driver, for `burst::drivers::registry()`.
pub static DRIVER: PciDriver = PciDriver { name: DRIVER_NAME, ids: PCI_IDS, probe: dev::probe };
