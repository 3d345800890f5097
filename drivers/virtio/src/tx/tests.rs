//! The TX burst against the test device.

use burst_ethdev::{Port, PortConf, RxOffloads, TxFault, TxOffloads};
use burst_mem::{ChainBuilder, CksumStatus, Memory, OlFlags, PacketBuf, PacketPool, TxOffload};
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, PacketBuilder, TcpSlice};
use proptest::prelude::*;

use crate::spec::features as f;
use crate::spec::net_hdr::VIRTIO_NET_HDR_F_NEEDS_CSUM;
use crate::testdev::{bytes_of, chain_of, device, frames, memory, pool, started, started_with, NetHdr, TestDevice};
use crate::transport::TransportKind;

#[test]
fn one_descriptor_with_the_header_in_the_headroom() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = started(&dev, &mem, 1, &pool);
    let mut tx = port.tx_queue(0).unwrap();
    let mut bufs = frames(&pool, 3, 60);
    // Old bytes in the headroom, where the header goes: the header must still be zero.
    for (i, b) in bufs.iter_mut().enumerate() {
        b.prepend(12).unwrap()[i * 4..].fill(0xaa);
        b.adj(12).unwrap();
    }
    let want: Vec<Vec<u8>> = bufs.iter().map(|b| b.data().to_vec()).collect();
    assert_eq!(tx.tx_burst(&mut bufs), 3);
    assert!(bufs.is_empty());
    assert_eq!(dev.kicks(1), 1, "one kick per burst");
    let got = dev.tx_pop(1);
    assert_eq!(got.len(), 3);
    for ((bytes, descs), want) in got.iter().zip(&want) {
        assert_eq!(*descs, 1);
        assert_eq!(&bytes[..12], &[0u8; 12], "a zeroed 12-byte header");
        assert_eq!(&bytes[12..], want.as_slice());
    }
    // Used chains are reclaimed once descriptors run short.
    let mut more = frames(&pool, 60, 60);
    assert_eq!(tx.tx_burst(&mut more), 60);
    assert_eq!(port.stats().opackets, 63);
    drop(tx);
    let _ = dev.tx_pop(1);
    let mut tx = port.tx_queue(0).unwrap();
    let mut more = frames(&pool, 50, 60);
    assert_eq!(tx.tx_burst(&mut more), 50, "the 63 used descriptors came back");
    assert_eq!(pool.mempool().in_use(), 64 + 50, "RX ring + what is in flight");
}

#[test]
fn two_descriptors_without_any_layout_or_without_headroom() {
    let dev = device();
    {
        let mut s = dev.state();
        s.kind = TransportKind::VhostUser;
        s.features = f::MRG_RXBUF;
    }
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = started(&dev, &mem, 1, &pool);
    let mut tx = port.tx_queue(0).unwrap();
    let mut bufs = frames(&pool, 40, 100);
    assert_eq!(tx.tx_burst(&mut bufs), 32, "two descriptors each: 32 fit in 64");
    assert_eq!(bufs.len(), 8);
    let got = dev.tx_pop(1);
    assert!(got.iter().all(|(b, d)| *d == 2 && b.len() == 112 && b[..12] == [0u8; 12]));
    drop(bufs);
    drop(tx);

    // With ANY_LAYOUT, a buffer without headroom still goes, as a chain.
    let dev = device();
    let port = started(&dev, &mem, 1, &pool);
    let mut tx = port.tx_queue(0).unwrap();
    let mut bufs = frames(&pool, 2, 60);
    bufs[1].prepend(128).unwrap();
    assert_eq!(tx.tx_burst(&mut bufs), 2);
    let got = dev.tx_pop(1);
    assert_eq!((got[0].1, got[1].1), (1, 2));
    assert_eq!(got[1].0.len(), 12 + 188);
}

