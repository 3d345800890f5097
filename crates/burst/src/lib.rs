//! burst (being written).
