//! net_null (being written).
