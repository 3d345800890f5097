//! l2fwd's own options, the ones after `--` (DPDK's `l2fwd_parse_args`).
//!
//! Same letters and ranges as DPDK 22.11, parsed with clap instead of getopt: `-p` is a hex
//! mask (`0x` optional), `-q` and `-T` are decimal, `--portmap` is `"(0,1)(2,3)"`, and when an
//! option is given twice the last one wins, as with getopt.

use clap::Parser;

use crate::Error;

/// Most RX ports one lcore polls (DPDK's `MAX_RX_QUEUE_PER_LCORE`).
pub const MAX_RX_QUEUE_PER_LCORE: usize = 16;
/// Longest statistics period, in seconds (DPDK's `MAX_TIMER_PERIOD`: a day).
pub const MAX_TIMER_PERIOD: u64 = 86400;
/// Ports a port mask can name: DPDK's mask is a `uint32_t`.
pub const MAX_PORTS: u16 = 32;

/// What the options ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2fwdConfig {
    /// `-p`: bit N enables port N. Never 0.
    pub portmask: u32,
    /// `-P`: promiscuous mode on every enabled port.
    pub promiscuous: bool,
    /// `-q`: most RX ports per lcore, 1..=16.
    pub rx_ports_per_lcore: usize,
    /// `-T`: seconds between statistics screens; 0 for none.
    pub stats_period: u64,
    /// `--[no-]mac-updating`: rewrite the Ethernet addresses of forwarded frames.
    pub mac_updating: bool,
    /// `--portmap`: explicit port pairs instead of pairing consecutive enabled ports.
    pub portmap: Option<Vec<(u16, u16)>>,
    /// `--max-pkt-len`: the largest frame to forward, CRC included (l2fwd-jumbo's and l3fwd's
    /// option); `None` keeps each port's MTU.
    pub max_pkt_len: Option<u32>,
}

impl L2fwdConfig {
    /// The defaults for `-p portmask` alone.
    pub fn new(portmask: u32) -> L2fwdConfig {
        L2fwdConfig {
            portmask,
            promiscuous: false,
            rx_ports_per_lcore: 1,
            stats_period: 10,
            mac_updating: true,
            portmap: None,
            max_pkt_len: None,
        }
    }
}

/// A parsed `--portmap` (a newtype so that clap takes it as one value).
#[derive(Clone, Debug)]
struct PortMap(Vec<(u16, u16)>);

/// l2fwd: forward frames between pairs of ports, rewriting their Ethernet addresses.
#[derive(Debug, Parser)]
#[command(
    name = "l2fwd",
    override_usage = "l2fwd [EAL options] -- -p PORTMASK [-P] [-q NQ] [-T PERIOD] [--[no-]mac-updating] [--portmap=\"(PORT,PORT)(PORT,PORT)\"] [--max-pkt-len PKTLEN]",
    args_override_self = true
)]
struct Cli {
    /// Hexadecimal bitmask of ports to configure
    #[arg(short = 'p', value_name = "PORTMASK", value_parser = parse_portmask, allow_hyphen_values = true)]
    portmask: u32,

    /// Enable promiscuous mode
    #[arg(short = 'P')]
    promiscuous: bool,

    /// Number of queues (=ports) per lcore
    #[arg(short = 'q', value_name = "NQ", default_value = "1", value_parser = parse_nqueue, allow_hyphen_values = true)]
    nqueue: usize,

    /// Statistics are refreshed every PERIOD seconds (0 to disable, 86400 maximum)
    #[arg(short = 'T', value_name = "PERIOD", default_value = "10", value_parser = parse_timer_period, allow_hyphen_values = true)]
    period: u64,

    /// Disable MAC address updating (enabled by default). When enabled, the source MAC address
    /// is replaced by the TX port's MAC address and the destination by 02:00:00:00:00:TX_PORT_ID
    #[arg(long = "no-mac-updating", overrides_with = "mac_updating")]
    no_mac_updating: bool,

    /// Enable MAC address updating (the default)
    #[arg(long = "mac-updating", overrides_with = "no_mac_updating")]
    mac_updating: bool,

