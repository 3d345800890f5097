//! (placeholder: see lib.rs)
