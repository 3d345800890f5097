//! The guest side of the conformance suite's offload cases (`xtask/src/conformance/offloads.rs`):
//! chains, jumbo frames, checksum, VLAN and segmentation offloads seen through burst's public
//! API only, on whatever port `-a` names. It knows nothing of a driver: what a device cannot do
//! is refused by `Port::configure` (the case then says so), and the host judges what came out.
//!
//! ```text
//! offload-guest [EAL options] -- recv [--rx-offloads LIST] [--data-room N] [--max-pkt-len N]
//! offload-guest [EAL options] -- send csum|vlan|tso DST-MAC
//! ```
//!
//! Both print `ready` once the port runs.
//!
//! - `recv`: port 0 receives until the host's end frame (a `burst_lab::frames` test frame with
//!   sequence `u32::MAX`) and reports every other frame as `[pkt_len, nb_segs, ip, l4,
//!   vlan_stripped, vlan_tci, fnv1a]`: its checksum verdicts (0 unknown, 1 bad, 2 good, 3 none)
//!   and the FNV-1a 32 of its bytes across segments, which the host compares with what it sent.
//!   `LIST` is comma-separated from `scatter`, `checksum`, `vlan-strip`; `--max-pkt-len` sets
//!   the MTU from the largest frame (as l2fwd's does).
//! - `send csum`: IPv4/TCP and IPv4/UDP frames of several sizes, one- and multi-segment, every
//!   checksum zeroed, asking the device for the IPv4 and L4 checksums.
//! - `send vlan`: test frames asking the device to insert tag `TCI_BASE + seq`.
//! - `send tso`: one TCP packet of [`TSO_PAYLOAD`] payload bytes in a chain of pool buffers,
//!   asking the device to segment it at [`TSO_MSS`].
//!
//! The frames' contents follow the formulas the host uses (`payload_byte`); the IPv4 ID of a
//! `csum` frame is its index. Every subcommand ends with `RESULT {json}` and exits 1 if a buffer
//! is missing from the pool after the port closed, 2 for a bad command line, 3 when the port
//! refuses the offloads asked for (the message names them).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use burst::ethdev::{RxOffloads, TxOffloads};
use burst::mem::{CksumStatus, OlFlags, TxL4, TxOffload};
use burst::{MacAddr, PacketBuf, PacketPool, PacketPoolConfig, PortConf, Runtime, Stats};

/// Descriptors per queue and buffers in the pool.
const RING: u16 = 512;
const POOL: usize = 2048;
/// The MSS `send tso` asks for: a 1500-byte MTU less 40 bytes of IPv4 and TCP header.
const TSO_MSS: u16 = 1460;
/// The TCP payload of `send tso`: 64 KiB.
const TSO_PAYLOAD: usize = 65536;
/// The first sequence number of `send tso`'s packet.
const TSO_SEQ: u32 = 0x1234_5678;
/// VLAN tags `send vlan` asks for: priority 5, VLAN 100 + seq.
const TCI_BASE: u16 = (5 << 13) | 100;
/// Frames `send vlan` sends.
const VLAN_FRAMES: u32 = 16;
/// Sizes of `send csum` frames (without FCS); each is sent as TCP and as UDP, in one segment
/// and in three.
const CSUM_SIZES: [usize; 4] = [60, 100, 1000, 1514];
/// The addresses of the IPv4 frames.
const SRC_IP: [u8; 4] = [192, 0, 2, 1];
const DST_IP: [u8; 4] = [192, 0, 2, 2];

type Error = Box<dyn std::error::Error>;

