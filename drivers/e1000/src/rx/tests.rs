//! Tests of the RX path, on the simulated ring (`crate::testing`).

use super::*;
use crate::regs::{RXD_ERR_CE, RXD_ERR_RXE};
use burst_ethdev::SwStats;
use proptest::collection::vec;
use proptest::prelude::*;

const DONE: u8 = RXD_STAT_DD | RXD_STAT_EOP;
/// A descriptor done, not the frame's last.
const MORE: u8 = RXD_STAT_DD;

#[test]
fn a_good_descriptor_gives_its_length() {
    assert_eq!(classify(DONE, 0, 60, 2048), RxVerdict::Packet(60));
    assert_eq!(classify(DONE, 0, 2048, 2048), RxVerdict::Packet(2048));
}

#[test]
fn lengths_past_the_buffer_or_zero_are_errors() {
    assert_eq!(classify(DONE, 0, 2049, 2048), RxVerdict::Bad);
    assert_eq!(classify(DONE, 0, u16::MAX, 2048), RxVerdict::Bad);
    assert_eq!(classify(DONE, 0, 0, 2048), RxVerdict::Bad);
}

#[test]
fn error_bits_and_missing_eop_drop_the_frame() {
    assert_eq!(classify(DONE, RXD_ERR_CE, 60, 2048), RxVerdict::Bad);
    assert_eq!(classify(DONE, RXD_ERR_RXE, 60, 2048), RxVerdict::Bad);
    assert_eq!(classify(RXD_STAT_DD, 0, 2048, 2048), RxVerdict::Partial);
    // Checksum verdicts do not drop a frame: it is delivered with them.
    assert_eq!(classify(DONE, RXD_ERR_IPE | RXD_ERR_TCPE, 60, 2048), RxVerdict::Packet(60));
}

#[test]
fn the_last_descriptor_becomes_flags_tag_and_type() {
    let ipv4 = PacketType::L2_ETHER | PacketType::L3_IPV4_EXT_UNKNOWN;
    let csum = DONE | RXD_STAT_IPCS | RXD_STAT_TCPCS;
    // Both checked, both good.
    let (f, p) = rx_meta(csum, 0);
    assert_eq!((f.rx_ip_cksum(), f.rx_l4_cksum(), p), (CksumStatus::Good, CksumStatus::Good, ipv4));
    // Each bad on its own.
    let (f, _) = rx_meta(csum, RXD_ERR_IPE);
    assert_eq!((f.rx_ip_cksum(), f.rx_l4_cksum()), (CksumStatus::Bad, CksumStatus::Good));
    let (f, _) = rx_meta(csum, RXD_ERR_TCPE);
    assert_eq!((f.rx_ip_cksum(), f.rx_l4_cksum()), (CksumStatus::Good, CksumStatus::Bad));
    // IXSM: whatever IPCS, TCPCS and the errors say is ignored (QEMU sets it on every frame).
    let (f, p) = rx_meta(csum | RXD_STAT_IXSM, RXD_ERR_IPE | RXD_ERR_TCPE);
    assert_eq!((f, p), (OlFlags::empty(), PacketType::UNKNOWN));
    // Not checked: unknown, and an error bit without its status bit means nothing.
    let (f, p) = rx_meta(DONE, RXD_ERR_IPE | RXD_ERR_TCPE);
    assert_eq!((f, p), (OlFlags::empty(), PacketType::UNKNOWN));
    // TCP/UDP checked alone (an IPv6 packet, 3.2.9): the L4 verdict, no L3 type.
    let (f, p) = rx_meta(DONE | RXD_STAT_TCPCS, 0);
    assert_eq!((f.rx_ip_cksum(), f.rx_l4_cksum(), p), (CksumStatus::Unknown, CksumStatus::Good, PacketType::UNKNOWN));
    // A stripped tag.
    let (f, _) = rx_meta(DONE | RXD_STAT_VP | RXD_STAT_IXSM, 0);
    assert_eq!(f, OlFlags::RX_VLAN | OlFlags::RX_VLAN_STRIPPED);
}

use crate::testing::{device_writes_rx, device_writes_rx_vlan, memory, pool, ring, Recorder};

