//! net_af_packet: a port on any interface the kernel drives (a cloud VM's NIC, a laptop's, a
//! veth), through `AF_PACKET` sockets with `PACKET_MMAP` rings (DPDK's `drivers/net/af_packet`).
//!
//! `--vdev net_af_packet0,iface=NAME[,qpairs=N][,blocksz=N][,framesz=N][,framecnt=N][,qdisc_bypass=0|1][,fanout_mode=MODE]`
//!
//! Each queue pair is one socket bound to the interface with an RX ring and a TX ring of
//! TPACKET_V2 frames in one mapping; with more than one pair the sockets form a
//! `PACKET_FANOUT` group that shares the interface's frames among them. RX polls the ring and
//! copies each frame into buffers of the queue's pool (a chain for a frame longer than one
//! buffer, with the scatter offload) and puts back the VLAN tag the kernel took off; TX copies
//! each packet into the ring and makes one `sendto` per burst. The interface's address, MTU,
//! link and queues come from netlink (`burst_netif`), and the port's settings go to it the same
//! way, put back as they were when the port closes. The kernel's drop counts are extended
//! stats.
//!
//! The files: `args.rs` (the device arguments), `tpacket.rs` (if_packet.h's constants and
//! layouts), `ring.rs` (the shared ring memory, frame by frame), `init.rs` (a queue pair's
//! socket, step by step), `rx.rs`, `tx.rs`, `dev.rs` (probe and the control path), `error.rs`.
//!
//! Not done: TPACKET_V3 (block-based RX, see docs/kernel-ports.md for why V2), timestamps, the
//! VLAN insert TX offload, checksum offloads.

mod args;
mod dev;
mod error;
mod init;
mod ring;
mod rx;
mod tpacket;
mod tx;

pub use args::PacketArgs;
pub use dev::PacketDev;
pub use error::PacketError;

/// The driver: `--vdev net_af_packet0,iface=eth0`.
pub static DRIVER: burst_ethdev::VdevDriver = burst_ethdev::VdevDriver {
    name: "net_af_packet",
    aliases: &["eth_af_packet"],
    params:
        "iface=NAME,qpairs=N,blocksz=N,framesz=N,framecnt=N,qdisc_bypass=0|1,fanout_mode=hash|lb|cpu|rollover|rnd|qm",
    probe: dev::probe,
    finish: None,
};
