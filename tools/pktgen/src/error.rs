//! pktgen's errors and the exit status each gives: 2 for what the command line got wrong, 1 for
//! what went wrong while running (as testpmd's `rte_exit` and the EAL's own split).

use burst::{EalError, EthError};

#[derive(Debug, thiserror::Error)]
pub enum PktgenError {
    /// A bad option or a request the ports and lcores cannot satisfy.
    #[error("{0}")]
    Usage(String),
    /// The runtime refused the EAL options or failed to start.
    #[error("{0}")]
    Eal(#[from] EalError),
    /// A port operation failed (the driver's message names the port).
    #[error("{0}")]
    Port(#[from] EthError),
    /// Anything else that went wrong while running.
    #[error("{0}")]
    Runtime(String),
}

impl PktgenError {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            PktgenError::Usage(_) => 2,
            PktgenError::Eal(e) => e.exit_code(),
            PktgenError::Port(_) | PktgenError::Runtime(_) => 1,
        }
    }

    /// The message on one line, as `pktgen: <message>` wants it.
    pub fn one_line(&self) -> String {
        let text = self.to_string();
        let mut out = String::with_capacity(text.len());
        for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(line);
        }
        out
    }
}
