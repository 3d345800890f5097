//! net_af_xdp on veth pairs in network namespaces of the test's own (root; each test makes and
//! removes its namespaces, and fails saying what is missing when it cannot).

use std::sync::Mutex;

use burst_netbed::Bed;

/// One runtime at a time in this process.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// l2fwd over two net_af_xdp ports with `extra` arguments: every frame of the mixed stream
/// arrives once, byte for byte after the rewrite, and the pool is full at the end (checked by
/// the bed).
fn l2fwd_over(tag: &str, extra: &str) {
    let bed = Bed::new(tag, 1);
    let n = 2000;
    let vdevs = [format!("net_af_xdp0,iface=k0{extra}"), format!("net_af_xdp1,iface=k1{extra}")];
    let (pumped, out) = bed.l2fwd([&vdevs[0], &vdevs[1]], n);
    for (d, p) in pumped.iter().enumerate() {
        assert!(p.errors.is_empty(), "{extra}: direction {d}: {:?}\nl2fwd said:\n{out}", p.errors);
        assert_eq!(p.good, n, "{extra}: direction {d}");
    }
    // The program is gone with the ports.
    bed.mid.enter(|| {
        for k in ["k0", "k1"] {
            assert_eq!(burst_netif::Iface::open(k).unwrap().found().xdp, None, "{k} keeps no XDP program");
        }
    });
}

#[test]
fn l2fwd_in_native_mode() {
    let _s = serial();
    l2fwd_over("xdp-drv", ",mode=drv");
}

#[test]
fn l2fwd_in_generic_copy_mode() {
    let _s = serial();
    l2fwd_over("xdp-skb", ",mode=skb,force_copy=1");
}

#[test]
fn l2fwd_with_the_kernel_choosing_the_mode() {
    let _s = serial();
    l2fwd_over("xdp-auto", "");
}

