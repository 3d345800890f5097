//! Constants of the virtio 1.2 spec (OASIS, 2022) for the net device: feature bits, device
//! status, the split ring, `struct virtio_net_config`, the net header and control commands.
//! Names follow the spec's C identifiers; each group cites its section.

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete (virtio 1.x; the device clears it to refuse).
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The guest gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Feature bits: the net device's (virtio 1.2, 5.1.3) and the reserved transport ones (6).
pub mod features {
    /// Device handles packets with partial checksum.
    pub const CSUM: u64 = 1 << 0;
    /// Driver handles packets with partial checksum.
    pub const GUEST_CSUM: u64 = 1 << 1;
    /// Driver can receive TSOv4 (coalesced TCP over IPv4, with `gso_type` set); needs
    /// `GUEST_CSUM` (5.1.3.1).
    pub const GUEST_TSO4: u64 = 1 << 7;
    /// Driver can receive TSOv6; needs `GUEST_CSUM`.
    pub const GUEST_TSO6: u64 = 1 << 8;
    /// Device can segment TCP over IPv4 (`gso_type` TCPV4 on TX); needs `CSUM` (5.1.3.1).
    pub const HOST_TSO4: u64 = 1 << 11;
    /// Device can segment TCP over IPv6; needs `CSUM`.
    pub const HOST_TSO6: u64 = 1 << 12;
    /// Device reports its maximum MTU in config (`mtu`).
    pub const MTU: u64 = 1 << 3;
    /// Device has a MAC address in config (`mac`).
    pub const MAC: u64 = 1 << 5;
    /// Driver can merge receive buffers (`num_buffers` in the header).
    pub const MRG_RXBUF: u64 = 1 << 15;
    /// Config `status` is valid (link state).
    pub const STATUS: u64 = 1 << 16;
    /// A control virtqueue exists.
    pub const CTRL_VQ: u64 = 1 << 17;
    /// Control channel RX mode (promiscuous, all-multicast).
    pub const CTRL_RX: u64 = 1 << 18;
    /// Control channel VLAN filtering.
    pub const CTRL_VLAN: u64 = 1 << 19;
    /// Several queue pairs (config `max_virtqueue_pairs`, `VQ_PAIRS_SET`).
    pub const MQ: u64 = 1 << 22;
    /// The MAC can be set through the control queue.
    pub const CTRL_MAC_ADDR: u64 = 1 << 23;
    /// Legacy: notify even with no available buffers.
    pub const NOTIFY_ON_EMPTY: u64 = 1 << 24;
    /// Legacy: the header need not be in its own descriptor (6.3, 2.7.4).
    pub const ANY_LAYOUT: u64 = 1 << 27;
    /// Indirect descriptors (2.7.5.3).
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// `used_event` / `avail_event` notification suppression (2.7.7).
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// Compliance with virtio 1.x (modern devices).
    pub const VERSION_1: u64 = 1 << 32;
    /// The device reaches memory through the platform's IOMMU (6).
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// Packed virtqueues (2.8).
    pub const RING_PACKED: u64 = 1 << 34;
    /// Buffers are used in the order they were made available.
    pub const IN_ORDER: u64 = 1 << 35;

    /// Every bit this driver can use: what it negotiates when the device offers it.
    pub const WANTED: u64 = VERSION_1
        | MAC
        | STATUS
        | MRG_RXBUF
        | CTRL_VQ
        | CTRL_RX
        | CTRL_MAC_ADDR
        | MQ
        | MTU
        | ANY_LAYOUT
        | ACCESS_PLATFORM
        | IN_ORDER
        | RING_INDIRECT_DESC;

    /// The offload bits: negotiated only when the port's configuration asks for the offload
    /// they serve (as DPDK's `virtio_dev_configure` does), since each costs the device work per
    /// packet (a back-end reads every TX header once `CSUM` is on) and `GUEST_CSUM` lets the
    /// device hand over partial checksums.
    pub const OFFLOADS: u64 = CSUM | GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | HOST_TSO4 | HOST_TSO6;

