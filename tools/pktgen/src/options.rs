//! pktgen's own options, the ones after `--`, with testpmd's names and defaults
//! (app/test-pmd/parameters.c in DPDK 22.11).

use std::str::FromStr;

use burst::MacAddr;
use clap::{Parser, ValueEnum};

use crate::error::PktgenError;

/// testpmd's MAX_PKT_BURST: the largest `--burst`.
pub const MAX_BURST: usize = 512;
/// Ethernet + IPv4 + UDP headers: the smallest `--txpkts` (testpmd refuses less too).
pub const MIN_TXPKTS: u16 = 14 + 20 + 8;

/// What each forwarding lcore does with its streams (testpmd's `--forward-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Receive, then send unchanged on the peer port.
    Io,
    /// Receive, set source MAC = TX port's, destination = the peer's, send.
    Mac,
    /// Receive, swap source and destination MACs, send.
    Macswap,
    /// Send UDP/IPv4 frames of --txpkts bytes; receive nothing.
    Txonly,
    /// Receive and free; send nothing.
    Rxonly,
}

impl Mode {
    /// The name testpmd prints (`io packet forwarding`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Io => "io",
            Mode::Mac => "mac",
            Mode::Macswap => "macswap",
            Mode::Txonly => "txonly",
            Mode::Rxonly => "rxonly",
        }
    }
}

/// `--eth-peer=PORT,MAC`: the address `mac` and `txonly` send to from port PORT's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthPeer {
    pub port: u16,
    pub mac: MacAddr,
}

impl FromStr for EthPeer {
    type Err = String;

    fn from_str(s: &str) -> Result<EthPeer, String> {
        let (port, mac) =
            s.split_once(',').ok_or_else(|| format!("{s:?}: write PORT,MAC, like 1,02:00:00:00:00:01"))?;
        let port = port.trim().parse().map_err(|_| format!("{port:?} is not a port number"))?;
        let mac = mac.trim().parse::<MacAddr>().map_err(|e| e.to_string())?;
        Ok(EthPeer { port, mac })
    }
}

/// `pktgen [EAL options] -- [these]`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "pktgen",
    about = "testpmd's forwarding modes on burst ports: pktgen [EAL options] -- [options]",
    after_help = "Ports are paired (0<->1, 2<->3; an odd last port forwards to itself). Each RX queue of each \
                  port is one stream; streams are spread over the first --nb-cores worker lcores. The final \
                  report ends with a `RESULT {json}` line. See docs/pktgen.md."
)]
pub struct Options {
    /// Forwarding mode.
    #[arg(long = "forward-mode", value_enum, default_value_t = Mode::Io, value_name = "MODE")]
    pub forward_mode: Mode,
    /// Packets per burst (1..=512).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub burst: usize,
    /// Length of the frames txonly (and --tx-first) sends, in bytes, without CRC (>= 42).
    #[arg(long, default_value = "64", value_name = "LEN")]
    pub txpkts: String,
    /// Number of forwarding lcores: the first N worker lcores (1 <= N <= number of workers).
    #[arg(long = "nb-cores", default_value_t = 1, value_name = "N")]
    pub nb_cores: usize,
    /// Print per-port packet rates every S seconds (0: only the final report).
    #[arg(long = "stats-period", default_value_t = 0, value_name = "S")]
    pub stats_period: u64,
    /// Stop after this many seconds (decimals allowed); without it, run until SIGINT/SIGTERM.
    #[arg(long = "run-seconds", value_name = "N", allow_negative_numbers = true)]
    pub run_seconds: Option<f64>,
    /// Destination MAC for frames sent to port PORT's peer (mac, txonly); default 02:00:00:00:00:PORT.
    #[arg(long = "eth-peer", value_name = "PORT,MAC")]
    pub eth_peer: Vec<EthPeer>,
    /// Send one txonly burst on every stream before forwarding (starts traffic on ring ports).
    #[arg(long = "tx-first")]
    pub tx_first: bool,
    /// RX queues per port; one stream per RX queue.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub rxq: u16,
    /// TX queues per port (equal to --rxq: stream q sends on TX queue q).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub txq: u16,
    /// RX descriptors per queue (0: the driver's default).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub rxd: u16,
    /// TX descriptors per queue (0: the driver's default).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub txd: u16,
    /// Buffers in the packet pool (default: enough for every queue's descriptors, bursts and caches).
    #[arg(long = "total-num-mbufs", value_name = "N")]
    pub total_num_mbufs: Option<usize>,
}

/// Options checked on their own (the checks needing ports and lcores come after init).
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub burst: usize,
    pub txpkts: u16,
    pub nb_cores: usize,
    pub stats_period: u64,
    pub run_seconds: Option<f64>,
    pub eth_peers: Vec<EthPeer>,
    pub tx_first: bool,
    pub queues: u16,
    pub rxd: u16,
    pub txd: u16,
    pub total_num_mbufs: Option<usize>,
}

/// What the command line asked for: run, or print help.
#[derive(Debug)]
pub enum Parsed {
    Run(Config),
    /// `--help`: the text to print, then exit 0.
    Help(String),
}