    /// Forwarding port pairs, like "(0,1)(2,3)" (default: consecutive enabled ports)
    #[arg(long, value_name = "PAIRS", value_parser = parse_portmap)]
    portmap: Option<PortMap>,

    /// Largest frame to forward, CRC included (64 to 65535): sets each port's MTU from it, and
    /// turns on scatter (and multi-segment TX) where the pool's buffers are smaller
    #[arg(long = "max-pkt-len", value_name = "PKTLEN", value_parser = parse_max_pkt_len)]
    max_pkt_len: Option<u32>,
}

/// Parses the application's arguments: `args[0]` is the program name, the rest is what came
/// after `--` (what `burst::EalOptions::parse` hands back).
pub fn parse_app_args(args: &[String]) -> Result<L2fwdConfig, Error> {
    let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Error::Help(e.to_string()),
        // clap's message is paragraphs (the error, usage, hints): keep the first, as one line.
        _ => {
            let text = e.to_string();
            let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            let first = first.join(" ");
            Error::Usage(first.strip_prefix("error: ").unwrap_or(&first).to_string())
        }
    })?;
    Ok(L2fwdConfig {
        portmask: cli.portmask,
        promiscuous: cli.promiscuous,
        rx_ports_per_lcore: cli.nqueue,
        stats_period: cli.period,
        mac_updating: !cli.no_mac_updating,
        portmap: cli.portmap.map(|m| m.0),
        max_pkt_len: cli.max_pkt_len,
    })
}

/// The smallest Ethernet frame, CRC included (DPDK's `RTE_ETHER_MIN_LEN`).
pub const MIN_PKT_LEN: u32 = 64;
/// The largest `--max-pkt-len`: what an MTU (16 bits) and its header and CRC can describe.
pub const MAX_PKT_LEN: u32 = 65535;

/// `--max-pkt-len`: decimal bytes, 64..=65535.
fn parse_max_pkt_len(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (MIN_PKT_LEN..=MAX_PKT_LEN).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid --max-pkt-len {s:?}: give the largest frame in bytes, CRC included, {MIN_PKT_LEN} to {MAX_PKT_LEN}"
        )),
    }
}

/// `-p`: hex, `0x` optional; 0 enables nothing and is refused, as in DPDK.
fn parse_portmask(s: &str) -> Result<u32, String> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    let mask = u32::from_str_radix(hex, 16)
        .map_err(|_| format!("invalid portmask {s:?}: give a hexadecimal mask of at most 32 ports, like 0x3"))?;
    if mask == 0 {
        return Err("invalid portmask 0: enable at least one pair of ports, like 0x3".into());
    }
    Ok(mask)
}

/// `-q`: decimal, 1..=16.
fn parse_nqueue(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_RX_QUEUE_PER_LCORE).contains(&n) => Ok(n),
        _ => Err(format!("invalid queue number {s:?}: give 1 to {MAX_RX_QUEUE_PER_LCORE} ports per lcore")),
    }
}

/// `-T`: decimal seconds, 0..=86400.
fn parse_timer_period(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_TIMER_PERIOD => Ok(n),
        _ => Err(format!("invalid timer period {s:?}: give 0 (no statistics) to {MAX_TIMER_PERIOD} seconds")),
    }
}

