//! The net device's configuration space, `struct virtio_net_config` (virtio 1.2, 5.1.4): what
//! the probe learns from it (the MAC, the queue pairs, the MTU) and the link status, read again
//! at every link query. A field means something only when its feature was negotiated (5.1.4:
//! `mac` with MAC, `status` with STATUS, `max_virtqueue_pairs` with MQ, `mtu` with MTU); without
//! it the driver uses its own default. Offsets are in [`crate::spec::config`].

use burst_ethdev::MacAddr;

use crate::spec::config::{MAC, MAX_VIRTQUEUE_PAIRS, MTU, STATUS, VIRTIO_NET_S_LINK_UP};
use crate::spec::ctrl::{VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN};
use crate::spec::features as f;
use crate::transport::Transport;

/// The smallest MTU a device may report (5.1.4.1: "between 68 and 65535").
pub(crate) const MIN_MTU: u16 = 68;

/// What the config space says, for the negotiated features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NetConfig {
    /// The device's address, with MAC and when it is a unicast address.
    pub mac: Option<MacAddr>,
    /// `max_virtqueue_pairs` with MQ, else 1.
    pub max_pairs: u16,
    /// The device's largest MTU, with MTU and when it is valid.
    pub mtu: Option<u16>,
}

/// Reads the fields `features` make valid.
pub(crate) fn read(t: &dyn Transport, features: u64) -> NetConfig {
    let mac = (features & f::MAC != 0)
        .then(|| {
            let mut b = [0u8; 6];
            t.read_config(MAC, &mut b);
            MacAddr(b)
        })
        .filter(|m| m.is_valid_unicast());
    // 5.1.4.1: 1 to 0x8000 pairs. At 0x8000 the control queue (virtqueue 2 * pairs, 5.1.2)
    // would be 65536, past a u16 index: one pair fewer keeps it addressable.
    let max_pairs = if features & f::MQ != 0 {
        read_u16(t, MAX_VIRTQUEUE_PAIRS).clamp(VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX - 1)
    } else {
        1
    };
    let mtu = (features & f::MTU != 0).then(|| read_u16(t, MTU)).filter(|&m| m >= MIN_MTU);
    NetConfig { mac, max_pairs, mtu }
}

/// Whether the link is up: the transport reaches the device and, with STATUS, the device says
/// `VIRTIO_NET_S_LINK_UP` (without STATUS the link is taken as up, 5.1.4).
pub(crate) fn link_up(t: &dyn Transport, features: u64) -> bool {
    t.connected() && (features & f::STATUS == 0 || read_u16(t, STATUS) & VIRTIO_NET_S_LINK_UP != 0)
}

/// A random locally administered unicast address, for a device without one of its own (as
/// DPDK's `rte_eth_random_addr`).
pub(crate) fn random_mac() -> MacAddr {
    let mut b = [0u8; 6];
    // SAFETY: writes at most 6 bytes into a live local buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 6 {
        // No entropy source: something unlikely to collide still.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let pid = std::process::id();
        b = [0, (t >> 24) as u8, (t >> 16) as u8, (t >> 8) as u8, t as u8, pid as u8];
    }
    b[0] = (b[0] & 0xfe) | 0x02;
    MacAddr(b)
}

/// A little-endian u16 field (5.1.4: the config is little-endian for virtio 1.x; legacy
/// devices are little-endian on the x86 hosts this runs on).
fn read_u16(t: &dyn Transport, offset: usize) -> u16 {
    let mut b = [0u8; 2];
    t.read_config(offset, &mut b);
    u16::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::config::MAX_VIRTQUEUE_PAIRS;
    use crate::testdev::{device, memory};

    #[test]
    fn fields_count_only_with_their_feature() {
        let dev = device();
        let probed = dev.probe_dev(&memory(), None).unwrap();
        let t = &*probed.transport;
        let all = f::MAC | f::MQ | f::MTU | f::STATUS;
        let mac = Some("52:54:00:12:34:56".parse().unwrap());
        assert_eq!(read(t, all), NetConfig { mac, max_pairs: 2, mtu: Some(9000) });
        assert_eq!(read(t, 0), NetConfig { mac: None, max_pairs: 1, mtu: None });
        {
            let mut s = dev.state();
            s.config[..6].copy_from_slice(&[1, 0, 0, 0, 0, 1]); // multicast
            s.config[MAX_VIRTQUEUE_PAIRS..MAX_VIRTQUEUE_PAIRS + 2].copy_from_slice(&0x8000u16.to_le_bytes());
            s.config[MTU..MTU + 2].copy_from_slice(&67u16.to_le_bytes());
        }
        assert_eq!(read(t, all), NetConfig { mac: None, max_pairs: 0x7fff, mtu: None }, "invalid values unused");
        assert!(link_up(t, all));
        dev.state().config[STATUS] = 0;
        assert!(!link_up(t, all) && link_up(t, 0), "status counts only with STATUS");
        dev.state().connected = false;
        assert!(!link_up(t, 0), "a transport that lost its device");
    }

    #[test]
    fn random_addresses_are_local_unicast() {
        let (a, b) = (random_mac(), random_mac());
        assert!(a.is_local() && a.is_valid_unicast() && b.is_local() && b.is_valid_unicast());
        assert_ne!(a, b);
    }
}
