//! virtio-user's chains and offloads against DPDK's vhost-user back-end (Debian's `dpdk` 22.11):
//! testpmd forwards (`io`) every frame it receives from our port back to it, so each frame
//! crosses the back-end twice, once each way.
//!
//! - Chains: frames of up to 9000 bytes sent as chains of small segments (`MULTI_SEGS`: descriptor
//!   chains, indirect past four descriptors) come back over several mergeable buffers, assembled
//!   into chains (`SCATTER`), byte-exact.
//! - Checksum and TSO: with `legacy-ol-flags=1` the back-end turns our header's requests into the
//!   mbuf's TX flags (`NEEDS_CSUM` into `TX_TCP_CKSUM`/`TX_UDP_CKSUM`, a TCPV4 `gso_type` into
//!   `TX_TCP_SEG` with our `gso_size`), and testpmd's `io` engine hands those to the back-end's
//!   enqueue, which writes them into the header in front of what we receive. So a TCP packet of
//!   60 KiB we send with `TX_TCP_SEG` and an MSS of 1000 comes back whole as `RX_LRO` with
//!   `tso_segsz` 1000, only if the back-end read our GSO fields and we read its; a checksum
//!   request comes back as a partial checksum (`RX_L4_CKSUM_NONE`) which, finished over the
//!   received bytes, is the packet's correct checksum. The back-end does not segment by itself
//!   (DPDK leaves that to the NIC or the guest behind it).
//!
//! **Needs root and hugepages**, as `vhost_testpmd.rs`.

#[allow(dead_code, reason = "vhost_testpmd.rs uses the rest of the shared module")]
mod common;

use std::time::{Duration, Instant};

use burst::ethdev::{RxOffloads, TxOffloads};
use burst::mem::{CksumStatus, OlFlags, TxOffload};
use burst::{EalOptions, PacketBuf, PacketPool, PortConf, Runtime};
use common::{setup, wait_link, Testpmd, TestpmdConf, SERIAL};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

/// A packet of `bytes` from `pool`, in segments of at most `seg` bytes.
fn chain_of(pool: &PacketPool, bytes: &[u8], seg: usize) -> PacketBuf {
    let mut parts = bytes.chunks(seg).map(|c| {
        let mut b = pool.alloc().expect("a free buffer");
        assert!(b.set_data(c));
        b
    });
    let mut head = parts.next().expect("a non-empty packet");
    for tail in parts {
        head.chain(tail).map_err(|(_, e)| e).expect("chaining a segment");
    }
    head
}

/// The bytes of `pkt`, across its segments.
fn bytes_of(pkt: &PacketBuf) -> Vec<u8> {
    pkt.segments().flat_map(|s| s.data().to_vec()).collect()
}

/// A runtime with virtio_user0 on `sock`, configured with `rx`/`tx` offloads and started; the
/// pool of 4095 buffers (2 KiB data room) fills its RX ring.
fn port_up(s: &common::Setup, prefix: &str, rx: RxOffloads, tx: TxOffloads) -> (Runtime, PacketPool) {
    let opts = EalOptions::new()
        .no_pci()
        .lcores("0")
        .huge_dir(&s.mount.0)
        .file_prefix(prefix)
        .single_file_segments()
        .vdev(&format!("virtio_user0,path={},queue_size=256", s.sock.display()));
    let mut rt = Runtime::init(opts).expect("runtime with virtio_user0");
    let pool = rt.pktmbuf_pool("mbufs", 4095).unwrap();
    {
        let port = rt.port_mut(0).unwrap();
        port.configure(&PortConf { rx_offloads: rx, tx_offloads: tx, ..PortConf::queues(1, 1) }).unwrap();
        port.rx_queue_setup(0, 256, &pool).unwrap();
        port.tx_queue_setup(0, 256).unwrap();
        port.start().unwrap();
    }
    wait_link(&rt, true);
    (rt, pool)
}

/// Sends `pkts` (after `tx_prepare`) and receives as many packets back.
fn round_trip(rt: &Runtime, mut pkts: Vec<PacketBuf>) -> Vec<PacketBuf> {
    let n = pkts.len();
    let port = rt.port(0).unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    let mut rx = port.rx_queue(0).unwrap();
    tx.tx_prepare(&mut pkts).expect("tx_prepare");
    let mut got = Vec::new();
    let t0 = Instant::now();
    while got.len() < n {
        if !pkts.is_empty() {
            tx.tx_burst(&mut pkts);
        }
        rx.rx_burst(&mut got, 32);
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{} of {n} packets back in 10 s ({} not sent); stats {:?}",
            got.len(),
            pkts.len(),
            port.stats()
        );
    }
    got
}

