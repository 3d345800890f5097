//! Counters: the basic ones are the port's (its queues count in them), and these are what only
//! this driver counts: frames dropped because they spanned several mergeable buffers, and
//! used-ring entries a device wrote that named no buffer of ours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burst_ethdev::XStat;

/// One queue's driver-only counters; written by the queue's handle only (relaxed load + store).
#[derive(Debug, Default)]
pub(crate) struct Extra {
    mergeable_dropped: AtomicU64,
    bad_used: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl Extra {
    /// Counts frames of more than one buffer, dropped.
    #[inline]
    pub(crate) fn add_mergeable_dropped(&self, n: u64) {
        bump(&self.mergeable_dropped, n);
    }

    /// Counts used entries with a bad id (out of range, or not in flight).
    #[inline]
    pub(crate) fn add_bad_used(&self, n: u64) {
        bump(&self.bad_used, n);
    }

    fn read(&self) -> [u64; 2] {
        [self.mergeable_dropped.load(Ordering::Relaxed), self.bad_used.load(Ordering::Relaxed)]
    }
}

/// The driver's counters for the port's configured queues.
#[derive(Debug)]
pub(crate) struct PortStats {
    pub rx: Vec<Arc<Extra>>,
    pub tx: Vec<Arc<Extra>>,
    base: Mutex<[u64; 3]>,
}

impl PortStats {
    /// Zeroed counters for `rx` and `tx` queues.
    pub(crate) fn new(rx: u16, tx: u16) -> PortStats {
        PortStats {
            rx: (0..rx).map(|_| Arc::default()).collect(),
            tx: (0..tx).map(|_| Arc::default()).collect(),
            base: Mutex::new([0; 3]),
        }
    }

    fn raw_extra(&self) -> [u64; 3] {
        let mut out = [0u64; 3];
        for q in &self.rx {
            let [m, b] = q.read();
            out[0] += m;
            out[1] += b;
        }
        for q in &self.tx {
            out[2] += q.read()[1];
        }
        out
    }

    /// This driver's counters since the last reset, by name.
    pub(crate) fn xstats(&self) -> Vec<XStat> {
        let mut out = Vec::new();
        let base = *self.base.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.raw_extra();
        let names = ["rx_mergeable_dropped", "rx_bad_used_entries", "tx_bad_used_entries"];
        for (i, name) in names.iter().enumerate() {
            out.push(XStat::new(*name, now[i].wrapping_sub(base[i])));
        }
        out
    }

    /// Zeroes them (a baseline: no store races the writers).
    pub(crate) fn reset(&self) {
        let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        *base = self.raw_extra();
    }
}
