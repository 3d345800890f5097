//! Logging: a `tracing` subscriber writing to stderr at the `--log-level` asked for. An
//! application (or a test) that installed its own subscriber keeps it: ours is only tried.

use tracing::level_filters::LevelFilter;

/// Installs the stderr subscriber unless one is installed already.
pub(crate) fn init(level: LevelFilter) {
    let installed = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .without_time()
        .with_target(false)
        .try_init();
    if installed.is_err() {
        tracing::debug!("a tracing subscriber is installed already: keeping it (--log-level does not apply)");
    }
}
