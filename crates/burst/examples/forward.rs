use std::error::Error;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use burst::net::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpDatagram};
use burst::{MacAddr, OlFlags, PacketBuf, PacketPool, PortConf, Runtime, TxOffload, TxOffloads};

fn main() -> ExitCode {
    // `myfwd [EAL options] -- [FRAMES]`, exactly like a DPDK application.
    let (mut rt, app_args) = match Runtime::from_args(std::env::args()) {
        Ok(v) => v,
        Err(e) if e.is_help() => {
            print!("{e}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("myfwd: {e}");
            return ExitCode::from(e.exit_code()); // 2 for a bad option, 1 otherwise
        }
    };
    // Your own options come after `--` (`app_args[0]` is the program's name).
    let frames = match app_args.get(1).map(|s| s.parse::<u64>()) {
        None => 10_000,
        Some(Ok(n)) if (1..=MAX_FRAMES).contains(&n) => n,
        Some(_) => {
            eprintln!("myfwd: FRAMES must be a number of frames from 1 to {MAX_FRAMES}");
            return ExitCode::from(2);
        }
    };
    match run(&mut rt, frames) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("myfwd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Bytes of each frame `myfwd` sends: Ethernet, IPv4 and UDP headers, then the sequence number.
const FRAME_LEN: usize = 64;

/// Bytes of the Ethernet, IPv4 and UDP headers: a frame's first segment. Its payload is a
/// second buffer chained behind, as a stack that keeps headers and data apart builds them.
const HEADERS_LEN: usize = 14 + 20 + 8;

/// The most frames one run sends (one bit each remembers which came back).
const MAX_FRAMES: u64 = 100_000_000;

/// The most frames out and not back yet: fewer than a ring holds, so a full ring never makes
/// the router drop one.
const WINDOW: u64 = 512;

/// A UDP frame from `src` to `dst` carrying `seq`, as a chain of two buffers of `pool`: `None`
/// when the pool is empty. With `offload`, the NIC computes the IPv4 and UDP checksums; without,
/// the IPv4 checksum is computed here and the UDP one is left out (0, which IPv4 allows).
fn udp_frame(pool: &PacketPool, src: MacAddr, dst: MacAddr, seq: u64, offload: bool) -> Option<PacketBuf> {
    let mut payload = pool.alloc()?;
    payload.set_len(FRAME_LEN - HEADERS_LEN);
    payload.data_mut().fill(0);
    payload.data_mut()[..8].copy_from_slice(&seq.to_be_bytes());

    let mut buf = pool.alloc()?; // if this fails, `payload` goes back to the pool as it drops
    buf.set_len(HEADERS_LEN); // the buffer's data: HEADERS_LEN bytes after the headroom
    let data = buf.data_mut();
    data.fill(0);
    // A view over bytes we are writing: `new_unchecked`, since there is no header to check yet.
    let mut eth = EthernetFrame::new_unchecked(&mut data[..]);
    eth.set_dst(dst);
    eth.set_src(src);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_ihl(5);
    ip.set_total_len((FRAME_LEN - 14) as u16); // the whole packet's, payload segment included
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src(Ipv4Addr::new(198, 18, 0, 1));
    ip.set_dst(Ipv4Addr::new(198, 18, 0, 2));
    if !offload {
        ip.fill_checksum();
    }
    // The UDP header is the last bytes of this segment: a view of the IPv4 payload would
    // reach into the next segment, so the header is viewed where it is.
    let mut udp = UdpDatagram::new_unchecked(&mut data[14 + 20..]);
    udp.set_src_port(9);
    udp.set_dst_port(9);
    udp.set_len((FRAME_LEN - 14 - 20) as u16);
    if offload {
        // What the NIC is asked to do, and where the headers it needs are; `tx_prepare` then
        // puts in the checksum fields what this NIC expects to find there.
        buf.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM);
        buf.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() });
    }
    buf.chain(payload).ok()?; // now one packet of FRAME_LEN bytes in two segments
    Some(buf)
}

/// Forwards what `buf` holds as a router would: the TTL down by one, the checksum again, the
/// addresses swapped. `false` for anything that is not a well-formed IPv4 frame with TTL left.
fn route(buf: &mut PacketBuf) -> bool {
    // A chain's headers and payload are in different buffers: small frames are cheapest to
    // route as one (`linearize` copies them into the first buffer and frees the rest).
    if buf.nb_segs() > 1 && buf.linearize().is_err() {
        return false;
    }
    // Checked once, at the boundary: the accessors after it cannot fail.
    let Ok(mut eth) = EthernetFrame::new_checked(buf.data_mut()) else { return false };
    if eth.ethertype() != EtherType::IPV4 {
        return false;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return false };
    if ip.ttl() <= 1 || !ip.verify_checksum() {
        return false;
    }
    ip.set_ttl(ip.ttl() - 1);
    ip.fill_checksum();
    eth.addrs_mut().swap();
    true
}

/// The sequence number of a frame that came back to `me` from `peer` through `route`: addresses
/// swapped, TTL down to 63. `None` for anything else.
fn returned_seq(frame: &[u8], me: MacAddr, peer: MacAddr) -> Option<u64> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let udp = UdpDatagram::new_checked(ip.payload()).ok()?;
    let seq = udp.payload().first_chunk::<8>()?;
    (eth.dst() == me && eth.src() == peer && ip.ttl() == 63).then(|| u64::from_be_bytes(*seq))
}

