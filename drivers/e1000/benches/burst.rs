//! The e1000 driver's data path per packet, with no device: the burst functions run on rings in
//! DMA memory (4 KiB pages, IOVA as VA) and ring a doorbell that records the tail instead of
//! writing TDT/RDT, while the bench plays the device's part in the descriptors
//! (`burst_e1000::testing`, built by the hidden `bench` feature). Criterion reports time per
//! burst and, with `Throughput::Elements(32)`, packets per second; one packet's cost is the time
//! per burst / 32.
//!
//! - `rx_32`: the device writes 32 descriptors back done (64-byte frames, EOP, no error),
//!   `rx_burst(32)` takes them and re-arms each with a fresh buffer, the application frees the
//!   32 in bulk.
//! - `tx_32`: the application allocates 32 buffers and sets 64-byte frames, `tx_burst` reclaims
//!   the batch the device finished last time (one DD bit read) and posts the 32, the device
//!   writes DD back into each.
//!
//! Rings of 512 descriptors (the driver's default), a pool of 8191 buffers with the per-lcore
//! cache. `cargo bench -p burst-e1000 --features bench --bench burst`. The pool's share of
//! either direction is burst-mem's `mempool/pktbuf_alloc_free_32`; `RxSim::rx_burst` and
//! `TxSim::tx_burst` are never inlined, so `valgrind --tool=callgrind
//! --toggle-collect='*RxSim*rx_burst*'` (or `*TxSim*tx_burst*`) on the bench binary with
//! `--bench --profile-time 2 e1000/rx_32` counts the instructions of the burst alone.

use std::hint::black_box;

use burst_e1000::testing::{self, RxSim, TxSim};
use burst_e1000::DESC_LIMITS;
use burst_mem::{lcore, Memory, PacketBuf, PacketPool, PacketPoolConfig};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

const BURST: usize = 32;
const FRAME: usize = 64;
const RING: u16 = DESC_LIMITS.default;

fn rx(g: &mut BenchmarkGroup<'_, WallTime>, mem: &Memory, pool: &PacketPool) {
    let mut rx = RxSim::new(mem, pool, RING);
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
    g.bench_function("rx_32", |b| {
        b.iter(|| {
            assert_eq!(rx.device_receives(BURST as u16, FRAME as u16), BURST as u16);
            let n = rx.rx_burst(black_box(&mut bufs), BURST);
            assert_eq!(n, BURST, "every frame the device wrote back");
            PacketPool::free_bulk(&mut bufs);
            n
        })
    });
    assert_eq!(rx.dropped_nombuf(), (0, 0), "every frame good, every refill served");
}

fn tx(g: &mut BenchmarkGroup<'_, WallTime>, mem: &Memory, pool: &PacketPool) {
    let mut tx = TxSim::new(mem, RING);
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
    g.bench_function("tx_32", |b| {
        b.iter(|| {
            assert!(pool.alloc_bulk(&mut bufs, BURST));
            for buf in bufs.iter_mut() {
                buf.set_len(FRAME);
            }
            let sent = tx.tx_burst(black_box(&mut bufs));
            assert_eq!(sent, BURST, "the device keeps the ring empty");
            assert_eq!(tx.device_sends(), BURST as u16);
            sent
        })
    });
    PacketPool::free_bulk(&mut bufs);
    assert_eq!(tx.errors(), 0);
}

fn burst(c: &mut Criterion) {
    let mem = testing::memory();
    let _lcore = lcore::claim(0).expect("lcore 0 for the benchmark thread");
    // As the net_null and virtio benches: 8191 buffers, the default per-lcore cache.
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new("e1000_bench", 8191)).unwrap();
    let mut g = c.benchmark_group("e1000");
    g.throughput(Throughput::Elements(BURST as u64));
    rx(&mut g, &mem, &pool);
    tx(&mut g, &mem, &pool);
    g.finish();
    assert!(pool.mempool().is_full(), "every buffer back");
}

criterion_group!(benches, burst);
criterion_main!(benches);
