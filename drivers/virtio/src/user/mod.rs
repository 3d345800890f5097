//! virtio-user: the virtio-net port over a vhost-user back-end, with no device and no VM (DPDK's
//! `net_virtio_user`). The back-end (DPDK's `net_vhost`, OVS-DPDK, VPP) maps our DMA memory from
//! the hugepage files we pass it and works on our rings in place.
//!
//! `--vdev virtio_user0,path=SOCK[,queues=N][,queue_size=N][,mac=MAC]`:
//! - `path` (required): the back-end's unix socket; we connect as the client.
//! - `queues` (1..=[`MAX_QUEUES`], default 1): queue pairs; more than one needs a back-end with
//!   multiqueue.
//! - `queue_size` (a power of two, 32..=32768, default 256): every ring's size.
//! - `mac`: the port's MAC (default: a random locally administered one).
//!
//! The memory must be hugepages in hugetlbfs files, in at most 8 regions: run with
//! `--single-file-segments` (see `docs/virtio-user.md`).
//!
//! - [`msg`]: the protocol's messages and their transport over the socket.
//! - `backend`: the conversation with the back-end: one connection's requests and replies, and
//!   what the back-end holds (rings, memory table) through start, stop and memory updates.
//! - [`frontend`]: the [`crate::transport::Transport`] implementation, emulated config and control
//!   queue, memory updates, reconnection.

mod backend;
pub(crate) mod frontend;
pub(crate) mod msg;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use burst_ethdev::{DeviceName, EthDev, EthError, MacAddr, VdevProbe};

use crate::dev::{DevContext, VirtioNet};
use frontend::{Options, VhostUser};

/// The arguments `--vdev virtio_user0,...` takes.
pub(crate) const PARAMS: &str = "path=SOCK[,queues=N][,queue_size=N][,mac=MAC]";

/// The most queue pairs `queues=` takes (DPDK's `VIRTIO_MAX_VIRTQUEUE_PAIRS` is 8 for
/// virtio-user's default; the vhost-user protocol allows more, the back-ends rarely).
pub const MAX_QUEUES: u64 = 128;

/// Parses the device arguments.
pub(crate) fn options(name: &str, args: &burst_ethdev::DevArgs) -> Result<(Options, Option<MacAddr>), EthError> {
    args.only(&["path", "queues", "queue_size", "mac"])?;
    let path = match args.get("path") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            return Err(args.error(
                "path= is required: the vhost-user back-end's socket, e.g. \
                 --vdev virtio_user0,path=/tmp/vhost.sock"
                    .into(),
            ))
        }
    };
    let queues = args.u64_in("queues", 1..=MAX_QUEUES, 1)? as u16;
    let queue_size = args.u64_in("queue_size", 32..=32768, 256)?;
    if !queue_size.is_power_of_two() {
        return Err(args.error(format!("queue_size={queue_size} is not a power of two (e.g. 256, 512, 1024)")));
    }
    let mac: Option<MacAddr> = args.parsed("mac")?;
    if let Some(m) = mac {
        if !m.is_valid_unicast() {
            return Err(args.error(format!("mac={m} is not a unicast address")));
        }
    }
    let config_mac = mac.unwrap_or_else(crate::config::random_mac).bytes();
    let opts = Options { path, queues, queue_size: queue_size as u16, mac: config_mac, name: name.to_string() };
    Ok((opts, mac))
}

/// Probes a `virtio_user` virtual device: connects to the back-end, shares the DMA memory, and
/// hands the transport to the net device.
pub(crate) fn probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    let (opts, mac) = options(p.name, p.args)?;
    let mut transport = VhostUser::connect(opts).map_err(|e| EthError::driver(crate::USER_DRIVER_NAME, p.name, e))?;
    transport.share(p.memory)?;
    let ctx = DevContext {
        driver: crate::USER_DRIVER_NAME,
        device: DeviceName::Vdev(p.name.to_string()),
        memory: p.memory.clone(),
        port: p.port_id,
        socket: None,
        mac,
        keep: None,
    };
    let dev = VirtioNet::new(Box::new(transport), ctx)?;
    tracing::debug!(device = p.name, port = p.port_id, "virtio-user probed");
    Ok(Box::new(dev))
}
