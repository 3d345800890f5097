//! The guest side of the driver conformance suite (`cargo xtask conformance`): what `pktgen` and
//! `l2fwd` cannot check. It runs in the lab guest against real (emulated) NICs, using only burst's
//! public API, and ends with one machine-readable line, `RESULT {json}`, that the host reads.
//!
//! ```text
//! conformance-guest [EAL options] -- info
//! conformance-guest [EAL options] -- rx [--promisc on|off] [--mtu N] [--idle]
//! conformance-guest [EAL options] -- lifecycle
//! conformance-guest [EAL options] -- tx COUNT DST-MAC
//! ```
//!
//! - `info`: every port configured and started; waits (bounded) for the link; prints each port's
//!   MAC, link and the IOVA mode.
//! - `rx`: port 0 receives numbered test frames (`burst_lab::frames` layout, checked here again
//!   since the runtime cannot depend on the lab) until the end frame (sequence `u32::MAX`) or
//!   SIGINT; reports how many arrived, whether they were intact and in order, per destination
//!   kind (own MAC, broadcast, other), and the port's counters.
//!   `--mtu N` sets the MTU before start (with a pool of 16 KiB buffers); `--idle` waits, without
//!   polling, until the host creates `/tmp/conformance-go` (the overload case), and reports the
//!   counters at that moment too.
//! - `lifecycle`: `rx` three times: after start, after stop and start, after close, runtime
//!   close and a fresh probe; prints `ready N` before each.
//! - `tx`: port 0 sends `COUNT` numbered frames of every size from 60 to 1514 bytes to `DST-MAC`,
//!   then waits until the port counted them all.
//!
//! Every subcommand closes its ports and exits 1 if a buffer is missing from the pool (the
//! suite's leak check), 2 for a bad command line.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use burst::{MacAddr, PacketBuf, PacketPool, PacketPoolConfig, Port, PortConf, Runtime, Stats};

/// EtherType and magic of test frames (`crates/lab/src/frames.rs`).
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const MAGIC: &[u8; 4] = b"BRST";
/// The sequence number of the frame that ends an `rx` run.
const END_SEQ: u32 = u32::MAX;
/// Descriptors per queue and buffers in the pool: the ring sizes l2fwd uses.
const RING: u16 = 1024;
const POOL: usize = 4096;
/// How long the link may take to come up after start (QEMU's autonegotiation is immediate).
const LINK_WAIT: Duration = Duration::from_secs(10);

