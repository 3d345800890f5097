//! The RX burst against the test device.

use burst_ethdev::{Port, PortConf, RxOffloads, XStat};
use burst_mem::{CksumStatus, Memory, OlFlags, PacketPool};
use burst_net::PacketType;
use etherparse::PacketBuilder;
use proptest::prelude::*;

use crate::spec::features as f;
use crate::spec::net_hdr::*;
use crate::testdev::{bytes_of, device, memory, pool, started, started_with, NetHdr, TestDevice};
use crate::transport::TransportKind;

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|k| seed.wrapping_add(k as u8)).collect()
}

fn xstat(port: &Port, name: &str) -> u64 {
    port.xstats().into_iter().find(|x| x.name == name).map_or(u64::MAX, |x: XStat| x.value)
}

#[test]
fn frames_arrive_without_their_header_and_the_ring_is_refilled() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 200);
    let port = started(&dev, &mem, 1, &pool);
    assert_eq!(dev.kicks(0), 1, "the filled ring is announced after DRIVER_OK");
    for i in 0..40 {
        assert!(dev.rx_push(0, &frame(60 + i, i as u8), 12));
    }
    let mut rx = port.rx_queue(0).unwrap();
    let mut out = Vec::new();
    assert_eq!(rx.rx_burst(&mut out, 32), 32);
    assert_eq!(rx.rx_burst(&mut out, 32), 8);
    for (i, b) in out.iter().enumerate() {
        assert_eq!(b.data(), frame(60 + i, i as u8).as_slice());
        assert_eq!((b.port(), b.headroom()), (3, 128));
    }
    assert_eq!(dev.avail_pending(0), 56, "refilled in batches of 16: the last 8 wait");
    assert!(dev.kicks(0) >= 1, "notified: the device did not set NO_NOTIFY");
    let s = port.stats();
    assert_eq!((s.ipackets, s.ibytes, s.ierrors), (40, (60..100).sum::<u64>(), 0));
}

#[test]
fn no_kick_when_the_device_polls() {
    let dev = device();
    dev.state().no_notify = true;
    let mem = memory();
    let pool = pool(&mem, 200);
    let port = started(&dev, &mem, 1, &pool);
    let _ = dev.kicks(0);
    for _ in 0..40 {
        assert!(dev.rx_push(0, &frame(60, 0), 12));
    }
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 40);
    assert_eq!(dev.kicks(0), 0);
    assert_eq!(dev.avail_pending(0), 64);
}

#[test]
fn without_mergeable_buffers_the_header_is_ten_bytes() {
    let dev = device();
    {
        let mut s = dev.state();
        s.kind = TransportKind::VhostUser;
        s.features = f::ANY_LAYOUT | f::MAC;
    }
    let mem = memory();
    let pool = pool(&mem, 200);
    let port = started(&dev, &mem, 1, &pool);
    // num_buffers is not read: 0 there is fine.
    assert!(dev.rx_push(0, &frame(1514, 9), 10));
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1);
    assert_eq!(out[0].data(), frame(1514, 9).as_slice());
}

