//! The virtio-net driver's data path per packet, against the software test device
//! (`--features testdev`) playing the cheapest device it can, on the same core: what is left is
//! the driver's own cost (and the pool's). Criterion reports time per burst and, with
//! `Throughput::Elements(32)`, packets per second; one packet's cost is the time per burst / 32.
//!
//! - `tx_32`: the application allocates 32 buffers and sets 64-byte frames (contents left as
//!   they are), `tx_burst` posts them (reclaiming and freeing completed ones in bulk when
//!   descriptors run short), then the device moves every available chain to the used ring
//!   without reading it (`TestDevice::complete_tx`).
//! - `tx_32_in_order`: the same with `VIRTIO_F_IN_ORDER` (DPDK's vhost offers it): reclaim never
//!   reads the used entries.
//! - `rx_32`: the device delivers a 64-byte frame into every buffer the driver posted (header
//!   only, in place: `TestDevice::fill_rx`), `rx_burst(32)` takes 32 and refills, the
//!   application frees them in bulk.
//! - `rx_32_in_order`: the same with `IN_ORDER`: buffers are taken by position (the path a DPDK
//!   vhost back-end, which offers `IN_ORDER`, puts the driver on).
//! - `device_complete_tx_32`, `device_fill_rx_32`: the device's step alone, for 32 entries, on
//!   a port the driver no longer polls (`TestDevice::replay_avail` offers the entries again);
//!   subtract from the above for the driver's share.
//! - `pool_alloc_free_32`: one bulk allocation and one bulk free of 32 buffers, the pool's share
//!   of either direction.
//!
//! The device: modern, rings of 256 (virtio-user's default), `VRING_USED_F_NO_NOTIFY` set (a
//! polling backend: no kicks), no control queue (its serving thread would wake every 200 us).
//! Memory is 4 KiB pages with IOVA as VA, so the device can follow descriptor addresses.

use std::hint::black_box;

use burst_ethdev::Port;
use burst_mem::{lcore, PacketBuf, PacketPool, PacketPoolConfig};
use burst_virtio::spec::features as f;
use burst_virtio::testdev::{self, TestDevice};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

const BURST: usize = 32;
const FRAME: usize = 64;
const RING: u16 = 256;
const RXQ: u16 = 0;
const TXQ: u16 = 1;

/// A polling device with rings of [`RING`], `IN_ORDER` offered or not.
fn device(in_order: bool) -> TestDevice {
    let dev = testdev::device();
    {
        let mut s = dev.state();
        s.queue_max = RING;
        s.no_notify = true;
        s.features &= !f::CTRL_VQ;
        if in_order {
            s.features |= f::IN_ORDER;
        }
    }
    dev
}

fn port(dev: &TestDevice, mem: &burst_mem::Memory, pool: &PacketPool) -> Port {
    testdev::started(dev, mem, 1, pool)
}

fn tx(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, in_order: bool, mem: &burst_mem::Memory, pool: &PacketPool) {
    let dev = device(in_order);
    let mut port = port(&dev, mem, pool);
    {
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
        g.bench_function(name, |b| {
            b.iter(|| {
                assert!(pool.alloc_bulk(&mut bufs, BURST));
                for buf in bufs.iter_mut() {
                    buf.set_len(FRAME);
                }
                let sent = tx.tx_burst(black_box(&mut bufs));
                assert_eq!(sent, BURST, "the device keeps the ring empty");
                dev.complete_tx(TXQ);
                sent
            })
        });
        PacketPool::free_bulk(&mut bufs);
    }
    assert_eq!(port.stats().oerrors, 0);
    port.stop().unwrap();
}

fn rx(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, in_order: bool, mem: &burst_mem::Memory, pool: &PacketPool) {
    let dev = device(in_order);
    let mut port = port(&dev, mem, pool);
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
        g.bench_function(name, |b| {
            b.iter(|| {
                // Every buffer posted gets a frame: all of the ring at first, then what the
                // last burst refilled.
                dev.fill_rx(RXQ, FRAME as u32);
                let n = rx.rx_burst(black_box(&mut bufs), BURST);
                assert_eq!(n, BURST, "the device filled every posted buffer");
                PacketPool::free_bulk(&mut bufs);
                n
            })
        });
    }
    assert_eq!(port.stats().ierrors, 0, "every frame well formed");
    port.stop().unwrap();
}

fn device_alone(g: &mut BenchmarkGroup<'_, WallTime>, mem: &burst_mem::Memory, pool: &PacketPool) {
    let dev = device(false);
    let mut port = port(&dev, mem, pool);
    g.bench_function("device_complete_tx_32", |b| {
        b.iter(|| {
            dev.replay_avail(TXQ, BURST as u16);
            dev.complete_tx(TXQ)
        })
    });
    // The whole posted ring once, then 32 of the same buffers a lap later each time.
    dev.fill_rx(RXQ, FRAME as u32);
    g.bench_function("device_fill_rx_32", |b| {
        b.iter(|| {
            dev.replay_avail(RXQ, BURST as u16);
            dev.fill_rx(RXQ, FRAME as u32)
        })
    });
    port.stop().unwrap();
}

fn burst(c: &mut Criterion) {
    let mem = testdev::memory();
    let _lcore = lcore::claim(0).expect("lcore 0 for the benchmark thread");
    // As the net_null bench: 8191 buffers, the default per-lcore cache.
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new("virtio_bench", 8191)).unwrap();
    let mut g = c.benchmark_group("virtio");
    g.throughput(Throughput::Elements(BURST as u64));
    tx(&mut g, "tx_32", false, &mem, &pool);
    tx(&mut g, "tx_32_in_order", true, &mem, &pool);
    rx(&mut g, "rx_32", false, &mem, &pool);
    rx(&mut g, "rx_32_in_order", true, &mem, &pool);
    device_alone(&mut g, &mem, &pool);
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
    g.bench_function("pool_alloc_free_32", |b| {
        b.iter(|| {
            assert!(pool.alloc_bulk(black_box(&mut bufs), BURST));
            PacketPool::free_bulk(black_box(&mut bufs));
        })
    });
    g.finish();
    assert!(pool.mempool().is_full(), "every buffer back");
}

criterion_group!(benches, burst);
criterion_main!(benches);