#[test]
fn a_full_ring_takes_what_fits_and_stop_frees_the_rest() {
    let dev = device();
    dev.state().no_notify = true;
    let mem = memory();
    let pool = pool(&mem, 300);
    let mut port = started(&dev, &mem, 1, &pool);
    {
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 100, 60);
        assert_eq!(tx.tx_burst(&mut bufs), 64);
        assert_eq!(bufs.len(), 36, "the caller keeps the rest, in order");
        assert_eq!(tx.tx_burst(&mut bufs), 0);
        assert_eq!(dev.kicks(1), 0, "the device polls");
        let mut empty = frames(&pool, 0, 0);
        assert_eq!(tx.tx_burst(&mut empty), 0);
    }
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn empty_buffers_are_taken_and_counted() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 300);
    let port = started(&dev, &mem, 1, &pool);
    let mut tx = port.tx_queue(0).unwrap();
    let mut bufs = frames(&pool, 3, 60);
    bufs[1].set_len(0);
    assert_eq!(tx.tx_burst(&mut bufs), 3);
    assert_eq!(dev.tx_pop(1).len(), 2);
    drop(tx);
    let s = port.stats();
    assert_eq!((s.opackets, s.oerrors), (2, 1));
}

/// Sends bursts of 32 until the ring takes fewer: how many it took.
fn fill(tx: &mut burst_ethdev::TxQueue<'_>, pool: &burst_mem::PacketPool) -> usize {
    let mut total = 0;
    loop {
        let mut bufs = frames(pool, 32, 60);
        let took = tx.tx_burst(&mut bufs);
        total += took;
        if took < 32 {
            return total;
        }
    }
}

#[test]
fn in_order_reclaim_follows_used_idx_and_ignores_the_entries() {
    for in_order in [true, false] {
        let dev = device();
        if in_order {
            dev.state().features |= f::IN_ORDER;
        }
        let mem = memory();
        let pool = pool(&mem, 1200);
        let mut port = started(&dev, &mem, 1, &pool);
        let size = usize::from(dev.state().queues[&1].layout.size);
        {
            let mut tx = port.tx_queue(0).unwrap();
            let mut bufs = frames(&pool, 3, 60);
            assert_eq!(tx.tx_burst(&mut bufs), 3);
            for _ in 0..3 {
                dev.take_avail(1).unwrap();
            }
            // The device uses the three chains but writes nonsense ids.
            dev.used_raw(1, &[(999, 0), (999, 0), (999, 0)]);
            let took = fill(&mut tx, &pool);
            if in_order {
                assert_eq!(took, size, "the three chains came back by used.idx alone");
            } else {
                assert_eq!(took, size - 3, "ids naming nothing free nothing");
            }
        }
        let s = port.stats();
        assert_eq!(s.oerrors, if in_order { 0 } else { 3 });
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }
}

#[test]
fn a_used_idx_beyond_what_was_sent_stops_the_queue_until_restart() {
    for in_order in [false, true] {
        let dev = device();
        if in_order {
            dev.state().features |= f::IN_ORDER;
        }
        let mem = memory();
        let pool = pool(&mem, 600);
        let mut port = started(&dev, &mem, 1, &pool);
        {
            let mut tx = port.tx_queue(0).unwrap();
            let mut bufs = frames(&pool, 10, 60);
            assert_eq!(tx.tx_burst(&mut bufs), 10);
            // The device claims 200 chains done, more than the ring ever held: nothing can
            // be trusted, nothing is freed.
            dev.used_jump(1, 200);
            let took = fill(&mut tx, &pool);
            assert!(took < 64, "the queue stopped taking frames ({took})");
            let mut more = frames(&pool, 4, 60);
            assert_eq!(tx.tx_burst(&mut more), 0);
        }
        assert_eq!(port.stats().oerrors, 1, "counted once");
        port.stop().unwrap();
        assert!(pool.mempool().is_full(), "stop takes everything back");
        port.start().unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = frames(&pool, 4, 60);
        assert_eq!(tx.tx_burst(&mut bufs), 4, "a restart clears it");
    }
}

/// A started port whose TX queue has `tx` offloads on (one pair).
fn port_with(dev: &TestDevice, mem: &Memory, pool: &PacketPool, tx: TxOffloads) -> Port {
    started_with(dev, mem, &PortConf { tx_offloads: tx, ..PortConf::queues(1, 1) }, pool)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|k| seed.wrapping_add((k * 7) as u8)).collect()
}

