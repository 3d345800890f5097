//! pktgen's own options, the ones after `--`, with testpmd's names and defaults
//! (app/test-pmd/parameters.c in DPDK 22.11).

use std::str::FromStr;

use burst::mem::mbuf::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM};
use burst::{MacAddr, RxOffloads, TxOffloads};
use clap::{Parser, ValueEnum};

use crate::error::PktgenError;

/// testpmd's MAX_PKT_BURST: the largest `--burst`.
pub const MAX_BURST: usize = 512;
/// Ethernet + IPv4 + UDP headers: the smallest `--txpkts` (testpmd refuses less too).
pub const MIN_TXPKTS: u16 = 14 + 20 + 8;
/// testpmd's RTE_MAX_SEGS_PER_PKT: the most segments `--txpkts` gives a packet.
pub const MAX_SEGS_PER_PKT: usize = 255;
/// testpmd's default `--mbuf-size` (DPDK's RTE_MBUF_DEFAULT_BUF_SIZE): a buffer's size, its
/// headroom included, as `rte_pktmbuf_pool_create` takes it.
pub const DEFAULT_MBUF_SIZE: u16 = DEFAULT_HEADROOM + DEFAULT_DATA_ROOM;
/// The Ethernet CRC, counted in `--max-pkt-len` but not in `--txpkts`.
const CRC_LEN: u32 = 4;
/// The smallest `--max-pkt-len` (testpmd's RTE_ETHER_MIN_LEN).
pub const MIN_MAX_PKT_LEN: u32 = 64;

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
    /// Receive, count bad IP and L4 checksums, have them computed again (by the device where
    /// the TX port has the offload, else here), send.
    Csum,
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
            Mode::Csum => "csum",
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
    /// Length of the frames txonly (and --tx-first) sends, in bytes, without CRC (>= 42); A,B,...
    /// sends each as a chain of segments of those lengths.
    #[arg(long, default_value = "64", value_name = "LEN[,LEN...]")]
    pub txpkts: String,
    /// Size of each packet buffer, its 128 bytes of headroom included (testpmd's meaning).
    #[arg(long = "mbuf-size", default_value_t = DEFAULT_MBUF_SIZE.to_string(), value_name = "N")]
    pub mbuf_size: String,
    /// Largest frame to receive, in bytes (the MTU follows); frames larger than a buffer are
    /// received as chains where the port scatters.
    #[arg(long = "max-pkt-len", value_name = "N")]
    pub max_pkt_len: Option<u32>,
    /// TX offloads to turn on: a hex mask of RTE_ETH_TX_OFFLOAD_* bits, or their names
    /// (ipv4_cksum,udp_cksum,...).
    #[arg(long = "tx-offloads", value_name = "MASK")]
    pub tx_offloads: Option<String>,
    /// RX offloads to turn on: a hex mask of RTE_ETH_RX_OFFLOAD_* bits, or their names
    /// (scatter,ipv4_cksum,...).
    #[arg(long = "rx-offloads", value_name = "MASK")]
    pub rx_offloads: Option<String>,
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
    /// txonly's segment lengths: one for a one-segment packet.
    pub txpkts: Vec<u16>,
    /// testpmd's `--mbuf-size`: a buffer's headroom and data room.
    pub mbuf_size: u16,
    pub max_pkt_len: Option<u32>,
    pub rx_offloads: RxOffloads,
    pub tx_offloads: TxOffloads,
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

impl Config {
    /// The length of txonly's frames: the sum of `--txpkts`.
    pub fn txpkts_len(&self) -> u16 {
        // `check` made sure the sum fits.
        self.txpkts.iter().sum()
    }

    /// Bytes of packet data a buffer holds: `--mbuf-size` less the headroom.
    pub fn data_room(&self) -> u16 {
        self.mbuf_size - DEFAULT_HEADROOM
    }

    /// Whether this run builds packets of several segments (txonly or `--tx-first` with
    /// `--txpkts A,B,...`).
    pub fn sends_chains(&self) -> bool {
        self.txpkts.len() > 1 && (self.mode == Mode::Txonly || self.tx_first)
    }