/// A port that refused what was asked: a limit of the device, not a failure of the run.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn main() -> ExitCode {
    let (mut rt, app) = match Runtime::from_args(std::env::args()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("offload-guest: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let args: Vec<&str> = app.iter().skip(1).map(String::as_str).collect();
    let result = match args.as_slice() {
        ["recv", rest @ ..] => match parse_recv(rest) {
            Some(o) => recv(&mut rt, &o),
            None => return usage(),
        },
        ["send", kind @ ("csum" | "vlan" | "tso"), dst] => match dst.parse::<MacAddr>() {
            Ok(dst) => send(&mut rt, kind, dst),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(json) => {
            println!("RESULT {json}");
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<Refused>() => {
            eprintln!("offload-guest: refused: {e}");
            ExitCode::from(3)
        }
        Err(e) => {
            eprintln!("offload-guest: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "offload-guest: usage: offload-guest [EAL options] -- recv [--rx-offloads scatter,checksum,vlan-strip] \
         [--data-room N] [--max-pkt-len N] | send csum|vlan|tso DST-MAC"
    );
    ExitCode::from(2)
}

/// Options of `recv`.
struct RecvOpts {
    offloads: RxOffloads,
    data_room: u16,
    max_pkt_len: Option<u32>,
}

fn parse_recv(args: &[&str]) -> Option<RecvOpts> {
    let mut o = RecvOpts { offloads: RxOffloads::empty(), data_room: 2048, max_pkt_len: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--rx-offloads" => {
                for name in it.next()?.split(',') {
                    o.offloads |= match name {
                        "scatter" => RxOffloads::SCATTER,
                        "checksum" => RxOffloads::CHECKSUM,
                        "vlan-strip" => RxOffloads::VLAN_STRIP,
                        _ => return None,
                    };
                }
            }
            "--data-room" => o.data_room = it.next()?.parse().ok()?,
            "--max-pkt-len" => o.max_pkt_len = Some(it.next()?.parse().ok()?),
            _ => return None,
        }
    }
    Some(o)
}

/// Configures port 0 with one queue pair from `pool` and `conf`'s offloads, and starts it; what
/// the port refuses comes back as [`Refused`].
fn start_port(rt: &mut Runtime, pool: &PacketPool, conf: &PortConf) -> Result<(), Error> {
    let port =
        rt.ports_mut().first_mut().ok_or("no port: pass -a ADDR of a NIC bound to vfio-pci or uio_pci_generic")?;
    port.configure(conf).map_err(|e| Refused(e.to_string()))?;
    port.rx_queue_setup(0, RING, pool).map_err(|e| Refused(e.to_string()))?;
    port.tx_queue_setup(0, RING)?;
    port.start()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !port.link().up {
        std::thread::sleep(Duration::from_millis(20));
    }
    port.stats_reset();
    Ok(())
}

/// Closes the port and checks the pool is full (the suite's leak check).
fn close_port(rt: &mut Runtime, pool: &PacketPool) -> Result<String, Error> {
    for port in rt.ports_mut() {
        port.close()?;
    }
    let mp = pool.mempool();
    if !mp.is_full() {
        return Err(format!("{} buffers of {} missing from the pool after close", mp.in_use(), mp.capacity()).into());
    }
    Ok(format!("\"pool\":{{\"free\":{},\"size\":{}}}", mp.available(), mp.capacity()))
}

fn stats_json(s: &Stats) -> String {
    format!(
        "{{\"ipackets\":{},\"opackets\":{},\"ierrors\":{},\"oerrors\":{},\"imissed\":{}}}",
        s.ipackets, s.opackets, s.ierrors, s.oerrors, s.imissed
    )
}

/// The port's checksum and chain counters among its xstats (DPDK's drivers name them
/// `*checksum*` or `*cksum*`).
fn xstats_json(rt: &Runtime) -> String {
    let xs: Vec<String> = rt.ports()[0]
        .xstats()
        .into_iter()
        .filter(|x| ["cksum", "checksum", "chain"].iter().any(|w| x.name.contains(w)))
        .map(|x| format!("\"{}\":{}", x.name, x.value))
        .collect();
    format!("{{{}}}", xs.join(","))
}

fn verdict(s: CksumStatus) -> u8 {
    match s {
        CksumStatus::Unknown => 0,
        CksumStatus::Bad => 1,
        CksumStatus::Good => 2,
        CksumStatus::None => 3,
    }
}

fn fnv1a(h: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Whether `p` is the host's end frame: a test frame (EtherType 0x88b5, magic `BRST`) numbered
/// `u32::MAX`.
fn is_end(p: &PacketBuf) -> bool {
    let mut head = [0u8; 22];
    matches!(p.read(0, &mut head), Some(h) if h[12..18] == *b"\x88\xb5BRST" && h[18..22] == [0xff; 4])
}

fn recv(rt: &mut Runtime, o: &RecvOpts) -> Result<String, Error> {
    let pool = PacketPool::new(
        rt.memory(),
        &PacketPoolConfig { data_room: o.data_room, ..PacketPoolConfig::new("offload-recv", POOL) },
    )?;
    // The MTU from the largest frame, as DPDK's l2fwd-jumbo: less the Ethernet header and CRC.
    let mtu = o.max_pkt_len.map(|l| u16::try_from(l.saturating_sub(18)).unwrap_or(u16::MAX));
    start_port(rt, &pool, &PortConf { rx_offloads: o.offloads, mtu, ..PortConf::queues(1, 1) })?;
    println!("ready");
    let shared: &Runtime = rt;
    let frames = shared.try_scope(|_| -> Result<Vec<String>, Error> {
        let mut q = shared.ports()[0].rx_queue(0)?;
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        'outer: while !shared.stop_requested() && Instant::now() < deadline {
            if q.rx_burst(&mut bufs, 32) == 0 {
                std::hint::spin_loop();
                continue;
            }
            for p in bufs.drain(..) {
                if is_end(&p) {
                    break 'outer;
                }
                let f = p.ol_flags();
                let sum = p.segments().fold(0x811c_9dc5, |h, s| fnv1a(h, s.data()));
                frames.push(format!(
                    "[{},{},{},{},{},{},{sum}]",
                    p.pkt_len(),
                    p.nb_segs(),
                    verdict(f.rx_ip_cksum()),
                    verdict(f.rx_l4_cksum()),
                    u8::from(f.contains(OlFlags::RX_VLAN_STRIPPED)),
                    p.vlan_tci()
                ));
            }
        }
        Ok(frames)
    })??;
    let stats = rt.ports()[0].stats();
    let xstats = xstats_json(rt);
    let pool_json = close_port(rt, &pool)?;
    Ok(format!(
        "{{\"frames\":[{}],\"stats\":{},\"xstats\":{xstats},{pool_json}}}",
        frames.join(","),
        stats_json(&stats)
    ))
}

/// Byte `k` of the payload of packet `n`: what the host checks.
fn payload_byte(n: u32, k: usize) -> u8 {
    (n as usize).wrapping_mul(37).wrapping_add(k) as u8
}

/// An Ethernet + IPv4 + TCP/UDP frame of `len` bytes (at least the headers), every checksum
/// zero, the IPv4 ID `id`, the payload by [`payload_byte`]; with its TX offload lengths.
fn ipv4_frame(dst: [u8; 6], src: [u8; 6], id: u16, tcp: bool, seq: u32, len: usize) -> (Vec<u8>, TxOffload) {
    let l4_len: usize = if tcp { 20 } else { 8 };
    let mut f = vec![0u8; len.max(34 + l4_len)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = u16::try_from(f.len() - 14).unwrap_or(u16::MAX);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = if tcp { 6 } else { 17 };
    ip[12..16].copy_from_slice(&SRC_IP);
    ip[16..20].copy_from_slice(&DST_IP);
    let l4 = &mut f[34..34 + l4_len];
    l4[0..2].copy_from_slice(&4000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&5000u16.to_be_bytes());
    if tcp {
        l4[4..8].copy_from_slice(&seq.to_be_bytes());
        l4[8..12].copy_from_slice(&1u32.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = 0x18; // PSH, ACK
        l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    } else {
        l4[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    }
    let n = u32::from(id);
    for (k, b) in f[34 + l4_len..].iter_mut().enumerate() {
        *b = payload_byte(n, k);
    }
    (f, TxOffload { l2_len: 14, l3_len: 20, l4_len: l4_len as u8, ..TxOffload::default() })
}

/// `bytes` in a packet of `segs` segments (the headers, `split` bytes, in the first).
fn packet(pool: &PacketPool, bytes: &[u8], split: &[usize]) -> Result<PacketBuf, Error> {
    let mut cuts = vec![0];
    cuts.extend(split.iter().copied().filter(|&c| c > 0 && c < bytes.len()));
    cuts.push(bytes.len());
    let mut head: Option<PacketBuf> = None;
    for w in cuts.windows(2) {
        let mut seg = pool.alloc().ok_or("the pool ran dry")?;
        if !seg.set_data(&bytes[w[0]..w[1]]) {
            return Err(format!("{} bytes do not fit a pool buffer", w[1] - w[0]).into());
        }
        match head.as_mut() {
            None => head = Some(seg),
            Some(h) => h.chain(seg).map_err(|(_, e)| e.to_string())?,
        }
    }
    head.ok_or_else(|| "an empty packet".into())
}

fn send(rt: &mut Runtime, kind: &str, dst: MacAddr) -> Result<String, Error> {
    let pool = rt.pktmbuf_pool("offload-send", POOL)?;
    let (rx_offloads, tx_offloads) = match kind {
        "csum" => (
            RxOffloads::empty(),
            TxOffloads::IPV4_CKSUM | TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM | TxOffloads::MULTI_SEGS,
        ),
        // The 8254x strips and inserts under one switch (CTRL.VME): a port may need both.
        "vlan" => (RxOffloads::VLAN_STRIP, TxOffloads::VLAN_INSERT),
        // Segmentation fills in each segment's IPv4 and TCP checksums: the packet asks for them.
        _ => (
            RxOffloads::empty(),
            TxOffloads::TCP_TSO | TxOffloads::IPV4_CKSUM | TxOffloads::TCP_CKSUM | TxOffloads::MULTI_SEGS,
        ),
    };
    start_port(rt, &pool, &PortConf { rx_offloads, tx_offloads, ..PortConf::queues(1, 1) })?;
    println!("ready");
    let src = rt.ports()[0].mac().bytes();
    let dst = dst.bytes();
    let mut pkts = Vec::new();
    match kind {
        "csum" => {
            let mut id = 0u16;
            for &len in &CSUM_SIZES {
                for tcp in [true, false] {
                    for split in [&[][..], &[54, 54 + (len - 54) / 2][..]] {
                        let (bytes, lens) = ipv4_frame(dst, src, id, tcp, u32::from(id) << 16, len);
                        let mut p = packet(&pool, &bytes, split)?;
                        let l4 = if tcp { TxL4::Tcp } else { TxL4::Udp };
                        p.set_ol_flags((OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM).with_tx_l4(l4));
                        p.set_tx_offload(lens);
                        pkts.push(p);
                        id += 1;
                    }
                }
            }
        }
        "vlan" => {
            for seq in 0..VLAN_FRAMES {
                let mut p = packet(&pool, &test_frame(dst, src, seq, 60 + seq as usize * 90), &[])?;
                p.set_ol_flags(OlFlags::TX_VLAN);
                p.set_vlan_tci(TCI_BASE + seq as u16);
                pkts.push(p);
            }
        }
        _ => {
            let (bytes, mut lens) = ipv4_frame(dst, src, 0, true, TSO_SEQ, 54 + TSO_PAYLOAD);
            // Headers and the start of the payload in the first buffer, the rest in full ones.
            let room = usize::from(pool.data_room());
            let split: Vec<usize> = (room..bytes.len()).step_by(room).collect();
            let mut p = packet(&pool, &bytes, &split)?;
            lens.tso_segsz = TSO_MSS;
            p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_TCP_SEG | OlFlags::TX_TCP_CKSUM);
            p.set_tx_offload(lens);
            pkts.push(p);
        }
    }
    let segs: Vec<u16> = pkts.iter().map(PacketBuf::nb_segs).collect();
    let shared: &Runtime = rt;
    let sent = shared.try_scope(|_| -> Result<usize, Error> {
        let mut q = shared.ports()[0].tx_queue(0)?;
        q.tx_prepare(&mut pkts).map_err(|e| Refused(format!("tx_prepare: {e}")))?;
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pkts.is_empty() && Instant::now() < deadline {
            // A few at a time, paced for QEMU's TCG-emulated NIC and the host's socket.
            let mut now: Vec<PacketBuf> = pkts.drain(..pkts.len().min(4)).collect();
            while !now.is_empty() && Instant::now() < deadline {
                sent += q.tx_burst(&mut now);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        pkts.clear();
        Ok(sent)
    })??;
    // The device counts frames once they went out: wait (bounded) for them.
    let want = if kind == "tso" { TSO_PAYLOAD.div_ceil(usize::from(TSO_MSS)) } else { sent } as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stats = rt.ports()[0].stats();
    while stats.opackets < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        stats = rt.ports()[0].stats();
    }
    let pool_json = close_port(rt, &pool)?;
    Ok(format!("{{\"sent\":{sent},\"segs\":{segs:?},\"stats\":{},{pool_json}}}", stats_json(&stats)))
}

/// Test frame `seq` of `len` bytes (`burst_lab::frames::TestFrame::build`: the runtime does not
/// depend on the lab).
fn test_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..18].copy_from_slice(b"\x88\xb5BRST");
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    f[22..24].copy_from_slice(&(len as u16).to_be_bytes());
    for (k, b) in f[24..len - 4].iter_mut().enumerate() {
        *b = seq.wrapping_mul(31).wrapping_add(k as u32) as u8;
    }
    let sum = fnv1a(0x811c_9dc5, &f[..len - 4]);
    f[len - 4..].copy_from_slice(&sum.to_be_bytes());
    f
}