    /// The spec's names of the bits above, for errors and logs.
    pub const NAMES: &[(u64, &str)] = &[
        (CSUM, "CSUM"),
        (GUEST_CSUM, "GUEST_CSUM"),
        (GUEST_TSO4, "GUEST_TSO4"),
        (GUEST_TSO6, "GUEST_TSO6"),
        (HOST_TSO4, "HOST_TSO4"),
        (HOST_TSO6, "HOST_TSO6"),
        (MTU, "MTU"),
        (MAC, "MAC"),
        (MRG_RXBUF, "MRG_RXBUF"),
        (STATUS, "STATUS"),
        (CTRL_VQ, "CTRL_VQ"),
        (CTRL_RX, "CTRL_RX"),
        (CTRL_VLAN, "CTRL_VLAN"),
        (MQ, "MQ"),
        (CTRL_MAC_ADDR, "CTRL_MAC_ADDR"),
        (NOTIFY_ON_EMPTY, "NOTIFY_ON_EMPTY"),
        (ANY_LAYOUT, "ANY_LAYOUT"),
        (RING_INDIRECT_DESC, "RING_INDIRECT_DESC"),
        (RING_EVENT_IDX, "RING_EVENT_IDX"),
        (VERSION_1, "VERSION_1"),
        (ACCESS_PLATFORM, "ACCESS_PLATFORM"),
        (RING_PACKED, "RING_PACKED"),
        (IN_ORDER, "IN_ORDER"),
    ];

    /// `bits` as names (`MAC CTRL_VQ bit40`).
    pub fn describe(bits: u64) -> String {
        let mut out = Vec::new();
        for b in 0..64 {
            let bit = 1u64 << b;
            if bits & bit != 0 {
                match NAMES.iter().find(|(v, _)| *v == bit) {
                    Some((_, name)) => out.push((*name).to_string()),
                    None => out.push(format!("bit{b}")),
                }
            }
        }
        if out.is_empty() {
            "none".into()
        } else {
            out.join(" ")
        }
    }
}

/// The split virtqueue (virtio 1.2, 2.7).
pub mod ring {
    /// Bytes per descriptor: `addr` u64, `len` u32, `flags` u16, `next` u16 (2.7.5).
    pub const DESC_SIZE: usize = 16;
    /// The buffer continues in `next`.
    pub const VRING_DESC_F_NEXT: u16 = 1;
    /// The device writes the buffer (device-writable, RX).
    pub const VRING_DESC_F_WRITE: u16 = 2;
    /// The buffer is a table of indirect descriptors.
    pub const VRING_DESC_F_INDIRECT: u16 = 4;
    /// `avail.flags`: the driver wants no interrupt (2.7.6; we poll).
    pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
    /// `used.flags`: the device wants no notification (2.7.7; a polling backend sets it).
    pub const VRING_USED_F_NO_NOTIFY: u16 = 1;
    /// Largest queue size (2.7: a power of two up to 32768).
    pub const MAX_QUEUE_SIZE: u16 = 32768;
    /// Legacy alignment of the used ring (2.7.2, 4.1.4.8: `QUEUE_ALIGN`).
    pub const LEGACY_ALIGN: usize = 4096;
}

/// `struct virtio_net_config` offsets in the device-specific config space (virtio 1.2, 5.1.4).
pub mod config {
    /// `mac[6]` (valid with `MAC`).
    pub const MAC: usize = 0;
    /// `status` u16 (valid with `STATUS`).
    pub const STATUS: usize = 6;
    /// `max_virtqueue_pairs` u16 (valid with `MQ`).
    pub const MAX_VIRTQUEUE_PAIRS: usize = 8;
    /// `mtu` u16 (valid with `MTU`).
    pub const MTU: usize = 10;
    /// `status` bit: link up.
    pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
    /// `status` bit: the driver should announce itself.
    pub const VIRTIO_NET_S_ANNOUNCE: u16 = 2;
}

