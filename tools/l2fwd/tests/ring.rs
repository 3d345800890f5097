//! l2fwd in-process over net_ring pairs, no hugepages needed.
//!
//! Four ring ports: 0 and 2 are joined (`pair=a`), 1 and 3 (`pair=b`). l2fwd forwards between
//! ports 0 and 1 (`-p 0x3`) while the test, holding ports 2 and 3 with its own pool, sends
//! numbered frames into port 2 (they reach l2fwd on port 0, leave on port 1, and come back to
//! the test on port 3) and the other way round. net_ring hands over packets as they are sent,
//! chains included, so the jumbo test sends chained frames and checks that each comes out with
//! the same segments. The tests take turns: lcore ids and the signal flag are process-wide.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use burst::net::{ethernet, EtherType, EthernetFrame};
use burst::{EalOptions, MacAddr, PacketBuf, PacketPool, PortConf, PortId, Runtime};
use l2fwd::{parse_app_args, L2fwd, PortStats};

static SERIAL: Mutex<()> = Mutex::new(());

/// Frames the test sends each way.
const N: u32 = 3000;
/// Frames each way in flight at most: well under a ring's 1024 slots, so nothing is dropped.
const WINDOW: u32 = 256;

/// Two lcores on two CPUs if the process may use two, else both on the one it has.
fn lcores() -> String {
    let cpus: Vec<usize> = burst::lcores::allowed_cpus().unwrap().into_iter().collect();
    format!("0@{},1@{}", cpus[0], cpus.get(1).unwrap_or(&cpus[0]))
}

fn runtime() -> Runtime {
    let opts = EalOptions::new()
        .no_huge()
        .no_pci()
        .lcores(&lcores())
        .handle_signals(false)
        .file_prefix(&format!("l2fwd-ring-{}", std::process::id()))
        .vdev("net_ring0,pair=a")
        .vdev("net_ring1,pair=b")
        .vdev("net_ring2,pair=a")
        .vdev("net_ring3,pair=b");
    Runtime::init(opts).expect("runtime with four ring ports")
}

/// The IEEE 802 local experimental EtherType (IEEE Std 802 clause 9.2.2).
const LOCAL_EXPERIMENTAL: EtherType = EtherType(0x88b5);

/// The frames a test sends: standard (60 to 1459 bytes, one buffer each) or jumbo (60 to 9000
/// bytes, chained over the test pool's 2048-byte buffers, the first segment cut short).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Traffic {
    Standard,
    Jumbo,
}

/// Frame `seq` of direction `dir` (0: into port 2, 1: into port 3): its own addresses, a local
/// EtherType, then a payload of the sequence number, the direction, and bytes whose number
/// and values depend on both.
fn frame(traffic: Traffic, dir: u8, seq: u32) -> Vec<u8> {
    let len = match traffic {
        Traffic::Standard => 60 + (seq as usize * 7 + usize::from(dir) * 13) % 1400,
        Traffic::Jumbo => 60 + (seq as usize * 997 + usize::from(dir) * 13) % 8941,
    };
    let mut f = vec![0u8; len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst(MacAddr([0x02, 0xaa, 0, 0, 0, dir]));
    eth.set_src(MacAddr([0x02, 0xbb, 0, 0, 0, dir]));
    eth.set_ethertype(LOCAL_EXPERIMENTAL);
    let payload = eth.payload_mut();
    assert_eq!(payload.len(), len - ethernet::HEADER_LEN);
    let (head, pattern) = payload.split_at_mut(5);
    head[..4].copy_from_slice(&seq.to_be_bytes());
    head[4] = dir;
    for (i, b) in pattern.iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}

/// Configures and starts one of the test's ports, its RX queue filled from `pool`.
fn start_port(rt: &mut Runtime, id: PortId, pool: &PacketPool) {
    let port = rt.port_mut(id).unwrap();
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 0, pool).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
}

/// Asks the runtime to stop when dropped, so that l2fwd's lcores end even if the test fails.
struct StopOnDrop<'a>(&'a Runtime);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

/// The segment lengths frame `seq` of `len` bytes is sent in.
fn segments(traffic: Traffic, seq: u32, len: usize) -> Vec<usize> {
    match traffic {
        Traffic::Standard => vec![len],
        Traffic::Jumbo => {
            let mut segs = vec![(20 + seq as usize % 100).min(len)];
            while segs.iter().sum::<usize>() < len {
                segs.push((len - segs.iter().sum::<usize>()).min(2048));
            }
            segs
        }
    }
}

