//! Per-stream counters. The forwarding lcore counts in plain `u64`s it owns and now and then
//! stores the totals here with relaxed stores (one writer per stream, so no read-modify-write);
//! the main lcore reads them for the statistics. Like testpmd's `fwd_stream` counters, which
//! its lcores bump and its main thread reads without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// What one stream has done, as plain numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets received.
    pub rx: u64,
    /// Packets the TX queue took.
    pub tx: u64,
    /// Packets the TX queue did not take: freed.
    pub dropped: u64,
    /// Packets allocated and built here (txonly, `--tx-first`). `rx + generated = tx + dropped`.
    pub generated: u64,
    /// csum mode: packets received with a bad IPv4 header checksum (testpmd's `rx_bad_ip_csum`).
    pub bad_ip_csum: u64,
    /// csum mode: packets received with a bad TCP or UDP checksum (`rx_bad_l4_csum`).
    pub bad_l4_csum: u64,
    /// csum mode: packets with no IPv4 or IPv6 header found, sent on as they came.
    pub unparsed: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.rx += other.rx;
        self.tx += other.tx;
        self.dropped += other.dropped;
        self.generated += other.generated;
        self.bad_ip_csum += other.bad_ip_csum;
        self.bad_l4_csum += other.bad_l4_csum;
        self.unparsed += other.unparsed;
    }
}

/// One stream's published counters, on a cache line of their own so that two lcores'
/// stores never share one.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Published {
    rx: AtomicU64,
    tx: AtomicU64,
    dropped: AtomicU64,
    generated: AtomicU64,
    bad_ip_csum: AtomicU64,
    bad_l4_csum: AtomicU64,
    unparsed: AtomicU64,
}

impl Published {
    /// Stores the stream's totals (its lcore only).
    #[inline]
    pub fn publish(&self, c: &Counts) {
        self.rx.store(c.rx, Ordering::Relaxed);
        self.tx.store(c.tx, Ordering::Relaxed);
        self.dropped.store(c.dropped, Ordering::Relaxed);
        self.generated.store(c.generated, Ordering::Relaxed);
        self.bad_ip_csum.store(c.bad_ip_csum, Ordering::Relaxed);
        self.bad_l4_csum.store(c.bad_l4_csum, Ordering::Relaxed);
        self.unparsed.store(c.unparsed, Ordering::Relaxed);
    }

    /// The totals last published. Each counter is exact as of some publication; they may come
    /// from two successive ones while the lcore runs, and are consistent once it has stopped.
    pub fn read(&self) -> Counts {
        Counts {
            rx: self.rx.load(Ordering::Relaxed),
            tx: self.tx.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            generated: self.generated.load(Ordering::Relaxed),
            bad_ip_csum: self.bad_ip_csum.load(Ordering::Relaxed),
            bad_l4_csum: self.bad_l4_csum.load(Ordering::Relaxed),
            unparsed: self.unparsed.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_counts_read_back_and_add_up() {
        let p = Published::default();
        let a = Counts { rx: 10, tx: 7, dropped: 3, bad_ip_csum: 1, ..Counts::default() };
        p.publish(&a);
        assert_eq!(p.read(), a);
        let b = Counts { rx: 25, tx: 20, dropped: 5, generated: 0, bad_ip_csum: 2, bad_l4_csum: 3, unparsed: 4 };
        p.publish(&b);
        assert_eq!(p.read(), b);
        let mut sum = a;
        sum.add(&b);
        assert_eq!(
            sum,
            Counts { rx: 35, tx: 27, dropped: 8, generated: 0, bad_ip_csum: 3, bad_l4_csum: 3, unparsed: 4 }
        );
    }
}
