//! The `pktgen` command: testpmd's forwarding modes on burst ports (see the library's docs and
//! docs/pktgen.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    // args_os: a non-UTF-8 argument is an option error to report, not a panic.
    let args = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    match pktgen::run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pktgen: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}