/// A frame of `len` bytes with a local experimental ethertype and `seq` in front.
fn raw_frame(len: usize, seq: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|k| (k as u8).wrapping_mul(7).wrapping_add(seq)).collect();
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14] = seq;
    f
}

/// Needs root and hugepages, and dpdk-testpmd.
#[test]
fn root_chains_cross_both_ways_byte_exact() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("chains");
    let backend = Testpmd::start_with(&s.sock, &TestpmdConf { mode: "io", tag: "chains", queues: 1, vdev: "" });
    let (mut rt, pool) = port_up(&s, "vhostchains", RxOffloads::SCATTER, TxOffloads::MULTI_SEGS);
    // (length, segment size): one segment, a few, past the indirect threshold, 9000 bytes.
    let shapes = [(60, 2048), (1514, 500), (3000, 1000), (9000, 2048), (9000, 700), (3000, 64), (2100, 2048)];
    let mut want = Vec::new();
    let mut pkts = Vec::new();
    for (k, &(len, seg)) in shapes.iter().enumerate() {
        let f = raw_frame(len, k as u8);
        pkts.push(chain_of(&pool, &f, seg));
        want.push(f);
    }
    let got = round_trip(&rt, pkts);
    let back: Vec<Vec<u8>> = got.iter().map(bytes_of).collect();
    assert_eq!(back.len(), want.len());
    for (k, (b, w)) in back.iter().zip(&want).enumerate() {
        assert_eq!(b.len(), w.len(), "packet {k}: length");
        assert!(b == w, "packet {k}: bytes differ");
    }
    let segs: Vec<u16> = got.iter().map(PacketBuf::nb_segs).collect();
    assert!(segs[3] >= 5, "a 9000-byte frame spans 2 KiB buffers: {segs:?}");
    assert_eq!(segs[0], 1, "a short frame stays one segment");
    drop(got);
    let st = rt.port(0).unwrap().stats();
    assert_eq!((st.opackets, st.ipackets, st.ierrors, st.oerrors), (7, 7, 0, 0), "{st:?}");
    rt.port_mut(0).unwrap().stop().unwrap();
    assert!(pool.mempool().is_full(), "every segment came back to the pool");
    drop(pool);
    rt.close().unwrap();
    drop(backend);
}

/// A TCP (or UDP) frame over IPv4 with `payload` bytes.
fn l4_frame(tcp: bool, payload: usize, seed: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..payload).map(|k| (k as u8).wrapping_mul(13).wrapping_add(seed)).collect();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut f = Vec::new();
    if tcp {
        b.tcp(1000, 2000, 5000, 4096).ack(1).write(&mut f, &data).unwrap();
    } else {
        b.udp(1000, 2000).write(&mut f, &data).unwrap();
    }
    f
}

/// The L4 checksum of IPv4 frame `f` as etherparse computes it, and the one in the frame.
fn l4_checksums(f: &[u8]) -> (u16, u16) {
    let p = SlicedPacket::from_ethernet(f).expect("an Ethernet frame");
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
    let (src, dst) = (ip.header().source(), ip.header().destination());
    match p.transport {
        Some(TransportSlice::Tcp(t)) => (t.calc_checksum_ipv4(src, dst).unwrap(), t.checksum()),
        Some(TransportSlice::Udp(u)) => {
            (u.to_header().calc_checksum_ipv4_raw(src, dst, u.payload()).unwrap(), u.checksum())
        }
        _ => panic!("not TCP or UDP"),
    }
}

