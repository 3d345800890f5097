//! Ring enqueue/dequeue cost, shaped after DPDK's `ring_perf_autotest`: one thread enqueues a
//! burst (or bulk) of 32 pointer-sized items and dequeues them again, on an empty ring of 1024,
//! so the numbers are the uncontended cost per item of each sync mode.
//!
//! Group `ring` counts TSC cycles ("cycles/elem" is the number to compare with DPDK's
//! "SP/SC burst enq/dequeue (size: 32)" lines); group `ring_time` is the same in wall time.

#[path = "common/cycles.rs"]
mod cycles;

use std::hint::black_box;

use burst_mem::ring::{ring, SharedRing, SyncMode};
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

const BURST: usize = 32;
const CAPACITY: usize = 1024;

/// Enqueue a burst of 32, dequeue it back; the two `Vec`s swap so nothing is refilled.
fn burst_32<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, name: &str, sync: SyncMode, bulk: bool) {
    let (mut tx, mut rx) = ring::<usize>(CAPACITY, sync, sync).expect("ring of 1024");
    let mut items: Vec<usize> = (0..BURST).collect();
    let mut out: Vec<usize> = Vec::with_capacity(BURST);
    group.bench_function(name, |b| {
        b.iter(|| {
            let (taken, got) = if bulk {
                (tx.enqueue_bulk(black_box(&mut items)), rx.dequeue_bulk(black_box(&mut out), BURST))
            } else {
                (tx.enqueue_burst(black_box(&mut items)), rx.dequeue_burst(black_box(&mut out), BURST))
            };
            debug_assert_eq!((taken, got), (BURST, BURST));
            std::mem::swap(&mut items, &mut out);
        })
    });
    assert_eq!((items.len(), out.len(), tx.len()), (BURST, 0, 0), "{name}: items went missing");
}

fn shared_bulk_32<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    let ring = SharedRing::<usize>::new(CAPACITY).expect("ring of 1024");
    let items: [usize; BURST] = core::array::from_fn(|i| i);
    let mut out = [0usize; BURST];
    group.bench_function("shared_bulk_32", |b| {
        b.iter(|| {
            let taken = ring.enqueue_bulk(black_box(&items));
            let got = ring.dequeue_bulk(black_box(&mut out));
            debug_assert!(taken && got);
        })
    });
    // A filtered-out benchmark never runs: then `out` is still all zeros.
    assert!(out == [0; BURST] || out == items, "shared_bulk_32: items came back changed");
}

fn sp_sc_single<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    let (mut tx, mut rx) = ring::<usize>(CAPACITY, SyncMode::Single, SyncMode::Single).expect("ring of 1024");
    let mut item = 1usize;
    group.bench_function("sp_sc_single", |b| {
        b.iter(|| {
            let taken = tx.enqueue(black_box(item));
            debug_assert!(taken.is_ok());
            item = black_box(rx.dequeue()).unwrap_or(0);
        })
    });
    assert_eq!(item, 1);
}

fn benches<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(BURST as u64));
    burst_32(&mut group, "sp_sc_burst_32", SyncMode::Single, false);
    burst_32(&mut group, "mp_mc_burst_32", SyncMode::Multi, false);
    burst_32(&mut group, "sp_sc_bulk_32", SyncMode::Single, true);
    burst_32(&mut group, "mp_mc_bulk_32", SyncMode::Multi, true);
    shared_bulk_32(&mut group);
    group.throughput(Throughput::Elements(1));
    sp_sc_single(&mut group);
    group.finish();
}

fn ring_cycles(c: &mut Criterion<cycles::Cycles>) {
    benches(c, "ring");
}

fn ring_time(c: &mut Criterion) {
    benches(c, "ring_time");
}

criterion_group! {
    name = cycle_benches;
    config = Criterion::default().with_measurement(cycles::Cycles);
    targets = ring_cycles
}
criterion_group!(time_benches, ring_time);
criterion_main!(cycle_benches, time_benches);
