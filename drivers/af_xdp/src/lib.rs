//! net_af_xdp: a port on any interface the kernel drives, through AF_XDP sockets (DPDK's
//! `drivers/net/af_xdp`), with the UMEM carved from burst's own packet pool so that a received
//! frame is an ordinary `PacketBuf` with no copy.
//!
//! `--vdev net_af_xdp0,iface=NAME[,start_queue=N][,queue_count=N][,shared_umem=0|1][,xdp_prog=PATH][,busy_budget=N][,force_copy=0|1][,mode=drv|skb]`
//!
//! Each queue is one socket bound to one of the interface's queues, with its four rings (fill,
//! completion, RX, TX) handled in bursts: one index store per ring per burst, at most one
//! syscall per burst and only when the kernel asks for it (`XDP_USE_NEED_WAKEUP`) or busy
//! polling is on. An XDP program (libxdp's default, or the user's) redirects each queue's
//! frames to its socket; it is attached through a BPF link, so the kernel detaches it when the
//! process ends however it ends. The interface's address, MTU and link come from netlink
//! (`burst_netif`); the kernel's drop counts are extended stats.
//!
//! The files: `args.rs` (the device arguments), `if_xdp.rs` (if_xdp.h's constants and
//! layouts), `ring.rs` (one shared ring, its indices and entries), `umem.rs` (the pool's memory
//! as the UMEM, and the table of buffers the kernel holds), `init.rs` (a queue's socket, step
//! by step), `prog.rs` (the XDP program through libbpf), `rx.rs`, `tx.rs`, `dev.rs` (probe and
//! the control path), `error.rs`.
//!
//! Not done: multi-buffer frames (`XDP_USE_SG`; frames end at one chunk), the CNI and pinned-map
//! modes of DPDK 23.x, offloads.

mod args;
mod dev;
mod error;
mod if_xdp;
mod init;
mod prog;
mod ring;
mod rx;
mod tx;
mod umem;

pub use args::XdpArgs;
pub use dev::XdpDev;
pub use error::XdpError;
pub use prog::AttachMode;

/// The driver: `--vdev net_af_xdp0,iface=eth0`.
pub static DRIVER: burst_ethdev::VdevDriver = burst_ethdev::VdevDriver {
    name: "net_af_xdp",
    aliases: &["eth_af_xdp"],
    params:
        "iface=NAME,start_queue=N,queue_count=N,shared_umem=0|1,xdp_prog=PATH,busy_budget=N,force_copy=0|1,mode=drv|skb",
    probe: dev::probe,
    finish: None,
};
