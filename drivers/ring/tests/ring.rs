//! net_ring as an application sees it: ports probed through the [`VdevDriver`] with one
//! [`VdevShared`] (as the runtime does), wrapped in [`Port`]s, packets moved through queue
//! handles. Memory is `--no-huge` (IOVA as VA): no hugepages needed, only permission to lock
//! memory (CI runs as root).

use burst_ethdev::{
    DevArgs, EthError, LinkStatus, MacAddr, Port, PortConf, PortId, RxOffloads, TxOffloads, VdevProbe, VdevShared,
};
use burst_mem::{ChainBuilder, Memory, PacketBuf, PacketPool, PacketPoolConfig};
use burst_net_ring::DRIVER;

use burst_mem::testing::memory;

fn pool(mem: &Memory, name: &str, count: usize) -> PacketPool {
    PacketPool::new(mem, &PacketPoolConfig::new(name, count)).unwrap()
}

fn probe(mem: &Memory, shared: &mut VdevShared, spec: &str, id: PortId) -> Result<Port, EthError> {
    let (name, args) = DevArgs::parse(spec)?;
    let dev = (DRIVER.probe)(VdevProbe { name: &name, args: &args, memory: mem, shared, port_id: id })?;
    Ok(Port::new(id, dev))
}

/// Configures `queues` each way, sets them up and starts.
fn start(port: &mut Port, queues: u16, pool: &PacketPool) {
    port.configure(&PortConf::queues(queues, queues)).unwrap();
    for q in 0..queues {
        port.rx_queue_setup(q, 0, pool).unwrap();
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
}

/// Packet `seq`: a length that varies with it, the number in front, a pattern behind.
fn packet(pool: &PacketPool, seq: u32) -> PacketBuf {
    let len = 60 + (seq as usize * 37) % 1455;
    let mut bytes: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(7).wrapping_add(seq) as u8).collect();
    bytes[..4].copy_from_slice(&seq.to_le_bytes());
    let mut buf = pool.alloc().expect("a free buffer");
    assert!(buf.set_data(&bytes));
    buf
}

/// Checks that `buf` is packet `seq`, intact.
fn check(buf: &PacketBuf, seq: u32) {
    let len = 60 + (seq as usize * 37) % 1455;
    assert_eq!(buf.len(), len, "packet {seq}'s length");
    assert_eq!(u32::from_le_bytes(buf.data()[..4].try_into().unwrap()), seq, "packets arrive in order");
    for (i, &b) in buf.data().iter().enumerate().skip(4) {
        assert_eq!(b, (i as u32).wrapping_mul(7).wrapping_add(seq) as u8, "packet {seq} byte {i}");
    }
}

fn len_of(seq: u32) -> u64 {
    (60 + (seq as usize * 37) % 1455) as u64
}

