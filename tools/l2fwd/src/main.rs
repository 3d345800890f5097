//! The `l2fwd` command: DPDK's l2fwd sample on burst (see the library's docs and docs/l2fwd.md).

use std::io::{self, Write};
use std::process::ExitCode;

use burst::{EalOptions, Runtime};

fn main() -> ExitCode {
    match l2fwd_main() {
        Ok(()) => ExitCode::SUCCESS,
        // `-h`, for the runtime's options or (after `--`) for ours.
        Err(help) if help.exit_code() == 0 => {
            let _ = write!(io::stdout(), "{help}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // One line on stderr, whatever the message holds.
            let _ = writeln!(io::stderr(), "l2fwd: {}", e.to_string().replace('\n', " "));
            ExitCode::from(e.exit_code())
        }
    }
}

fn l2fwd_main() -> Result<(), l2fwd::Error> {
    // `[EAL options] -- [l2fwd options]`, like rte_eal_init then l2fwd_parse_args; both are
    // parsed before anything is set up.
    let args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let (eal, app_args) = EalOptions::parse(args)?;
    let cfg = l2fwd::parse_app_args(&app_args)?;
    let mut rt = Runtime::init(eal)?;
    let mut out = io::stdout().lock();
    l2fwd::run(&mut rt, &cfg, &mut out)?;
    rt.close()?;
    writeln!(out, "Bye...")?;
    Ok(())
}
