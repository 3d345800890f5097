//! net_ring: software ports joined by rings, so TX on one is RX on the other (DPDK's
//! `drivers/net/ring`).
//!
//! `--vdev net_ring0[,pair=NAME][,queues=N][,size=N][,mac=MAC]`:
//!
//! - Two ports naming the same `pair=NAME` are joined: TX queue `q` of one feeds RX queue `q` of
//!   the other, through one single-producer/single-consumer ring per queue and direction. The
//!   first port probed makes all the rings and parks the other side's ends with the driver's
//!   shared state ([`burst_ethdev::VdevShared`]); the second takes them. A third port naming a
//!   joined pair is an error, and both sides must agree on `queues` and `size`.
//! - Without `pair`, a port is its own loopback: TX queue `q` feeds its RX queue `q` (DPDK's
//!   `rte_pmd_ring_devinit` with no arguments makes one ring per queue used both ways).
//! - `queues=N` (1..=64, default 1): RX and TX queues the port has; `size=N` (default 1024,
//!   DPDK's): each ring's capacity. Descriptor counts given at queue setup are ignored, as DPDK's
//!   net_ring does.
//!
//! A packet crosses a ring as it was sent, chains and metadata included: the port offers the
//! `SCATTER` RX and `MULTI_SEGS` TX offloads (as DPDK's does), and no other.
//!
//! RX stamps the receiving port's id on each buffer (DPDK's net_ring leaves `mbuf->port` as the
//! sender wrote it; we set it, as hardware ports do). Packets still in a ring when its ports
//! close stay owned by the ring and go back to their pool when the ring's last end drops.
//!
//! What is not implemented: DPDK's `rte_eth_from_rings` (ports from rings the application made)
//! and the `nodeaction` argument (named rings shared between processes).

mod args;
mod dev;
mod pair;
mod rx;
mod tx;

pub use args::RingArgs;
pub use dev::{default_mac, RingDev};

/// The driver: `--vdev net_ring0,pair=p --vdev net_ring1,pair=p`, `--vdev net_ring0` (loopback).
pub static DRIVER: burst_ethdev::VdevDriver = burst_ethdev::VdevDriver {
    name: "net_ring",
    aliases: &["eth_ring"],
    params: "pair=NAME,queues=N,size=N,mac=MAC",
    probe: dev::probe,
    finish: Some(finish),
};

/// After every `--vdev`: each `pair=` name must have got its two ports.
fn finish(shared: &mut burst_ethdev::VdevShared) -> Result<(), burst_ethdev::EthError> {
    shared.get_or_default::<pair::Pairs>(pair::SHARED_KEY).check_complete()
}
