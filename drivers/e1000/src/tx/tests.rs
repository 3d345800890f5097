//! Tests of the TX path, on the simulated ring (`crate::testing`).

use super::*;

use burst_ethdev::SwStats;
use burst_mem::testing::chain_from;
use burst_mem::TxOffload;
use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::regs::{TXC_TUCMD_IP, TXC_TUCMD_TCP, TXD_CMD_DEXT, TXD_DTYP_CONTEXT, TXD_DTYP_DATA};
use crate::testing::{device_done_tx, memory, pool, ring, Recorder, TxWire};

fn packets(pool: &PacketPool, n: usize, len: usize) -> Vec<PacketBuf> {
    let mut v = Vec::new();
    assert!(pool.alloc_bulk(&mut v, n));
    for b in &mut v {
        b.set_len(len);
    }
    v
}

const ALL: TxOffloads = TxOffloads::all();

/// A queue of `n` descriptors with `offloads`, its doorbell and counters.
fn queue(mem: &burst_mem::Memory, n: u16, offloads: TxOffloads) -> (TxRing, Recorder, SwStats) {
    let sw = SwStats::new(0, 1);
    (TxRing::new(ring(mem, n), offloads, sw.tx(0)), Recorder::default(), sw)
}

/// An Ethernet/IPv4/UDP frame with `payload` bytes (its checksums right).
fn udp_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    let data: Vec<u8> = (0..payload).map(|k| (k * 7) as u8).collect();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000)
        .write(&mut f, &data)
        .unwrap();
    f
}

/// An Ethernet/IPv4/TCP frame (sequence 7000, PSH) with `payload` bytes.
fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    let data: Vec<u8> = (0..payload).map(|k| (k * 13 + k / 256) as u8).collect();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1000, 2000, 7000, 65535)
        .psh()
        .write(&mut f, &data)
        .unwrap();
    f
}

/// `frame` as a packet of `lens`-byte segments asking for `flags`, its checksum fields
/// zeroed first (so only the offload can make them right), then prepared for the device.
fn offload_packet(
    tx: &TxRing,
    pool: &PacketPool,
    mut frame: Vec<u8>,
    lens: &[usize],
    flags: OlFlags,
    t: TxOffload,
) -> PacketBuf {
    frame[24..26].fill(0);
    let l4_sum = if frame[23] == 6 { 50 } else { 40 };
    frame[l4_sum..l4_sum + 2].fill(0);
    let mut p = chain_from(pool, &frame, lens);
    p.set_ol_flags(flags);
    p.set_tx_offload(t);
    tx.prepare(std::slice::from_mut(&mut p)).unwrap();
    p
}

/// Checks a frame's IPv4 header checksum and its TCP or UDP checksum; returns its headers.
fn verified(f: &[u8]) -> PacketHeaders<'_> {
    let h = PacketHeaders::from_ethernet_slice(f).unwrap();
    let Some(NetHeaders::Ipv4(ip, _)) = &h.net else { panic!("not IPv4: {h:?}") };
    assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IPv4 header checksum");
    match &h.transport {
        Some(TransportHeader::Tcp(tcp)) => {
            assert_eq!(tcp.checksum, tcp.calc_checksum_ipv4(ip, h.payload.slice()).unwrap(), "TCP checksum");
        }
        Some(TransportHeader::Udp(udp)) => {
            assert_eq!(udp.checksum, udp.calc_checksum_ipv4(ip, h.payload.slice()).unwrap(), "UDP checksum");
        }
        other => panic!("no TCP or UDP: {other:?}"),
    }
    h
}

