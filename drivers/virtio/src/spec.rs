//! Constants of the virtio 1.2 spec (OASIS, 2022) for the net device: feature bits, device
//! status, the split ring, `struct virtio_net_config`, the net header and control commands.
//! (Filled in by the net device work.)
