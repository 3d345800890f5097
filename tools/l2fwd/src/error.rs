//! What can stop l2fwd, and the exit status each gives.

use std::io;

use burst::{EalError, EthError};

/// Why l2fwd stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `-h`/`--help`: not a failure; the text goes to stdout.
    #[error("{0}")]
    Help(String),
    /// A bad option, or options that do not fit the ports and lcores there are (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// The runtime failed: its own options (exit status 2) or initialisation (1).
    #[error(transparent)]
    Eal(#[from] EalError),
    /// A port operation failed; the message names the port.
    #[error(transparent)]
    Port(#[from] EthError),
    /// Buffers were still out after every port was closed.
    #[error("mbuf pool: {in_use} of {total} buffers were not given back after the ports were closed")]
    Leak {
        /// Buffers missing.
        in_use: usize,
        /// Buffers in the pool.
        total: usize,
    },
    /// Writing to stdout failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl Error {
    /// The process exit status: 0 for help, 2 for usage errors (ours and the runtime's), 1 for
    /// everything that went wrong at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Help(_) => 0,
            Error::Usage(_) => 2,
            Error::Eal(e) => e.exit_code(),
            Error::Port(_) | Error::Leak { .. } | Error::Output(_) => 1,
        }
    }
}