    /// The most buffers one packet of this run takes: a `--txpkts` chain, or a frame of
    /// `--max-pkt-len` scattered over buffers of the data room.
    pub fn bufs_per_packet(&self) -> usize {
        let built = if self.sends_chains() { self.txpkts.len() } else { 1 };
        let received = self.max_pkt_len.map_or(1, |len| len.div_ceil(u32::from(self.data_room())) as usize);
        built.max(received)
    }
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
    let mbuf_size = mbuf_size(&o.mbuf_size)?;
    let txpkts = txpkts(&o.txpkts, mbuf_size)?;
    if let Some(len) = o.max_pkt_len {
        if len < MIN_MAX_PKT_LEN {
            return usage(format!("--max-pkt-len {len}: must be >= {MIN_MAX_PKT_LEN}, the smallest Ethernet frame"));
        }
        // The MTU it sets holds for what the ports send too: a larger frame is one they refuse.
        let frame: u32 = txpkts.iter().map(|&l| u32::from(l)).sum::<u32>() + CRC_LEN;
        if (o.forward_mode == Mode::Txonly || o.tx_first) && frame > len {
            return usage(format!(
                "--txpkts {}: frames of {frame} bytes with their CRC, larger than --max-pkt-len {len}: give shorter \
                 --txpkts or a larger --max-pkt-len",
                o.txpkts
            ));
        }
    }
    let rx_bits = offload_mask("--rx-offloads", o.rx_offloads.as_deref(), &RxOffloads::all(), |n| {
        RxOffloads::from_testpmd_name(n).map(|f| f.bits())
    })?;
    let rx_offloads = RxOffloads::from_bits(rx_bits)
        .ok_or_else(|| unknown_offloads("--rx-offloads", rx_bits, RxOffloads::all().bits(), &RxOffloads::all()))?;
    let tx_bits = offload_mask("--tx-offloads", o.tx_offloads.as_deref(), &TxOffloads::all(), |n| {
        TxOffloads::from_testpmd_name(n).map(|f| f.bits())
    })?;
    let tx_offloads = TxOffloads::from_bits(tx_bits)
        .ok_or_else(|| unknown_offloads("--tx-offloads", tx_bits, TxOffloads::all().bits(), &TxOffloads::all()))?;
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
        mbuf_size,
        max_pkt_len: o.max_pkt_len,
        rx_offloads,
        tx_offloads,
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

/// `--mbuf-size N`: one size (testpmd's list of sizes is for buffer split, not here), more
/// than the headroom and at most 65535 (a buffer's length is 16 bits).
fn mbuf_size(text: &str) -> Result<u16, PktgenError> {
    let usage = |m: String| Err(PktgenError::Usage(m));
    if text.contains(',') {
        return usage(format!(
            "--mbuf-size {text}: several sizes (testpmd's buffer split) are not supported: give one"
        ));
    }
    let Ok(n) = text.trim().parse::<u32>() else {
        return usage(format!("--mbuf-size {text:?}: not a size in bytes"));
    };
    if n <= u32::from(DEFAULT_HEADROOM) || n > u32::from(u16::MAX) {
        return usage(format!(
            "--mbuf-size {n}: must be more than the {DEFAULT_HEADROOM} bytes of headroom it includes, and < 65536"
        ));
    }
    Ok(n as u16)
}

/// `--txpkts A[,B...]`: segment lengths, each at least a byte and within a buffer's data room,
/// at most [`MAX_SEGS_PER_PKT`] of them, adding up to a UDP frame of at most 65535 bytes.
fn txpkts(text: &str, mbuf_size: u16) -> Result<Vec<u16>, PktgenError> {
    let usage = |m: String| Err(PktgenError::Usage(m));
    let room = mbuf_size - DEFAULT_HEADROOM;
    let mut lens = Vec::new();
    for part in text.split(',') {
        let Ok(len) = part.trim().parse::<u32>() else {
            return usage(format!("--txpkts {text}: {part:?} is not a length in bytes"));
        };
        if len == 0 {
            return usage(format!("--txpkts {text}: a segment of 0 bytes: each holds at least one"));
        }
        if len > u32::from(room) {
            let what = if text.contains(',') { format!("a segment of {len} bytes") } else { format!("{len} bytes") };
            return usage(format!(
                "--txpkts {text}: {what}: must be <= {room}, the buffers' data room (--mbuf-size {mbuf_size} less \
                 {DEFAULT_HEADROOM} of headroom): give a larger --mbuf-size or shorter segments"
            ));
        }
        lens.push(len as u16);
    }
    if lens.len() > MAX_SEGS_PER_PKT {
        return usage(format!("--txpkts: {} segments, at most {MAX_SEGS_PER_PKT} per packet", lens.len()));
    }
    let sum: u32 = lens.iter().map(|&l| u32::from(l)).sum();
    if sum < u32::from(MIN_TXPKTS) {
        return usage(format!(
            "--txpkts {text}: {sum} bytes in all, must be >= {MIN_TXPKTS} (Ethernet, IPv4 and UDP headers)"
        ));
    }
    if sum > u32::from(u16::MAX) {
        return usage(format!("--txpkts {text}: {sum} bytes in all, must be <= 65535 (IPv4's total length)"));
    }
    Ok(lens)
}

/// `--rx-offloads`/`--tx-offloads MASK`: hexadecimal, with or without `0x` (testpmd reads it
/// with `strtoull(.., 16)`), or, beyond testpmd, the offloads' names as testpmd prints them,
/// comma-separated (`ipv4_cksum,udp_cksum`; no name is also a hex number: they all hold a
/// letter past `f` or a `_`); 0 when not given. `named` finds a name's bit; `known` lists them
/// for the error.
fn offload_mask(
    option: &str,
    text: Option<&str>,
    known: &dyn std::fmt::Display,
    named: impl Fn(&str) -> Option<u64>,
) -> Result<u64, PktgenError> {
    let Some(text) = text else { return Ok(0) };
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return u64::from_str_radix(digits, 16).map_err(|_| {
            PktgenError::Usage(format!("{option} {text}: more than 64 bits: the mask is a 64-bit hexadecimal number"))
        });
    }
    let mut bits = 0;
    for name in trimmed.split(',') {
        let Some(bit) = named(name.trim()) else {
            return Err(PktgenError::Usage(format!(
                "{option} {text}: {name:?} is neither a hexadecimal mask (like 0x8000) nor an offload name; the names \
                 are {known}"
            )));
        };
        bits |= bit;
    }
    Ok(bits)
}