#[test]
fn a_burst_takes_what_fits_and_rings_once() {
    let mem = memory();
    let pool = pool(&mem, 128);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::NONE);
    let mut bufs = packets(&pool, 40, 60);
    let first = bufs[0].data_iova();
    assert_eq!(tx.burst(&bell, &mut bufs), 31, "n - 1 descriptors in flight at most");
    assert_eq!(bufs.len(), 9, "the caller keeps the rest");
    assert_eq!((bell.last.get(), bell.writes.get()), (Some((TDT, 31)), 1));
    assert_eq!(tx.ring.desc(0).buffer(), first);
    assert_eq!(tx.ring.desc(0).length(), 60);
    assert_eq!(tx.ring.desc(0).cmd(), CMD);
    assert_eq!(tx.burst(&bell, &mut bufs), 0, "full, and nothing done yet");
    assert_eq!(bell.writes.get(), 1);
    drop(bufs);
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn completed_batches_are_reclaimed_by_their_last_descriptor() {
    let mem = memory();
    let pool = pool(&mem, 128);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::NONE);
    assert_eq!(tx.batch, 8);
    let mut bufs = packets(&pool, 31, 100);
    assert_eq!(tx.burst(&bell, &mut bufs), 31);
    // The device finishes 0..=6: the first batch's last (7) is not done, nothing is freed.
    for i in 0..7 {
        device_done_tx(&tx.ring, i);
    }
    tx.reclaim();
    assert_eq!((tx.in_flight(), pool.mempool().in_use()), (31, 31));
    // 7..=20 done too: batches 0..8 and 8..16 go back.
    for i in 7..21 {
        device_done_tx(&tx.ring, i);
    }
    tx.reclaim();
    assert_eq!((tx.in_flight(), pool.mempool().in_use()), (15, 15));
    let mut more = packets(&pool, 20, 100);
    assert_eq!(tx.burst(&bell, &mut more), 16);
    assert_eq!(bell.last.get(), Some((TDT, 15)), "wrapped around");
    drop(more);
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn empty_or_oversized_buffers_are_taken_and_counted() {
    let mem = memory();
    let pool = pool(&mem, 16);
    let (mut tx, bell, sw) = queue(&mem, 32, TxOffloads::NONE);
    let mut bufs = packets(&pool, 3, 60);
    bufs[1].set_len(0);
    assert_eq!(tx.burst(&bell, &mut bufs), 3);
    assert_eq!(sw.get().oerrors, 1);
    assert_eq!((tx.in_flight(), bell.last.get()), (2, Some((TDT, 2))));
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_chain_takes_a_descriptor_per_segment_eop_on_its_last() {
    let mem = memory();
    let pool = pool(&mem, 32);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::MULTI_SEGS);
    let bytes: Vec<u8> = (0..5000u32).map(|k| (k * 31) as u8).collect();
    // 2000, an empty segment (no descriptor), 2000, 1000.
    let p = chain_from(&pool, &bytes, &[2000, 0, 2000]);
    assert_eq!((p.nb_segs(), p.pkt_len()), (4, 5000));
    let iovas: Vec<u64> = p.segments().filter(|s| !s.is_empty()).map(|s| s.data_iova()).collect();
    let mut bufs = vec![p];
    assert_eq!(tx.burst(&bell, &mut bufs), 1);
    assert_eq!(bell.last.get(), Some((TDT, 3)), "three descriptors");
    let descs: Vec<(u64, u16, u8)> =
        (0..3).map(|i| (tx.ring.desc(i).buffer(), tx.ring.desc(i).length(), tx.ring.desc(i).cmd())).collect();
    let mid = TXD_CMD_IFCS | TXD_CMD_RS;
    assert_eq!(descs, [(iovas[0], 2000, mid), (iovas[1], 2000, mid), (iovas[2], 1000, mid | TXD_CMD_EOP)]);
    assert!(tx.bufs[0].is_none() && tx.bufs[1].is_none() && tx.bufs[2].is_some(), "the packet sits at its last");
    let mut wire = TxWire::default();
    assert_eq!(wire.send(&tx.ring, 3), [bytes], "one frame, every byte in order");
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn a_chain_is_freed_only_when_its_last_descriptor_is_done() {
    let mem = memory();
    let pool = pool(&mem, 64);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::MULTI_SEGS);
    // 6 one-segment packets (descriptors 0..=5), a chain of 4 (6..=9), 6 more (10..=15).
    let mut bufs = packets(&pool, 6, 60);
    bufs.push(chain_from(&pool, &[7u8; 400], &[100, 100, 100]));
    bufs.extend(packets(&pool, 6, 60));
    assert_eq!(tx.burst(&bell, &mut bufs), 13);
    assert_eq!(tx.in_flight(), 16);
    for i in 0..8 {
        device_done_tx(&tx.ring, i);
    }
    tx.reclaim();
    // The first batch (0..8) holds six packets and half the chain: the chain stays.
    assert_eq!(pool.mempool().in_use(), 4 + 6);
    for i in 8..16 {
        device_done_tx(&tx.ring, i);
    }
    tx.reclaim();
    assert_eq!((tx.in_flight(), pool.mempool().in_use()), (0, 0));
    tx.release();
}