#[test]
fn a_frame_over_several_buffers_is_dropped_with_all_its_buffers() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 200);
    let mut port = started(&dev, &mem, 1, &pool);
    assert!(dev.rx_push(0, &frame(60, 1), 12));
    assert!(dev.rx_push(0, &frame(5000, 2), 12), "three buffers");
    assert!(dev.rx_push(0, &frame(61, 3), 12));
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        // One at a time: the dropped frame's buffers may straddle bursts.
        let mut got = 0;
        for _ in 0..5 {
            got += rx.rx_burst(&mut out, 1);
        }
        assert_eq!(got, 2);
        assert_eq!(out.iter().map(|b| b.len()).collect::<Vec<_>>(), [60, 61]);
    }
    assert_eq!(port.stats().ierrors, 1);
    assert_eq!(xstat(&port, "rx_mergeable_dropped"), 1);
    assert_eq!(pool.mempool().in_use(), 64 - 5, "the 5 buffers are back in the pool (refill waits for 16)");
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn in_order_batches_are_taken_by_position_not_by_the_entries() {
    let dev = device();
    dev.state().features |= f::IN_ORDER;
    let mem = memory();
    let pool = pool(&mem, 300);
    let mut port = started(&dev, &mem, 1, &pool);
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        // A lap of ordinary frames first: every used slot then holds an entry that looks
        // valid (an id posted again at the same slot).
        for i in 0..64u32 {
            assert!(dev.rx_push(0, &frame(60, i as u8), 12));
            assert_eq!(rx.rx_burst(&mut out, 32), 1);
        }
        out.clear();
        // A frame over three buffers, reported as one batch, then two ordinary frames, one of
        // them batched alone.
        assert!(dev.rx_push_batched(0, &frame(5000, 0xcc), 12), "three buffers");
        assert!(dev.rx_push(0, &frame(61, 7), 12));
        assert!(dev.rx_push_batched(0, &frame(62, 8), 12));
        let mut got = 0;
        for _ in 0..8 {
            got += rx.rx_burst(&mut out, 1);
        }
        assert_eq!(got, 2, "only the two ordinary frames");
        assert_eq!(out[0].data(), frame(61, 7).as_slice());
        assert_eq!(out[1].data(), frame(62, 8).as_slice());
    }
    assert_eq!(xstat(&port, "rx_mergeable_dropped"), 1);
    assert_eq!(xstat(&port, "rx_bad_used_entries"), 0, "the stale slots were never read");
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_used_idx_beyond_what_was_posted_stops_the_queue_until_restart() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let mut port = started(&dev, &mem, 1, &pool);
    dev.used_jump(0, 65);
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        for _ in 0..3 {
            assert_eq!(rx.rx_burst(&mut out, 32), 0);
        }
    }
    assert_eq!(port.stats().ierrors, 1, "counted once");
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
    port.start().unwrap();
    assert!(dev.rx_push(0, &frame(60, 2), 12));
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1, "a restart clears it");
}

#[test]
fn bad_lengths_and_num_buffers_are_errors() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 200);
    let mut port = started(&dev, &mem, 1, &pool);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(dev.take_avail(0).unwrap());
    }
    let mut hdr = [0u8; 12];
    hdr[10] = 1;
    for id in &ids {
        dev.write_buffer(0, *id, 0, &hdr);
    }
    // num_buffers 0 in the last one.
    dev.write_buffer(0, ids[3], 10, &[0, 0]);
    dev.used_raw(
        0,
        &[
            (u32::from(ids[0]), 12 + 13),
            (u32::from(ids[1]), 2048 + 12 + 1),
            (u32::from(ids[2]), 12 + 14),
            (u32::from(ids[3]), 100),
        ],
    );
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1, "only the 14-byte frame");
    assert_eq!(out[0].len(), 14);
    assert_eq!(port.stats().ierrors, 3);
    drop(out);
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_short_pool_counts_nombuf_and_refills_later() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 70);
    let port = started(&dev, &mem, 1, &pool);
    for _ in 0..40 {
        assert!(dev.rx_push(0, &frame(60, 0), 12));
    }
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 40);
    assert_eq!(dev.avail_pending(0), 24 + 6, "the 6 spare buffers went in");
    assert_eq!(port.stats().rx_nombuf, 34);
    drop(out);
    assert!(dev.rx_push(0, &frame(60, 0), 12));
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 64), 1);
    assert_eq!(dev.avail_pending(0), 64, "refilled once buffers came back");
}

/// A started port whose RX queue has `rx` offloads on (one pair).
fn port_with(dev: &TestDevice, mem: &Memory, pool: &PacketPool, rx: RxOffloads) -> Port {
    started_with(dev, mem, &PortConf { rx_offloads: rx, ..PortConf::queues(1, 1) }, pool)
}

/// A 12-byte header with `num_buffers` = `nb`.
fn hdr(nb: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[NUM_BUFFERS..].copy_from_slice(&nb.to_le_bytes());
    h
}

/// The buffer's full length: the header's place and the data room.
const ROOM: u32 = 2048 + 12;