/// The error for a mask with bits that are no offload burst knows: it names them and lists
/// the ones it knows (`known`, printed by their testpmd names).
fn unknown_offloads(option: &str, bits: u64, known: u64, names: &dyn std::fmt::Display) -> PktgenError {
    PktgenError::Usage(format!(
        "{option} {bits:#x}: bits {:#x} are no offload burst knows; it knows {names} ({known:#x})",
        bits & !known
    ))
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
        assert_eq!((c.mode, c.burst, c.txpkts.clone(), c.nb_cores, c.stats_period), (Mode::Io, 32, vec![64], 1, 0));
        assert_eq!((c.queues, c.rxd, c.txd, c.tx_first, c.run_seconds), (1, 0, 0, false, None));
        // testpmd's mbuf_data_size: 2176 bytes, 128 of headroom and 2048 of data.
        assert_eq!((c.mbuf_size, c.data_room(), c.max_pkt_len), (2176, 2048, None));
        assert_eq!((c.rx_offloads, c.tx_offloads), (RxOffloads::NONE, TxOffloads::NONE));
        assert_eq!((c.txpkts_len(), c.sends_chains(), c.bufs_per_packet()), (64, false, 1));
    }

    #[test]
    fn the_packet_model_options_parse_as_testpmd_means_them() {
        let c = run(&[
            "--forward-mode=txonly",
            "--txpkts=14,20,8,100",
            "--mbuf-size=1152",
            "--max-pkt-len",
            "9000",
            "--tx-offloads=0x8000",
            "--rx-offloads",
            "2000",
        ])
        .unwrap();
        assert_eq!((c.txpkts.clone(), c.txpkts_len(), c.sends_chains()), (vec![14, 20, 8, 100], 142, true));
        assert_eq!((c.mbuf_size, c.data_room(), c.max_pkt_len), (1152, 1024, Some(9000)));
        assert_eq!((c.tx_offloads, c.rx_offloads), (TxOffloads::MULTI_SEGS, RxOffloads::SCATTER));
        assert_eq!(c.bufs_per_packet(), 9, "a 9000-byte frame takes 9 buffers of 1024");
        let c = run(&["--tx-offloads=multi_segs,MBUF_FAST_FREE", "--rx-offloads=scatter"]).unwrap();
        assert_eq!(c.tx_offloads, TxOffloads::MULTI_SEGS | TxOffloads::MBUF_FAST_FREE, "testpmd's names");
        assert_eq!(c.rx_offloads, RxOffloads::SCATTER);
        let c = run(&["--forward-mode=csum", "--txpkts=30,30", "--tx-offloads=0XE"]).unwrap();
        assert_eq!(c.mode, Mode::Csum);
        assert!(!c.sends_chains(), "csum builds no packet without --tx-first");
        assert_eq!(c.tx_offloads, TxOffloads::IPV4_CKSUM | TxOffloads::UDP_CKSUM | TxOffloads::TCP_CKSUM);
        assert!(run(&["--forward-mode=io", "--txpkts=30,30", "--tx-first"]).unwrap().sends_chains());
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
        assert_eq!(
            (c.mode, c.burst, c.txpkts.clone(), c.nb_cores, c.stats_period),
            (Mode::Macswap, 64, vec![128], 2, 1)
        );
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
            (&["--txpkts=20,21"][..], "41 bytes in all, must be >= 42"),
            (&["--txpkts=2049"][..], "must be <= 2048, the buffers' data room"),
            (&["--txpkts=64,2049"][..], "a segment of 2049 bytes"),
            (&["--txpkts=64,0"][..], "a segment of 0 bytes"),
            (&["--txpkts=64,x"][..], "\"x\" is not a length"),
            (&["--txpkts=2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000"][..], "70000 bytes in all, must be <= 65535"),
            (&["--txpkts=600", "--mbuf-size=640"][..], "must be <= 512"),
            (&["--mbuf-size=128"][..], "more than the 128 bytes of headroom"),
            (&["--mbuf-size=65536"][..], "< 65536"),
            (&["--mbuf-size=2176,2176"][..], "buffer split"),
            (&["--mbuf-size=big"][..], "not a size"),
            (&["--max-pkt-len=63"][..], "--max-pkt-len 63: must be >= 64"),
            (
                &["--forward-mode=txonly", "--txpkts=1000,1000", "--max-pkt-len=2000"][..],
                "--txpkts 1000,1000: frames of 2004 bytes with their CRC, larger than --max-pkt-len 2000",
            ),
            (&["--tx-first", "--txpkts=1500", "--max-pkt-len=1500"][..], "frames of 1504 bytes"),
            (&["--tx-offloads=0xzz"][..], "--tx-offloads 0xzz: \"0xzz\" is neither a hexadecimal mask"),
            (&["--tx-offloads=ipv4_cksum,bogus"][..], "\"bogus\" is neither a hexadecimal mask (like 0x8000) nor an offload name; the names are vlan_insert ipv4_cksum"),
            (&["--rx-offloads=multi_segs"][..], "the names are vlan_strip"),
            (&["--tx-offloads="][..], "neither a hexadecimal mask"),
            (&["--tx-offloads=0x1ffffffffffffffff"][..], "more than 64 bits"),
            (&["--txpkts=99999999999999999999"][..], "is not a length in bytes"),
            (&["--txpkts=64,"][..], "\"\" is not a length"),
            (&["--mbuf-size=99999999999999999999"][..], "not a size"),
            (&["--max-pkt-len=99999999999"][..], "--max-pkt-len"),
            (&["--burst=99999999999999999999999"][..], "--burst"),
            (&["--total-num-mbufs=99999999999999999999999"][..], "--total-num-mbufs"),
            (&["--tx-offloads=0x100000000"][..], "bits 0x100000000 are no offload burst knows"),
            (&["--rx-offloads=0x80"][..], "--rx-offloads 0x80: bits 0x80 are no offload"),
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
    fn txpkts_has_at_most_255_segments() {
        let many = vec!["1"; 256].join(",");
        let e = run(&["--txpkts", &many]).unwrap_err();
        assert!(e.contains("256 segments, at most 255 per packet"), "{e}");
        assert_eq!(run(&["--txpkts", &vec!["1"; 255].join(",")]).unwrap().txpkts.len(), 255);
    }

    #[test]
    fn help_is_not_an_error() {
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