/// A running RX queue of `n` descriptors of 2048 bytes on a pool of `count` buffers, with
/// `offloads`, and its counters.
fn running_with(n: u16, count: usize, offloads: RxOffloads) -> (RxRing, PacketPool, SwStats, Arc<RxCounters>) {
    let mem = memory();
    let pool = pool(&mem, count);
    let sw = SwStats::new(1, 0);
    let own = Arc::new(RxCounters::default());
    let mut rx = RxRing::new(ring(&mem, n), pool.clone(), 2048, offloads, sw.rx(0), own.clone());
    rx.arm().unwrap();
    assert_eq!(rx.tail(), n - 1);
    (rx, pool, sw, own)
}

fn running(n: u16, count: usize) -> (RxRing, PacketPool, SwStats) {
    let (rx, pool, sw, _) = running_with(n, count, RxOffloads::NONE);
    (rx, pool, sw)
}

/// Frames dropped and failed allocations counted.
fn dropped_nombuf(sw: &SwStats) -> (u64, u64) {
    let s = sw.get();
    (s.ierrors, s.rx_nombuf)
}

/// A packet's segment lengths.
fn seg_lens(p: &PacketBuf) -> Vec<usize> {
    p.segments().map(|s| s.len()).collect()
}

#[test]
fn frames_come_out_with_their_length_and_the_tail_follows_once() {
    let (mut rx, pool, _sw) = running(32, 64);
    let bell = Recorder::default();
    let addr0 = rx.ring.desc(0).buffer();
    device_writes_rx(&rx.ring, 0, 60, DONE, 0);
    device_writes_rx(&rx.ring, 1, 1514, DONE, 0);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 7), 2);
    assert_eq!(out.iter().map(|b| (b.len(), b.port())).collect::<Vec<_>>(), [(60, 7), (1514, 7)]);
    assert_eq!(out[0].data_iova(), addr0, "the buffer the device wrote into");
    assert_ne!(rx.ring.desc(0).buffer(), addr0, "descriptor 0 re-armed with a fresh buffer");
    assert_eq!((bell.last.get(), bell.writes.get()), (Some((RDT, 1)), 1));
    // Nothing new: no tail write.
    assert_eq!(rx.burst(&bell, &mut out, 32, 7), 0);
    assert_eq!(bell.writes.get(), 1);
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn bad_descriptors_are_counted_and_their_buffers_reused() {
    let (mut rx, pool, sw, own) = running_with(32, 64, RxOffloads::NONE);
    let bell = Recorder::default();
    let addrs: Vec<u64> = (0..5).map(|i| rx.ring.desc(i).buffer()).collect();
    device_writes_rx(&rx.ring, 0, 5000, DONE, 0); // longer than the buffer
    device_writes_rx(&rx.ring, 1, 60, DONE, RXD_ERR_CE); // CRC error
    device_writes_rx(&rx.ring, 2, 2048, MORE, 0); // a frame over three buffers, no scatter
    device_writes_rx(&rx.ring, 3, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 4, 100, DONE, 0);
    device_writes_rx(&rx.ring, 5, 64, DONE, 0);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1);
    assert_eq!(out[0].len(), 64);
    assert_eq!(dropped_nombuf(&sw), (3, 0), "oversize, CRC error, one spanning frame");
    assert_eq!(own.get(RxCount::ChainErrors), 1, "the spanning frame, once");
    for (i, a) in addrs.iter().enumerate() {
        assert_eq!(rx.ring.desc(i as u16).buffer(), *a, "descriptor {i} keeps its buffer");
        assert_eq!(rx.ring.desc(i as u16).status(), 0, "and its status is cleared");
    }
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_done_descriptor_not_handed_over_is_never_read() {
    let (mut rx, pool, _sw) = running(32, 64);
    let bell = Recorder::default();
    for i in 0..32 {
        device_writes_rx(&rx.ring, i, 60, DONE, 0);
    }
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 100, 0), 31, "descriptor 31 (RDT) is not the device's");
    assert_eq!(bell.last.get(), Some((RDT, 30)));
    // Descriptor 31 still says done, but it was never handed over: ignored.
    assert_eq!(rx.burst(&bell, &mut out, 100, 0), 0);
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn an_empty_pool_leaves_the_frame_in_the_ring() {
    let (mut rx, pool, sw) = running(32, 33);
    let bell = Recorder::default();
    for i in 0..3 {
        device_writes_rx(&rx.ring, i, 60, DONE, 0);
    }
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1, "one spare buffer");
    assert_eq!(dropped_nombuf(&sw), (0, 1));
    out.clear();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1, "the next frame once a buffer is back");
    assert_eq!(out[0].len(), 60);
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn with_scatter_a_frame_over_descriptors_is_one_chain() {
    let (mut rx, pool, sw, _) = running_with(32, 64, RxOffloads::SCATTER);
    let bell = Recorder::default();
    let addrs: Vec<u64> = (0..4).map(|i| rx.ring.desc(i).buffer()).collect();
    device_writes_rx(&rx.ring, 0, 60, DONE, 0);
    device_writes_rx(&rx.ring, 1, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 2, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 3, 904, DONE, 0);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 3), 2);
    assert_eq!((out[0].pkt_len(), out[0].nb_segs()), (60, 1));
    let p = &out[1];
    assert_eq!((p.pkt_len(), p.nb_segs(), p.port()), (5000, 3, 3));
    assert_eq!(seg_lens(p), [2048, 2048, 904]);
    let iovas: Vec<u64> = p.segments().map(|s| s.data_iova()).collect();
    assert_eq!(iovas, addrs[1..], "each segment is the buffer its descriptor held");
    assert_eq!((bell.last.get(), bell.writes.get()), (Some((RDT, 3)), 1));
    let s = sw.get();
    assert_eq!((s.ipackets, s.ibytes, s.ierrors), (2, 5060, 0));
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_chain_may_end_in_a_later_burst() {
    let (mut rx, pool, _sw, _) = running_with(32, 64, RxOffloads::SCATTER);
    let bell = Recorder::default();
    device_writes_rx(&rx.ring, 0, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 1, 2048, MORE, 0);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 0, "half a frame: nothing yet");
    assert_eq!(bell.last.get(), Some((RDT, 1)), "its descriptors are handed back at once");
    assert_eq!(rx.chain.nb_segs(), 2);
    device_writes_rx(&rx.ring, 2, 10, DONE, 0);
    device_writes_rx(&rx.ring, 3, 60, DONE, 0);
    assert_eq!(rx.burst(&bell, &mut out, 1, 0), 1, "max 1: the chain, then stop");
    assert_eq!((out[0].pkt_len(), out[0].nb_segs()), (4106, 3));
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1);
    assert_eq!(out[1].pkt_len(), 60);
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_chain_waits_for_buffers_without_losing_its_place() {
    // 32 buffers in the ring, one spare once the application holds two.
    let (mut rx, pool, sw, _) = running_with(32, 35, RxOffloads::SCATTER);
    let mut held = Vec::new();
    assert!(pool.alloc_bulk(&mut held, 2));
    let bell = Recorder::default();
    device_writes_rx(&rx.ring, 0, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 1, 2048, MORE, 0);
    device_writes_rx(&rx.ring, 2, 100, DONE, 0);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 0);
    assert_eq!((rx.next, rx.chain.nb_segs(), dropped_nombuf(&sw)), (1, 1, (0, 1)), "stopped at descriptor 1");
    // The application lets go of its buffers: the frame completes where it stopped.
    drop(held);
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1);
    assert_eq!(seg_lens(&out[0]), [2048, 2048, 100]);
    assert_eq!((rx.next, sw.get().ierrors), (3, 0));
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn hostile_write_backs_cost_their_frame_never_a_buffer() {
    for (what, writes) in [
        // EOP never comes: the frame outgrows the device's longest (16384 bytes = 8 buffers).
        ("no EOP", vec![(2048, MORE, 0); 10]),
        ("a zero-length middle segment", vec![(2048, MORE, 0), (0, MORE, 0), (2048, MORE, 0), (10, DONE, 0)]),
        ("a length past the buffer", vec![(2048, MORE, 0), (2049, MORE, 0), (10, DONE, 0)]),
        ("a last segment past the buffer", vec![(2048, MORE, 0), (4000, DONE, 0)]),
        ("an error at the end", vec![(2048, MORE, 0), (2048, MORE, 0), (10, DONE, RXD_ERR_CE)]),
        ("a zero-length end", vec![(2048, MORE, 0), (0, DONE, 0)]),
    ] {
        let (mut rx, pool, sw, own) = running_with(32, 64, RxOffloads::SCATTER);
        let bell = Recorder::default();
        let k = writes.len() as u16;
        for (i, &(len, status, errors)) in writes.iter().enumerate() {
            device_writes_rx(&rx.ring, i as u16, len, status, errors);
        }
        // Then a good frame: the queue is still in step with the device.
        device_writes_rx(&rx.ring, k, 60, DONE, 0);
        let mut out = Vec::new();
        let got = rx.burst(&bell, &mut out, 32, 0);
        let no_eop = what == "no EOP";
        if no_eop {
            // The good frame's EOP ends the frame being dropped: it goes with it.
            assert_eq!(got, 0, "{what}");
        } else {
            assert_eq!(got, 1, "{what}");
            assert_eq!((out[0].pkt_len(), out[0].nb_segs()), (60, 1), "{what}");
        }
        assert_eq!(rx.next, k + 1, "{what}: every descriptor read");
        assert_eq!((sw.get().ierrors, own.get(RxCount::ChainErrors)), (1, 1), "{what}: counted once");
        assert!(rx.chain.is_empty(), "{what}");
        let good = usize::from(!no_eop);
        assert_eq!(pool.mempool().in_use(), 32 + good, "{what}: the ring's buffers and the good frame's");
        drop(out);
        rx.release();
        assert!(pool.mempool().is_full(), "{what}");
    }
}