#[test]
fn a_chain_that_does_not_fit_waits_and_the_order_stays() {
    let mem = memory();
    let pool = pool(&mem, 128);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::MULTI_SEGS);
    // 29 fit; then a chain of 4 with 2 descriptors left: it and the 2 after it stay.
    let mut bufs = packets(&pool, 29, 60);
    bufs.push(chain_from(&pool, &[1u8; 400], &[100, 100, 100]));
    bufs.extend(packets(&pool, 2, 61));
    let order: Vec<u64> = bufs.iter().map(PacketBuf::data_iova).collect();
    assert_eq!(tx.burst(&bell, &mut bufs), 29);
    assert_eq!(bufs.iter().map(PacketBuf::data_iova).collect::<Vec<_>>(), order[29..]);
    drop(bufs);
    tx.release();
    // A chain of 4 first, then 30 packets: 31 descriptors take the chain and 27 more; the
    // last 3 go back from the end, in order.
    let mut bufs = vec![chain_from(&pool, &[1u8; 400], &[100, 100, 100])];
    bufs.extend(packets(&pool, 30, 60));
    let order: Vec<u64> = bufs.iter().map(PacketBuf::data_iova).collect();
    assert_eq!(tx.burst(&bell, &mut bufs), 28);
    assert_eq!(bufs.iter().map(PacketBuf::data_iova).collect::<Vec<_>>(), order[28..]);
    assert_eq!(tx.in_flight(), 31);
    drop(bufs);
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn what_the_device_cannot_send_is_dropped_and_counted() {
    let mem = memory();
    let pool = pool(&mem, 128);
    let (mut tx, bell, sw) = queue(&mem, 32, ALL);
    let mut bufs = vec![
        // More segments than the ring has descriptors.
        chain_from(&pool, &[1u8; 40], &[1; 39]),
        // Longer than one frame may be, unsegmented.
        chain_from(&pool, &vec![2u8; TXD_MAX_LEN + 1], &[2048; 8]),
        // A checksum request whose offsets the context cannot hold.
        {
            let mut p = chain_from(&pool, &udp_frame(300), &[]);
            p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_UDP_CKSUM);
            p.set_tx_offload(TxOffload { l2_len: 14, l3_len: 250, ..TxOffload::default() });
            p
        },
    ];
    bufs.extend(packets(&pool, 1, 60));
    assert_eq!(tx.burst(&bell, &mut bufs), 4);
    assert_eq!((sw.get().oerrors, tx.in_flight()), (3, 1));
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn prepare_refuses_a_chain_longer_than_the_ring_which_tx_would_drop() {
    // The port's nb_seg_max is 255 whatever the ring's size; a 32-descriptor ring holds 31.
    let mem = memory();
    let pool = pool(&mem, 128);
    let (tx, _bell, _sw) = queue(&mem, 32, ALL);
    let mut p = chain_from(&pool, &[1u8; 40], &[1; 39]);
    let e = tx.prepare(std::slice::from_mut(&mut p)).unwrap_err();
    assert_eq!(e.fault, limit("segments (a descriptor each)", 40, 1, 31));
    drop(p);
    // With a context to write first, one descriptor fewer is left for the segments.
    let mut p = chain_from(&pool, &udp_frame(300), &[42; 8]);
    p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_UDP_CKSUM);
    p.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() });
    assert!(tx.prepare(std::slice::from_mut(&mut p)).is_ok(), "8 segments and a context fit");
    drop(p);
    let mut p = chain_from(&pool, &udp_frame(300), &[10; 31]);
    p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_UDP_CKSUM);
    p.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() });
    let e = tx.prepare(std::slice::from_mut(&mut p)).unwrap_err();
    assert_eq!(e.fault, limit("segments (a descriptor each)", 32, 1, 30));
    drop(p);
    assert!(pool.mempool().is_full());
}

