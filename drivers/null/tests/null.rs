//! net_null as an application sees it: probed through its [`VdevDriver`], wrapped in a
//! [`Port`], packets moved through queue handles. Memory is `--no-huge` (IOVA as VA): no
//! hugepages needed, only permission to lock memory (CI runs as root).

use burst_ethdev::{
    DevArgs, EthError, LinkStatus, MacAddr, Port, PortConf, PortId, RxOffloads, TxOffloads, VdevProbe, VdevShared,
};
use burst_mem::{ChainBuilder, Memory, PacketBuf, PacketPool, PacketPoolConfig};
use burst_net_null::{default_mac, template, DRIVER};

use burst_mem::testing::memory;

fn pool(mem: &Memory, name: &str, count: usize) -> PacketPool {
    PacketPool::new(mem, &PacketPoolConfig::new(name, count)).unwrap()
}

/// Probes `spec` (`net_null0,size=...`) as port `id`.
fn probe(mem: &Memory, spec: &str, id: PortId) -> Result<Port, EthError> {
    let (name, args) = DevArgs::parse(spec)?;
    let mut shared = VdevShared::default();
    let dev = (DRIVER.probe)(VdevProbe { name: &name, args: &args, memory: mem, shared: &mut shared, port_id: id })?;
    Ok(Port::new(id, dev))
}