#[test]
fn with_scatter_a_frame_over_several_buffers_is_one_chain_across_bursts() {
    for in_order in [false, true] {
        let dev = device();
        if in_order {
            dev.state().features |= f::IN_ORDER;
        }
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = port_with(&dev, &mem, &pool, RxOffloads::SCATTER);
        let big = frame(9000, 2);
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut out = Vec::new();
            assert!(dev.rx_push(0, &frame(60, 1), 12));
            // Five buffers, reported one entry each or (in order) as one batch.
            let pushed = if in_order { dev.rx_push_batched(0, &big, 12) } else { dev.rx_push(0, &big, 12) };
            assert!(pushed);
            assert!(dev.rx_push(0, &frame(61, 3), 12));
            // One used entry a burst: the chain is assembled across bursts.
            let mut got = 0;
            for _ in 0..10 {
                got += rx.rx_burst(&mut out, 1);
            }
            assert_eq!(got, 3, "in order: {in_order}");
            assert_eq!(out[0].data(), frame(60, 1).as_slice());
            assert_eq!(out[2].data(), frame(61, 3).as_slice());
            let c = &out[1];
            assert_eq!((c.nb_segs(), c.pkt_len(), c.port()), (5, 9000, 3));
            let lens: Vec<usize> = c.segments().map(|s| s.len()).collect();
            assert_eq!(lens, [2048, 2060, 2060, 2060, 772], "the header only in the first buffer");
            assert_eq!(bytes_of(c), big, "byte-exact");
            assert_eq!(c.headroom(), 128, "the first segment starts where the application expects");
        }
        let s = port.stats();
        assert_eq!((s.ipackets, s.ibytes, s.ierrors), (3, 60 + 9000 + 61, 0));
        assert_eq!(xstat(&port, "rx_mergeable_dropped"), 0);
        port.stop().unwrap();
        assert!(pool.mempool().is_full(), "every segment back in its pool");
    }
}

#[test]
fn scatter_can_be_one_queues_alone() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 400);
    let mut port = dev.probe(&mem, None).unwrap();
    assert_eq!(port.info().rx_queue_offload_capa, RxOffloads::SCATTER);
    port.configure(&PortConf::queues(2, 2)).unwrap();
    port.rx_queue_setup_with(0, 0, &pool, RxOffloads::SCATTER).unwrap();
    port.rx_queue_setup(1, 0, &pool).unwrap();
    for q in 0..2 {
        port.tx_queue_setup(q, 0).unwrap();
    }
    port.start().unwrap();
    assert!(dev.rx_push(0, &frame(5000, 1), 12));
    assert!(dev.rx_push(2, &frame(5000, 1), 12));
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1, "queue 0 chains");
    assert_eq!(port.rx_queue(1).unwrap().rx_burst(&mut out, 32), 0, "queue 1 drops");
    assert_eq!(xstat(&port, "rx_mergeable_dropped"), 1);
    drop(out);
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn hostile_chains_are_dropped_and_counted_and_nothing_leaks() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let mut port = port_with(&dev, &mem, &pool, RxOffloads::SCATTER);
    let ids: Vec<u32> = (0..16).map(|_| u32::from(dev.take_avail(0).unwrap())).collect();
    let nbs = [65, 1, 3, 1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 3, 1, 1];
    for (&id, nb) in ids.iter().zip(nbs) {
        dev.write_buffer(0, id as u16, 0, &hdr(nb));
    }
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut out = Vec::new();
        dev.used_raw(
            0,
            &[
                // num_buffers past the ring: that buffer dropped, the next taken on its own.
                (ids[0], 100),
                (ids[1], 100),
                // A buffer before the last not full: the frame goes, its last buffer with it.
                (ids[2], ROOM),
                (ids[3], 500),
                (ids[4], 100),
                // The last buffer past its length.
                (ids[5], ROOM),
                (ids[6], ROOM + 1),
                // An empty last buffer.
                (ids[7], ROOM),
                (ids[8], 0),
                // A first buffer not full, though more follow.
                (ids[9], 100),
                (ids[10], 50),
                // A good one: 2048 + 40 bytes.
                (ids[11], ROOM),
                (ids[12], 40),
            ],
        );
        assert_eq!(rx.rx_burst(&mut out, 32), 2);
        assert_eq!((out[0].len(), out[0].nb_segs()), (88, 1));
        assert_eq!((out[1].pkt_len(), out[1].nb_segs()), (2088, 2));
        // A frame whose last buffer never comes: held, never returned, freed by the stop.
        dev.used_raw(0, &[(ids[13], ROOM), (ids[14], ROOM)]);
        assert_eq!(rx.rx_burst(&mut out, 32), 0);
    }
    assert_eq!(port.stats().ierrors, 5, "one per bad frame");
    assert_eq!(xstat(&port, "rx_mergeable_dropped"), 0, "scatter is on: nothing dropped for spanning buffers");
    port.stop().unwrap();
    assert!(pool.mempool().is_full(), "the unfinished frame's buffers are back too");
}