#[test]
fn checksum_requests_share_a_context_until_it_changes() {
    let mem = memory();
    let pool = pool(&mem, 32);
    let (mut tx, bell, _sw) = queue(&mem, 32, ALL);
    let ipv4 = TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() };
    let udp = OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM;
    let tcp = OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_TCP_CKSUM;
    let mut bufs = vec![
        offload_packet(&tx, &pool, udp_frame(100), &[], udp, ipv4),
        offload_packet(&tx, &pool, udp_frame(3000), &[1000, 1000], udp, ipv4),
        offload_packet(&tx, &pool, tcp_frame(200), &[60], tcp, ipv4),
    ];
    assert_eq!(tx.burst(&bell, &mut bufs), 3);
    // Context, UDP data; UDP data x3 (same context); context, TCP data x2.
    assert_eq!(bell.last.get(), Some((TDT, 8)));
    let (ctx, dtyp) = tx.ring.desc(0).context();
    assert_eq!(dtyp, TXD_DTYP_CONTEXT);
    assert_eq!(
        (ctx.ipcss, ctx.ipcso, ctx.ipcse, ctx.tucss, ctx.tucso, ctx.tucse),
        (14, 24, 33, 34, 40, 0),
        "SDM 3.3.6: IP header 14..=33, its checksum at 24; UDP from 34, its checksum at 40"
    );
    assert_eq!(ctx.tucmd & !(TXD_CMD_DEXT | TXD_CMD_RS), TXC_TUCMD_IP);
    let (dtyp, popts, _) = tx.ring.desc(1).data_fields();
    assert_eq!((dtyp, popts), (TXD_DTYP_DATA, TXD_POPTS_IXSM | TXD_POPTS_TXSM));
    assert_eq!(tx.ring.desc(5).context().0.tucmd & TXC_TUCMD_TCP, TXC_TUCMD_TCP, "a new context for TCP");
    assert_eq!(tx.ring.desc(5).context().0.tucso, 50);
    let frames = TxWire::default().send(&tx.ring, 8);
    assert_eq!(frames.len(), 3);
    for (f, want) in frames.iter().zip([udp_frame(100), udp_frame(3000), tcp_frame(200)]) {
        verified(f);
        assert_eq!(f, &want, "the device's checksums are the ones the frame had");
    }
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn tso_cuts_a_chained_payload_into_mss_frames() {
    let mem = memory();
    let pool = pool(&mem, 32);
    let (mut tx, bell, _sw) = queue(&mem, 64, ALL);
    let frame = tcp_frame(5000);
    let t = TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 1448, ..TxOffload::default() };
    let flags = OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_TCP_SEG;
    let mut bufs = vec![offload_packet(&tx, &pool, frame.clone(), &[2048, 2048], flags, t)];
    assert_eq!(tx.burst(&bell, &mut bufs), 1);
    let (ctx, _) = tx.ring.desc(0).context();
    assert_eq!((ctx.paylen, ctx.hdrlen, ctx.mss), (5000, 54, 1448));
    assert_eq!(ctx.tucmd & (TXD_CMD_TSE | TXC_TUCMD_TCP | TXC_TUCMD_IP), TXD_CMD_TSE | TXC_TUCMD_TCP | TXC_TUCMD_IP);
    for i in 1..4 {
        assert_ne!(tx.ring.desc(i).cmd() & TXD_CMD_TSE, 0, "every data descriptor has TSE");
    }
    let frames = TxWire::default().send(&tx.ring, 4);
    assert_eq!(frames.iter().map(Vec::len).collect::<Vec<_>>(), [1502, 1502, 1502, 54 + 656]);
    let mut payload = Vec::new();
    for (k, f) in frames.iter().enumerate() {
        let h = verified(f);
        let Some(NetHeaders::Ipv4(ip, _)) = &h.net else { unreachable!() };
        let Some(TransportHeader::Tcp(tcp)) = &h.transport else { unreachable!() };
        assert_eq!(tcp.sequence_number, 7000 + 1448 * k as u32);
        assert_eq!(tcp.psh, k == 3, "PSH on the last segment only");
        assert_eq!(usize::from(ip.total_len), f.len() - 14);
        payload.extend_from_slice(h.payload.slice());
    }
    assert_eq!(payload, frame[54..], "the payload, byte for byte");
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn vlan_tags_ride_with_the_packet() {
    let mem = memory();
    let pool = pool(&mem, 32);
    let (mut tx, bell, _sw) = queue(&mem, 32, ALL);
    let plain = udp_frame(50);
    let mut tagged = chain_from(&pool, &plain, &[]);
    tagged.set_ol_flags(OlFlags::TX_VLAN);
    tagged.set_vlan_tci(0x2064);
    let ipv4 = TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() };
    let udp = OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM;
    let mut both = offload_packet(&tx, &pool, plain.clone(), &[], udp, ipv4);
    both.set_ol_flags(both.ol_flags() | OlFlags::TX_VLAN);
    both.set_vlan_tci(5);
    let mut bufs = vec![tagged, both];
    assert_eq!(tx.burst(&bell, &mut bufs), 2);
    assert_eq!(tx.ring.desc(0).cmd(), CMD | TXD_CMD_VLE, "a legacy descriptor with VLE");
    assert_eq!(tx.ring.desc(0).data_fields().2, 0x2064);
    assert_eq!(tx.ring.desc(2).data_fields().2, 5, "and a data descriptor after its context");
    let frames = TxWire::default().send(&tx.ring, 3);
    for (f, tci) in frames.iter().zip([0x2064u16, 5]) {
        assert_eq!(f[12..16], [0x81, 0x00, (tci >> 8) as u8, tci as u8]);
        let mut untagged = f.clone();
        untagged.drain(12..16);
        assert_eq!(untagged, plain);
    }
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn without_offloads_on_the_queue_flags_are_not_read() {
    let mem = memory();
    let pool = pool(&mem, 8);
    let (mut tx, bell, _sw) = queue(&mem, 32, TxOffloads::NONE);
    let mut p = chain_from(&pool, &udp_frame(20), &[]);
    p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_VLAN);
    let mut bufs = vec![p];
    assert_eq!(tx.burst(&bell, &mut bufs), 1);
    assert_eq!((tx.ring.desc(0).cmd(), bell.last.get()), (CMD, Some((TDT, 1))));
    tx.release();
    assert!(pool.mempool().is_full());
}

