//! net_ring (being written).