/// Kill -9 mid-traffic, start again on the same interfaces: it works, and nothing of the killed
/// process's is left (no XDP program on the interfaces; the kernel detached it with the link).
#[test]
fn kill_nine_mid_traffic_then_start_again() {
    let _s = serial();
    let bed = Bed::new("xdp-kill", 1);
    let vdevs = ["net_af_xdp0,iface=k0", "net_af_xdp1,iface=k1"];
    let exe = std::env::current_exe().unwrap();
    let mut child = bed.mid.command(exe);
    child.args(["--exact", "kill_child", "--include-ignored", "--nocapture", "--test-threads=1"]);
    child.env(burst_netbed::CHILD_ENV, vdevs.join(" "));
    bed.kill_mid_traffic(child);
    bed.mid.enter(|| {
        for k in ["k0", "k1"] {
            let link = burst_netif::Iface::open(k).unwrap();
            assert_eq!(link.found().xdp, None, "{k}: the killed process's XDP program is gone");
            assert!(!link.found().promisc, "{k}: the killed process's promiscuous mode is gone");
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

use std::time::{Duration, Instant};

use burst_af_xdp::{XdpError, DRIVER};
use burst_ethdev::{DevArgs, EthError, Port, PortConf, VdevProbe, VdevShared};
use burst_mem::testing::{memory, unique_name};
use burst_mem::{Memory, PacketPool, PacketPoolConfig};
use burst_net::MacAddr;
use burst_netbed::{veth, without_caps, NetNs, RawSocket};
use burst_netif::XdpMode;

fn probe(mem: &Memory, spec: &str) -> Result<Port, EthError> {
    let (name, args) = DevArgs::parse(spec)?;
    let mut shared = VdevShared::default();
    let dev = (DRIVER.probe)(VdevProbe { name: &name, args: &args, memory: mem, shared: &mut shared, port_id: 0 })?;
    Ok(Port::new(0, dev))
}

fn configured(mem: &Memory, spec: &str, queues: u16, pool: &PacketPool) -> Port {
    let mut port = probe(mem, spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    port.configure(&PortConf::queues(queues, queues)).unwrap();
    for q in 0..queues {
        port.rx_queue_setup(q, 256, pool).unwrap();
        port.tx_queue_setup(q, 256).unwrap();
    }
    port
}

/// An IPv4/UDP frame to `dst` with source port `sport`: the far end's kernel spreads flows over
/// its TX queues by their hash, and a veth delivers each TX queue's frames to the same RX queue
/// of its peer.
fn udp(dst: MacAddr, src: MacAddr, sport: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&dst.bytes());
    f[6..12].copy_from_slice(&src.bytes());
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

#[test]
fn two_queues_on_a_two_queue_veth_each_receive_and_send() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-q"), NetNs::new("xdp-qf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x41, 0, 1]), MacAddr([2, 0x62, 0x75, 0x41, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 2);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpq"), 2048)).unwrap();
    let n = 400u32;
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0,queue_count=2", 2, &pool);
        port.start().unwrap();
        {
            let mut rx = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
            let mut tx = [port.tx_queue(0).unwrap(), port.tx_queue(1).unwrap()];
            let mut seen = vec![0u32; n as usize];
            let mut per_queue = [0u32; 2];
            let echoed = std::thread::scope(|s| {
                let far = &far;
                let sender = s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open("f");
                    for seq in 0..n {
                        sock.send_retry(&udp(mac_k, mac_f, 1000 + seq as u16, seq));
                    }
                    // Then take back what the port sends on both of its queues.
                    let mut back = 0;
                    while let Some(f) = sock.recv(Duration::from_secs(3)) {
                        if f.len() == 64 && f[..6] == mac_f.bytes() {
                            back += 1;
                        }
                    }
                    back
                });
                let until = Instant::now() + Duration::from_secs(10);
                let mut bufs = Vec::new();
                while per_queue.iter().sum::<u32>() < n && Instant::now() < until {
                    for (q, r) in rx.iter_mut().enumerate() {
                        r.rx_burst(&mut bufs, 32);
                        for b in bufs.drain(..) {
                            assert_eq!(b.len(), 64);
                            let seq = u32::from_be_bytes(b.data()[42..46].try_into().unwrap());
                            assert_eq!(b.data(), &udp(mac_k, mac_f, 1000 + seq as u16, seq)[..], "frame {seq} intact");
                            seen[seq as usize] += 1;
                            per_queue[q] += 1;
                        }
                    }
                }
                // Each queue sends 100 frames back, in place from the UMEM.
                for (q, t) in tx.iter_mut().enumerate() {
                    let mut out = Vec::new();
                    assert!(pool.alloc_bulk(&mut out, 100));
                    for (i, b) in out.iter_mut().enumerate() {
                        assert!(b.set_data(&udp(mac_f, mac_k, 7, (q * 100 + i) as u32)));
                    }
                    let until = Instant::now() + Duration::from_secs(5);
                    while !out.is_empty() && Instant::now() < until {
                        t.tx_burst(&mut out);
                    }
                    assert!(out.is_empty(), "queue {q} takes its frames");
                }
                // Completions are reaped by later bursts.
                let until = Instant::now() + Duration::from_secs(2);
                while Instant::now() < until {
                    for t in tx.iter_mut() {
                        t.tx_burst(&mut Vec::new());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                sender.join().unwrap()
            });
            assert!(seen.iter().all(|&c| c == 1), "every frame once");
            assert!(per_queue[0] > 0 && per_queue[1] > 0, "both queues receive: {per_queue:?}");
            assert_eq!(echoed, 200, "both queues send");
            let st = port.stats();
            assert_eq!(st.q_ipackets, vec![u64::from(per_queue[0]), u64::from(per_queue[1])]);
            assert_eq!(st.q_opackets, vec![100, 100]);
        }
        let x = port.xstats();
        assert!(x.iter().any(|s| s.name == "q1_kernel_rx_dropped"), "{x:?}");
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full(), "{} buffers not back", pool.mempool().in_use());
}

#[test]
fn each_refusal_is_one_line_and_leaves_nothing_attached() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-e"), NetNs::new("xdp-ef"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x42, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x42, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpe"), 1024)).unwrap();
    let text = |e: EthError| {
        let t = e.to_string();
        assert!(!t.contains('\n'), "one line: {t}");
        (t, e.driver_error::<XdpError>().map(|x| format!("{x:?}")).unwrap_or_default())
    };
    let nothing_attached =
        || mid.enter(|| assert_eq!(burst_netif::Iface::open("k0").unwrap().found().xdp, None, "nothing of ours left"));
    mid.enter(|| {
        let (t, _) = text(probe(&mem, "net_af_xdp0,iface=nosuch0").unwrap_err());
        assert!(t.contains("there is no network interface \"nosuch0\""), "{t}");
        let (t, k) = text(probe(&mem, "net_af_xdp0,iface=k0,queue_count=2").unwrap_err());
        assert!(k.starts_with("NoSuchQueue"), "{t}");
        assert!(t.contains("interface k0 has 1 RX queue(s)") && t.contains("asks for queue 1"), "{t}");
        mid.ip(&["link", "set", "k0", "down"]);
        let (t, _) = text(probe(&mem, "net_af_xdp0,iface=k0").unwrap_err());
        assert!(t.contains("interface k0 is down: bring it up with `ip link set dev k0 up`"), "{t}");
        mid.ip(&["link", "set", "k0", "up"]);
        // Someone else's program: a port started on the interface first.
        let mut first = configured(&mem, "net_af_xdp0,iface=k0", 1, &pool);
        let mut second = configured(&mem, "net_af_xdp1,iface=k0", 1, &pool);
        first.start().unwrap();
        let (t, k) = text(second.start().unwrap_err());
        assert!(k.starts_with("Occupied"), "{t}");
        assert!(t.contains("already has a native XDP program (id") && t.contains("xdp off"), "{t}");
        let (t, _) = text(probe(&mem, "net_af_xdp2,iface=k0").unwrap_err());
        assert!(t.contains("already has"), "{t}");
        first.close().unwrap();
        second.close().unwrap();
        assert!(pool.mempool().is_full(), "the refused start took back every buffer");
    });
    nothing_attached();
    // CAP_NET_RAW (13) missing: no AF_XDP socket.
    let t = without_caps(&mid, &[13], || text(probe(&mem, "net_af_xdp0,iface=k0").unwrap_err()).0);
    assert!(t.contains("needs CAP_NET_RAW"), "{t}");
    // CAP_BPF (39) and CAP_SYS_ADMIN (21) missing: the sockets are made, the program is not
    // loaded, and the start undoes the sockets.
    let t = without_caps(&mid, &[39, 21], || {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0", 1, &pool);
        let e = port.start().unwrap_err();
        port.close().unwrap();
        text(e).0
    });
    assert!(t.contains("needs CAP_BPF and CAP_NET_ADMIN"), "{t}");
    nothing_attached();
    assert!(pool.mempool().is_full());
    let t = mid.enter(|| {
        text(
            probe(&mem, "net_af_xdp0,iface=k0,xdp_prog=/nonexistent.o")
                .map(|mut p| {
                    p.configure(&PortConf::queues(1, 1)).unwrap();
                    p.rx_queue_setup(0, 256, &pool).unwrap();
                    p.tx_queue_setup(0, 256).unwrap();
                    p.start().unwrap_err()
                })
                .unwrap_or_else(|e| e),
        )
        .0
    });
    assert!(t.contains("opening the XDP program /nonexistent.o"), "{t}");
    nothing_attached();
    assert!(pool.mempool().is_full());
}