#[test]
fn prepare_names_the_limit_and_leaves_the_packet_alone() {
    let mem = memory();
    let pool = pool(&mem, 8);
    let (tx, _bell, _sw) = queue(&mem, 32, ALL);
    let mut p = chain_from(&pool, &tcp_frame(100), &[]);
    p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
    p.set_tx_offload(TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 16240, ..TxOffload::default() });
    let before = p.data().to_vec();
    let e = tx.prepare(std::slice::from_mut(&mut p)).unwrap_err();
    assert_eq!(
        e.fault,
        TxFault::DeviceLimit {
            what: "segment frame length (headers + tso_segsz)",
            value: 16294,
            min: 1,
            max: TXD_MAX_LEN
        }
    );
    assert!(e.to_string().contains("make it fit"), "{e}");
    assert_eq!(p.data(), before, "nothing fixed up");
    let t = TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 0, ..TxOffload::default() };
    p.set_tx_offload(t);
    assert_eq!(plan(&p, true), Err(TxFault::NoSegmentSize));
    p.set_tx_offload(TxOffload { tso_segsz: 100, ..t });
    p.set_ol_flags(OlFlags::TX_TCP_SEG);
    assert_eq!(plan(&p, true), Err(TxFault::NoL3Type));
    p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_SCTP_CKSUM);
    assert!(matches!(plan(&p, true), Err(TxFault::OffloadOff { .. })));
    assert!(plan(&p, false).is_ok(), "flags not read without offloads");
}

