//! The e1000 driver (being written).