/// Needs root and hugepages, and dpdk-testpmd.
#[test]
fn root_checksum_and_tso_requests_cross_both_ways() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("offloads");
    let conf = TestpmdConf { mode: "io", tag: "offloads", queues: 1, vdev: "tso=1,legacy-ol-flags=1" };
    let backend = Testpmd::start_with(&s.sock, &conf);
    let rx = RxOffloads::SCATTER | RxOffloads::TCP_CKSUM | RxOffloads::UDP_CKSUM | RxOffloads::TCP_LRO;
    let tx = TxOffloads::MULTI_SEGS | TxOffloads::TCP_CKSUM | TxOffloads::UDP_CKSUM | TxOffloads::TCP_TSO;
    let (mut rt, pool) = port_up(&s, "vhostofl", rx, tx);
    {
        let info = rt.port(0).unwrap().info();
        assert!(info.tx_offload_capa.contains(tx), "the back-end offers CSUM and HOST_TSO4/6: {:?}", info);
        assert!(info.rx_offload_capa.contains(rx), "and GUEST_CSUM, GUEST_TSO4/6: {:?}", info);
    }
    let tx_ol = |tcp: bool| {
        let mut t = TxOffload { l2_len: 14, l3_len: 20, ..TxOffload::default() };
        if tcp {
            t.l4_len = 20;
        }
        t
    };
    // Checksum requests, the field left zero: tx_prepare seeds it.
    let mut want = Vec::new();
    let mut pkts = Vec::new();
    for (k, (tcp, len, seg)) in
        [(true, 100, 2048), (false, 200, 2048), (true, 3000, 1000), (false, 1400, 300)].into_iter().enumerate()
    {
        let f = l4_frame(tcp, len, k as u8);
        let mut zeroed = f.clone();
        let at = 34 + if tcp { 16 } else { 6 };
        zeroed[at..at + 2].fill(0);
        let mut b = chain_of(&pool, &zeroed, seg);
        b.set_ol_flags(OlFlags::TX_IPV4 | if tcp { OlFlags::TX_TCP_CKSUM } else { OlFlags::TX_UDP_CKSUM });
        b.set_tx_offload(tx_ol(tcp));
        pkts.push(b);
        want.push(f);
    }
    // A segmentation request: 60 000 bytes of payload, MSS 1000.
    let big = l4_frame(true, 60_000, 9);
    let mut b = chain_of(&pool, &big, 2048);
    b.set_ol_flags(OlFlags::TX_IPV4 | OlFlags::TX_TCP_SEG);
    b.set_tx_offload(TxOffload { tso_segsz: 1000, ..tx_ol(true) });
    pkts.push(b);
    let got = round_trip(&rt, pkts);
    assert_eq!(got.len(), 5);
    for (k, (pkt, w)) in got.iter().zip(&want).enumerate() {
        let mut bytes = bytes_of(pkt);
        assert_eq!(bytes.len(), w.len(), "packet {k}: length");
        assert_eq!(pkt.ol_flags().rx_l4_cksum(), CksumStatus::None, "packet {k}: partial checksum, data valid");
        // Finish the partial checksum as the device would have: the field holds the
        // pseudo-header's sum, the data is as sent.
        let (correct, seed) = l4_checksums(&bytes);
        let at = 34 + if k % 2 == 0 { 16 } else { 6 };
        bytes[at..at + 2].fill(0);
        let finished = burst::net::Checksum::new().add_u16(seed).add_bytes(&bytes[34..]).finish();
        assert_eq!(finished, correct, "packet {k}: the partial checksum finishes to the right one");
        bytes[at..at + 2].copy_from_slice(&correct.to_be_bytes());
        assert!(bytes == *w, "packet {k}: bytes differ");
    }
    let lro = &got[4];
    assert!(lro.ol_flags().contains(OlFlags::RX_LRO), "the 60 000-byte packet comes back as LRO: {:?}", lro.ol_flags());
    assert_eq!(lro.tx_offload().tso_segsz, 1000, "with the MSS we asked for");
    assert_eq!(lro.pkt_len() as usize, big.len());
    assert!(lro.nb_segs() >= 30, "over many mergeable buffers: {}", lro.nb_segs());
    let back = bytes_of(lro);
    assert!(back[54..] == big[54..], "the payload byte-exact");
    assert_eq!(back[..34], big[..34], "Ethernet and IPv4 headers as sent (after tx_prepare's IPv4 checksum)");
    drop(got);
    let st = rt.port(0).unwrap().stats();
    assert_eq!((st.opackets, st.ipackets, st.ierrors, st.oerrors), (5, 5, 0, 0), "{st:?}");
    rt.port_mut(0).unwrap().stop().unwrap();
    assert!(pool.mempool().is_full(), "every segment came back to the pool");
    drop(pool);
    rt.close().unwrap();
    drop(backend);
}
