//! net_af_packet on veth pairs in network namespaces of the test's own (root; each test makes
//! and removes its namespaces, and fails saying what is missing when it cannot).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use burst_af_packet::{PacketError, DRIVER};
use burst_ethdev::{DevArgs, EthError, Port, PortConf, RxOffloads, VdevProbe, VdevShared};
use burst_mem::testing::memory;
use burst_mem::{Memory, PacketPool, PacketPoolConfig};
use burst_net::MacAddr;
use burst_netbed::{veth, without_caps, Bed, NetNs, RawSocket};

/// One runtime (lcores, pools) at a time in this process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn probe(mem: &Memory, spec: &str) -> Result<Port, EthError> {
    let (name, args) = DevArgs::parse(spec)?;
    let mut shared = VdevShared::default();
    let dev = (DRIVER.probe)(VdevProbe { name: &name, args: &args, memory: mem, shared: &mut shared, port_id: 0 })?;
    Ok(Port::new(0, dev))
}

#[test]
fn l2fwd_forwards_a_mixed_stream_both_ways_byte_exact() {
    let _s = serial();
    let bed = Bed::new("pkt-l2", 1);
    let n = 2000;
    let (pumped, out) = bed.l2fwd(["net_af_packet0,iface=k0", "net_af_packet1,iface=k1"], n);
    for (d, p) in pumped.iter().enumerate() {
        assert!(p.errors.is_empty(), "direction {d}: {:?}\nl2fwd said:\n{out}", p.errors);
        assert_eq!(p.good, n, "direction {d}");
    }
    assert!(out.contains("Port 0, MAC address: 02:62:75:10:00:00"), "the interface's address is the port's:\n{out}");
}

/// A port on `iface` of the calling thread's namespace, one queue each way from `pool`, started.
fn started(mem: &Memory, spec: &str, conf: &PortConf, pool: &PacketPool, rx_offloads: RxOffloads) -> Port {
    let mut port = probe(mem, spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    port.configure(conf).unwrap();
    for q in 0..conf.nb_rx_queues {
        port.rx_queue_setup_with(q, 0, pool, rx_offloads).unwrap();
    }
    for q in 0..conf.nb_tx_queues {
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
    port
}

#[test]
fn jumbo_frames_arrive_as_chains_and_leave_whole() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-j"), NetNs::new("pkt-jf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x30, 0, 1]), MacAddr([2, 0x62, 0x75, 0x30, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 1);
    far.ip(&["link", "set", "f", "mtu", "9000"]);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&burst_mem::testing::unique_name("jumbo"), 512)).unwrap();
    let frames: Vec<Vec<u8>> = (0..20u32)
        .map(|i| {
            let len = 9014 - (i as usize * 331) % 4000;
            let mut f: Vec<u8> = (0..len).map(|b| (b as u32).wrapping_mul(7).wrapping_add(i) as u8).collect();
            f[..6].copy_from_slice(&mac_k.bytes());
            f[6..12].copy_from_slice(&mac_f.bytes());
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f
        })
        .collect();
    mid.enter(|| {
        let spec = "net_af_packet0,iface=k0,blocksz=65536,framesz=16384,framecnt=64";
        let conf = PortConf { mtu: Some(9000), ..PortConf::queues(1, 1) };
        let mut port = started(&mem, spec, &conf, &pool, RxOffloads::SCATTER);
        assert_eq!(port.mtu(), 9000);
        {
            let (mut rx, mut tx) = (port.rx_queue(0).unwrap(), port.tx_queue(0).unwrap());
            let got = std::thread::scope(|s| {
                let frames = &frames;
                let far = &far;
                s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open("f");
                    for f in frames {
                        sock.send_retry(f);
                    }
                });
                let mut got = Vec::new();
                let until = Instant::now() + Duration::from_secs(10);
                while got.len() < frames.len() && Instant::now() < until {
                    rx.rx_burst(&mut got, 32);
                }
                got
            });
            assert_eq!(got.len(), frames.len(), "every jumbo frame arrives");
            for (buf, sent) in got.iter().zip(&frames) {
                assert_eq!(buf.pkt_len() as usize, sent.len());
                assert_eq!(usize::from(buf.nb_segs()), sent.len().div_ceil(2048), "a chain of 2048-byte buffers");
                let bytes: Vec<u8> = buf.segments().flat_map(|s| s.data().to_vec()).collect();
                assert!(bytes == *sent, "the chain holds the frame byte for byte");
            }
            // The chains go back out whole.
            let mut out = got;
            let echoed = std::thread::scope(|s| {
                let far = &far;
                let n = frames.len();
                let rx_far = s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open("f");
                    let mut seen = Vec::new();
                    while seen.len() < n {
                        match sock.recv(Duration::from_secs(5)) {
                            Some(f) if f.len() > 8000 - 4000 => seen.push(f),
                            Some(_) => {}
                            None => break,
                        }
                    }
                    seen
                });
                std::thread::sleep(Duration::from_millis(200));
                while !out.is_empty() {
                    tx.tx_burst(&mut out);
                }
                rx_far.join().unwrap()
            });
            assert_eq!(echoed, frames, "the far end gets every chain back as one frame");
        }
        let s = port.stats();
        assert_eq!((s.ipackets, s.opackets, s.ierrors, s.oerrors), (20, 20, 0, 0));
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full(), "{} buffers not back", pool.mempool().in_use());
    mid.enter(|| {
        let link = burst_netif::Iface::open("k0").unwrap();
        assert_eq!(link.found().mtu, 1500, "the interface's MTU is put back at close");
    });
}

