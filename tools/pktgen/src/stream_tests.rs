//! pktgen's modes on ports of a test's own: the runtime with net_ring and
//! net_null ports (`--no-huge --no-pci`: no root, no hugepages), set up as pktgen sets them up
//! from its options, with one stream polled by hand and the packets it sends read back from the
//! other end of a ring pair. What the command line cannot show is checked here: the segments of
//! the chains txonly builds with `--txpkts A,B,...`, and what csum mode counts and writes.
//! Every test closes its ports and then finds every buffer back in the pool.

use crate::counters::Published;
use crate::engine::{poll_once, Stream};
use crate::options::{self, Config, Parsed};
use crate::streams::{default_peer_mac, StreamSpec};
use crate::{frame, ports, run};
use burst::mem::{OlFlags, TxOffload};
use burst::{EalOptions, PacketBuf, PacketPool, Runtime, RxOffloads, TxOffloads};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

/// pktgen's options after `--`.
fn config(app: &[&str]) -> Config {
    let args: Vec<String> = std::iter::once("pktgen").chain(app.iter().copied()).map(String::from).collect();
    match options::parse(&args) {
        Ok(Parsed::Run(cfg)) => cfg,
        other => panic!("{app:?}: {other:?}"),
    }
}

/// A runtime with `vdevs`, its pool and its ports started as pktgen starts them for `cfg`.
fn setup(vdevs: &[&str], cfg: &Config) -> (Runtime, PacketPool) {
    let mut eal = EalOptions::new().no_huge().no_pci();
    for v in vdevs {
        eal = eal.vdev(v);
    }
    let mut rt = Runtime::init(eal).expect("the runtime starts with --no-huge --no-pci");
    let pool = ports::packet_pool(&rt, cfg).expect("the packet pool");
    for port in rt.ports_mut() {
        ports::start_port(port, cfg, &pool).expect("the port starts");
    }
    (rt, pool)
}

/// The stream that receives on port `rx` and sends on port `tx` (queue 0 each).
fn stream<'p>(rt: &'p Runtime, pool: &PacketPool, cfg: &Config, rx: u16, tx: u16, p: &'p Published) -> Stream<'p> {
    let spec = StreamSpec { rx_port: rx, rx_queue: 0, tx_port: tx, tx_queue: 0 };
    run::open_stream(rt, spec, pool, cfg, default_peer_mac(tx), p).expect("the stream opens")
}

/// Closes the ports (their drivers give back what they hold), checks the pool is full, closes
/// the runtime.
fn finish(mut rt: Runtime, pool: PacketPool) {
    for port in rt.ports_mut() {
        port.close().expect("the port closes");
    }
    let mp = pool.mempool();
    assert!(mp.is_full(), "{} of {} buffers not back in the pool", mp.in_use(), mp.capacity());
    drop(pool);
    rt.close().expect("the runtime closes");
}

/// Each segment's length.
fn seg_lens(b: &PacketBuf) -> Vec<usize> {
    b.segments().map(|s| s.len()).collect()
}

/// The packet's bytes, all segments.
fn bytes(b: &PacketBuf) -> Vec<u8> {
    b.segments().flat_map(|s| s.data().to_vec()).collect()
}

#[test]
fn txonly_with_txpkts_sends_chains_cut_at_those_lengths() {
    let cfg = config(&["--forward-mode=txonly", "--txpkts=14,20,8,100,1", "--burst=8"]);
    let (rt, pool) = setup(&["net_ring0,pair=seg", "net_ring1,pair=seg"], &cfg);
    {
        // pktgen turned MULTI_SEGS on for the chains.
        assert!(rt.port(0).unwrap().conf().tx_offloads.contains(TxOffloads::MULTI_SEGS));
        let published = Published::default();
        // Port 0 sends; its pair, port 1, receives what it sent.
        let mut s = stream(&rt, &pool, &cfg, 0, 0, &published);
        assert!(s.builds_chains());
        let mut rx = rt.port(1).unwrap().rx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(512);
        poll_once(cfg.mode, &mut s, &mut bufs, cfg.burst);
        poll_once(cfg.mode, &mut s, &mut bufs, cfg.burst);
        assert!(bufs.is_empty());
        assert_eq!((s.counts.generated, s.counts.tx, s.counts.dropped), (16, 16, 0));
        let want = frame::udp_template(rt.port(0).unwrap().mac(), default_peer_mac(0), 143);
        let mut got = Vec::with_capacity(32);
        assert_eq!(rx.rx_burst(&mut got, 32), 16);
        for b in &got {
            assert_eq!((b.nb_segs(), b.pkt_len()), (5, 143));
            assert_eq!(seg_lens(b), [14, 20, 8, 100, 1], "the --txpkts lengths");
            assert_eq!(bytes(b), want, "the template's bytes, in order");
            let p = SlicedPacket::from_ethernet(&want).expect("a frame etherparse reads");
            assert!(matches!(p.transport, Some(TransportSlice::Udp(_))));
        }
        drop(got);
    }
    finish(rt, pool);
}