/// Everything after the runtime is up. Errors are `?`'d up to `main`, the one place that turns
/// them into an exit code.
fn run(rt: &mut Runtime, frames: u64) -> Result<(), Box<dyn Error>> {
    if rt.ports().len() != 2 {
        return Err("two ports are needed: --vdev net_ring0,pair=wire --vdev net_ring1,pair=wire, or two NICs".into());
    }
    let Some(&worker) = rt.worker_lcores().first() else {
        return Err("a worker lcore is needed: -l 0,1, or --lcores 0@0,1@0 to run both on CPU 0".into());
    };
    let pool = rt.pktmbuf_pool("mbufs", 8191)?; // 2048-byte buffers, per-lcore caches

    // Chained frames need MULTI_SEGS; the checksums are the NIC's work where it can do them.
    let csum = TxOffloads::IPV4_CKSUM | TxOffloads::UDP_CKSUM;
    for port in rt.ports_mut() {
        let mut conf = PortConf::queues(1, 1); // 1 RX queue, 1 TX queue
        conf.tx_offloads = TxOffloads::MULTI_SEGS | (port.info().tx_offload_capa & csum);
        port.configure(&conf)?; // an offload the port lacks is refused here, by name
        port.rx_queue_setup(0, 1024, &pool)?; // 1024 descriptors, buffers from `pool`
        port.tx_queue_setup(0, 1024)?;
        port.set_promiscuous(true)?;
        port.start()?;
        println!("port {}: {} {} link {}", port.id(), port.name(), port.mac(), port.link());
    }

    let (mac0, mac1) = (rt.ports()[0].mac(), rt.ports()[1].mac());
    let offload = rt.ports()[0].info().tx_offload_capa.contains(csum);
    println!("checksums of the frames port 0 sends: {}", if offload { "by the NIC" } else { "in software" });
    let shared: &Runtime = rt;
    let (sent, received, routed) = shared.try_scope(|s| -> Result<(u64, u64, u64), burst::EthError> {
        let rt = s.runtime();
        // Every queue handle is taken before a worker starts: a `?` after a launch would leave
        // the scope waiting for a worker nobody asked to stop.
        let (mut rx1, mut tx1) = (rt.ports()[1].rx_queue(0)?, rt.ports()[1].tx_queue(0)?);
        let (mut rx0, mut tx0) = (rt.ports()[0].rx_queue(0)?, rt.ports()[0].tx_queue(0)?);
        // The worker lcore: whatever port 1 receives, routed back out of port 1.
        let job = s
            .launch(worker, move || {
                let mut bufs = Vec::with_capacity(64); // allocated once, reused forever
                let mut routed = 0u64;
                while !rt.stop_requested() {
                    // SIGINT / SIGTERM, or request_stop
                    if rx1.rx_burst(&mut bufs, 32) == 0 {
                        continue;
                    }
                    bufs.retain_mut(route); // a buffer dropped here goes back to its pool
                    routed += tx1.tx_burst(&mut bufs) as u64;
                    bufs.clear(); // what TX did not take is freed here
                }
                routed
            })
            .expect("the worker lcore exists and is free");
        // The main lcore: our own frames out of port 0, and back in on port 0.
        let (mut out, mut back) = (Vec::with_capacity(32), Vec::with_capacity(32));
        let mut seen = vec![0u64; frames.div_ceil(64) as usize]; // one bit per frame sent
        let (mut next, mut sent, mut received, mut last_news) = (0u64, 0u64, 0u64, Instant::now());
        while received < frames && last_news.elapsed() < Duration::from_secs(2) {
            while next < frames && out.len() < 32 && next - received < WINDOW {
                let Some(buf) = udp_frame(&pool, mac0, mac1, next, offload) else { break };
                out.push(buf);
                next += 1;
            }
            // Offload requests are checked, and the checksum fields made ready for this NIC,
            // before the burst: a packet that asks for what the queue cannot do is named here.
            if let Err(e) = tx0.tx_prepare(&mut out) {
                rt.request_stop(); // the worker must stop before the scope can end
                return Err(e.into());
            }
            sent += tx0.tx_burst(&mut out) as u64; // what it did not take stays in `out`
            rx0.rx_burst(&mut back, 32);
            for buf in back.drain(..) {
                let Some(seq) = returned_seq(buf.data(), mac0, mac1).filter(|&s| s < frames) else { continue };
                let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
                if seen[word] & bit == 0 {
                    seen[word] |= bit;
                    received += 1;
                    last_news = Instant::now();
                }
            }
        }
        rt.request_stop();
        Ok((sent, received, job.join()))
    })??;

    println!("sent {sent} frames from port 0, port 1 routed {routed}, {received} came back intact");
    // The queue handles are gone with the scope, so the ports may be closed: closing a port
    // gives back every buffer its rings held, and only then is the pool whole again.
    for port in rt.ports_mut() {
        port.close()?;
    }
    if !pool.mempool().is_full() {
        return Err(format!("{} buffers leaked", pool.mempool().in_use()).into());
    }
    if received != frames {
        return Err(format!("{} of {frames} frames did not come back", frames - received).into());
    }
    Ok(())
}
