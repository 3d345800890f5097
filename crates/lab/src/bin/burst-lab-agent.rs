//! The lab's guest agent. `serve` is started by the guest's init; `send-frames` is a tool
//! tests run in the guest to put test frames on a wire. See docs/lab.md.

use std::process::ExitCode;

const USAGE: &str = "usage: burst-lab-agent serve
       burst-lab-agent send-frames IFACE COUNT LEN [DST-MAC]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve"] => burst_lab::agent::serve().map_err(|e| e.to_string()),
        ["send-frames", iface, count, len, rest @ ..] if rest.len() <= 1 => {
            send_frames(iface, count, len, rest.first().copied())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burst-lab-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send_frames(iface: &str, count: &str, len: &str, dst: Option<&str>) -> Result<(), String> {
    let count: u32 = count.parse().map_err(|_| format!("bad COUNT `{count}`"))?;
    let len: usize = len.parse().map_err(|_| format!("bad LEN `{len}`"))?;
    let dst = match dst {
        Some(d) => burst_lab::parse_mac(d).ok_or_else(|| format!("bad DST-MAC `{d}`"))?,
        None => [0xff; 6],
    };
    burst_lab::agent::send_frames(iface, count, len, dst).map_err(|e| format!("sending on {iface}: {e}"))
}