#[test]
fn a_pair_carries_packets_both_ways_in_order_with_data_intact() {
    let mem = memory();
    let pool = pool(&mem, "ring_pair", 512);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=p", 0).unwrap();
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=p", 1).unwrap();
        start(&mut a, 1, &pool);
        start(&mut b, 1, &pool);
        let (mut a_rx, mut a_tx) = (a.rx_queue(0).unwrap(), a.tx_queue(0).unwrap());
        let (mut b_rx, mut b_tx) = (b.rx_queue(0).unwrap(), b.tx_queue(0).unwrap());

        // A -> B: 100 packets in bursts of 1..=32.
        let mut sent = 0u32;
        let mut got: Vec<PacketBuf> = Vec::with_capacity(128);
        let mut burst = Vec::with_capacity(32);
        while sent < 100 {
            let n = (sent % 32 + 1).min(100 - sent);
            burst.extend((sent..sent + n).map(|s| packet(&pool, s)));
            assert_eq!(a_tx.tx_burst(&mut burst), n as usize);
            assert!(burst.is_empty());
            sent += n;
            b_rx.rx_burst(&mut got, 32);
        }
        while b_rx.rx_burst(&mut got, 32) > 0 {}
        assert_eq!(got.len(), 100);
        for (seq, buf) in got.iter().enumerate() {
            check(buf, seq as u32);
            assert_eq!(buf.port(), 1, "RX stamps the receiving port");
        }
        // B -> A: send the same packets back.
        assert_eq!(b_tx.tx_burst(&mut got), 100);
        let mut back = Vec::with_capacity(128);
        assert_eq!(a_rx.rx_burst(&mut back, 128), 100);
        for (seq, buf) in back.iter().enumerate() {
            check(buf, seq as u32);
            assert_eq!(buf.port(), 0);
        }
        assert_eq!(a_rx.rx_burst(&mut back, 32), 0, "nothing more");

        let bytes: u64 = (0..100).map(len_of).sum();
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.opackets, sa.obytes, sa.ipackets, sa.ibytes), (100, bytes, 100, bytes));
        assert_eq!((sb.opackets, sb.obytes, sb.ipackets, sb.ibytes), (100, bytes, 100, bytes));
        assert_eq!((sa.q_opackets.clone(), sb.q_ibytes.clone()), (vec![100], vec![bytes]));
        assert_eq!((sa.rx_nombuf, sa.imissed, sa.oerrors), (0, 0, 0));

        a.stats_reset();
        assert_eq!(a.stats().opackets, 0);
        assert_eq!(a_tx.tx_burst(&mut back), 100);
        let sa = a.stats();
        assert_eq!((sa.opackets, sa.obytes, sa.ipackets), (100, bytes, 0));
        assert_eq!(b.stats().ipackets, 100, "a reset is per port");
    }
    drop(shared);
    assert!(pool.mempool().is_full(), "the 100 left in B's ring went back with the ring");
}

#[test]
fn a_full_ring_takes_what_fits_and_the_caller_keeps_the_rest_in_order() {
    let mem = memory();
    let pool = pool(&mem, "ring_full", 64);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=full,size=8", 0).unwrap();
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=full,size=8", 1).unwrap();
        start(&mut a, 1, &pool);
        start(&mut b, 1, &pool);
        let mut tx = a.tx_queue(0).unwrap();
        let mut rx = b.rx_queue(0).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..12).map(|s| packet(&pool, s)).collect();
        assert_eq!(tx.tx_burst(&mut bufs), 8);
        assert_eq!(bufs.len(), 4);
        for (i, buf) in bufs.iter().enumerate() {
            check(buf, 8 + i as u32);
        }
        assert_eq!(tx.tx_burst(&mut bufs), 0, "still full");
        assert_eq!(bufs.len(), 4);
        let s = a.stats();
        assert_eq!((s.opackets, s.obytes), (8, (0..8).map(len_of).sum()));

        let mut got = Vec::with_capacity(16);
        assert_eq!(rx.rx_burst(&mut got, 5), 5);
        assert_eq!(tx.tx_burst(&mut bufs), 4);
        assert!(bufs.is_empty());
        assert_eq!(rx.rx_burst(&mut got, 16), 7);
        for (seq, buf) in got.iter().enumerate() {
            check(buf, seq as u32);
        }
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.opackets, sa.obytes), (12, (0..12).map(len_of).sum()));
        assert_eq!((sb.ipackets, sb.ibytes), (12, (0..12).map(len_of).sum()));
    }
    drop(shared);
    assert!(pool.mempool().is_full());
}