#[test]
fn two_queue_pairs_share_the_frames_through_fanout() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-q"), NetNs::new("pkt-qf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x31, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x31, 0, 2]), 2);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&burst_mem::testing::unique_name("fan"), 1024)).unwrap();
    let frames = burst_netbed::stream::stream(0, 400);
    mid.enter(|| {
        let port = started(
            &mem,
            "net_af_packet0,iface=k0,qpairs=2,fanout_mode=lb",
            &PortConf::queues(2, 2),
            &pool,
            RxOffloads::NONE,
        );
        let mut rx = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
        let mut seen = vec![0u32; frames.len()];
        let mut per_queue = [0u32; 2];
        std::thread::scope(|s| {
            let (frames, far) = (&frames, &far);
            s.spawn(move || {
                far.set_thread();
                let sock = RawSocket::open("f");
                for f in frames {
                    sock.send_retry(f);
                    std::thread::sleep(Duration::from_micros(50));
                }
            });
            let until = Instant::now() + Duration::from_secs(10);
            let mut bufs = Vec::new();
            while per_queue.iter().sum::<u32>() < frames.len() as u32 && Instant::now() < until {
                for (q, r) in rx.iter_mut().enumerate() {
                    r.rx_burst(&mut bufs, 32);
                    for b in bufs.drain(..) {
                        let (_, seq) = burst_netbed::stream::id_of(b.data()).expect("a frame of the stream");
                        assert_eq!(b.data(), &frames[seq as usize][..], "frame {seq} intact");
                        seen[seq as usize] += 1;
                        per_queue[q] += 1;
                    }
                }
            }
        });
        assert!(
            seen.iter().all(|&n| n == 1),
            "every frame once: {:?}",
            seen.iter().enumerate().filter(|(_, n)| **n != 1).take(5).collect::<Vec<_>>()
        );
        assert!(per_queue[0] > 100 && per_queue[1] > 100, "round robin over both queues: {per_queue:?}");
        let st = port.stats();
        assert_eq!(st.q_ipackets, vec![u64::from(per_queue[0]), u64::from(per_queue[1])]);
        let x = port.xstats();
        let kernel = |name: &str| x.iter().find(|s| s.name == name).map(|s| s.value);
        assert_eq!(kernel("rx_kernel_drops"), Some(0));
        assert_eq!(kernel("rx_q0_kernel_packets").unwrap() + kernel("rx_q1_kernel_packets").unwrap(), 400);
    });
    assert!(pool.mempool().is_full());
}