/// `mode=drv` attaches the program in veth's own driver (native XDP, Linux 4.19), `mode=skb`
/// generically: the interface says which while the port runs, and nothing once it is closed.
#[test]
fn the_program_is_attached_in_the_mode_asked_for() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-m"), NetNs::new("xdp-mf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x43, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x43, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpm"), 1024)).unwrap();
    mid.enter(|| {
        for (arg, mode) in [("mode=drv", XdpMode::Driver), ("mode=skb,force_copy=1", XdpMode::Skb)] {
            let mut port = configured(&mem, &format!("net_af_xdp0,iface=k0,{arg}"), 1, &pool);
            port.start().unwrap_or_else(|e| panic!("{arg}: {e}"));
            let attached = burst_netif::Iface::open("k0").unwrap().found().xdp;
            assert!(matches!(attached, Some((id, m)) if id != 0 && m == mode), "{arg}: {attached:?}");
            port.close().unwrap();
            assert_eq!(burst_netif::Iface::open("k0").unwrap().found().xdp, None, "{arg}: detached at close");
        }
    });
    assert!(pool.mempool().is_full(), "{} buffers not back", pool.mempool().in_use());
}

/// Open descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Stop/start cycles with traffic in flight: each stop detaches the program and takes back every
/// buffer (those on the fill ring, and those on the TX ring the kernel has not completed), and no
/// descriptor is left behind (sockets, BPF object, link, map).
#[test]
fn stop_start_cycles_leave_no_buffer_program_or_descriptor_behind() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-c"), NetNs::new("xdp-cf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x44, 0, 1]), MacAddr([2, 0x62, 0x75, 0x44, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpc"), 1024)).unwrap();
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0,mode=skb,force_copy=1", 1, &pool);
        port.start().unwrap();
        port.stop().unwrap();
        let before = fds();
        for round in 0..4 {
            port.start().unwrap_or_else(|e| panic!("round {round}: {e}"));
            {
                let mut tx = port.tx_queue(0).unwrap();
                let mut out = Vec::new();
                assert!(pool.alloc_bulk(&mut out, 64));
                for (i, b) in out.iter_mut().enumerate() {
                    assert!(b.set_data(&udp(mac_f, mac_k, 7, i as u32)));
                }
                tx.tx_burst(&mut out);
                drop(out);
            }
            port.stop().unwrap();
            assert!(pool.mempool().is_full(), "round {round}: {} buffers not back", pool.mempool().in_use());
            assert_eq!(burst_netif::Iface::open("k0").unwrap().found().xdp, None, "round {round}: detached");
            assert_eq!(fds(), before, "round {round}: descriptors leaked");
        }
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}

/// A buffer the kernel refuses as a TX descriptor (no bytes) is never completed: it must not be
/// put on the ring, or the pool loses it until the port stops.
#[test]
fn an_empty_packet_is_not_lost_to_the_tx_ring() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-z"), NetNs::new("xdp-zf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x45, 0, 1]), MacAddr([2, 0x62, 0x75, 0x45, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpz"), 1024)).unwrap();
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0,mode=skb,force_copy=1", 1, &pool);
        port.start().unwrap();
        let held = pool.mempool().in_use();
        {
            let mut tx = port.tx_queue(0).unwrap();
            let mut out = Vec::new();
            assert!(pool.alloc_bulk(&mut out, 8));
            for (i, b) in out.iter_mut().enumerate() {
                b.set_len(0);
                if i % 2 == 1 {
                    assert!(b.set_data(&udp(mac_f, mac_k, 7, i as u32)));
                }
            }
            while !out.is_empty() {
                tx.tx_burst(&mut out);
            }
            let until = Instant::now() + Duration::from_secs(2);
            while pool.mempool().in_use() > held && Instant::now() < until {
                tx.tx_burst(&mut Vec::new());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        assert_eq!(pool.mempool().in_use(), held, "every sent buffer is back while the port runs");
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}

/// The interface goes away under a started port: bursts neither panic nor lose buffers, and
/// close takes every buffer back.
#[test]
fn the_interface_vanishing_under_a_started_port_loses_nothing() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-v"), NetNs::new("xdp-vf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x46, 0, 1]), MacAddr([2, 0x62, 0x75, 0x46, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpv"), 1024)).unwrap();
    mid.enter(|| {
        let before = fds();
        let mut port = configured(&mem, "net_af_xdp0,iface=k0", 1, &pool);
        port.start().unwrap();
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut tx = port.tx_queue(0).unwrap();
            mid.ip(&["link", "del", "k0"]);
            let mut bufs = Vec::new();
            for _ in 0..10 {
                rx.rx_burst(&mut bufs, 32);
                let mut out = Vec::new();
                assert!(pool.alloc_bulk(&mut out, 4));
                for (i, b) in out.iter_mut().enumerate() {
                    assert!(b.set_data(&udp(mac_f, mac_k, 7, i as u32)));
                }
                tx.tx_burst(&mut out);
            }
            drop(bufs);
        }
        let _ = port.link();
        let _ = port.close();
        drop(port);
        assert_eq!(fds(), before, "descriptors leaked");
    });
    assert!(pool.mempool().is_full(), "{} buffers not back", pool.mempool().in_use());
}

/// A port started with no MTU asked for leaves the interface's own MTU alone: the port's MTU is
/// the interface's.
#[test]
fn starting_without_asking_for_an_mtu_keeps_the_interfaces_own() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-mtu"), NetNs::new("xdp-mtuf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x47, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x47, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpmtu"), 1024)).unwrap();
    mid.enter(|| {
        mid.ip(&["link", "set", "k0", "mtu", "1400"]);
        let mut port = configured(&mem, "net_af_xdp0,iface=k0", 1, &pool);
        port.start().unwrap();
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 1400, "the interface's MTU kept");
        assert_eq!(port.mtu(), 1400, "the port says the interface's MTU");
        port.close().unwrap();
        // Above DPDK's 1500 (past what a UMEM chunk holds, too) the port says 1500, its queues
        // set up with the same buffers, and the interface keeps its MTU.
        mid.ip(&["link", "set", "k0", "mtu", "9000"]);
        let mut port = configured(&mem, "net_af_xdp0,iface=k0,mode=skb", 1, &pool);
        port.start().unwrap();
        assert_eq!(burst_netif::Iface::open("k0").unwrap().now().unwrap().mtu, 9000, "a jumbo MTU kept");
        assert_eq!(port.mtu(), 1500);
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}

/// `shared_umem=1`: two queues of one pool share one UMEM (the second socket binds with
/// `XDP_SHARED_UMEM`): the port starts, both queues receive, and every buffer is back at close.
#[test]
fn two_queues_of_one_pool_share_one_umem() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-s"), NetNs::new("xdp-sf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x48, 0, 1]), MacAddr([2, 0x62, 0x75, 0x48, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 2);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdps"), 2048)).unwrap();
    let n = 200u32;
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0,queue_count=2,shared_umem=1", 2, &pool);
        port.start().unwrap_or_else(|e| panic!("shared_umem=1: {e}"));
        {
            let mut rx = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
            let mut per_queue = [0u32; 2];
            std::thread::scope(|s| {
                let far = &far;
                s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open("f");
                    for seq in 0..n {
                        sock.send_retry(&udp(mac_k, mac_f, 1000 + seq as u16, seq));
                    }
                });
                let until = Instant::now() + Duration::from_secs(10);
                let mut bufs = Vec::new();
                while per_queue.iter().sum::<u32>() < n && Instant::now() < until {
                    for (q, r) in rx.iter_mut().enumerate() {
                        per_queue[q] += r.rx_burst(&mut bufs, 32) as u32;
                        bufs.clear();
                    }
                }
            });
            assert_eq!(per_queue.iter().sum::<u32>(), n, "every frame: {per_queue:?}");
            assert!(per_queue[0] > 0 && per_queue[1] > 0, "both queues receive: {per_queue:?}");
        }
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full(), "{} buffers not back", pool.mempool().in_use());
}

