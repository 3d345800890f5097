//! The drivers this build knows: adding a driver is adding its crate to Cargo.toml and one line
//! here.

use burst_ethdev::Registry;

/// Every driver linked in: PCI drivers by ID table, virtual devices by name prefix.
pub fn registry() -> Registry {
    Registry::new()
        .pci(&burst_e1000::DRIVER)
        .pci(&burst_virtio::DRIVER)
        .vdev(&burst_net_null::DRIVER)
        .vdev(&burst_net_ring::DRIVER)
        .vdev(&burst_virtio::VDEV_DRIVER)
        .vdev(&burst_af_packet::DRIVER)
        .vdev(&burst_af_xdp::DRIVER)
}