/// `bytes` as one segment with no headroom: the header cannot go in front of it.
fn no_headroom(pool: &PacketPool, bytes: &[u8]) -> PacketBuf {
    let mut b = pool.alloc().unwrap();
    b.prepend(b.headroom()).unwrap();
    assert!(b.set_data(bytes));
    assert_eq!(b.headroom(), 0);
    b
}

#[test]
fn chains_go_out_as_descriptor_chains_or_indirect() {
    for indirect in [false, true] {
        let dev = device();
        if !indirect {
            dev.state().features &= !f::RING_INDIRECT_DESC;
        }
        let mem = memory();
        let pool = pool(&mem, 400);
        let mut port = port_with(&dev, &mem, &pool, TxOffloads::MULTI_SEGS);
        let (a, b, c, d) = (pattern(3000, 1), pattern(3000, 2), pattern(1000, 3), pattern(500, 4));
        let mut pb = ChainBuilder::new();
        pb.push(no_headroom(&pool, &b[..1000])).unwrap();
        pb.push(chain_of(&pool, &b[1000..], 1000)).map_err(|(_, e)| e).unwrap_err();
        let mut pb = pb.take().unwrap();
        pb.chain(chain_of(&pool, &b[1000..], 1000)).unwrap();
        let mut bufs = vec![
            chain_of(&pool, &a, 1000), // 3 segments, the header in the first one's headroom
            pb,                        // 3 segments, the header on its own
            chain_of(&pool, &c, 100),  // 10 segments
            chain_of(&pool, &d, 100),  // 5 segments
            chain_of(&pool, &c, 1000), // one segment
        ];
        let want: Vec<Vec<u8>> = bufs.iter().map(bytes_of).collect();
        {
            let mut tx = port.tx_queue(0).unwrap();
            assert_eq!(tx.tx_burst(&mut bufs), 5);
        }
        let got = dev.tx_chains(1);
        let shape: Vec<(usize, usize)> = got.iter().map(|c| (c.descs, c.indirect)).collect();
        if indirect {
            assert_eq!(shape, [(3, 0), (4, 0), (1, 10), (1, 5), (1, 0)], "long chains go indirect");
        } else {
            assert_eq!(shape, [(3, 0), (4, 0), (10, 0), (5, 0), (1, 0)]);
        }
        for (chain, want) in got.iter().zip(&want) {
            assert_eq!(&chain.bytes[..12], &[0u8; 12], "a zero header");
            assert_eq!(&chain.bytes[12..], want.as_slice(), "byte-exact");
        }
        let s = port.stats();
        assert_eq!((s.opackets, s.obytes, s.oerrors), (5, 3000 + 3000 + 1000 + 500 + 1000, 0));
        port.stop().unwrap();
        assert!(pool.mempool().is_full(), "every segment back");
    }
}

#[test]
fn chains_the_queue_cannot_take_are_dropped_and_counted() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 400);
    // Without MULTI_SEGS: dropped, counted, as before chains were sent.
    {
        let port = started(&dev, &mem, 1, &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = vec![chain_of(&pool, &pattern(3000, 1), 1000)];
        let err = tx.tx_prepare(&mut bufs).unwrap_err();
        assert!(matches!(err.fault, TxFault::OffloadOff { offload: TxOffloads::MULTI_SEGS, .. }), "{err}");
        assert_eq!(tx.tx_burst(&mut bufs), 1);
        assert!(dev.tx_pop(1).is_empty());
        drop(tx);
        assert_eq!(port.stats().oerrors, 1);
    }
    let mut port = port_with(&dev, &mem, &pool, TxOffloads::MULTI_SEGS);
    assert_eq!(port.info().tx_desc_lim.nb_seg_max, 63, "a ring of 64: a header and 63 segments");
    {
        let mut tx = port.tx_queue(0).unwrap();
        // More segments than the ring holds, then an empty chain, then one with an empty
        // segment in the middle (it takes no descriptor), then an ordinary frame.
        let long = chain_of(&pool, &pattern(70, 2), 1);
        let mut empty = ChainBuilder::new();
        for _ in 0..2 {
            empty.push(pool.alloc().unwrap()).unwrap();
        }
        let mut holed = chain_of(&pool, &pattern(100, 3), 100);
        holed.chain(pool.alloc().unwrap()).unwrap();
        holed.chain(chain_of(&pool, &pattern(50, 4), 50)).unwrap();
        let mut bufs = vec![long, empty.take().unwrap(), holed];
        bufs.extend(frames(&pool, 1, 60));
        let err = tx.tx_prepare(&mut bufs).unwrap_err();
        assert_eq!((err.index, err.fault), (0, TxFault::TooManySegments { nb_segs: 70, max: 63 }));
        assert_eq!(tx.tx_burst(&mut bufs), 4, "taken, the first two dropped");
        let got = dev.tx_chains(1);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].descs, &got[0].bytes[12..]), (2, [pattern(100, 3), pattern(50, 4)].concat().as_slice()));
    }
    let s = port.stats();
    assert_eq!((s.opackets, s.oerrors), (2, 2));
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