#[test]
fn offload_metadata_follows_the_last_descriptor() {
    let (mut rx, pool, _sw, own) =
        running_with(32, 64, RxOffloads::SCATTER | RxOffloads::VLAN_STRIP | RxOffloads::CHECKSUM);
    let bell = Recorder::default();
    let csum = RXD_STAT_IPCS | RXD_STAT_TCPCS;
    device_writes_rx_vlan(&rx.ring, 0, 60, DONE | csum | RXD_STAT_VP, 0, 0x2064);
    device_writes_rx(&rx.ring, 1, 60, DONE | csum, RXD_ERR_IPE);
    device_writes_rx(&rx.ring, 2, 2048, MORE, 0);
    device_writes_rx_vlan(&rx.ring, 3, 500, DONE | csum | RXD_STAT_VP, RXD_ERR_TCPE, 0x0005);
    device_writes_rx(&rx.ring, 4, 60, DONE | RXD_STAT_IXSM | csum, RXD_ERR_TCPE);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 4);
    let got: Vec<_> = out
        .iter()
        .map(|p| {
            (
                p.ol_flags().rx_ip_cksum(),
                p.ol_flags().rx_l4_cksum(),
                p.ol_flags().contains(OlFlags::RX_VLAN_STRIPPED),
                p.vlan_tci(),
            )
        })
        .collect();
    use CksumStatus::*;
    assert_eq!(
        got,
        [(Good, Good, true, 0x2064), (Bad, Good, false, 0), (Good, Bad, true, 5), (Unknown, Unknown, false, 0)]
    );
    assert_eq!(out[2].nb_segs(), 2, "the chain takes its last descriptor's metadata");
    assert_eq!(out[0].packet_type(), (PacketType::L2_ETHER | PacketType::L3_IPV4_EXT_UNKNOWN).0);
    assert_eq!(out[3].packet_type(), 0);
    assert_eq!((own.get(RxCount::IpCksumBad), own.get(RxCount::L4CksumBad)), (1, 1), "delivered, and counted");
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn without_offloads_the_descriptor_says_nothing_of_the_packet() {
    let (mut rx, pool, _sw) = running(32, 64);
    let bell = Recorder::default();
    device_writes_rx_vlan(&rx.ring, 0, 60, DONE | RXD_STAT_VP | RXD_STAT_IPCS, RXD_ERR_IPE, 0x2064);
    let mut out = Vec::new();
    assert_eq!(rx.burst(&bell, &mut out, 32, 0), 1);
    assert_eq!((out[0].ol_flags(), out[0].vlan_tci(), out[0].packet_type()), (OlFlags::empty(), 0, 0));
    drop(out);
    rx.release();
    assert!(pool.mempool().is_full());
}

