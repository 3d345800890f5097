//! The forwarding lcores' loop and the six modes (testpmd's forwarding engines, DPDK 22.11
//! app/test-pmd/iofwd.c, macfwd.c, macswap.c, txonly.c, rxonly.c, csumonly.c).
//!
//! The loop is the whole benchmark, so it does per burst only what a mode needs: one `rx_burst`
//! into a vector that never grows, the mode's work, one `tx_burst`, and one bulk free of what TX
//! did not take. Counters are the stream's own `u64`s; they are published, and the stop flag
//! read, once every [`POLLS_PER_CHECK`] rounds rather than every burst. Each mode is a type, so
//! the loop is compiled once per mode with no mode test inside it; txonly with `--txpkts A,B,...`
//! is a mode type of its own for the same reason.
//!
//! Packets may be chains (received with scatter, or built from `--txpkts A,B,...`): the MAC
//! rewrites touch the first segment only, and a chain is freed whole.

use std::sync::atomic::{AtomicBool, Ordering};

use burst::mem::ChainBuilder;
use burst::net::{ethernet, EthernetAddrs};
use burst::{PacketBuf, PacketPool, RxQueue, TxQueue};

use crate::counters::{Counts, Published};
use crate::csum::{self, TxCsum};
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
    /// txonly's segment lengths when it builds chains (`--txpkts A,B,...`); empty otherwise.
    pub segments: Vec<u16>,
    /// Where a burst's segments wait while their chains are built.
    pub segs: Vec<PacketBuf>,
    /// csum mode: which checksums the TX queue's device computes.
    pub tx_csum: TxCsum,
    /// `tx_prepare` refused a packet already (its reason was printed once).
    pub prepare_failed: bool,
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
        alloc_upto(&self.pool, bufs, burst);
        for b in bufs.iter_mut() {
            // The template fits: --txpkts is checked against the pool's data room.
            b.set_data(&self.template);
        }
        self.counts.generated += bufs.len() as u64;
        bufs.len()
    }

    /// Whether txonly builds chains on this stream.
    pub fn builds_chains(&self) -> bool {
        self.segments.len() > 1
    }

    /// [`Stream::generate`] for `--txpkts A,B,...`: each packet a chain whose segments hold the
    /// template's bytes cut at those lengths (testpmd's `pkt_burst_prepare`). The buffers are
    /// taken as [`Stream::generate`] takes them, the whole burst's in bulks of up to
    /// [`ALLOC_CHUNK`]; when the pool cannot serve a bulk, the packets still missing are taken
    /// a packet's buffers at a time, as testpmd falls back to one packet at a time, and the
    /// burst ends at the first packet the pool cannot serve whole.
    fn generate_chains(&mut self, bufs: &mut Vec<PacketBuf>, burst: usize) -> usize {
        let k = self.segments.len();
        let want = burst * k;
        alloc_upto(&self.pool, &mut self.segs, want);
        if self.segs.len() < want {
            // A failed bulk leaves a multiple of ALLOC_CHUNK, not always of k.
            self.segs.truncate(self.segs.len() / k * k);
            while self.segs.len() < want {
                let have = self.segs.len();
                alloc_upto(&self.pool, &mut self.segs, k);
                if self.segs.len() - have < k {
                    self.segs.truncate(have);
                    break;
                }
            }
        }
        let mut segs = self.segs.drain(..);
        while segs.len() > 0 {
            let mut chain = ChainBuilder::new();
            let mut at = 0;
            // The lengths first: zip stops on them without taking the next packet's buffer.
            for (&len, mut seg) in self.segments.iter().zip(segs.by_ref()) {
                let end = at + usize::from(len);
                // Each segment fits a buffer and there are at most 255 of them (both checked
                // with the options): neither the copy nor the push is refused.
                seg.set_data(&self.template[at..end]);
                at = end;
                let _ = chain.push(seg);
            }
            bufs.extend(chain.take());
        }
        drop(segs);
        self.counts.generated += bufs.len() as u64;
        bufs.len()
    }

    /// `tx_prepare` on a burst about to be sent (csum mode calls `rte_eth_tx_prepare`, as
    /// testpmd's does): from the first packet the queue cannot send as asked on, the rest of the
    /// burst is freed and counted as dropped, as testpmd does. The first time, the reason goes
    /// to standard error.
    #[inline(always)]
    fn prepare(&mut self, bufs: &mut Vec<PacketBuf>) {
        if let Err(e) = self.tx.tx_prepare(bufs) {
            self.counts.dropped += (bufs.len() - e.index) as u64;
            bufs.truncate(e.index);
            if !self.prepare_failed {
                self.prepare_failed = true;
                eprintln!(
                    "pktgen: port {} queue {}: tx_prepare refused {e}; it and the rest of its burst are dropped (and \
                     counted as TX-dropped), here and whenever it happens again",
                    self.tx.port(),
                    self.tx.queue()
                );
            }
        }
    }
}