/// `struct virtio_net_hdr` (virtio 1.2, 5.1.6): `flags` u8, `gso_type` u8, `hdr_len`,
/// `gso_size`, `csum_start`, `csum_offset` u16, and `num_buffers` u16 with `MRG_RXBUF` or
/// `VERSION_1`. Little-endian (legacy: the guest's order, which is little-endian on every host
/// this driver runs on).
pub mod net_hdr {
    /// The legacy header without `num_buffers`.
    pub const LEN: usize = 10;
    /// With `num_buffers` (`MRG_RXBUF` or `VERSION_1`).
    pub const LEN_MRG: usize = 12;
    /// Offset of `flags`.
    pub const FLAGS: usize = 0;
    /// Offset of `gso_type`.
    pub const GSO_TYPE: usize = 1;
    /// Offset of `hdr_len`: bytes of headers each segment repeats (5.1.6.2).
    pub const HDR_LEN: usize = 2;
    /// Offset of `gso_size`: payload bytes per segment.
    pub const GSO_SIZE: usize = 4;
    /// Offset of `csum_start`: where the device starts summing.
    pub const CSUM_START: usize = 6;
    /// Offset of `csum_offset`: where, after `csum_start`, the checksum goes.
    pub const CSUM_OFFSET: usize = 8;
    /// Offset of `num_buffers`.
    pub const NUM_BUFFERS: usize = 10;

    /// `flags`: the checksum from `csum_start` on is still to be computed and stored at
    /// `csum_start + csum_offset` (TX: by the device, 5.1.6.2; RX: the data is valid, the
    /// checksum partial, 5.1.6.4).
    pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
    /// `flags`, RX only: the device checked the packet's checksum (5.1.6.4).
    pub const VIRTIO_NET_HDR_F_DATA_VALID: u8 = 2;

    /// `gso_type`: not a segmentation request.
    pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
    /// `gso_type`: TCP over IPv4.
    pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
    /// `gso_type`: UDP fragmentation (UFO; not used).
    pub const VIRTIO_NET_HDR_GSO_UDP: u8 = 3;
    /// `gso_type`: TCP over IPv6.
    pub const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
    /// `gso_type` bit: the TCP segments carry ECN (needs `HOST_ECN`/`GUEST_ECN`; not used).
    pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;
}

/// The control virtqueue (virtio 1.2, 5.1.6.5): a command is `class` u8 and `command` u8,
/// then its data, then the device writes an `ack` u8.
pub mod ctrl {
    /// `ack`: the command succeeded.
    pub const VIRTIO_NET_OK: u8 = 0;
    /// `ack`: the command failed.
    pub const VIRTIO_NET_ERR: u8 = 1;
    /// Class: receive filtering (`CTRL_RX`, 5.1.6.5.1).
    pub const VIRTIO_NET_CTRL_RX: u8 = 0;
    /// Promiscuous mode on (1) or off (0).
    pub const VIRTIO_NET_CTRL_RX_PROMISC: u8 = 0;
    /// All-multicast on or off.
    pub const VIRTIO_NET_CTRL_RX_ALLMULTI: u8 = 1;
    /// Class: MAC filtering (5.1.6.5.2).
    pub const VIRTIO_NET_CTRL_MAC: u8 = 1;
    /// Set the MAC filter table.
    pub const VIRTIO_NET_CTRL_MAC_TABLE_SET: u8 = 0;
    /// Set the default MAC address (`CTRL_MAC_ADDR`).
    pub const VIRTIO_NET_CTRL_MAC_ADDR_SET: u8 = 1;
    /// Class: gratuitous packets after a migration (`GUEST_ANNOUNCE`, 5.1.6.5.4).
    pub const VIRTIO_NET_CTRL_ANNOUNCE: u8 = 3;
    /// Class: multiqueue (5.1.6.5.5).
    pub const VIRTIO_NET_CTRL_MQ: u8 = 4;
    /// Set the number of queue pairs in use (u16).
    pub const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: u8 = 0;
    /// Fewest pairs `VQ_PAIRS_SET` takes.
    pub const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN: u16 = 1;
    /// Most pairs `VQ_PAIRS_SET` takes.
    pub const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX: u16 = 0x8000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_print_by_name() {
        assert_eq!(features::describe(features::MAC | features::VERSION_1), "MAC VERSION_1");
        assert_eq!(features::describe(1 << 40), "bit40");
        assert_eq!(features::describe(0), "none");
    }
}