proptest! {
    #[test]
    fn whatever_the_device_writes_the_queue_stays_sound(
        rounds in vec(vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..40), 1..6),
        max in 1usize..64,
        offloads in prop_oneof![
            Just(RxOffloads::NONE),
            Just(RxOffloads::SCATTER),
            Just(RxOffloads::SCATTER | RxOffloads::VLAN_STRIP | RxOffloads::CHECKSUM),
        ],
    ) {
        let (mut rx, pool, _sw, _) = running_with(32, 80, offloads);
        let bell = Recorder::default();
        let mut out = Vec::new();
        for writes in rounds {
            // The device writes back descriptors in order from the next one, whatever it puts there.
            for (k, (length, status, errors)) in writes.into_iter().enumerate().take(31) {
                let i = wrap_add(rx.next, k as u16, 32);
                device_writes_rx(&rx.ring, i, length, status | RXD_STAT_DD, errors);
            }
            let before = out.len();
            let got = rx.burst(&bell, &mut out, max, 0);
            prop_assert!(got <= max && out.len() == before + got);
            for b in &out[before..] {
                let segs = seg_lens(b);
                prop_assert!(segs.iter().all(|&l| l > 0 && l <= 2048), "{:?}", segs);
                prop_assert_eq!(segs.iter().sum::<usize>(), b.pkt_len() as usize);
                prop_assert_eq!(segs.len(), usize::from(b.nb_segs()));
                prop_assert!(b.pkt_len() as usize <= RX_MAX_FRAME);
                if !offloads.contains(RxOffloads::SCATTER) {
                    prop_assert_eq!(b.nb_segs(), 1);
                }
            }
            if let Some((reg, tail)) = bell.last.get() {
                prop_assert_eq!(reg, RDT);
                prop_assert!(tail < 32);
            }
            out.clear();
        }
        rx.release();
        prop_assert!(pool.mempool().is_full());
    }

    #[test]
    fn chains_of_random_segments_arrive_whole_or_are_counted(
        frames in vec(vec(0u16..2200, 1..12), 1..8),
    ) {
        // Each frame: its segments' lengths, EOP on the last. A frame is good when every
        // length is 1..=2048 and the frame is at most RX_MAX_FRAME.
        let (mut rx, pool, sw, own) = running_with(128, 256, RxOffloads::SCATTER);
        let bell = Recorder::default();
        let mut i = 0u16;
        let mut want = Vec::new();
        let (mut dropped, mut chains_dropped) = (0u64, 0u64);
        for f in &frames {
            for (k, &len) in f.iter().enumerate() {
                let status = if k + 1 == f.len() { DONE } else { MORE };
                device_writes_rx(&rx.ring, i, len, status, 0);
                i += 1;
            }
            let good = f.iter().all(|&l| l > 0 && l <= 2048)
                && f.iter().map(|&l| usize::from(l)).sum::<usize>() <= RX_MAX_FRAME;
            if good {
                want.push(f.iter().map(|&l| usize::from(l)).collect::<Vec<_>>());
            } else {
                dropped += 1;
                chains_dropped += u64::from(f.len() > 1);
            }
        }
        let mut out = Vec::new();
        let got = rx.burst(&bell, &mut out, 64, 0);
        prop_assert_eq!(got, want.len());
        prop_assert_eq!(rx.next, i, "every descriptor read");
        let lens: Vec<Vec<usize>> = out.iter().map(seg_lens).collect();
        prop_assert_eq!(lens, want);
        prop_assert_eq!((sw.get().ierrors, own.get(RxCount::ChainErrors)), (dropped, chains_dropped));
        drop(out);
        rx.release();
        prop_assert!(pool.mempool().is_full());
    }

    #[test]
    fn no_descriptor_yields_a_length_outside_the_buffer(
        status: u8,
        errors: u8,
        length: u16,
        room in 0usize..20000,
    ) {
        match classify(status, errors, length, room) {
            RxVerdict::Packet(len) => {
                prop_assert!(len > 0 && len <= room);
                prop_assert!(status & RXD_STAT_EOP != 0 && errors & RXD_ERR_FRAME == 0);
            }
            RxVerdict::Partial => prop_assert!(status & RXD_STAT_EOP == 0),
            RxVerdict::Bad => prop_assert!(status & RXD_STAT_EOP != 0),
        }
    }
}