/// An IPv4 TCP frame of `payload` bytes with right checksums.
fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1000, 2000, 7, 4096)
        .write(&mut f, &frame(payload, 9))
        .unwrap();
    f
}

#[test]
fn rx_checksum_flags_follow_the_header_when_asked_for() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = port_with(&dev, &mem, &pool, RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM);
    let negotiated = dev.state().driver_features;
    assert_eq!(negotiated & f::OFFLOADS, f::GUEST_CSUM, "{}", f::describe(negotiated));
    let fr = tcp_frame(100);
    let partial = NetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..NetHdr::ZERO };
    assert!(dev.rx_push_hdr(0, &fr, 12, partial));
    assert!(dev.rx_push_hdr(0, &fr, 12, NetHdr { flags: VIRTIO_NET_HDR_F_DATA_VALID, ..NetHdr::ZERO }));
    assert!(dev.rx_push(0, &fr, 12));
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 3);
    let l4: Vec<CksumStatus> = out.iter().map(|b| b.ol_flags().rx_l4_cksum()).collect();
    assert_eq!(l4, [CksumStatus::None, CksumStatus::Good, CksumStatus::Unknown]);
    assert!(out.iter().all(|b| b.ol_flags().rx_ip_cksum() == CksumStatus::Unknown), "virtio says nothing of it");
    let tcp = (PacketType::L2_ETHER | PacketType::L3_IPV4 | PacketType::L4_TCP).0;
    assert_eq!((out[0].packet_type(), out[2].packet_type()), (tcp, 0), "typed when the header said something");
    assert!(out.iter().all(|b| b.data() == fr.as_slice()));
}

#[test]
fn without_rx_offloads_the_header_is_not_read() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = started(&dev, &mem, 1, &pool);
    assert_eq!(dev.state().driver_features & f::OFFLOADS, 0, "no offload negotiated");
    // A device that sets flags it was not allowed to: they are never looked at.
    let id = dev.take_avail(0).unwrap();
    let mut h = hdr(1);
    h[FLAGS] = VIRTIO_NET_HDR_F_DATA_VALID;
    h[GSO_TYPE] = VIRTIO_NET_HDR_GSO_UDP;
    dev.write_buffer(0, id, 0, &h);
    dev.write_buffer(0, id, 12, &tcp_frame(10));
    dev.used_raw(0, &[(u32::from(id), 12 + 64)]);
    let mut out = Vec::new();
    assert_eq!(port.rx_queue(0).unwrap().rx_burst(&mut out, 32), 1);
    assert_eq!((out[0].ol_flags(), out[0].packet_type()), (OlFlags::empty(), 0));
}