/// Parses the application's arguments (`args[0]` then everything after `--`).
pub fn parse(args: &[String]) -> Result<Parsed, PktgenError> {
    let opts = match Options::try_parse_from(args) {
        Ok(o) => o,
        Err(e) if !e.use_stderr() => return Ok(Parsed::Help(e.render().to_string())),
        Err(e) => return Err(PktgenError::Usage(clap_one_line(&e))),
    };
    check(opts).map(Parsed::Run)
}

/// clap's message without its `error: ` prefix, usage and tips: the first line.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("bad option");
    format!("{} (see pktgen -- --help)", first.trim().trim_start_matches("error: "))
}

fn check(o: Options) -> Result<Config, PktgenError> {
    let usage = |m: String| Err(PktgenError::Usage(m));
    if o.burst == 0 || o.burst > MAX_BURST {
        return usage(format!("--burst {}: must be >= 1 and <= {MAX_BURST}", o.burst));
    }
    if o.txpkts.contains(',') {
        return usage(format!("--txpkts {}: multi-segment packets are not supported: give one length", o.txpkts));
    }
    let txpkts: u16 = o
        .txpkts
        .trim()
        .parse()
        .map_err(|_| PktgenError::Usage(format!("--txpkts {:?}: not a length in bytes", o.txpkts)))?;
    if txpkts < MIN_TXPKTS {
        return usage(format!("--txpkts {txpkts}: must be >= {MIN_TXPKTS} (Ethernet, IPv4 and UDP headers)"));
    }
    if o.nb_cores == 0 {
        return usage("--nb-cores 0: the number of forwarding cores must be >= 1".into());
    }
    if let Some(s) = o.run_seconds {
        if !(s.is_finite() && s > 0.0) {
            return usage(format!("--run-seconds {s}: must be a number of seconds > 0"));
        }
    }
    if o.rxq == 0 || o.txq == 0 {
        return usage("--rxq and --txq must be >= 1".into());
    }
    if o.rxq != o.txq {
        return usage(format!(
            "--rxq {} --txq {}: stream q receives on RX queue q and sends on TX queue q: give both the same value",
            o.rxq, o.txq
        ));
    }
    if o.total_num_mbufs == Some(0) {
        return usage("--total-num-mbufs 0: the pool needs buffers".into());
    }
    Ok(Config {
        mode: o.forward_mode,
        burst: o.burst,
        txpkts,
        nb_cores: o.nb_cores,
        stats_period: o.stats_period,
        run_seconds: o.run_seconds,
        eth_peers: o.eth_peer,
        tx_first: o.tx_first,
        queues: o.rxq,
        rxd: o.rxd,
        txd: o.txd,
        total_num_mbufs: o.total_num_mbufs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        let args: Vec<String> = std::iter::once("pktgen").chain(args.iter().copied()).map(String::from).collect();
        match parse(&args) {
            Ok(Parsed::Run(c)) => Ok(c),
            Ok(Parsed::Help(_)) => Err("help".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn defaults_are_testpmds() {
        let c = run(&[]).unwrap();
        assert_eq!((c.mode, c.burst, c.txpkts, c.nb_cores, c.stats_period), (Mode::Io, 32, 64, 1, 0));
        assert_eq!((c.queues, c.rxd, c.txd, c.tx_first, c.run_seconds), (1, 0, 0, false, None));
    }

    #[test]
    fn testpmd_spellings_parse() {
        let c = run(&[
            "--forward-mode=macswap",
            "--burst=64",
            "--txpkts",
            "128",
            "--nb-cores=2",
            "--stats-period",
            "1",
            "--run-seconds=0.5",
            "--eth-peer=1,02:00:00:00:00:aa",
            "--eth-peer",
            "0,02-00-00-00-00-bb",
            "--tx-first",
        ])
        .unwrap();
        assert_eq!((c.mode, c.burst, c.txpkts, c.nb_cores, c.stats_period), (Mode::Macswap, 64, 128, 2, 1));
        assert_eq!(c.run_seconds, Some(0.5));
        assert!(c.tx_first);
        assert_eq!(c.eth_peers[0], EthPeer { port: 1, mac: MacAddr([2, 0, 0, 0, 0, 0xaa]) });
        assert_eq!(c.eth_peers[1].mac, MacAddr([2, 0, 0, 0, 0, 0xbb]));
    }

    #[test]
    fn bad_values_give_one_line_that_names_the_option() {
        for (args, needle) in [
            (&["--burst=0"][..], "--burst 0"),
            (&["--burst=513"][..], "<= 512"),
            (&["--txpkts=41"][..], ">= 42"),
            (&["--txpkts=64,64"][..], "multi-segment"),
            (&["--nb-cores=0"][..], "--nb-cores"),
            (&["--run-seconds=0"][..], "--run-seconds"),
            (&["--rxq=2"][..], "same value"),
            (&["--forward-mode=flowgen"][..], "flowgen"),
            (&["--eth-peer=1"][..], "PORT,MAC"),
            (&["--eth-peer=1,zz"][..], "not a MAC address"),
            (&["--no-such"][..], "--no-such"),
            (&["--burst=x"][..], "--burst"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: {e:?}");
        }
    }

    #[test]
    fn help_is_not_an_error() {
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