#[test]
fn without_a_pair_a_port_is_its_own_loopback_queue_by_queue() {
    let mem = memory();
    let pool = pool(&mem, "ring_loop", 64);
    let mut shared = VdevShared::default();
    {
        let mut port = probe(&mem, &mut shared, "net_ring0,queues=2", 5).unwrap();
        assert_eq!((port.info().max_rx_queues, port.info().max_tx_queues), (2, 2));
        start(&mut port, 2, &pool);
        let mut bufs: Vec<PacketBuf> = (0..10).map(|s| packet(&pool, s)).collect();
        assert_eq!(port.tx_queue(1).unwrap().tx_burst(&mut bufs), 10);
        let mut got = Vec::with_capacity(32);
        assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut got, 32), 0, "queue 0 saw nothing");
        assert_eq!(port.rx_queue(1).unwrap().rx_burst(&mut got, 32), 10);
        for (seq, buf) in got.iter().enumerate() {
            check(buf, seq as u32);
            assert_eq!(buf.port(), 5);
        }
        let s = port.stats();
        assert_eq!((s.q_opackets.clone(), s.q_ipackets.clone()), (vec![0, 10], vec![0, 10]));
        assert_eq!(s.ibytes, s.obytes);
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn a_third_port_on_a_pair_is_an_error() {
    let mem = memory();
    let mut shared = VdevShared::default();
    let _a = probe(&mem, &mut shared, "net_ring0,pair=p", 0).unwrap();
    let _b = probe(&mem, &mut shared, "net_ring1,pair=p", 1).unwrap();
    let err = probe(&mem, &mut shared, "net_ring2,pair=p", 2).unwrap_err();
    assert!(matches!(err, EthError::DevArgs { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("net_ring2: pair=p already joins net_ring0 and net_ring1"), "{msg}");
    // Other pairs are not affected, and the full one stays full.
    let _c = probe(&mem, &mut shared, "net_ring2,pair=q", 2).unwrap();
    assert!(probe(&mem, &mut shared, "net_ring3,pair=p", 3).is_err());
}

#[test]
fn both_sides_of_a_pair_must_agree_on_queues_and_size() {
    let mem = memory();
    let pool = pool(&mem, "ring_agree", 16);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=p,queues=2", 0).unwrap();
        let err = probe(&mem, &mut shared, "net_ring1,pair=p", 1).unwrap_err();
        assert!(matches!(err, EthError::DevArgs { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("net_ring0 has queues=2,size=1024 and this port queues=1,size=1024"), "{msg}");
        let msg = probe(&mem, &mut shared, "net_ring1,pair=p,queues=2,size=512", 1).unwrap_err().to_string();
        assert!(msg.contains("size=512") && msg.contains("same queues= and size="), "{msg}");
        // A failed join leaves the pair waiting for a port that agrees.
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=p,queues=2,size=1024", 1).unwrap();
        start(&mut a, 2, &pool);
        start(&mut b, 2, &pool);
        let mut bufs = vec![packet(&pool, 7)];
        assert_eq!(b.tx_queue(1).unwrap().tx_burst(&mut bufs), 1);
        assert_eq!(a.rx_queue(1).unwrap().rx_burst(&mut bufs, 4), 1);
        check(&bufs[0], 7);
    }
    assert!(pool.mempool().is_full());
}

#[test]
fn bad_devargs_name_the_key() {
    let mem = memory();
    let mut shared = VdevShared::default();
    for (spec, key) in [
        ("net_ring0,queues=0", "queues=0"),
        ("net_ring0,queues=65", "queues=65"),
        ("net_ring0,size=0", "size=0"),
        ("net_ring0,size=x", "size=x"),
        ("net_ring0,pair=", "pair="),
        ("net_ring0,mac=02:00:00:00:00", "mac=02:00:00:00:00"),
        ("net_ring0,nodeaction=r:0:CREATE", "\"nodeaction\""),
    ] {
        let err = probe(&mem, &mut shared, spec, 0).unwrap_err();
        assert!(matches!(err, EthError::DevArgs { .. }), "{spec}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("net_ring0: ") && msg.contains(key), "{spec}: {msg}");
    }
}

#[test]
fn packets_left_in_rings_go_back_to_the_pool_when_the_rings_go() {
    let mem = memory();
    let pool = pool(&mem, "ring_leftover", 64);
    let mut shared = VdevShared::default();
    let mut a = probe(&mem, &mut shared, "net_ring0,pair=p", 0).unwrap();
    let mut b = probe(&mem, &mut shared, "net_ring1,pair=p", 1).unwrap();
    start(&mut a, 1, &pool);
    start(&mut b, 1, &pool);
    let mut bufs: Vec<PacketBuf> = (0..10).map(|s| packet(&pool, s)).collect();
    assert_eq!(a.tx_queue(0).unwrap().tx_burst(&mut bufs), 10);
    bufs.extend((0..5).map(|s| packet(&pool, s)));
    assert_eq!(b.tx_queue(0).unwrap().tx_burst(&mut bufs), 5);
    assert_eq!(pool.mempool().in_use(), 15);
    a.close().unwrap();
    assert_eq!(pool.mempool().in_use(), 15, "B still holds an end of both rings");
    assert!(a.rx_queue(0).is_err() && a.start().is_err());
    drop(b);
    assert!(pool.mempool().is_full(), "the last end dropped the rings and their packets");
    drop(a);

    // A pair whose second port never came: the parked ends go with the shared state.
    let mut c = probe(&mem, &mut shared, "net_ring2,pair=alone", 2).unwrap();
    start(&mut c, 1, &pool);
    let mut bufs: Vec<PacketBuf> = (0..3).map(|s| packet(&pool, s)).collect();
    assert_eq!(c.tx_queue(0).unwrap().tx_burst(&mut bufs), 3);
    drop(c);
    assert_eq!(pool.mempool().in_use(), 3);
    drop(shared);
    assert!(pool.mempool().is_full());
}

#[test]
fn stop_and_start_keep_packets_in_flight() {
    let mem = memory();
    let pool = pool(&mem, "ring_restart", 32);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=p", 0).unwrap();
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=p", 1).unwrap();
        start(&mut a, 1, &pool);
        start(&mut b, 1, &pool);
        let mut bufs: Vec<PacketBuf> = (0..10).map(|s| packet(&pool, s)).collect();
        assert_eq!(a.tx_queue(0).unwrap().tx_burst(&mut bufs), 10);
        a.stop().unwrap();
        b.stop().unwrap();
        assert!(b.rx_queue(0).is_err(), "no handle while stopped");
        assert!(!b.link().up);
        b.start().unwrap();
        assert_eq!(b.rx_queue(0).unwrap().rx_burst(&mut bufs, 32), 10);
        for (seq, buf) in bufs.iter().enumerate() {
            check(buf, seq as u32);
        }
    }
    drop(shared);
    assert!(pool.mempool().is_full());
}

#[test]
fn port_settings_are_kept_and_the_link_follows_start() {
    let mem = memory();
    let pool = pool(&mem, "ring_settings", 8);
    let mut shared = VdevShared::default();
    let mut port = probe(&mem, &mut shared, "net_ring0", 0x0c).unwrap();
    assert_eq!((port.driver(), port.name()), ("net_ring", "net_ring0".to_string()));
    assert_eq!(port.mac().to_string(), "02:62:75:00:00:0c");
    assert_eq!(port.link(), LinkStatus::DOWN);
    let mac: MacAddr = "02:00:00:00:00:42".parse().unwrap();
    port.set_mac(mac).unwrap();
    assert_eq!(port.mac(), mac);
    port.set_promiscuous(true).unwrap();
    port.set_allmulticast(true).unwrap();
    assert!(port.promiscuous() && port.allmulticast());
    port.set_mtu(9000).unwrap();
    assert_eq!(port.mtu(), 9000);
    assert!(port.configure(&PortConf::queues(2, 1)).is_err(), "queues=1 by default");
    start(&mut port, 1, &pool);
    assert_eq!(port.link().to_string(), "up, 10 Gbps, full-duplex");
    let port = probe(&mem, &mut shared, "net_ring1,mac=02:de:ad:be:ef:01", 1).unwrap();
    assert_eq!(port.mac().to_string(), "02:de:ad:be:ef:01");
}

#[test]
fn a_pair_forwards_between_threads() {
    const N: u32 = 20_000;
    let mem = memory();
    let pool = pool(&mem, "ring_threads", 2048);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=p,size=256", 0).unwrap();
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=p,size=256", 1).unwrap();
        start(&mut a, 1, &pool);
        start(&mut b, 1, &pool);
        let mut tx = a.tx_queue(0).unwrap();
        let mut rx = b.rx_queue(0).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _lcore = burst_mem::lcore::claim_any().unwrap();
                let mut bufs = Vec::with_capacity(32);
                let mut seq = 0;
                while seq < N {
                    if bufs.is_empty() {
                        // The receiver frees what it got: buffers come back.
                        while bufs.len() < 32 && seq < N {
                            match pool.alloc() {
                                Some(mut buf) => {
                                    assert!(buf.set_data(&seq.to_le_bytes()));
                                    bufs.push(buf);
                                    seq += 1;
                                }
                                None => std::thread::yield_now(),
                            }
                        }
                    }
                    tx.tx_burst(&mut bufs);
                }
                while !bufs.is_empty() {
                    tx.tx_burst(&mut bufs);
                }
            });
            s.spawn(|| {
                let _lcore = burst_mem::lcore::claim_any().unwrap();
                let mut bufs = Vec::with_capacity(32);
                let mut want = 0;
                while want < N {
                    rx.rx_burst(&mut bufs, 32);
                    for buf in bufs.drain(..) {
                        assert_eq!(buf.data(), &want.to_le_bytes(), "in order, intact");
                        want += 1;
                    }
                }
            });
        });
        drop((tx, rx));
        assert_eq!((a.stats().opackets, b.stats().ipackets, b.stats().ibytes), (N as u64, N as u64, 4 * N as u64));
    }
    drop(shared);
    assert!(pool.mempool().is_full());
}