#[test]
fn wrong_interface_down_interface_and_no_cap_net_raw_are_one_line_errors() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-e"), NetNs::new("pkt-ef"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x32, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x32, 0, 2]), 1);
    let mem = memory();
    let driver_err = |e: EthError| -> (String, Option<String>) {
        let text = e.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        let kind = e.driver_error::<PacketError>().map(|p| format!("{p:?}"));
        (text, kind)
    };
    mid.enter(|| {
        let (text, _) = driver_err(probe(&mem, "net_af_packet0,iface=nosuch0").unwrap_err());
        assert!(text.contains("there is no network interface \"nosuch0\"") && text.contains("ip link"), "{text}");
        mid.ip(&["link", "set", "k0", "down"]);
        let (text, kind) = driver_err(probe(&mem, "net_af_packet0,iface=k0").unwrap_err());
        assert!(kind.unwrap().starts_with("Down"), "{text}");
        assert!(text.contains("interface k0 is down: bring it up with `ip link set dev k0 up`"), "{text}");
        mid.ip(&["link", "set", "k0", "up"]);
    });
    // CAP_NET_RAW is 13 (include/uapi/linux/capability.h).
    let text = without_caps(&mid, &[13], || driver_err(probe(&mem, "net_af_packet0,iface=k0").unwrap_err()).0);
    assert!(text.contains("needs CAP_NET_RAW"), "{text}");
    let spec = "net_af_packet0,iface=k0,framesz=100";
    let text = mid.enter(|| probe(&mem, spec).unwrap_err().to_string());
    assert!(text.contains("framesz=100 must be a multiple of 16"), "{text}");
}

/// Kill -9 mid-traffic, start again on the same interfaces: it works, and the killed process's
/// promiscuous mode went with its sockets.
#[test]
fn kill_nine_mid_traffic_then_start_again() {
    let _s = serial();
    let bed = Bed::new("pkt-kill", 1);
    let vdevs = ["net_af_packet0,iface=k0", "net_af_packet1,iface=k1"];
    let mut child = bed.mid.command(std::env::current_exe().unwrap());
    child.args(["--exact", "kill_child", "--include-ignored", "--nocapture", "--test-threads=1"]);
    child.env(burst_netbed::CHILD_ENV, vdevs.join(" "));
    bed.kill_mid_traffic(child);
    bed.mid.enter(|| {
        for k in ["k0", "k1"] {
            assert!(!burst_netif::Iface::open(k).unwrap().found().promisc, "{k}: no promiscuous mode left behind");
        }
    });
    let (pumped, out) = bed.l2fwd(vdevs, 1000);
    for (d, p) in pumped.iter().enumerate() {
        assert!(p.errors.is_empty() && p.good == 1000, "after the restart, direction {d}: {p:?}\n{out}");
    }
}

#[test]
#[ignore = "the child half of kill_nine_mid_traffic_then_start_again: that test starts it"]
fn kill_child() {
    burst_netbed::l2fwd_until_killed();
}

/// A port started with no MTU asked for leaves the interface's own MTU alone (a cloud VM's
/// 1460 or 9001 is the network's, not 1500): the port's MTU is the interface's.
#[test]
fn starting_without_asking_for_an_mtu_keeps_the_interfaces_own() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-mtu"), NetNs::new("pkt-mtuf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x34, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x34, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&burst_mem::testing::unique_name("pktmtu"), 512)).unwrap();
    mid.enter(|| {
        mid.ip(&["link", "set", "k0", "mtu", "1400"]);
        let mut port = started(&mem, "net_af_packet0,iface=k0", &PortConf::queues(1, 1), &pool, RxOffloads::empty());
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 1400, "the interface's MTU kept");
        assert_eq!(port.mtu(), 1400, "the port says the interface's MTU");
        port.set_mtu(1300).unwrap();
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 1300, "an MTU asked for is applied");
        port.close().unwrap();
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 1400, "and put back at close");
        // Above DPDK's 1500 the port says 1500 (what its buffers are sized for) and still leaves
        // the interface's alone.
        mid.ip(&["link", "set", "k0", "mtu", "9000"]);
        let mut port = started(&mem, "net_af_packet0,iface=k0", &PortConf::queues(1, 1), &pool, RxOffloads::empty());
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 9000, "a jumbo MTU kept");
        assert_eq!(port.mtu(), 1500);
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}