/// `--portmap`: `(A,B)` groups, DPDK's `l2fwd_parse_port_pair_config`: what is outside the
/// parentheses is ignored, each group holds two port numbers (decimal or 0x hex) below 32.
fn parse_portmap(s: &str) -> Result<PortMap, String> {
    let bad = |why: &str| format!("invalid --portmap {s:?}: {why}; write pairs like \"(0,1)(2,3)\"");
    let mut pairs = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('(') {
        let inner = &rest[open + 1..];
        let close = inner.find(')').ok_or_else(|| bad("a '(' is not closed"))?;
        let mut fields = inner[..close].split(',');
        let (Some(a), Some(b), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad("each pair has two ports"));
        };
        pairs.push((
            parse_port(a).ok_or_else(|| bad("ports are numbers below 32"))?,
            parse_port(b).ok_or_else(|| bad("ports are numbers below 32"))?,
        ));
        rest = &inner[close + 1..];
    }
    if pairs.is_empty() {
        return Err(bad("no pair given"));
    }
    if pairs.len() > usize::from(MAX_PORTS / 2) {
        return Err(bad("at most 16 pairs"));
    }
    Ok(PortMap(pairs))
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok()?,
        None => s.parse().ok()?,
    };
    (n < MAX_PORTS).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<L2fwdConfig, Error> {
        let args: Vec<String> = std::iter::once("l2fwd").chain(args.iter().copied()).map(String::from).collect();
        parse_app_args(&args)
    }

    fn usage(args: &[&str]) -> String {
        match parse(args) {
            Err(Error::Usage(m)) => m,
            other => panic!("{args:?} gave {other:?}, not a usage error"),
        }
    }

    #[test]
    fn defaults_are_dpdks() {
        assert_eq!(parse(&["-p", "3"]).unwrap(), L2fwdConfig::new(3));
        let c = L2fwdConfig::new(3);
        assert_eq!((c.rx_ports_per_lcore, c.stats_period, c.mac_updating, c.promiscuous), (1, 10, true, false));
    }

    #[test]
    fn every_option_is_read() {
        let c = parse(&[
            "-p",
            "0xF0",
            "-P",
            "-q",
            "16",
            "-T",
            "0",
            "--no-mac-updating",
            "--portmap=(4,5)(0x6,7)",
            "--max-pkt-len",
            "9018",
        ])
        .unwrap();
        assert_eq!(c.portmask, 0xf0);
        assert!(c.promiscuous);
        assert_eq!(c.rx_ports_per_lcore, 16);
        assert_eq!(c.stats_period, 0);
        assert!(!c.mac_updating);
        assert_eq!(c.portmap, Some(vec![(4, 5), (6, 7)]));
        assert_eq!(c.max_pkt_len, Some(9018));
        // Attached values, as getopt takes them; the last of two contrary flags wins.
        let c = parse(&["-p3", "-q2", "-T86400", "--no-mac-updating", "--mac-updating"]).unwrap();
        assert_eq!((c.portmask, c.rx_ports_per_lcore, c.stats_period, c.mac_updating), (3, 2, 86400, true));
        assert_eq!(parse(&["-p", "1", "-p", "0x3"]).unwrap().portmask, 3);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        assert!(usage(&["-p", "0"]).contains("invalid portmask 0"));
        assert!(usage(&["-p", "zz"]).contains("invalid portmask \"zz\""));
        assert!(usage(&["-p", "1ffffffff"]).contains("at most 32 ports"));
        assert!(usage(&[]).contains("-p <PORTMASK>"));
        assert!(usage(&["-p", "3", "-q", "0"]).contains("1 to 16"));
        assert!(usage(&["-p", "3", "-q", "17"]).contains("1 to 16"));
        assert!(usage(&["-p", "3", "-T", "86401"]).contains("86400"));
        assert!(usage(&["-p", "3", "-T", "-1"]).contains("invalid timer period \"-1\""));
        assert!(usage(&["-p", "3", "--portmap", "(0,1"]).contains("not closed"));
        assert!(usage(&["-p", "3", "--portmap", "(0,1,2)"]).contains("two ports"));
        assert!(usage(&["-p", "3", "--portmap", "(0,32)"]).contains("below 32"));
        assert!(usage(&["-p", "3", "--portmap", "0,1"]).contains("no pair"));
        assert!(usage(&["-p", "3", "--bogus"]).contains("--bogus"));
        assert!(usage(&["-p", "3", "--max-pkt-len", "63"]).contains("64 to 65535"));
        assert!(usage(&["-p", "3", "--max-pkt-len", "65536"]).contains("64 to 65535"));
        assert!(usage(&["-p", "3", "--max-pkt-len", "9k"]).contains("invalid --max-pkt-len \"9k\""));
        for m in [usage(&["-p", "zz"]), usage(&["--bogus"])] {
            assert!(!m.contains('\n'), "{m:?} is not one line");
        }
    }

    #[test]
    fn help_is_not_an_error_line() {
        match parse(&["--help"]) {
            Err(e @ Error::Help(_)) => {
                assert_eq!(e.exit_code(), 0);
                assert!(e.to_string().contains("--portmap"));
            }
            other => panic!("{other:?}"),
        }
    }
}
