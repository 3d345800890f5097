//! net_null's data path per packet: `rx_burst(32)` then `tx_burst` of what arrived, on one
//! port's queue handles, as pktgen's io mode drives it. Criterion reports time per burst and,
//! with `Throughput::Elements(32)`, packets per second; one packet's rx+tx cost is the time per
//! burst / 32.
//!
//! - `rx_tx_32`: the plain mode, the one the forwarding benchmark uses.
//! - `io_fwd_2ports_32`: pktgen's io loop over two ports (rx 0 -> tx 1, rx 1 -> tx 0), per
//!   packet forwarded.
//! - `rx_tx_32_copy`: `copy=1`, which writes 64 bytes on RX and reads them on TX.
//!
//! Memory is `--no-huge` (IOVA as VA): a null port never hands memory to a device, so the page
//! size only changes TLB pressure, which 8191 buffers of 2.3 KiB barely feel.

use std::hint::black_box;

use burst_ethdev::{DevArgs, Port, PortConf, VdevProbe, VdevShared};
use burst_mem::{lcore, Memory, PacketBuf, PacketPool, PacketPoolConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BURST: usize = 32;

use burst_mem::testing::memory;

fn port(mem: &Memory, spec: &str, id: u16, pool: &PacketPool) -> Port {
    let (name, args) = DevArgs::parse(spec).unwrap();
    let mut shared = VdevShared::default();
    let probe = VdevProbe { name: &name, args: &args, memory: mem, shared: &mut shared, port_id: id };
    let mut port = Port::new(id, (burst_net_null::DRIVER.probe)(probe).unwrap());
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 0, pool).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
    port
}

fn rx_tx(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, port: &Port) {
    let mut rx = port.rx_queue(0).unwrap();
    let mut tx = port.tx_queue(0).unwrap();
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
    c.bench_function(name, |b| {
        b.iter(|| {
            let n = rx.rx_burst(black_box(&mut bufs), BURST);
            let sent = tx.tx_burst(black_box(&mut bufs));
            debug_assert_eq!((n, sent), (BURST, BURST));
            sent
        })
    });
}

fn io(c: &mut Criterion) {
    let mem = memory();
    let _lcore = lcore::claim(0).expect("lcore 0 for the benchmark thread");
    // testpmd's pool: 8191 buffers (enough for its rings), cache 250; ours is 256.
    let pool = PacketPool::new(&mem, &PacketPoolConfig::new("null_bench", 8191)).unwrap();
    let mut g = c.benchmark_group("net_null");
    g.throughput(Throughput::Elements(BURST as u64));
    {
        let p0 = port(&mem, "net_null0", 0, &pool);
        rx_tx(&mut g, "rx_tx_32", &p0);
        let p1 = port(&mem, "net_null1", 1, &pool);
        let (mut rx0, mut tx0) = (p0.rx_queue(0).unwrap(), p0.tx_queue(0).unwrap());
        let (mut rx1, mut tx1) = (p1.rx_queue(0).unwrap(), p1.tx_queue(0).unwrap());
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(BURST);
        g.throughput(Throughput::Elements(2 * BURST as u64));
        g.bench_function("io_fwd_2ports_32", |b| {
            b.iter(|| {
                rx0.rx_burst(black_box(&mut bufs), BURST);
                tx1.tx_burst(black_box(&mut bufs));
                rx1.rx_burst(black_box(&mut bufs), BURST);
                tx0.tx_burst(black_box(&mut bufs))
            })
        });
        g.throughput(Throughput::Elements(BURST as u64));
        let copy = port(&mem, "net_null2,copy=1", 2, &pool);
        rx_tx(&mut g, "rx_tx_32_copy", &copy);
    }
    g.finish();
    assert!(pool.mempool().is_full(), "every buffer back");
}

criterion_group!(benches, io);
criterion_main!(benches);