#[test]
fn chains_wait_for_descriptors_and_go_once_the_device_is_done() {
    let dev = device();
    dev.state().features &= !f::RING_INDIRECT_DESC;
    let mem = memory();
    let pool = pool(&mem, 600);
    let mut port = port_with(&dev, &mem, &pool, TxOffloads::MULTI_SEGS);
    {
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs: Vec<PacketBuf> = (0..20).map(|i| chain_of(&pool, &pattern(400, i), 100)).collect();
        assert_eq!(tx.tx_burst(&mut bufs), 16, "four descriptors each: 16 fill a ring of 64");
        assert_eq!(tx.tx_burst(&mut bufs), 0, "nothing was used yet");
        assert_eq!(dev.tx_pop(1).len(), 16);
        assert_eq!(tx.tx_burst(&mut bufs), 4, "the used chains' descriptors came back");
        let got = dev.tx_chains(1);
        assert_eq!(got.iter().map(|c| c.descs).collect::<Vec<_>>(), [4; 4]);
        assert_eq!(&got[3].bytes[12..], pattern(400, 19).as_slice());
    }
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

/// The frames a checksum test sends: IPv4 and IPv6, TCP and UDP, with right checksums.
fn l4_frames() -> Vec<(Vec<u8>, bool, bool)> {
    let (m1, m2) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let (a4, b4) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (a6, b6) =
        ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut out = Vec::new();
    for (v6, tcp, len) in [(false, true, 100), (false, false, 201), (true, true, 3000), (true, false, 77)] {
        let b = PacketBuilder::ethernet2(m1, m2);
        let b = if v6 { b.ipv6(a6, b6, 64) } else { b.ipv4(a4, b4, 64) };
        let mut f = Vec::new();
        if tcp {
            b.tcp(1000, 2000, 7, 4096).write(&mut f, &pattern(len, 5)).unwrap();
        } else {
            b.udp(1000, 2000).write(&mut f, &pattern(len, 6)).unwrap();
        }
        out.push((f, v6, tcp));
    }
    out
}

#[test]
fn tx_checksums_are_finished_by_the_device() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 400);
    let tx_offloads = TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM | TxOffloads::MULTI_SEGS;
    let mut port = port_with(&dev, &mem, &pool, tx_offloads);
    assert_eq!(dev.state().driver_features & f::OFFLOADS, f::CSUM, "CSUM alone is negotiated");
    let mut bufs = Vec::new();
    let mut want = Vec::new();
    for (k, (frame, v6, tcp)) in l4_frames().into_iter().enumerate() {
        let l3 = if v6 { 40 } else { 20 };
        let at = 14 + l3 + if tcp { 16 } else { 6 };
        let mut zeroed = frame.clone();
        zeroed[at..at + 2].fill(0);
        // One-segment with the header pushed, one without headroom, chains.
        let mut b = match k {
            1 => no_headroom(&pool, &zeroed),
            2 => chain_of(&pool, &zeroed, 1000),
            _ => chain_of(&pool, &zeroed, 2048),
        };
        let l3_flag = if v6 { OlFlags::TX_IPV6 } else { OlFlags::TX_IPV4 };
        b.set_ol_flags(l3_flag | if tcp { OlFlags::TX_TCP_CKSUM } else { OlFlags::TX_UDP_CKSUM });
        b.set_tx_offload(TxOffload { l2_len: 14, l3_len: l3 as u16, ..TxOffload::default() });
        bufs.push(b);
        want.push(frame);
    }
    // A frame that asks for nothing goes as it is, its header zero.
    bufs.extend(frames(&pool, 1, 60));
    want.push(bytes_of(&bufs[4]));
    {
        let mut tx = port.tx_queue(0).unwrap();
        tx.tx_prepare(&mut bufs).unwrap();
        assert_eq!(tx.tx_burst(&mut bufs), 5);
    }
    assert_eq!(dev.tx_frames(1), want, "the device finished every checksum the frames asked for");
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