/// `bytes` as a packet of the given segments from `pool`.
fn packet(pool: &PacketPool, bytes: &[u8], segs: &[usize]) -> PacketBuf {
    let mut at = 0;
    let mut head: Option<PacketBuf> = None;
    for &n in segs {
        let mut seg = pool.alloc().expect("the test's pool ran dry");
        assert!(seg.set_data(&bytes[at..at + n]));
        at += n;
        match head.as_mut() {
            None => head = Some(seg),
            Some(h) => h.chain(seg).map_err(|(_, e)| e).unwrap(),
        }
    }
    head.unwrap()
}

/// A packet's bytes, over all its segments.
fn bytes_of(p: &PacketBuf) -> Vec<u8> {
    p.segments().flat_map(|s| s.data().iter().copied()).collect()
}

/// What l2fwd should deliver for a frame sent: `expect(frame, TX port, TX port's MAC)`.
type Expect<'a> = &'a dyn Fn(&[u8], u8, MacAddr) -> Vec<u8>;

/// Sends `N` frames each way through l2fwd and checks each one as it comes out: in order,
/// payload intact, addresses as `expect` says, in the segments it was sent in.
fn pump(rt: &Runtime, pool: &PacketPool, traffic: Traffic, expect: Expect<'_>) {
    // Direction 0 leaves l2fwd on port 1, direction 1 on port 0.
    let l2fwd_tx = [(1u8, rt.port(1).unwrap().mac()), (0u8, rt.port(0).unwrap().mac())];
    // Direction 0 goes in at port 2 and out at port 3; direction 1 the other way.
    let mut tx = [rt.port(2).unwrap().tx_queue(0).unwrap(), rt.port(3).unwrap().tx_queue(0).unwrap()];
    let mut rx = [rt.port(3).unwrap().rx_queue(0).unwrap(), rt.port(2).unwrap().rx_queue(0).unwrap()];
    let (mut sent, mut received) = ([0u32; 2], [0u32; 2]);
    let mut bufs = Vec::with_capacity(32);
    // Not a timing assertion: only a bound, so that a lost frame fails the test instead of
    // hanging it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while received != [N; 2] {
        assert!(Instant::now() < deadline, "stuck: sent {sent:?}, received {received:?} of {N} each way");
        for d in 0..2 {
            let room = (WINDOW - (sent[d] - received[d])).min(N - sent[d]).min(32);
            if room > 0 {
                for seq in sent[d]..sent[d] + room {
                    let f = frame(traffic, d as u8, seq);
                    bufs.push(packet(pool, &f, &segments(traffic, seq, f.len())));
                }
                while !bufs.is_empty() {
                    assert!(Instant::now() < deadline, "port {} does not take frames", 2 + d);
                    tx[d].tx_burst(&mut bufs);
                }
                sent[d] += room;
            }
            rx[d].rx_burst(&mut bufs, 32);
            for buf in bufs.drain(..) {
                let seq = received[d];
                let (port, mac) = l2fwd_tx[d];
                let sent = frame(traffic, d as u8, seq);
                assert_eq!(bytes_of(&buf), expect(&sent, port, mac), "direction {d}, frame {seq}");
                let segs: Vec<usize> = buf.segments().map(|s| s.len()).collect();
                assert_eq!(segs, segments(traffic, seq, sent.len()), "direction {d}, frame {seq}: its segments");
                received[d] += 1;
            }
        }
        std::thread::yield_now();
    }
}

