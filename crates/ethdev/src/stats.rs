//! Port statistics ([`Stats`], `rte_eth_stats`), named extended statistics ([`XStat`]), and
//! [`SwStats`]: counters a software driver's queue handles bump without atomics' read-modify-write
//! cost, with a reset that never loses a concurrent update.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A port's basic counters, totals and per queue (`rte_eth_stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received (without CRC).
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped because no descriptor was free (the application did not poll).
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Packets the device failed to send.
    pub oerrors: u64,
    /// RX buffer allocations that failed.
    pub rx_nombuf: u64,
    /// Packets received per RX queue.
    pub q_ipackets: Vec<u64>,
    /// Packets sent per TX queue.
    pub q_opackets: Vec<u64>,
    /// Bytes received per RX queue.
    pub q_ibytes: Vec<u64>,
    /// Bytes sent per TX queue.
    pub q_obytes: Vec<u64>,
    /// Errors per RX queue.
    pub q_errors: Vec<u64>,
}

impl Stats {
    /// The basic counters as extended stats, with DPDK's names (`rx_good_packets`, ...).
    pub fn to_xstats(&self) -> Vec<XStat> {
        let mut out = vec![
            XStat::new("rx_good_packets", self.ipackets),
            XStat::new("tx_good_packets", self.opackets),
            XStat::new("rx_good_bytes", self.ibytes),
            XStat::new("tx_good_bytes", self.obytes),
            XStat::new("rx_missed_errors", self.imissed),
            XStat::new("rx_errors", self.ierrors),
            XStat::new("tx_errors", self.oerrors),
            XStat::new("rx_mbuf_allocation_errors", self.rx_nombuf),
        ];
        for (q, (p, b)) in self.q_ipackets.iter().zip(&self.q_ibytes).enumerate() {
            out.push(XStat::new(format!("rx_q{q}_packets"), *p));
            out.push(XStat::new(format!("rx_q{q}_bytes"), *b));
            out.push(XStat::new(format!("rx_q{q}_errors"), self.q_errors.get(q).copied().unwrap_or(0)));
        }
        for (q, (p, b)) in self.q_opackets.iter().zip(&self.q_obytes).enumerate() {
            out.push(XStat::new(format!("tx_q{q}_packets"), *p));
            out.push(XStat::new(format!("tx_q{q}_bytes"), *b));
        }
        out
    }
}

/// One named counter (`rte_eth_xstat` with its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XStat {
    /// The counter's name (`rx_good_packets`, `rx_crc_errors`).
    pub name: String,
    /// Its value.
    pub value: u64,
}

impl XStat {
    /// A named value.
    pub fn new(name: impl Into<String>, value: u64) -> XStat {
        XStat { name: name.into(), value }
    }
}

/// One queue's counters, written by the one handle polling the queue and read by anyone.
///
/// Single writer: an increment is a relaxed load and a relaxed store, with no locked
/// instruction. [`crate::Port`] hands out one handle per queue at a time, which is what makes that
/// sound; a reset is a baseline kept by the reader ([`SwStats`]), never a store by another
/// thread, so no increment is lost.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct QueueCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    missed: AtomicU64,
    nombuf: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl QueueCounters {
    /// Counts `packets` packets of `bytes` bytes in all.
    #[inline]
    pub fn add(&self, packets: u64, bytes: u64) {
        bump(&self.packets, packets);
        bump(&self.bytes, bytes);
    }

    /// Counts erroneous packets.
    #[inline]
    pub fn add_errors(&self, n: u64) {
        bump(&self.errors, n);
    }

    /// Counts packets dropped for want of room (RX: `imissed`).
    #[inline]
    pub fn add_missed(&self, n: u64) {
        bump(&self.missed, n);
    }

    /// Counts failed buffer allocations (`rx_nombuf`).
    #[inline]
    pub fn add_nombuf(&self, n: u64) {
        bump(&self.nombuf, n);
    }

    fn read(&self) -> [u64; 5] {
        [&self.packets, &self.bytes, &self.errors, &self.missed, &self.nombuf].map(|c| c.load(Ordering::Relaxed))
    }
}

/// The counters of a port's queues: one [`QueueCounters`] per queue, shared with the queue
/// handles, and what each read at the last reset (a baseline per queue, so that queues can be
/// added and removed without the totals going backwards).
#[derive(Debug)]
pub struct SwStats {
    rx: Vec<Arc<QueueCounters>>,
    tx: Vec<Arc<QueueCounters>>,
    base: Mutex<Baselines>,
}

/// Each queue's counters at the last reset: packets, bytes, errors, missed, nombuf.
#[derive(Debug, Default)]
struct Baselines {
    rx: Vec<[u64; 5]>,
    tx: Vec<[u64; 5]>,
}

impl SwStats {
    /// Counters for `rx` RX and `tx` TX queues, all zero.
    pub fn new(rx: u16, tx: u16) -> SwStats {
        let mut s = SwStats { rx: Vec::new(), tx: Vec::new(), base: Mutex::new(Baselines::default()) };
        s.resize(rx, tx);
        s
    }

    /// Keeps the counters of the first `rx` RX and `tx` TX queues as they are (a port
    /// configured again counts on, as DPDK's do until a reset), adds zeroed ones for new queues
    /// and drops those of queues that are gone.
    pub fn resize(&mut self, rx: u16, tx: u16) {
        self.rx.resize_with(usize::from(rx), Arc::default);
        self.tx.resize_with(usize::from(tx), Arc::default);
        let base = self.base.get_mut().unwrap_or_else(|e| e.into_inner());
        base.rx.resize(usize::from(rx), [0; 5]);
        base.tx.resize(usize::from(tx), [0; 5]);
    }

