//! Mempool get+put in CPU cycles per object, shaped like DPDK's `mempool_perf_autotest`
//! (one lcore, `n_get_bulk` = `n_put_bulk` = 32, `n_keep` 32 or 128; a cache of 512 like its
//! "cache" case, or none), plus packet-buffer alloc+free bursts. Memory is `--no-huge` (IOVA as VA): no hugepages
//! needed, and a mempool's speed does not depend on the page size.

#[path = "common/cycles.rs"]
mod cycles;

use std::hint::black_box;
use std::ptr::NonNull;

use burst_mem::{lcore, Mempool, MempoolConfig, PacketPool, PacketPoolConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cycles::Cycles;

use burst_mem::testing::memory;

/// As DPDK's test: get `keep` objects in bulks of 32, then put them back in bulks of 32.
fn get_put(c: &mut criterion::BenchmarkGroup<'_, Cycles>, name: &str, pool: &Mempool, keep: usize) {
    const BULK: usize = 32;
    let mut storage = [NonNull::<u8>::dangling(); 128];
    let objs = &mut storage[..keep];
    c.throughput(Throughput::Elements(keep as u64));
    c.bench_function(name, |b| {
        b.iter(|| {
            for chunk in objs.chunks_exact_mut(BULK) {
                assert!(pool.get_bulk(black_box(chunk)));
            }
            for chunk in objs.chunks_exact(BULK) {
                // SAFETY: just taken from this pool.
                unsafe { pool.put_bulk(black_box(chunk)) };
            }
        })
    });
}

fn mempool(c: &mut Criterion<Cycles>) {
    let mem = memory();
    let _lcore = lcore::claim(0).expect("lcore 0 for the benchmark thread");
    let mut g = c.benchmark_group("mempool");
    let mut cfg = MempoolConfig::new("bench_cached", 8191, 2048);
    cfg.cache_size = 512;
    let cached = Mempool::new(&mem, &cfg).unwrap();
    get_put(&mut g, "cached_bulk_32", &cached, 32);
    get_put(&mut g, "cached_bulk_128", &cached, 128);
    cfg.name = "bench_nocache".into();
    cfg.cache_size = 0;
    let uncached = Mempool::new(&mem, &cfg).unwrap();
    get_put(&mut g, "uncached_bulk_32", &uncached, 32);
    assert!(cached.is_full() && uncached.is_full());

    let pkts = PacketPool::new(&mem, &PacketPoolConfig::new("bench_pkts", 8191)).unwrap();
    let mut bufs = Vec::with_capacity(32);
    g.throughput(Throughput::Elements(32));
    g.bench_function("pktbuf_alloc_free_32", |b| {
        b.iter(|| {
            assert!(pkts.alloc_bulk(black_box(&mut bufs), 32));
            PacketPool::free_bulk(black_box(&mut bufs));
        })
    });
    assert!(pkts.mempool().is_full());
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Cycles);
    targets = mempool
}
criterion_main!(benches);