proptest! {
    #[test]
    fn every_packet_leaves_whole_and_in_order_or_is_counted(
        pkts in vec((vec(0usize..2048, 1..6), 0u8..4), 1..60),
        device_steps in vec(0u16..40, 1..40),
        ring_len in prop_oneof![Just(32u16), Just(64)],
    ) {
        let mem = memory();
        let pool = pool(&mem, 1024);
        let (mut tx, bell, sw) = queue(&mem, ring_len, ALL);
        let mut wire = TxWire::default();
        let mut want = Vec::new();
        let mut queued = Vec::new();
        let mut bad = 0u64;
        for (k, (lens, kind)) in pkts.into_iter().enumerate() {
            let frame = if kind == 3 { tcp_frame(lens.iter().sum::<usize>() + 1) } else { udp_frame(lens.iter().sum::<usize>()) };
            let mut p = chain_from(&pool, &frame, &lens);
            let ipv4 = TxOffload { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 1000, ..TxOffload::default() };
            match kind {
                1 => p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_IP_CKSUM | OlFlags::TX_UDP_CKSUM),
                2 => {
                    p.set_ol_flags(OlFlags::TX_VLAN);
                    p.set_vlan_tci(k as u16);
                }
                3 => p.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG),
                _ => {}
            }
            p.set_tx_offload(ipv4);
            if plan(&p, true).is_err() {
                // The device cannot send it: the burst drops it and counts it.
                bad += 1;
            } else if tx.prepare(std::slice::from_mut(&mut p)).is_ok() {
                want.push((frame, kind, k as u16));
            } else {
                // Headers split over segments: the application's to fix, not sent.
                continue;
            }
            queued.push(p);
        }
        let mut frames = Vec::new();
        let mut steps = device_steps.into_iter().cycle();
        let mut rounds = 0;
        while !queued.is_empty() {
            tx.burst(&bell, &mut queued);
            // The device sends some of what is posted.
            let tail = bell.last.get().map_or(0, |(_, t)| t as u16);
            let mut n = steps.next().unwrap_or(1).max(1);
            while wire.head != tail && n > 0 {
                frames.extend(wire.send(&tx.ring, wrap_add(wire.head, 1, ring_len)));
                n -= 1;
            }
            rounds += 1;
            prop_assert!(rounds < 10_000, "no progress");
        }
        let tail = bell.last.get().map_or(0, |(_, t)| t as u16);
        frames.extend(wire.send(&tx.ring, tail));
        prop_assert_eq!(sw.get().oerrors, bad);
        // Each packet's frames: TSO ones cut at 1000 bytes of payload.
        let mut got = frames.into_iter();
        for (frame, kind, k) in want {
            if kind == 3 {
                let mut payload = Vec::new();
                while payload.len() < frame.len() - 54 {
                    let f = got.next().expect("a TSO segment");
                    verified(&f);
                    payload.extend_from_slice(&f[54..]);
                }
                prop_assert_eq!(&payload[..], &frame[54..]);
            } else {
                let mut f = got.next().expect("a frame per packet");
                if kind == 2 {
                    prop_assert_eq!(&f[12..16], &[0x81, 0, (k >> 8) as u8, k as u8]);
                    f.drain(12..16);
                }
                prop_assert_eq!(f, frame);
            }
        }
        prop_assert!(got.next().is_none());
        tx.release();
        prop_assert!(pool.mempool().is_full());
    }
}