/// Probes, configures `queues` each way, sets them up from `pool` and starts.
fn started(mem: &Memory, spec: &str, id: PortId, queues: u16, pool: &PacketPool) -> Port {
    let mut port = probe(mem, spec, id).unwrap();
    port.configure(&PortConf::queues(queues, queues)).unwrap();
    for q in 0..queues {
        port.rx_queue_setup(q, 0, pool).unwrap();
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
    port
}

#[test]
fn rx_hands_out_packets_of_the_asked_size_and_tx_frees_them() {
    let mem = memory();
    let pool = pool(&mem, "null_basic", 256);
    {
        let port = started(&mem, "net_null0,size=128", 3, 1, &pool);
        let mut rx = port.rx_queue(0).unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(64);
        assert_eq!(rx.rx_burst(&mut bufs, 32), 32);
        assert_eq!(rx.rx_burst(&mut bufs, 8), 8, "RX appends");
        assert_eq!(bufs.len(), 40);
        assert!(bufs.iter().all(|b| b.len() == 128 && b.pkt_len() == 128 && b.port() == 3));
        assert_eq!(pool.mempool().in_use(), 40);

        let s = port.stats();
        assert_eq!((s.ipackets, s.ibytes, s.opackets, s.rx_nombuf), (40, 40 * 128, 0, 0));
        bufs.truncate(30); // drops (frees) the last 10
        bufs[0].trim(28);
        assert_eq!(tx.tx_burst(&mut bufs), 30, "TX takes everything");
        assert!(bufs.is_empty());
        assert!(pool.mempool().is_full());
        let s = port.stats();
        assert_eq!((s.opackets, s.obytes), (30, 29 * 128 + 100));
        assert_eq!((s.q_opackets.clone(), s.q_obytes.clone()), (vec![30], vec![29 * 128 + 100]));
        assert_eq!(port.xstats().iter().find(|x| x.name == "rx_good_packets").map(|x| x.value), Some(40));

        port.stats_reset();
        assert_eq!(port.stats().ipackets, 0);
        assert_eq!(rx.rx_burst(&mut bufs, 4), 4);
        assert_eq!(tx.tx_burst(&mut bufs), 4);
        let s = port.stats();
        assert_eq!((s.ipackets, s.ibytes, s.opackets, s.obytes), (4, 4 * 128, 4, 4 * 128));
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn the_default_size_is_64_and_rx_leaves_the_data_alone() {
    let mem = memory();
    let pool = pool(&mem, "null_untouched", 16);
    // Dirty every buffer of the pool first.
    let mut dirty = Vec::new();
    assert!(pool.alloc_bulk(&mut dirty, 16));
    for b in &mut dirty {
        assert!(b.set_data(&[0xaa; 256]));
    }
    PacketPool::free_bulk(&mut dirty);
    {
        let port = started(&mem, "net_null0", 0, 1, &pool);
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(16);
        assert_eq!(rx.rx_burst(&mut bufs, 16), 16);
        for b in &bufs {
            assert_eq!(b.len(), 64);
            assert!(b.data().iter().all(|&x| x == 0xaa), "no copy: the data is what the buffer held");
        }
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn copy_mode_writes_the_template_and_reads_what_it_sends() {
    let mem = memory();
    let pool = pool(&mem, "null_copy", 16);
    let mut dirty = Vec::new();
    assert!(pool.alloc_bulk(&mut dirty, 16));
    for b in &mut dirty {
        assert!(b.set_data(&[0xaa; 256]));
    }
    PacketPool::free_bulk(&mut dirty);
    {
        let port = started(&mem, "net_null1,copy=1,size=60", 1, 1, &pool);
        let want = template(60, default_mac(1));
        assert_eq!(&want[..6], &[0xff; 6]);
        let mut rx = port.rx_queue(0).unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(16);
        assert_eq!(rx.rx_burst(&mut bufs, 16), 16);
        for b in &bufs {
            assert_eq!(b.data(), &want[..], "copy mode: every buffer holds the template");
        }
        // TX reads packets of any length, shorter or longer than size=.
        bufs[0].trim(50);
        assert!(bufs[1].append(100).is_some());
        assert_eq!(tx.tx_burst(&mut bufs), 16);
        let s = port.stats();
        assert_eq!((s.opackets, s.obytes), (16, 14 * 60 + 10 + 160));
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn copy_mode_template_carries_the_mac_given() {
    let mem = memory();
    let pool = pool(&mem, "null_copy_mac", 8);
    {
        let port = started(&mem, "net_null0,copy=1,mac=02:aa:bb:cc:dd:ee", 0, 1, &pool);
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(8);
        assert_eq!(rx.rx_burst(&mut bufs, 8), 8);
        assert_eq!(&bufs[0].data()[6..12], &[0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn an_empty_pool_counts_rx_nombuf_and_hands_out_nothing() {
    let mem = memory();
    let pool = pool(&mem, "null_nombuf", 40);
    {
        let port = started(&mem, "net_null0", 0, 1, &pool);
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(64);
        assert_eq!(rx.rx_burst(&mut bufs, 32), 32);
        assert_eq!(rx.rx_burst(&mut bufs, 32), 0, "8 left: all or nothing");
        assert_eq!(bufs.len(), 32, "a failed burst leaves the vector alone");
        assert_eq!(pool.mempool().in_use(), 32, "a failed burst takes no buffer");
        assert_eq!(rx.rx_burst(&mut bufs, 8), 8);
        assert_eq!(rx.rx_burst(&mut bufs, 1), 0);
        let s = port.stats();
        assert_eq!((s.ipackets, s.rx_nombuf), (40, 33));
        drop(bufs);
        assert_eq!(rx.rx_burst(&mut Vec::with_capacity(32), 0), 0, "max 0 is no burst");
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn a_size_larger_than_the_data_room_fails_rx_queue_setup() {
    let mem = memory();
    let mut cfg = PacketPoolConfig::new("null_small", 16);
    cfg.data_room = 100;
    let small = PacketPool::new(&mem, &cfg).unwrap();
    let mut port = probe(&mem, "net_null0,size=101", 0).unwrap();
    port.configure(&PortConf::queues(1, 1)).unwrap();
    let err = port.rx_queue_setup(0, 0, &small).unwrap_err().to_string();
    assert!(err.contains("size=101") && err.contains("100-byte data room"), "{err}");
    let mut port = probe(&mem, "net_null1,size=100", 1).unwrap();
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 0, &small).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
    let mut bufs = Vec::with_capacity(16);
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut bufs, 16), 16);
    assert!(bufs.iter().all(|b| b.len() == 100));
    drop(bufs);
    drop(port);
    assert!(small.mempool().is_full());
}

#[test]
fn no_rx_receives_nothing_and_still_sends() {
    let mem = memory();
    let pool = pool(&mem, "null_norx", 64);
    {
        let port = started(&mem, "net_null0,no-rx=1", 0, 1, &pool);
        let mut rx = port.rx_queue(0).unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = Vec::with_capacity(32);
        assert_eq!(rx.rx_burst(&mut bufs, 32), 0);
        assert!(bufs.is_empty());
        assert!(pool.mempool().is_full(), "no-rx takes no buffer");
        assert!(pool.alloc_bulk(&mut bufs, 5));
        assert_eq!(tx.tx_burst(&mut bufs), 5);
        let s = port.stats();
        assert_eq!((s.ipackets, s.rx_nombuf, s.opackets), (0, 0, 5));
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn bad_devargs_name_the_key() {
    let mem = memory();
    for (spec, key) in [
        ("net_null0,size=0", "size=0"),
        ("net_null0,size=65536", "size=65536"),
        ("net_null0,copy=2", "copy=2"),
        ("net_null0,no-rx=x", "no-rx=x"),
        ("net_null0,mac=nope", "mac=nope"),
        ("net_null0,pair=x", "\"pair\""),
    ] {
        let err = probe(&mem, spec, 0).unwrap_err();
        assert!(matches!(err, EthError::DevArgs { .. }), "{spec}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("net_null0: ") && msg.contains(key), "{spec}: {msg}");
    }
}

#[test]
fn port_settings_are_kept_and_the_link_follows_start() {
    let mem = memory();
    let pool = pool(&mem, "null_settings", 16);
    let mut port = probe(&mem, "net_null0", 0x2b).unwrap();
    assert_eq!(port.driver(), "net_null");
    assert_eq!(port.name(), "net_null0");
    assert_eq!(port.info().max_rx_queues, 1024);
    assert_eq!(port.mac().to_string(), "02:62:75:00:00:2b");
    assert_eq!(port.link(), LinkStatus::DOWN, "down until started, as DPDK's null port");
    let mac: MacAddr = "02:00:00:00:00:99".parse().unwrap();
    port.set_mac(mac).unwrap();
    assert_eq!(port.mac(), mac);
    assert!(port.set_mac(MacAddr::BROADCAST).is_err());
    assert!(!port.promiscuous() && !port.allmulticast());
    port.set_promiscuous(true).unwrap();
    port.set_allmulticast(true).unwrap();
    assert!(port.promiscuous() && port.allmulticast());
    assert_eq!(port.mtu(), 1500);
    port.set_mtu(9000).unwrap();
    assert_eq!(port.mtu(), 9000);
    port.configure(&PortConf { mtu: Some(1280), ..PortConf::queues(1, 1) }).unwrap();
    assert_eq!(port.mtu(), 1280);
    port.rx_queue_setup(0, 0, &pool).unwrap();
    port.tx_queue_setup(0, 512).unwrap();
    port.start().unwrap();
    let link = port.link();
    assert!(link.up && link.speed_mbps == 10_000);
    assert_eq!(link.to_string(), "up, 10 Gbps, full-duplex");
    port.stop().unwrap();
    assert!(!port.link().up);
    let port = probe(&mem, "net_null1,mac=02:11:22:33:44:55", 1).unwrap();
    assert_eq!(port.mac().to_string(), "02:11:22:33:44:55");
}

#[test]
fn stop_and_start_keep_the_queues_and_close_ends_them() {
    let mem = memory();
    let pool = pool(&mem, "null_restart", 64);
    let mut port = started(&mem, "net_null0", 0, 2, &pool);
    let mut bufs = Vec::with_capacity(32);
    for _ in 0..3 {
        {
            let mut rx = port.rx_queue(1).unwrap();
            let mut tx = port.tx_queue(0).unwrap();
            assert_eq!(rx.rx_burst(&mut bufs, 32), 32);
            assert_eq!(tx.tx_burst(&mut bufs), 32);
        }
        port.stop().unwrap();
        assert!(port.rx_queue(1).is_err(), "no handle while stopped");
        port.start().unwrap();
    }
    let s = port.stats();
    assert_eq!((s.q_ipackets.clone(), s.q_opackets.clone()), (vec![0, 96], vec![96, 0]));
    port.close().unwrap();
    assert!(port.rx_queue(0).is_err() && port.start().is_err());
    drop(port);
    assert!(pool.mempool().is_full());
}

#[test]
fn reconfiguring_asks_for_the_queues_again_and_sizes_the_stats() {
    let mem = memory();
    let pool = pool(&mem, "null_reconf", 64);
    let mut port = started(&mem, "net_null0", 0, 1, &pool);
    port.stop().unwrap();
    port.configure(&PortConf::queues(4, 2)).unwrap();
    assert!(port.start().is_err(), "the new queues are not set up");
    for q in 0..4 {
        port.rx_queue_setup(q, 0, &pool).unwrap();
    }
    for q in 0..2 {
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
    let s = port.stats();
    assert_eq!((s.q_ipackets.len(), s.q_opackets.len()), (4, 2));
    let mut bufs = Vec::with_capacity(8);
    assert_eq!(port.rx_queue(3).unwrap().rx_burst(&mut bufs, 8), 8);
    assert_eq!(port.tx_queue(1).unwrap().tx_burst(&mut bufs), 8);
    assert_eq!(port.stats().q_ipackets, vec![0, 0, 0, 8]);
    assert!(port.configure(&PortConf::queues(1025, 1)).is_err(), "at most 1024 queues");
    drop(port);
    assert!(pool.mempool().is_full());
}

#[test]
fn queue_handles_move_to_other_threads() {
    let mem = memory();
    let pool = pool(&mem, "null_threads", 1024);
    let port = started(&mem, "net_null0", 0, 2, &pool);
    std::thread::scope(|s| {
        for q in 0..2 {
            let mut rx = port.rx_queue(q).unwrap();
            let mut tx = port.tx_queue(q).unwrap();
            s.spawn(move || {
                let _lcore = burst_mem::lcore::claim_any().unwrap();
                let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
                for _ in 0..1000 {
                    assert_eq!(rx.rx_burst(&mut bufs, 32), 32);
                    assert_eq!(tx.tx_burst(&mut bufs), 32);
                }
            });
        }
    });
    let s = port.stats();
    assert_eq!((s.ipackets, s.opackets, s.q_ipackets.clone()), (64_000, 64_000, vec![32_000, 32_000]));
    drop(port);
    assert!(pool.mempool().is_full());
}

#[test]
fn tx_takes_chains_whole_and_counts_their_bytes() {
    let mem = memory();
    let pool = pool(&mem, "null_chains", 64);
    let mut port = probe(&mem, "net_null0", 0).unwrap();
    assert_eq!((port.info().rx_offload_capa, port.info().tx_offload_capa), (RxOffloads::NONE, TxOffloads::MULTI_SEGS));
    port.configure(&PortConf { tx_offloads: TxOffloads::MULTI_SEGS, ..PortConf::queues(1, 1) }).unwrap();
    port.rx_queue_setup(0, 0, &pool).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
    let mut bufs = Vec::new();
    for n in [2usize, 3] {
        let mut chain = ChainBuilder::new();
        for _ in 0..n {
            let mut seg = pool.alloc().unwrap();
            seg.set_len(100);
            chain.push(seg).unwrap();
        }
        bufs.push(chain.take().unwrap());
    }
    let mut tx = port.tx_queue(0).unwrap();
    tx.tx_prepare(&mut bufs).expect("MULTI_SEGS is on");
    assert_eq!(tx.tx_burst(&mut bufs), 2);
    drop(tx);
    let s = port.stats();
    assert_eq!((s.opackets, s.obytes), (2, 500));
    assert!(pool.mempool().is_full(), "every segment went back");
}