/// Reconfigured between starts onto another pool: the second start's UMEM is the new pool's,
/// frames arrive in its buffers, and both pools are full at the end.
#[test]
fn reconfigured_onto_another_pool_between_starts() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-r"), NetNs::new("xdp-rf"));
    let (mac_k, mac_f) = (MacAddr([2, 0x62, 0x75, 0x49, 0, 1]), MacAddr([2, 0x62, 0x75, 0x49, 0, 2]));
    veth(&mid, "k0", mac_k, &far, "f", mac_f, 1);
    let mem = memory();
    let a = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpra"), 1024)).unwrap();
    let b = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdprb"), 1024)).unwrap();
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0", 1, &a);
        port.start().unwrap();
        port.stop().unwrap();
        assert!(a.mempool().is_full());
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 256, &b).unwrap();
        port.tx_queue_setup(0, 256).unwrap();
        port.start().unwrap();
        {
            let mut rx = port.rx_queue(0).unwrap();
            std::thread::scope(|s| {
                let far = &far;
                s.spawn(move || {
                    far.set_thread();
                    let sock = RawSocket::open("f");
                    for seq in 0..50 {
                        sock.send_retry(&udp(mac_k, mac_f, 1000, seq));
                    }
                });
                let until = Instant::now() + Duration::from_secs(5);
                let (mut got, mut bufs) = (0, Vec::new());
                while got < 50 && Instant::now() < until {
                    got += rx.rx_burst(&mut bufs, 32);
                    assert!(a.mempool().is_full(), "nothing of the old pool's is used");
                    bufs.clear();
                }
                assert_eq!(got, 50);
            });
        }
        port.close().unwrap();
    });
    assert!(a.mempool().is_full() && b.mempool().is_full());
}