#[test]
fn txonly_chains_stop_at_a_whole_packet_when_the_pool_runs_short() {
    // 10 free buffers, 3 a packet: 3 packets, and the 10th buffer goes back.
    let mut cfg = config(&["--forward-mode=txonly", "--txpkts=50,50,50", "--burst=8"]);
    cfg.total_num_mbufs = Some(64);
    let (rt, pool) = setup(&["net_null0"], &cfg);
    {
        let published = Published::default();
        let mut s = stream(&rt, &pool, &cfg, 0, 0, &published);
        let free = pool.mempool().capacity() - pool.mempool().in_use();
        let held: Vec<PacketBuf> = (0..free - 10).map(|_| pool.alloc().expect("a buffer")).collect();
        let mut bufs = Vec::with_capacity(512);
        poll_once(cfg.mode, &mut s, &mut bufs, cfg.burst);
        assert_eq!((s.counts.generated, s.counts.tx), (3, 3), "three whole chains of 3");
        assert!(s.segs.is_empty(), "the odd buffer went back");
        let stats = rt.port(0).unwrap().stats();
        assert_eq!((stats.opackets, stats.obytes), (3, 3 * 150), "net_null took the chains whole");
        drop(held);
        assert_eq!(pool.mempool().capacity() - pool.mempool().in_use(), free, "net_null freed every segment");
    }
    finish(rt, pool);
}

/// A UDP or TCP frame over IPv4 (`v6`: IPv6) with `payload`, checksums right.
fn l4_frame(tcp: bool, v6: bool, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let b = if v6 { b.ipv6([1; 16], [2; 16], 64) } else { b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64) };
    let mut f = Vec::new();
    if tcp {
        b.tcp(1000, 2000, 7, 512).write(&mut f, payload).unwrap();
    } else {
        b.udp(1000, 2000).write(&mut f, payload).unwrap();
    }
    f
}

/// Whether `frame`'s IPv4 header checksum (if any) and TCP or UDP checksum are right.
fn checksums_ok(frame: &[u8]) -> bool {
    let p = SlicedPacket::from_ethernet(frame).expect("a frame etherparse reads");
    let (ip_ok, l4) = match &p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            let h = ip.header().to_header();
            let ok = h.calc_header_checksum() == h.header_checksum;
            let l4 = match &p.transport {
                Some(TransportSlice::Udp(u)) => u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(),
                Some(TransportSlice::Tcp(t)) => t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap(),
                _ => panic!("UDP or TCP"),
            };
            (ok, l4)
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            let h = ip.header().to_header();
            let l4 = match &p.transport {
                Some(TransportSlice::Udp(u)) => u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap(),
                Some(TransportSlice::Tcp(t)) => t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap(),
                _ => panic!("UDP or TCP"),
            };
            (true, l4)
        }
        _ => panic!("IPv4 or IPv6"),
    };
    let have = match &p.transport {
        Some(TransportSlice::Udp(u)) => u.checksum(),
        Some(TransportSlice::Tcp(t)) => t.checksum(),
        _ => unreachable!(),
    };
    ip_ok && have == l4
}

/// `frame` in a buffer of `pool`, cut into segments at `cuts` (offsets).
fn chain_of(pool: &PacketPool, frame: &[u8], cuts: &[usize]) -> PacketBuf {
    let mut chain = burst::mem::ChainBuilder::new();
    let mut at = 0;
    for &end in cuts.iter().chain([frame.len()].iter()) {
        let mut seg = pool.alloc().expect("a buffer");
        assert!(seg.set_data(&frame[at..end]));
        chain.push(seg).unwrap();
        at = end;
    }
    chain.take().unwrap()
}