/// Checks segment `s` of a segmented TCP packet: lengths, IPv4 header checksum, TCP checksum
/// (computed by etherparse) and sequence number; returns its TCP payload and (FIN, PSH).
fn check_segment(s: &[u8], v6: bool, seq: u32) -> (Vec<u8>, bool, bool) {
    let (l3, tcp) = if v6 {
        let ip = Ipv6HeaderSlice::from_slice(&s[14..]).unwrap();
        assert_eq!(usize::from(ip.payload_length()), s.len() - 14 - 40);
        let tcp = TcpSlice::from_slice(&s[54..]).unwrap();
        assert_eq!(tcp.checksum(), tcp.calc_checksum_ipv6(ip.source(), ip.destination()).unwrap(), "TCP checksum");
        (40, tcp)
    } else {
        let ip = Ipv4HeaderSlice::from_slice(&s[14..]).unwrap();
        assert_eq!(usize::from(ip.total_len()), s.len() - 14);
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum(), "IPv4 header checksum");
        let tcp = TcpSlice::from_slice(&s[34..]).unwrap();
        assert_eq!(tcp.checksum(), tcp.calc_checksum_ipv4(ip.source(), ip.destination()).unwrap(), "TCP checksum");
        (20, tcp)
    };
    assert_eq!(tcp.sequence_number(), seq);
    assert_eq!(s.len(), 14 + l3 + 20 + tcp.payload().len());
    (tcp.payload().to_vec(), tcp.fin(), tcp.psh())
}