/// Runs l2fwd with `app_args` while [`pump`] sends through it; returns l2fwd's output and
/// final counters, having checked that both pools are full.
fn forward_through_l2fwd(app_args: &[&str], traffic: Traffic, expect: Expect<'_>) -> (String, Vec<PortStats>) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut rt = runtime();
    let test_pool = rt.pktmbuf_pool("test_pool", 8192).unwrap();
    start_port(&mut rt, 2, &test_pool);
    start_port(&mut rt, 3, &test_pool);

    let args: Vec<String> = ["l2fwd"].iter().chain(app_args).map(|s| s.to_string()).collect();
    let cfg = parse_app_args(&args).unwrap();
    let mut out: Vec<u8> = Vec::new();
    let app = L2fwd::setup(&mut rt, &cfg, &mut out).unwrap();
    let rt_ref = &rt;
    std::thread::scope(|s| {
        // l2fwd's main lcore runs on a thread of this scope; the test's traffic on the test's
        // own thread, which is no lcore.
        let l2fwd_out = &mut out;
        let forwarding = s.spawn(|| app.forward(rt_ref, l2fwd_out));
        {
            let _stop = StopOnDrop(rt_ref);
            pump(rt_ref, &test_pool, traffic, expect);
        }
        forwarding.join().unwrap().unwrap();
    });
    let summary = app.finish(&mut rt, &mut out).unwrap();
    assert_eq!(summary.pool_free, summary.pool_size, "l2fwd's pool is not full");
    for id in [2, 3] {
        rt.port_mut(id).unwrap().close().unwrap();
    }
    assert!(test_pool.mempool().is_full(), "the test's pool lacks {} buffers", test_pool.mempool().in_use());
    rt.close().unwrap();
    (String::from_utf8(out).unwrap(), summary.ports)
}

/// Stats for ports 0 and 1 after N frames each way, none dropped.
fn all_forwarded() -> Vec<PortStats> {
    let n = u64::from(N);
    vec![PortStats { port: 0, tx: n, rx: n, dropped: 0 }, PortStats { port: 1, tx: n, rx: n, dropped: 0 }]
}

#[test]
fn frames_are_forwarded_in_order_with_macs_rewritten() {
    // etherparse, not burst-net's views (which l2fwd uses), says what the frame should become.
    let expect = |sent: &[u8], tx_port: u8, tx_mac: MacAddr| {
        let (mut eth, rest) = etherparse::Ethernet2Header::from_slice(sent).unwrap();
        eth.destination = [0x02, 0, 0, 0, 0, tx_port];
        eth.source = tx_mac.bytes();
        [&eth.to_bytes()[..], rest].concat()
    };
    // Two lcores: port 0 on the main one, port 1 on the other.
    let (out, stats) = forward_through_l2fwd(&["-p", "0x3", "-T", "0"], Traffic::Standard, &expect);
    assert_eq!(stats, all_forwarded());
    for line in ["MAC updating enabled", "Lcore 0: RX port 0 TX port 1", "Lcore 1: RX port 1 TX port 0"] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    // The source address is net_ring's default for port 1 (02:62:75:00:00:PP).
    assert!(out.contains("Port 1, MAC address: 02:62:75:00:00:01"), "{out}");
    let total = format!("Total packets received: {:>14}", 2 * N);
    // DPDK's pool size: 4 ports x (1024 RX + 1024 TX descriptors + a burst + 2 lcores x 256).
    let pool = "mbuf pool: 10368 of 10368 buffers free";
    for line in ["Closing port 0... Done", "Closing port 1... Done", &total, pool] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert!(!out.contains("\x1b[2J"), "-T 0 prints no statistics screen:\n{out}");
}

#[test]
fn without_mac_updating_frames_come_out_untouched() {
    // Both ports on the main lcore (-q 2), and the statistics screen on (due or not while the
    // frames pass).
    let (out, stats) = forward_through_l2fwd(
        &["-p", "3", "-q", "2", "--no-mac-updating", "-T", "1"],
        Traffic::Standard,
        &|f, _, _| f.to_vec(),
    );
    assert_eq!(stats, all_forwarded());
    assert!(out.contains("MAC updating disabled"), "{out}");
    assert!(out.contains("Lcore 0: RX port 0 TX port 1\nLcore 0: RX port 1 TX port 0"), "{out}");
    assert!(out.contains("L2FWD: lcore 1 has nothing to do"), "{out}");
}

#[test]
fn jumbo_chains_are_forwarded_untouched() {
    // --max-pkt-len 9018: MTU 9000 on every port (net_ring offers no scatter and needs none:
    // it hands over the packets it is sent). Frames up to 9000 bytes in chains of up to five
    // segments come out with the same segments, only their addresses rewritten.
    let expect = |sent: &[u8], tx_port: u8, tx_mac: MacAddr| {
        let mut f = sent.to_vec();
        f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, tx_port]);
        f[6..12].copy_from_slice(&tx_mac.bytes());
        f
    };
    let (out, stats) =
        forward_through_l2fwd(&["-p", "0x3", "-T", "0", "--max-pkt-len", "9018"], Traffic::Jumbo, &expect);
    assert_eq!(stats, all_forwarded());
    assert!(out.contains("MTU 9000"), "{out}");
}