    /// RX queue `q`'s counters, for its handle.
    pub fn rx(&self, q: u16) -> Arc<QueueCounters> {
        Arc::clone(&self.rx[q as usize])
    }

    /// TX queue `q`'s counters, for its handle.
    pub fn tx(&self, q: u16) -> Arc<QueueCounters> {
        Arc::clone(&self.tx[q as usize])
    }

    /// The counters since the port was made, no reset subtracted.
    #[cfg(test)]
    fn raw(&self) -> Stats {
        let zero = Baselines { rx: vec![[0; 5]; self.rx.len()], tx: vec![[0; 5]; self.tx.len()] };
        self.since(&zero)
    }

    fn since(&self, base: &Baselines) -> Stats {
        let mut s = Stats::default();
        let diff = |q: &QueueCounters, b: &[u64; 5]| {
            let now = q.read();
            std::array::from_fn::<u64, 5, _>(|i| now[i].wrapping_sub(b[i]))
        };
        for (q, b) in self.rx.iter().zip(&base.rx) {
            let [p, by, e, m, n] = diff(q, b);
            s.ipackets += p;
            s.ibytes += by;
            s.ierrors += e;
            s.imissed += m;
            s.rx_nombuf += n;
            s.q_ipackets.push(p);
            s.q_ibytes.push(by);
            s.q_errors.push(e);
        }
        for (q, b) in self.tx.iter().zip(&base.tx) {
            let [p, by, e, _, _] = diff(q, b);
            s.opackets += p;
            s.obytes += by;
            s.oerrors += e;
            s.q_opackets.push(p);
            s.q_obytes.push(by);
        }
        s
    }

    /// The counters since the last reset.
    pub fn get(&self) -> Stats {
        // Read under the baselines' lock: a reset between reading a counter and its baseline
        // would otherwise make the difference wrap below zero.
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        self.since(&base)
    }

    /// Starts counting from zero again. Safe while the queues run: nothing is written to the
    /// counters themselves.
    pub fn reset(&self) {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        base.rx = self.rx.iter().map(|q| q.read()).collect();
        base.tx = self.tx.iter().map(|q| q.read()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_the_sum_of_queues_and_reset_is_a_baseline() {
        let s = SwStats::new(2, 1);
        s.rx(0).add(3, 180);
        s.rx(1).add(2, 120);
        s.rx(1).add_missed(4);
        s.tx(0).add(5, 300);
        let got = s.get();
        assert_eq!((got.ipackets, got.ibytes, got.imissed, got.opackets, got.obytes), (5, 300, 4, 5, 300));
        assert_eq!(got.q_ipackets, vec![3, 2]);
        s.reset();
        assert_eq!(s.get().ipackets, 0);
        s.rx(0).add(1, 60);
        let got = s.get();
        assert_eq!((got.ipackets, got.ibytes, got.q_ipackets.clone()), (1, 60, vec![1, 0]));
    }

    #[test]
    fn increments_from_the_writer_thread_survive_resets() {
        let s = Arc::new(SwStats::new(1, 0));
        let counters = s.rx(0);
        let writer = std::thread::spawn(move || {
            for _ in 0..200_000 {
                counters.add(1, 64);
            }
        });
        for _ in 0..50 {
            // Never negative: a reset is a baseline, not a store racing the writer.
            assert!(s.get().ipackets <= 200_000);
            s.reset();
        }
        writer.join().unwrap();
        assert_eq!(s.raw().ipackets, 200_000, "no increment lost to a reset");
        s.reset();
        s.rx(0).add(10, 640);
        assert_eq!(s.get().ipackets, 10);
    }

    #[test]
    fn readers_never_see_a_reset_undercut_them() {
        let s = Arc::new(SwStats::new(1, 0));
        let counters = s.rx(0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    counters.add(1, 64);
                }
            })
        };
        let resetter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    s.reset();
                }
            })
        };
        for _ in 0..200_000 {
            let got = s.get();
            assert!(got.ipackets < 1 << 40 && got.ibytes < 1 << 46, "wrapped: {got:?}");
        }
        resetter.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[test]
    fn a_resize_keeps_the_queues_that_stay_and_never_goes_backwards() {
        let mut s = SwStats::new(2, 1);
        s.rx(0).add(3, 180);
        s.rx(1).add(5, 300);
        s.reset();
        s.rx(1).add(1, 60);
        s.resize(1, 2);
        let got = s.get();
        assert_eq!((got.ipackets, got.q_ipackets.clone(), got.q_opackets.clone()), (0, vec![0], vec![0, 0]));
        s.rx(0).add(2, 120);
        s.resize(3, 1);
        let got = s.get();
        assert_eq!((got.ipackets, got.ibytes, got.q_ipackets), (2, 120, vec![2, 0, 0]));
    }

    #[test]
    fn xstats_carry_dpdk_names() {
        let s = SwStats::new(1, 1);
        s.rx(0).add(7, 448);
        let x = s.get().to_xstats();
        assert!(x.contains(&XStat::new("rx_good_packets", 7)));
        assert!(x.contains(&XStat::new("rx_q0_bytes", 448)));
    }
}