#[test]
fn tso_packets_leave_as_mss_segments() {
    let dev = device();
    let mem = memory();
    let pool = pool(&mem, 400);
    let mut port = port_with(&dev, &mem, &pool, TxOffloads::TCP_TSO | TxOffloads::MULTI_SEGS);
    let negotiated = dev.state().driver_features & f::OFFLOADS;
    assert_eq!(negotiated, f::CSUM | f::HOST_TSO4 | f::HOST_TSO6, "{}", f::describe(negotiated));
    let payload = pattern(20000, 8);
    for v6 in [false, true] {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let b = if v6 { b.ipv6([0xfd; 16], [0xfe; 16], 64) } else { b.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64) };
        let mut frame = Vec::new();
        b.tcp(1000, 2000, 5000, 4096).ack(9).psh().fin().write(&mut frame, &payload).unwrap();
        // The IPv4 total length does not matter to TSO (it may not fit 16 bits): left as built.
        let mut pkt = chain_of(&pool, &frame, 2000);
        let l3 = if v6 { 40 } else { 20 };
        pkt.set_ol_flags(OlFlags::TX_TCP_SEG | if v6 { OlFlags::TX_IPV6 } else { OlFlags::TX_IPV4 });
        pkt.set_tx_offload(TxOffload { l2_len: 14, l3_len: l3, l4_len: 20, tso_segsz: 1448, ..TxOffload::default() });
        let mut bufs = vec![pkt];
        {
            let mut tx = port.tx_queue(0).unwrap();
            tx.tx_prepare(&mut bufs).unwrap();
            assert_eq!(tx.tx_burst(&mut bufs), 1);
        }
        let segs = dev.tx_frames(1);
        assert_eq!(segs.len(), 20000usize.div_ceil(1448), "MSS-sized segments");
        let mut got = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let (p, fin, psh) = check_segment(s, v6, 5000 + (i * 1448) as u32);
            assert!(p.len() == 1448 || i == segs.len() - 1, "segment {i}: {} bytes", p.len());
            assert_eq!((fin, psh), (i == segs.len() - 1, i == segs.len() - 1), "FIN and PSH on the last alone");
            got.extend(p);
        }
        assert_eq!(got, payload, "the payload, byte-exact, in order");
    }
    port.stop().unwrap();
    assert!(pool.mempool().is_full());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn chains_of_any_shape_go_out_byte_exact_and_nothing_leaks(
        packets in proptest::collection::vec(proptest::collection::vec(0usize..700, 1..80), 1..30),
        indirect in any::<bool>(),
        in_order in any::<bool>(),
        serve_every in 1usize..6,
    ) {
        let dev = device();
        {
            let mut s = dev.state();
            // No control queue: its serving thread, starved on a loaded machine, would time out a
            // start now and then; these cases are about the TX ring.
            s.features &= !f::CTRL_VQ;
            if !indirect {
                s.features &= !f::RING_INDIRECT_DESC;
            }
            if in_order {
                s.features |= f::IN_ORDER;
            }
        }
        let mem = memory();
        let pool = pool(&mem, 2500);
        let mut port = port_with(&dev, &mem, &pool, TxOffloads::MULTI_SEGS);
        let mut sent = Vec::new();
        let mut got = Vec::new();
        {
            let mut tx = port.tx_queue(0).unwrap();
            for (i, segs) in packets.iter().enumerate() {
                let mut b = ChainBuilder::new();
                for (k, &len) in segs.iter().enumerate() {
                    let mut s = pool.alloc().unwrap();
                    prop_assert!(s.set_data(&pattern(len, (i + k) as u8)));
                    b.push(s).unwrap();
                }
                let pkt = b.take().unwrap();
                let bytes = bytes_of(&pkt);
                // What a driver cannot send: nothing in it, or more descriptors than the ring (a
                // descriptor per segment with data, and the header's own unless it goes in the
                // first segment's headroom, which it does when that segment holds data).
                let entries = segs.iter().filter(|&&l| l > 0).count() + usize::from(segs[0] == 0);
                let sendable = !bytes.is_empty() && entries <= 64;
                let mut bufs = vec![pkt];
                while !bufs.is_empty() {
                    if tx.tx_burst(&mut bufs) == 0 {
                        got.extend(dev.tx_chains(1));
                    }
                }
                if sendable {
                    sent.push(bytes);
                }
                if i % serve_every == 0 {
                    got.extend(dev.tx_chains(1));
                }
            }
            got.extend(dev.tx_chains(1));
        }
        prop_assert_eq!(got.len(), sent.len());
        for (c, want) in got.iter().zip(&sent) {
            prop_assert_eq!(&c.bytes[12..], want.as_slice());
            prop_assert!(c.descs <= 64 && (c.indirect == 0 || indirect));
        }
        prop_assert_eq!(port.stats().oerrors, (packets.len() - sent.len()) as u64);
        port.stop().unwrap();
        prop_assert!(pool.mempool().is_full());
    }

        #[test]
    fn hostile_used_entries_are_counted_and_nothing_leaks(
        rounds in proptest::collection::vec((1usize..40, proptest::collection::vec((0u32..200, any::<u32>()), 0..10), any::<bool>()), 1..8),
        in_order in any::<bool>(),
    ) {
        let dev = device();
        if in_order {
            dev.state().features |= f::IN_ORDER;
        }
        let mem = memory();
        let pool = pool(&mem, 400);
        let mut port = started(&dev, &mem, 1, &pool);
        {
            let mut tx = port.tx_queue(0).unwrap();
            for (n, junk, serve) in rounds {
                let mut bufs = frames(&pool, n, 64);
                let took = tx.tx_burst(&mut bufs);
                prop_assert_eq!(took + bufs.len(), n);
                if serve {
                    let _ = dev.tx_pop(1);
                }
                // Duplicates, ids out of range, ids of non-head descriptors.
                dev.used_raw(1, &junk);
            }
        }
        prop_assert!(pool.mempool().in_use() <= 64 + 64);
        port.stop().unwrap();
        prop_assert!(pool.mempool().is_full());
    }
}

