//! The forwarding lcores' loop and the five modes (testpmd's forwarding engines, DPDK 22.11
//! app/test-pmd/iofwd.c, macfwd.c, macswap.c, txonly.c, rxonly.c).
//!
//! The loop is the whole benchmark, so it does per burst only what a mode needs: one `rx_burst`
//! into a vector that never grows, the mode's work, one `tx_burst`, and one bulk free of what TX
//! did not take. Counters are the stream's own `u64`s; they are published, and the stop flag
//! read, once every [`POLLS_PER_CHECK`] rounds rather than every burst. Each mode is a type, so
//! the loop is compiled once per mode with no mode test inside it.

use std::sync::atomic::{AtomicBool, Ordering};

use burst::net::{ethernet, EthernetAddrs};
use burst::{PacketBuf, PacketPool, RxQueue, TxQueue};

use crate::counters::{Counts, Published};
use crate::frame;
use crate::options::{Mode, MAX_BURST};

/// Rounds over the lcore's streams between two looks at the stop flag (and two publications
/// of the counters). At ~80 Mpps and bursts of 32 that is under a millisecond.
pub const POLLS_PER_CHECK: u32 = 1024;

/// The largest bulk `PacketPool::alloc_bulk` serves from a stack array; larger ones allocate.
const ALLOC_CHUNK: usize = 64;

/// Start and stop, from the main lcore to the forwarding ones.
#[derive(Debug, Default)]
pub struct Control {
    go: AtomicBool,
    stop: AtomicBool,
}

impl Control {
    /// Lets the forwarding lcores start.
    pub fn go(&self) {
        self.go.store(true, Ordering::Release);
    }

    /// Asks the forwarding lcores to stop (also those still waiting to start).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits for `go`; false if told to stop first.
    fn wait_go(&self) -> bool {
        while !self.go.load(Ordering::Acquire) {
            if self.stop.load(Ordering::Acquire) {
                return false;
            }
            std::hint::spin_loop();
        }
        true
    }
}

/// One stream as its lcore holds it.
pub struct Stream<'p> {
    pub rx: RxQueue<'p>,
    pub tx: TxQueue<'p>,
    /// Where txonly and `--tx-first` take buffers from.
    pub pool: PacketPool,
    /// `mac` mode's destination (the peer's address) and source (the TX port's).
    pub macs: EthernetAddrs<[u8; ethernet::ADDRS_LEN]>,
    /// txonly's frame.
    pub template: Vec<u8>,
    pub counts: Counts,
    pub published: &'p Published,
}

impl Stream<'_> {
    /// Sends `bufs`; what TX did not take is freed and counted as dropped.
    #[inline(always)]
    fn send(&mut self, bufs: &mut Vec<PacketBuf>) {
        let sent = self.tx.tx_burst(bufs);
        self.counts.tx += sent as u64;
        if !bufs.is_empty() {
            self.counts.dropped += bufs.len() as u64;
            PacketPool::free_bulk(bufs);
        }
    }

    /// Receives up to `burst` packets into the empty `bufs`; returns how many.
    #[inline(always)]
    fn receive(&mut self, bufs: &mut Vec<PacketBuf>, burst: usize) -> usize {
        let n = self.rx.rx_burst(bufs, burst);
        self.counts.rx += n as u64;
        n
    }

    /// Fills the empty `bufs` with up to `burst` copies of the template; returns how many (fewer
    /// when the pool runs short).
    #[inline(always)]
    fn generate(&mut self, bufs: &mut Vec<PacketBuf>, burst: usize) -> usize {
        let mut left = burst;
        while left > 0 {
            let n = left.min(ALLOC_CHUNK);
            if !self.pool.alloc_bulk(bufs, n) {
                break;
            }
            left -= n;
        }
        for b in bufs.iter_mut() {
            // The template fits: --txpkts is checked against the pool's data room.
            b.set_data(&self.template);
        }
        self.counts.generated += bufs.len() as u64;
        bufs.len()
    }
}

/// A forwarding mode: what one poll of one stream does. `bufs` is empty on entry and on return.
trait Engine {
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize);
}

struct Io;
impl Engine for Io {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.receive(bufs, burst) > 0 {
            s.send(bufs);
        }
    }
}

struct Mac;
impl Engine for Mac {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.receive(bufs, burst) > 0 {
            for b in bufs.iter_mut() {
                frame::set_macs(b.data_mut(), &s.macs);
            }
            s.send(bufs);
        }
    }
}

struct MacSwap;
impl Engine for MacSwap {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.receive(bufs, burst) > 0 {
            for b in bufs.iter_mut() {
                frame::swap_macs(b.data_mut());
            }
            s.send(bufs);
        }
    }
}

struct TxOnly;
impl Engine for TxOnly {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.generate(bufs, burst) > 0 {
            s.send(bufs);
        }
    }
}

struct RxOnly;
impl Engine for RxOnly {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.receive(bufs, burst) > 0 {
            PacketPool::free_bulk(bufs);
        }
    }
}

/// A forwarding lcore's body: waits for the start, sends one txonly burst per stream if
/// `tx_first`, then polls its streams in `mode` until told to stop, and publishes their final
/// counts.
pub fn forward(mode: Mode, streams: &mut [Stream<'_>], burst: usize, tx_first: bool, ctl: &Control) {
    let burst = burst.min(MAX_BURST);
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(MAX_BURST);
    if !ctl.wait_go() {
        return;
    }
    if tx_first {
        for s in streams.iter_mut() {
            TxOnly::poll(s, &mut bufs, burst);
        }
    }
    match mode {
        Mode::Io => run::<Io>(streams, &mut bufs, burst, ctl),
        Mode::Mac => run::<Mac>(streams, &mut bufs, burst, ctl),
        Mode::Macswap => run::<MacSwap>(streams, &mut bufs, burst, ctl),
        Mode::Txonly => run::<TxOnly>(streams, &mut bufs, burst, ctl),
        Mode::Rxonly => run::<RxOnly>(streams, &mut bufs, burst, ctl),
    }
    for s in streams.iter() {
        s.published.publish(&s.counts);
    }
}

fn run<E: Engine>(streams: &mut [Stream<'_>], bufs: &mut Vec<PacketBuf>, burst: usize, ctl: &Control) {
    // One stream per lcore is the common case (and the benchmark's): its own loop lets the
    // compiler keep the stream in registers.
    if let [s] = streams {
        loop {
            for _ in 0..POLLS_PER_CHECK {
                E::poll(s, bufs, burst);
            }
            s.published.publish(&s.counts);
            if ctl.stopped() {
                return;
            }
        }
    }
    loop {
        for _ in 0..POLLS_PER_CHECK {
            for s in streams.iter_mut() {
                E::poll(s, bufs, burst);
            }
        }
        for s in streams.iter() {
            s.published.publish(&s.counts);
        }
        if ctl.stopped() {
            return;
        }
    }
}