/// Appends up to `count` fresh buffers from `pool` to `out`, in bulks of at most
/// [`ALLOC_CHUNK`], stopping at the first bulk the pool cannot serve.
#[inline(always)]
fn alloc_upto(pool: &PacketPool, out: &mut Vec<PacketBuf>, count: usize) {
    let mut left = count;
    while left > 0 {
        let n = left.min(ALLOC_CHUNK);
        if !pool.alloc_bulk(out, n) {
            break;
        }
        left -= n;
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

struct TxOnlyChains;
impl Engine for TxOnlyChains {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.generate_chains(bufs, burst) > 0 {
            s.send(bufs);
        }
    }
}

struct Csum;
impl Engine for Csum {
    #[inline(always)]
    fn poll(s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
        if s.receive(bufs, burst) > 0 {
            for b in bufs.iter_mut() {
                let seen = csum::process(b, s.tx_csum);
                s.counts.bad_ip_csum += u64::from(seen.bad_ip);
                s.counts.bad_l4_csum += u64::from(seen.bad_l4);
                s.counts.unparsed += u64::from(seen.unparsed);
            }
            s.prepare(bufs);
            if !bufs.is_empty() {
                s.send(bufs);
            }
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
            poll_once(Mode::Txonly, s, &mut bufs, burst);
        }
    }
    // Every stream of a run builds the same packets.
    let chains = streams.first().is_some_and(Stream::builds_chains);
    match mode {
        Mode::Io => run::<Io>(streams, &mut bufs, burst, ctl),
        Mode::Mac => run::<Mac>(streams, &mut bufs, burst, ctl),
        Mode::Macswap => run::<MacSwap>(streams, &mut bufs, burst, ctl),
        Mode::Txonly if chains => run::<TxOnlyChains>(streams, &mut bufs, burst, ctl),
        Mode::Txonly => run::<TxOnly>(streams, &mut bufs, burst, ctl),
        Mode::Rxonly => run::<RxOnly>(streams, &mut bufs, burst, ctl),
        Mode::Csum => run::<Csum>(streams, &mut bufs, burst, ctl),
    }
    for s in streams.iter() {
        s.published.publish(&s.counts);
    }
}

/// One poll of stream `s` in `mode`, what a forwarding lcore does for it once per round (for
/// `--tx-first`, and for tests that drive a stream themselves). `bufs` is empty on entry and
/// on return and has room for `burst`.
pub fn poll_once(mode: Mode, s: &mut Stream<'_>, bufs: &mut Vec<PacketBuf>, burst: usize) {
    match mode {
        Mode::Io => Io::poll(s, bufs, burst),
        Mode::Mac => Mac::poll(s, bufs, burst),
        Mode::Macswap => MacSwap::poll(s, bufs, burst),
        Mode::Txonly if s.builds_chains() => TxOnlyChains::poll(s, bufs, burst),
        Mode::Txonly => TxOnly::poll(s, bufs, burst),
        Mode::Rxonly => RxOnly::poll(s, bufs, burst),
        Mode::Csum => Csum::poll(s, bufs, burst),
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