type Error = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let (mut rt, app) = match Runtime::from_args(std::env::args()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("conformance-guest: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let args: Vec<&str> = app.iter().skip(1).map(String::as_str).collect();
    let result = match args.as_slice() {
        ["info"] => info(&mut rt),
        ["rx", rest @ ..] => match parse_rx(rest) {
            Some(o) => rx(&mut rt, &o),
            None => return usage(),
        },
        ["lifecycle"] => lifecycle(rt),
        ["tx", count, dst] => match (count.parse::<u32>(), dst.parse::<MacAddr>()) {
            (Ok(count), Ok(dst)) => tx(&mut rt, count, dst),
            _ => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(json) => {
            println!("RESULT {json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("conformance-guest: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "conformance-guest: usage: conformance-guest [EAL options] -- info | rx [--promisc on|off] [--mtu N] [--idle] | lifecycle | tx COUNT DST-MAC"
    );
    ExitCode::from(2)
}

/// Configures every port with one queue pair from `pool`, and starts it.
fn start_ports(rt: &mut Runtime, pool: &PacketPool, promisc: bool) -> Result<(), Error> {
    if rt.ports().is_empty() {
        return Err("no port: pass -a ADDR of a NIC bound to vfio-pci or uio_pci_generic".into());
    }
    for port in rt.ports_mut() {
        port.configure(&PortConf::queues(1, 1))?;
        port.rx_queue_setup(0, RING, pool)?;
        port.tx_queue_setup(0, RING)?;
        port.set_promiscuous(promisc)?;
        port.start()?;
    }
    Ok(())
}

/// Waits, bounded, until every port says its link is up.
fn wait_link(rt: &Runtime) {
    let deadline = Instant::now() + LINK_WAIT;
    while Instant::now() < deadline && !rt.ports().iter().all(|p| p.link().up) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Closes every port (which gives back every buffer the rings held) and checks the pool is full.
fn close_ports(rt: &mut Runtime, pool: &PacketPool) -> Result<String, Error> {
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
        "{{\"ipackets\":{},\"opackets\":{},\"ibytes\":{},\"obytes\":{},\"imissed\":{},\"ierrors\":{},\"oerrors\":{},\"rx_nombuf\":{}}}",
        s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf
    )
}

fn port_json(p: &Port) -> String {
    let link = p.link();
    format!("{{\"mac\":\"{}\",\"link_up\":{},\"speed_mbps\":{}}}", p.mac(), link.up, link.speed_mbps)
}

fn info(rt: &mut Runtime) -> Result<String, Error> {
    let pool = rt.pktmbuf_pool("conformance", POOL)?;
    start_ports(rt, &pool, false)?;
    wait_link(rt);
    let ports: Vec<String> = rt.ports().iter().map(port_json).collect();
    let iova = rt.iova_mode();
    let pool_json = close_ports(rt, &pool)?;
    Ok(format!("{{\"iova\":\"{iova}\",\"ports\":[{}],{pool_json}}}", ports.join(",")))
}

/// What `rx` saw.
#[derive(Default)]
struct RxTally {
    good: u64,
    bytes: u64,
    bad: u64,
    /// Test frames whose sequence number was not the next expected one.
    out_of_order: u64,
    own: u64,
    broadcast: u64,
    other: u64,
    foreign: u64,
    /// The sequence number expected next: one past the last test frame.
    next: u32,
    first_problem: Option<String>,
}

impl RxTally {
    fn problem(&mut self, what: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }
}

/// Options of `rx`.
#[derive(Default)]
struct RxOpts {
    promisc: bool,
    /// Set before start, with a pool whose buffers hold the largest frame.
    mtu: Option<u16>,
    /// Overload: do not poll until the host creates [`GO_FILE`].
    idle: bool,
}

/// What the host creates (through the lab agent) to end an idle period.
const GO_FILE: &str = "/tmp/conformance-go";
/// Data room of the jumbo pool: the 8254x's RX buffer sizes are powers of two, and 16384 is the
/// one that holds a 9018-byte frame.
const JUMBO_ROOM: u16 = 16384;

fn parse_rx(args: &[&str]) -> Option<RxOpts> {
    let mut o = RxOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--promisc" => o.promisc = *it.next()? == "on",
            "--mtu" => o.mtu = Some(it.next()?.parse().ok()?),
            "--idle" => o.idle = true,
            _ => return None,
        }
    }
    Some(o)
}

fn make_pool(rt: &Runtime, mtu: Option<u16>) -> Result<PacketPool, Error> {
    Ok(match mtu {
        Some(_) => PacketPool::new(
            rt.memory(),
            &PacketPoolConfig { data_room: JUMBO_ROOM, ..PacketPoolConfig::new("conformance-jumbo", 2048) },
        )?,
        None => rt.pktmbuf_pool("conformance", POOL)?,
    })
}

fn rx(rt: &mut Runtime, o: &RxOpts) -> Result<String, Error> {
    let pool = make_pool(rt, o.mtu)?;
    if let Some(mtu) = o.mtu {
        for port in rt.ports_mut() {
            port.configure(&PortConf::queues(1, 1))?;
            port.set_mtu(mtu)?;
        }
    }
    start_ports(rt, &pool, o.promisc)?;
    wait_link(rt);
    // Counters from here on only (the link coming up may have let the guest's own traffic in).
    rt.ports()[0].stats_reset();
    println!("ready: {}", port_json(&rt.ports()[0]));
    let mut idle_stats = String::from("null");
    if o.idle {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::path::Path::new(GO_FILE).exists() && Instant::now() < deadline && !rt.stop_requested() {
            std::thread::sleep(Duration::from_millis(20));
        }
        idle_stats = stats_json(&rt.ports()[0].stats());
        println!("polling");
    }
    let tally = rx_until_end(rt)?;
    let stats = rt.ports()[0].stats();
    let pool_json = close_ports(rt, &pool)?;
    Ok(format!("{{{},\"idle_stats\":{idle_stats},\"stats\":{},{pool_json}}}", tally.json(), stats_json(&stats)))
}

/// `lifecycle`: three receive phases, each ended by the host's end frame: after start; after
/// stop and start again; after every port closed, the runtime closed, and a fresh runtime probed
/// the devices again.
fn lifecycle(mut rt: Runtime) -> Result<String, Error> {
    let opts = rt.options().clone();
    let mut phases = Vec::new();
    {
        let pool = rt.pktmbuf_pool("conformance", POOL)?;
        start_ports(&mut rt, &pool, false)?;
        wait_link(&rt);
        println!("ready 1");
        phases.push(format!("{{{}}}", rx_until_end(&rt)?.json()));
        for port in rt.ports_mut() {
            port.stop()?;
        }
        if !pool.mempool().is_full() {
            return Err(format!("{} buffers still out after stop", pool.mempool().in_use()).into());
        }
        for port in rt.ports_mut() {
            port.start()?;
        }
        wait_link(&rt);
        println!("ready 2");
        phases.push(format!("{{{}}}", rx_until_end(&rt)?.json()));
        close_ports(&mut rt, &pool)?;
    }
    rt.close()?;
    let mut rt = Runtime::init(opts)?;
    let pool = rt.pktmbuf_pool("conformance", POOL)?;
    start_ports(&mut rt, &pool, false)?;
    wait_link(&rt);
    println!("ready 3");
    phases.push(format!("{{{}}}", rx_until_end(&rt)?.json()));
    let pool_json = close_ports(&mut rt, &pool)?;
    Ok(format!("{{\"phases\":[{}],{pool_json}}}", phases.join(",")))
}

impl RxTally {
    fn json(&self) -> String {
        format!(
            "\"good\":{},\"bytes\":{},\"bad\":{},\"out_of_order\":{},\"own\":{},\"broadcast\":{},\"other\":{},\"foreign\":{},\"next\":{},\"problem\":\"{}\"",
            self.good,
            self.bytes,
            self.bad,
            self.out_of_order,
            self.own,
            self.broadcast,
            self.other,
            self.foreign,
            self.next,
            self.first_problem.as_deref().unwrap_or_default().replace('"', "'"),
        )
    }
}

/// Receives on port 0 until the end frame (or SIGINT), checking every test frame.
fn rx_until_end(rt: &Runtime) -> Result<RxTally, Error> {
    let own = rt.ports()[0].mac().bytes();
    rt.try_scope(|_| -> Result<RxTally, Error> {
        let mut q = rt.ports()[0].rx_queue(0)?;
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(64);
        let mut t = RxTally::default();
        let mut next = 0u32;
        let mut ended = false;
        while !ended && !rt.stop_requested() {
            if q.rx_burst(&mut bufs, 32) == 0 {
                std::hint::spin_loop();
                continue;
            }
            for b in bufs.drain(..) {
                match check_frame(b.data()) {
                    Check::Foreign => t.foreign += 1,
                    Check::Bad(why) => {
                        t.bad += 1;
                        t.problem(why);
                    }
                    Check::Good { seq, dst } => {
                        if seq == END_SEQ {
                            ended = true;
                            continue;
                        }
                        t.good += 1;
                        t.bytes += b.len() as u64;
                        if dst == own {
                            t.own += 1;
                        } else if dst == [0xff; 6] {
                            t.broadcast += 1;
                        } else {
                            t.other += 1;
                        }
                        if seq != next {
                            t.out_of_order += 1;
                            t.problem(format!("frame {seq} arrived when {next} was expected"));
                        }
                        next = seq.wrapping_add(1);
                    }
                }
            }
        }
        t.next = next;
        Ok(t)
    })?
}

enum Check {
    Foreign,
    Bad(String),
    Good { seq: u32, dst: [u8; 6] },
}

/// `burst_lab::frames::TestFrame::parse`, repeated here: the runtime does not depend on the lab.
fn check_frame(bytes: &[u8]) -> Check {
    if bytes.len() < 28 || bytes[12..14] != ETHERTYPE || &bytes[14..18] != MAGIC {
        return Check::Foreign;
    }
    let seq = u32::from_be_bytes([bytes[18], bytes[19], bytes[20], bytes[21]]);
    let expected = usize::from(u16::from_be_bytes([bytes[22], bytes[23]]));
    if expected != bytes.len() {
        return Check::Bad(format!("frame {seq}: {} bytes arrived, it says {expected}", bytes.len()));
    }
    let (body, sum) = bytes.split_at(expected - 4);
    if fnv1a(body).to_be_bytes() != sum {
        return Check::Bad(format!("frame {seq} of {expected} bytes arrived corrupted"));
    }
    let mut dst = [0; 6];
    dst.copy_from_slice(&bytes[0..6]);
    Check::Good { seq, dst }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Test frame `seq` of `len` bytes (`burst_lab::frames::TestFrame::build`).
fn build_frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&ETHERTYPE);
    f[14..18].copy_from_slice(MAGIC);
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    f[22..24].copy_from_slice(&(len as u16).to_be_bytes());
    for (k, b) in f[24..len - 4].iter_mut().enumerate() {
        *b = seq.wrapping_mul(31).wrapping_add(k as u32) as u8;
    }
    let sum = fnv1a(&f[..len - 4]);
    f[len - 4..].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The size of frame `seq` in `tx`: every size from 60 to 1514 comes up (97 and 1455 are coprime).
fn tx_len(seq: u32) -> usize {
    60 + (seq as usize * 97) % (1514 - 60 + 1)
}

fn tx(rt: &mut Runtime, count: u32, dst: MacAddr) -> Result<String, Error> {
    let pool = rt.pktmbuf_pool("conformance", POOL)?;
    start_ports(rt, &pool, false)?;
    wait_link(rt);
    rt.ports()[0].stats_reset();
    let src = rt.ports()[0].mac().bytes();
    let shared: &Runtime = rt;
    let (sent, bytes) = shared.try_scope(|_| -> Result<(u64, u64), Error> {
        let mut q = shared.ports()[0].tx_queue(0)?;
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
        let (mut sent, mut bytes) = (0u64, 0u64);
        let mut seq = 0u32;
        while seq < count && !shared.stop_requested() {
            let n = (count - seq).min(16) as usize;
            if !pool.alloc_bulk(&mut bufs, n) {
                return Err("the pool ran dry: the driver does not give back sent buffers".into());
            }
            for b in bufs.iter_mut() {
                let len = tx_len(seq);
                if !b.set_data(&build_frame(dst.bytes(), src, seq, len)) {
                    return Err(format!("a {len}-byte frame does not fit a pool buffer").into());
                }
                bytes += len as u64;
                seq += 1;
            }
            // The ring may be full for a moment: what it did not take is offered again, in order.
            while !bufs.is_empty() && !shared.stop_requested() {
                sent += q.tx_burst(&mut bufs) as u64;
            }
            // Pace to what QEMU's TCG-emulated NIC and the host's socket keep up with.
            std::thread::sleep(Duration::from_micros(500));
        }
        bufs.clear();
        Ok((sent, bytes))
    })??;
    // The device counts a frame once it went out; wait (bounded) for the last ones.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stats = rt.ports()[0].stats();
    while stats.opackets < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        stats = rt.ports()[0].stats();
    }
    let pool_json = close_ports(rt, &pool)?;
    Ok(format!("{{\"sent\":{sent},\"bytes\":{bytes},\"stats\":{},{pool_json}}}", stats_json(&stats)))
}