/// The interface's address changed by someone else between probe and start is left alone.
#[test]
fn an_address_changed_after_probe_is_not_put_back_at_start() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-mac"), NetNs::new("xdp-macf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x4a, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x4a, 0, 2]), 1);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpmac"), 1024)).unwrap();
    mid.enter(|| {
        let mut port = configured(&mem, "net_af_xdp0,iface=k0", 1, &pool);
        mid.ip(&["link", "set", "k0", "address", "02:62:75:4a:00:99"]);
        port.start().unwrap();
        let now = burst_netif::Iface::open("k0").unwrap().now().unwrap().mac;
        assert_eq!(now, Some(MacAddr([2, 0x62, 0x75, 0x4a, 0, 0x99])), "someone else's address kept");
        port.close().unwrap();
    });
    assert!(pool.mempool().is_full());
}

/// A start that fails half way (no program file; a pool too small for the fill ring) closes
/// every socket and mapping it made: no descriptor left, every buffer back.
#[test]
fn a_failed_start_leaves_no_descriptor_behind() {
    let _s = serial();
    let (mid, far) = (NetNs::new("xdp-fd"), NetNs::new("xdp-fdf"));
    veth(&mid, "k0", MacAddr([2, 0x62, 0x75, 0x4b, 0, 1]), &far, "f", MacAddr([2, 0x62, 0x75, 0x4b, 0, 2]), 2);
    let mem = memory();
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new(&unique_name("xdpfd"), 300)).unwrap();
    mid.enter(|| {
        let before = fds();
        for (spec, want) in [
            ("net_af_xdp0,iface=k0,xdp_prog=/nonexistent.o", "/nonexistent.o"),
            ("net_af_xdp0,iface=k0,queue_count=2", "queue 1"),
        ] {
            let mut port = probe(&mem, spec).unwrap();
            let q = if spec.contains("queue_count=2") { 2 } else { 1 };
            port.configure(&PortConf::queues(q, q)).unwrap();
            for i in 0..q {
                port.rx_queue_setup(i, 256, &pool).unwrap();
                port.tx_queue_setup(i, 256).unwrap();
            }
            let e = port.start().unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(pool.mempool().is_full(), "{spec}: {} buffers not back", pool.mempool().in_use());
            drop(port);
            assert_eq!(fds(), before, "{spec}: descriptors leaked");
        }
    });
}
