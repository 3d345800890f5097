//! Errors of the lab. Each says what went wrong and, where there is one, what to do.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Something `cargo xtask setup` installs is missing.
    #[error("{what} is missing: run `cargo xtask setup` (as root) first")]
    NotSetUp { what: String },

    /// A bad option or configuration.
    #[error("{0}")]
    Config(String),

    /// Building the guest's binaries failed.
    #[error("building the guest binaries failed: {0}")]
    Build(String),

    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// QEMU could not be started.
    #[error("cannot start QEMU ({path}): {source}")]
    QemuStart {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The guest did not bring its agent up in time.
    #[error("the lab guest did not come up within {secs} s (hung boot); last console lines:\n{console}")]
    BootTimeout { secs: u64, console: String },

    /// The guest is gone: QEMU exited, the kernel panicked, or it was killed.
    #[error("the lab guest died: {reason}")]
    GuestDied { reason: String },

    /// A guest command ran past its time limit.
    #[error("`{command}` did not finish within {secs} s; it was stopped")]
    CommandTimeout { command: String, secs: u64 },

    /// Waited for output that did not come.
    #[error("`{command}` did not print `{pattern}` within {secs} s; its output so far:\n{output}")]
    OutputTimeout { command: String, pattern: String, secs: u64, output: String },

    /// A guest program could not be started.
    #[error("cannot start `{command}` in the guest: {message}")]
    SpawnFailed { command: String, message: String },

    /// A guest command that had to succeed did not.
    #[error("`{command}` failed in the guest ({status}): {stderr}")]
    CommandFailed { command: String, status: String, stderr: String },

    /// The agent said something the host does not understand.
    #[error("lab control protocol: {0}")]
    Protocol(String),
}

impl LabError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
        let context = context.into();
        move |source| LabError::Io { context, source }
    }
}