/// The smallest frame size the arguments take gives a port, not a panic: every size accepted
/// carries at least the smallest MTU, and the port's limits are in order.
#[test]
fn the_smallest_frame_size_accepted_makes_a_port_without_a_panic() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-fs"), NetNs::new("pkt-fsf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x35, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x35, 0, 2]), 1);
    let mem = memory();
    mid.enter(|| {
        for framesz in (128..=256).step_by(16) {
            let framecnt = 65536 / framesz * 2;
            let spec = format!("net_af_packet0,iface=k0,blocksz=65536,framesz={framesz},framecnt={framecnt}");
            let r = std::panic::catch_unwind(|| probe(&mem, &spec).map(|p| (p.info().min_mtu, p.info().max_mtu)));
            match r {
                Err(_) => panic!("{spec}: probe panicked"),
                Ok(Ok((min, max))) => assert!(68 <= min && min <= max, "{spec}: MTU limits {min}..{max}"),
                Ok(Err(e)) => assert!(e.to_string().contains("framesz="), "{spec}: {e}"),
            }
        }
    });
}

/// Open descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Stop/start cycles of a two-pair port (a fanout group each time) with traffic sent, then the
/// interface deleted under the started port: no descriptor or mapping left behind, no panic,
/// every buffer back.
#[test]
fn stop_start_cycles_and_a_vanished_interface_leave_nothing_behind() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-c"), NetNs::new("pkt-cf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x36, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x36, 0, 2]), 2);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&burst_mem::testing::unique_name("pktc"), 1024)).unwrap();
    let frame = {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0x62, 0x75, 0x36, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0x62, 0x75, 0x36, 0, 1]);
        f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        f
    };
    let send = |port: &Port| {
        let mut tx = port.tx_queue(0).unwrap();
        let mut out = Vec::new();
        assert!(pool.alloc_bulk(&mut out, 16));
        for b in out.iter_mut() {
            assert!(b.set_data(&frame));
        }
        tx.tx_burst(&mut out);
        let mut rx = port.rx_queue(1).unwrap();
        let mut bufs = Vec::new();
        rx.rx_burst(&mut bufs, 32);
    };
    mid.enter(|| {
        let before = fds();
        let mut port =
            started(&mem, "net_af_packet0,iface=k0,qpairs=2", &PortConf::queues(2, 2), &pool, RxOffloads::empty());
        for round in 0..4 {
            send(&port);
            port.stop().unwrap();
            assert!(pool.mempool().is_full(), "round {round}");
            port.start().unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        mid.ip(&["link", "del", "k0"]);
        for _ in 0..4 {
            send(&port);
        }
        let _ = port.link();
        let _ = port.close();
        drop(port);
        assert_eq!(fds(), before, "descriptors leaked");
    });
    assert!(pool.mempool().is_full());
}

/// The interface's address changed by someone else between probe and start is left alone: the
/// port changes it only when the program asks (`Port::set_mac`).
#[test]
fn an_address_changed_after_probe_is_not_put_back_at_start() {
    let _s = serial();
    let (mid, far) = (NetNs::new("pkt-mac"), NetNs::new("pkt-macf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x37, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x37, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&burst_mem::testing::unique_name("pktmac"), 512)).unwrap();
    mid.enter(|| {
        let mut port = probe(&mem, "net_af_packet0,iface=k0").unwrap();
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 0, &pool).unwrap();
        port.tx_queue_setup(0, 0).unwrap();
        mid.ip(&["link", "set", "k0", "address", "02:62:75:37:00:99"]);
        port.start().unwrap();
        let now = burst_netif::Iface::open("k0").unwrap().now().unwrap().mac;
        assert_eq!(now, Some(MacAddr([2, 0x62, 0x75, 0x37, 0, 0x99])), "someone else's address kept");
        port.set_mac(MacAddr([2, 0x62, 0x75, 0x37, 0, 0x42])).unwrap();
        let now = burst_netif::Iface::open("k0").unwrap().now().unwrap().mac;
        assert_eq!(now, Some(MacAddr([2, 0x62, 0x75, 0x37, 0, 0x42])), "an address asked for is applied");
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}