/// A legacy device (virtio 1.2, 4.1.4.8: the low 32 feature bits, no VERSION_1), with and without
/// ANY_LAYOUT (without it the header always has its own descriptor): chains, checksums and TSO
/// go out, and a frame over mergeable buffers with a partial checksum comes in as one chain,
/// as on a modern device.
#[test]
fn legacy_devices_chain_and_offload_as_modern_ones_do() {
    for any_layout in [true, false] {
        let dev = device();
        {
            let mut s = dev.state();
            s.kind = TransportKind::Legacy;
            if !any_layout {
                s.features &= !f::ANY_LAYOUT;
            }
        }
        let mem = memory();
        let pool = pool(&mem, 400);
        let conf = PortConf {
            rx_offloads: RxOffloads::SCATTER | RxOffloads::TCP_CKSUM | RxOffloads::TCP_LRO,
            tx_offloads: TxOffloads::MULTI_SEGS | TxOffloads::TCP_CKSUM | TxOffloads::TCP_TSO,
            ..PortConf::queues(1, 1)
        };
        let mut port = started_with(&dev, &mem, &conf, &pool);
        let negotiated = dev.state().driver_features;
        assert_eq!(negotiated >> 32, 0, "legacy: the low 32 bits alone");
        assert_eq!(negotiated & f::ANY_LAYOUT != 0, any_layout);
        let want = f::MRG_RXBUF | f::RING_INDIRECT_DESC | f::OFFLOADS;
        assert_eq!(negotiated & want, want, "{}", f::describe(negotiated));

        // TX: a raw chain of 9000 bytes and a TSO chain of 5000 payload bytes, MSS 1000.
        let raw = pattern(9000, 3);
        let payload = pattern(5000, 4);
        let mut tcp = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, 100, 4096)
            .write(&mut tcp, &payload)
            .unwrap();
        let mut tso = chain_of(&pool, &tcp, 700);
        tso.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
        tso.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 1000, ..TxOffload::default() });
        let mut bufs = vec![chain_of(&pool, &raw, 2048), tso];
        {
            let mut tx = port.tx_queue(0).unwrap();
            tx.tx_prepare(&mut bufs).unwrap();
            assert_eq!(tx.tx_burst(&mut bufs), 2);
        }
        let out = dev.tx_frames(1);
        assert_eq!(out.len(), 1 + 5, "the raw frame and five segments");
        assert_eq!(out[0], raw, "any_layout {any_layout}: byte-exact");
        let mut got = Vec::new();
        for (i, s) in out[1..].iter().enumerate() {
            got.extend(check_segment(s, false, 100 + 1000 * i as u32).0);
        }
        assert_eq!(got, payload);

        // RX: 9000 bytes over mergeable buffers, with a partial checksum.
        let mut big = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
            .tcp(2000, 1000, 7, 4096)
            .write(&mut big, &pattern(8946, 5))
            .unwrap();
        let hdr = NetHdr { flags: VIRTIO_NET_HDR_F_NEEDS_CSUM, csum_start: 34, csum_offset: 16, ..NetHdr::ZERO };
        assert!(dev.rx_push_hdr(0, &big, 12, hdr));
        {
            let mut rx = port.rx_queue(0).unwrap();
            let mut pkts = Vec::new();
            assert_eq!(rx.rx_burst(&mut pkts, 32), 1);
            assert_eq!((pkts[0].nb_segs(), pkts[0].pkt_len()), (5, 9000));
            assert_eq!(bytes_of(&pkts[0]), big);
            assert_eq!(pkts[0].ol_flags().rx_l4_cksum(), CksumStatus::None);
        }
        port.stop().unwrap();
        assert!(pool.mempool().is_full(), "any_layout {any_layout}: every segment back");
    }
}