#[test]
fn csum_counts_bad_checksums_and_sends_every_frame_with_them_right() {
    let cfg = config(&["--forward-mode=csum", "--max-pkt-len=9000", "--mbuf-size=1152"]);
    let (rt, pool) = setup(&["net_ring0,pair=cs", "net_ring1,pair=cs"], &cfg);
    {
        // 9000-byte frames on 1024-byte buffers: ring scatters (passes chains), and sends them on.
        let conf = rt.port(0).unwrap().conf();
        assert!(conf.rx_offloads.contains(RxOffloads::SCATTER), "{:?}", conf.rx_offloads);
        assert!(conf.tx_offloads.contains(TxOffloads::MULTI_SEGS), "{:?}", conf.tx_offloads);
        let published = Published::default();
        // Frames put on port 1 arrive at port 0; the stream sends them on port 0, back to port 1.
        let mut s = stream(&rt, &pool, &cfg, 0, 0, &published);
        assert_eq!(s.tx_csum, crate::csum::TxCsum::default(), "ring computes no checksum: csum does");
        let (mut inject, mut out) =
            (rt.port(1).unwrap().tx_queue(0).unwrap(), rt.port(1).unwrap().rx_queue(0).unwrap());

        let big: Vec<u8> = (0..3000u32).map(|i| (i * 13) as u8).collect();
        let mut frames: Vec<(Vec<u8>, &str)> = vec![
            (l4_frame(false, false, b"good udp"), "good"),
            (l4_frame(true, false, b"good tcp"), "good"),
            (l4_frame(false, true, b"good udp6"), "good"),
        ];
        let mut bad_ip = l4_frame(false, false, b"bad ip");
        bad_ip[24] ^= 0x40;
        frames.push((bad_ip, "ip"));
        let mut bad_udp = l4_frame(false, false, b"bad udp");
        bad_udp[40] ^= 0x01;
        frames.push((bad_udp, "l4"));
        let mut bad_tcp6 = l4_frame(true, true, b"bad tcp6");
        bad_tcp6[54 + 16] ^= 0x80;
        frames.push((bad_tcp6, "l4"));
        let mut both = l4_frame(true, false, &big);
        both[24] ^= 1;
        both[50] ^= 1;
        frames.push((both, "both"));

        let mut burst: Vec<PacketBuf> = Vec::with_capacity(16);
        for (i, (f, _)) in frames.iter().enumerate() {
            // The big one as a chain cut at odd places (headers in the first segment).
            if f.len() > 1000 {
                burst.push(chain_of(&pool, f, &[61, 1060, 2040]));
            } else {
                let mut b = pool.alloc().unwrap();
                assert!(b.set_data(f), "frame {i}");
                burst.push(b);
            }
        }
        // An ARP frame, and a chain whose first segment ends inside the IPv4 header (--txpkts
        // 14,20,... style): neither is parsed, both go out as they came.
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut b = pool.alloc().unwrap();
        assert!(b.set_data(&arp));
        burst.push(b);
        let split_headers = l4_frame(false, false, b"headers split");
        burst.push(chain_of(&pool, &split_headers, &[14, 30]));
        let sent = burst.len();
        assert_eq!(inject.tx_burst(&mut burst), sent);

        let mut bufs = Vec::with_capacity(512);
        poll_once(cfg.mode, &mut s, &mut bufs, 32);
        assert!(bufs.is_empty());
        let c = s.counts;
        assert_eq!((c.rx, c.tx, c.dropped), (sent as u64, sent as u64, 0));
        assert_eq!((c.bad_ip_csum, c.bad_l4_csum, c.unparsed), (2, 3, 2), "{c:?}");

        let mut got = Vec::with_capacity(32);
        assert_eq!(out.rx_burst(&mut got, 32), sent);
        for (i, b) in got.iter().enumerate() {
            let data = bytes(b);
            if i < frames.len() {
                assert!(checksums_ok(&data), "frame {i} ({}) leaves with its checksums right", frames[i].1);
                assert_eq!(data.len(), frames[i].0.len());
                // Nothing asked of a device that computes nothing; the lengths filled as testpmd.
                assert!(!b.ol_flags().intersects(OlFlags::TX_IP_CKSUM), "frame {i}");
                assert_eq!(b.tx_offload().l2_len, 14, "frame {i}");
            }
        }
        assert_eq!(seg_lens(&got[frames.len() - 1]), [61, 999, 980, 1014], "the chain went through whole");
        assert_eq!(bytes(&got[frames.len()]), arp, "ARP as it came");
        assert_eq!(bytes(&got[frames.len() + 1]), split_headers, "headers across segments: as they came");
        assert_eq!(got[frames.len() + 1].tx_offload(), TxOffload::default());
        drop(got);
    }
    finish(rt, pool);
}

#[test]
fn csum_on_net_null_counts_what_net_null_makes() {
    // net_null's frames are zeros: no IPv4 or IPv6 header, each one unparsed and sent on.
    let cfg = config(&["--forward-mode=csum"]);
    let (rt, pool) = setup(&["net_null0", "net_null1"], &cfg);
    {
        let published = Published::default();
        let mut s = stream(&rt, &pool, &cfg, 0, 1, &published);
        let mut bufs = Vec::with_capacity(512);
        for _ in 0..10 {
            poll_once(cfg.mode, &mut s, &mut bufs, cfg.burst);
        }
        let c = s.counts;
        assert_eq!((c.rx, c.tx, c.unparsed, c.bad_ip_csum, c.bad_l4_csum), (320, 320, 320, 0, 0), "{c:?}");
    }
    finish(rt, pool);
}