#[test]
fn a_chain_sent_on_one_side_arrives_on_the_other_segment_by_segment() {
    let mem = memory();
    let pool = pool(&mem, "ring_chains", 64);
    let mut shared = VdevShared::default();
    {
        let mut a = probe(&mem, &mut shared, "net_ring0,pair=c", 0).unwrap();
        let mut b = probe(&mem, &mut shared, "net_ring1,pair=c", 1).unwrap();
        let info = a.info().clone();
        assert_eq!((info.rx_offload_capa, info.tx_offload_capa), (RxOffloads::SCATTER, TxOffloads::MULTI_SEGS));
        // What the ring cannot do is refused, naming the offload and the driver.
        let e = a.configure(&PortConf { tx_offloads: TxOffloads::IPV4_CKSUM, ..PortConf::queues(1, 1) }).unwrap_err();
        assert!(e.to_string().contains("net_ring cannot do the TX offloads ipv4_cksum"), "{e}");
        let conf = PortConf {
            rx_offloads: RxOffloads::SCATTER,
            tx_offloads: TxOffloads::MULTI_SEGS,
            ..PortConf::queues(1, 1)
        };
        for port in [&mut a, &mut b] {
            port.configure(&conf).unwrap();
            port.rx_queue_setup(0, 0, &pool).unwrap();
            port.tx_queue_setup(0, 0).unwrap();
            port.start().unwrap();
        }
        let lens = [14usize, 1000, 1, 2048];
        let mut chain = ChainBuilder::new();
        for (k, &len) in lens.iter().enumerate() {
            let mut seg = pool.alloc().unwrap();
            assert!(seg.set_data(&vec![k as u8 + 1; len]));
            chain.push(seg).unwrap();
        }
        let mut bufs = vec![chain.take().unwrap()];
        let mut tx = a.tx_queue(0).unwrap();
        tx.tx_prepare(&mut bufs).expect("MULTI_SEGS is on: the chain may go");
        assert_eq!(tx.tx_burst(&mut bufs), 1);
        let mut rx = b.rx_queue(0).unwrap();
        assert_eq!(rx.rx_burst(&mut bufs, 4), 1);
        let got = &bufs[0];
        assert_eq!((got.nb_segs(), got.pkt_len() as usize), (4, lens.iter().sum()));
        for (k, (seg, &len)) in got.segments().zip(&lens).enumerate() {
            assert_eq!(seg.data(), &vec![k as u8 + 1; len][..], "segment {k}");
        }
        drop((tx, rx, bufs));
        let total: u64 = lens.iter().sum::<usize>() as u64;
        assert_eq!((a.stats().obytes, b.stats().ibytes), (total, total), "bytes are the whole packet's");
    }
    drop(shared);
    assert!(pool.mempool().is_full());
}