#[test]
fn lro_packets_come_as_chains_with_their_segment_size() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = port_with(&dev, &mem, &pool, RxOffloads::TCP_LRO | RxOffloads::SCATTER);
    let negotiated = dev.state().driver_features & f::OFFLOADS;
    assert_eq!(negotiated, f::GUEST_CSUM | f::GUEST_TSO4 | f::GUEST_TSO6, "{}", f::describe(negotiated));
    let big = tcp_frame(20000);
    let gso = NetHdr {
        flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
        hdr_len: 54,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert!(dev.rx_push_hdr(0, &big, 12, gso));
    // UDP fragmentation offload was not asked for: dropped, as DPDK drops it.
    assert!(dev.rx_push_hdr(0, &big, 12, NetHdr { gso_type: VIRTIO_NET_HDR_GSO_UDP, ..gso }));
    let mut out = Vec::new();
    {
        let mut rx = port.rx_queue(0).unwrap();
        while rx.rx_burst(&mut out, 32) > 0 {}
    }
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!((p.nb_segs(), p.pkt_len() as usize), (10, big.len()));
    assert!(p.ol_flags().contains(OlFlags::RX_LRO));
    assert_eq!((p.ol_flags().rx_l4_cksum(), p.tx_offload().tso_segsz), (CksumStatus::None, 1448));
    assert_eq!(bytes_of(p), big);
    assert_eq!(port.stats().ierrors, 1);
}

#[test]
fn lro_without_scatter_is_refused_with_advice() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let mut port = dev.probe(&mem, None).unwrap();
    port.configure(&PortConf { rx_offloads: RxOffloads::TCP_LRO, ..PortConf::queues(1, 1) }).unwrap();
    let err = port.rx_queue_setup(0, 0, &pool).unwrap_err().to_string();
    assert!(err.contains("TCP_LRO") && err.contains("SCATTER"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn whatever_the_device_writes_in_the_used_ring_nothing_leaks_or_breaks(
        rounds in proptest::collection::vec(
            proptest::collection::vec(
                (0u32..80, prop_oneof![Just(ROOM), 0u32..2200], any::<bool>(), prop_oneof![Just(1u16), 0u16..8]),
                0..20,
            ),
            1..6,
        ),
        jump in proptest::option::of(65u16..1000),
        scatter in any::<bool>(),
        in_order in any::<bool>(),
    ) {
        let dev = device();
        // No control queue: its serving thread, starved on a loaded machine, would time out a
        // start now and then; these cases are about the RX ring.
        dev.state().features &= !f::CTRL_VQ;
        if in_order {
            dev.state().features |= f::IN_ORDER;
        }
        let mem = memory();
        let pool = pool(&mem, 200);
        let rx_offloads = if scatter { RxOffloads::SCATTER } else { RxOffloads::NONE };
        let mut port = port_with(&dev, &mem, &pool, rx_offloads);
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut out = Vec::new();
            for writes in rounds {
                for (id, len, real, nb) in writes {
                    if real {
                        // A buffer the device really took, with any num_buffers: chains of any
                        // shape, finished or not.
                        if let Some(id) = dev.take_avail(0) {
                            dev.write_buffer(0, id, NUM_BUFFERS, &nb.to_le_bytes());
                            dev.used_raw(0, &[(u32::from(id), len)]);
                        }
                    } else {
                        dev.used_raw(0, &[(id, len)]);
                    }
                }
                rx.rx_burst(&mut out, 32);
                for b in &out {
                    let segs: Vec<usize> = b.segments().map(|s| s.len()).collect();
                    prop_assert_eq!(segs.len(), usize::from(b.nb_segs()));
                    prop_assert_eq!(segs.iter().sum::<usize>(), b.pkt_len() as usize);
                    prop_assert!(segs[0] >= 14 && segs[0] <= 2048);
                    prop_assert!(segs[1..].iter().all(|&l| l > 0 && l <= ROOM as usize));
                    prop_assert!(scatter || segs.len() == 1);
                }
                out.clear();
            }
            if let Some(k) = jump {
                dev.used_jump(0, k);
                rx.rx_burst(&mut out, 32);
                rx.rx_burst(&mut out, 32);
            }
        }
        // The ring's 64, and a frame still being assembled.
        prop_assert!(pool.mempool().in_use() <= 64 + 63);
        port.stop().unwrap();
        prop_assert!(pool.mempool().is_full());
    }
}
