//! Per-port counters and DPDK l2fwd's statistics screen (`print_stats`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use burst::PortId;

/// One port's counters (DPDK's `struct l2fwd_port_statistics`, cache-line aligned like it).
///
/// Each counter has one writer: `rx` the lcore that polls the port, `tx` and `dropped` the lcore
/// that sends on it. So a relaxed load and store is enough (no locked add on the hot path), and
/// the main lcore may read them at any time.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct PortCounters {
    tx: AtomicU64,
    rx: AtomicU64,
    dropped: AtomicU64,
}

#[inline]
fn bump(counter: &AtomicU64, n: usize) {
    counter.store(counter.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed);
}

impl PortCounters {
    /// `n` more packets received (only the lcore polling the port calls this).
    #[inline]
    pub fn add_rx(&self, n: usize) {
        bump(&self.rx, n)
    }

    /// `sent` more packets sent and `dropped` more dropped (only the lcore sending on the port).
    #[inline]
    pub fn add_tx(&self, sent: usize, dropped: usize) {
        bump(&self.tx, sent);
        if dropped > 0 {
            bump(&self.dropped, dropped);
        }
    }

    /// The counts now.
    pub fn snapshot(&self, port: PortId) -> PortStats {
        PortStats {
            port,
            tx: self.tx.load(Ordering::Relaxed),
            rx: self.rx.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One port's counts at some moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStats {
    /// The port.
    pub port: PortId,
    /// Packets handed to the port's TX queue.
    pub tx: u64,
    /// Packets received on the port.
    pub rx: u64,
    /// Packets for this port that its TX queue did not take, and were freed.
    pub dropped: u64,
}

/// Writes DPDK's statistics screen, with the clear-screen escape when `clear` (the periodic
/// screen) and without it (the final table).
pub fn write_stats(out: &mut dyn Write, ports: &[PortStats], clear: bool) -> io::Result<()> {
    let mut s = String::new();
    if clear {
        // Clear the screen and move to the top left corner.
        s.push_str("\x1b[2J\x1b[1;1H");
    }
    s.push_str("\nPort statistics ====================================");
    for p in ports {
        s.push_str(&format!(
            "\nStatistics for port {} ------------------------------\
             \nPackets sent: {:>24}\nPackets received: {:>20}\nPackets dropped: {:>21}",
            p.port, p.tx, p.rx, p.dropped
        ));
    }
    let (tx, rx, dropped) = ports.iter().fold((0, 0, 0), |(t, r, d), p| (t + p.tx, r + p.rx, d + p.dropped));
    s.push_str(&format!(
        "\nAggregate statistics ===============================\
         \nTotal packets sent: {tx:>18}\nTotal packets received: {rx:>14}\nTotal packets dropped: {dropped:>15}\
         \n====================================================\n"
    ));
    out.write_all(s.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_is_dpdks() {
        let c = PortCounters::default();
        c.add_rx(7);
        c.add_tx(5, 2);
        let mut out = Vec::new();
        write_stats(&mut out, &[c.snapshot(0), PortStats { port: 1, tx: 1, rx: 2, dropped: 0 }], true).unwrap();
        let expected = "\x1b[2J\x1b[1;1H\nPort statistics ====================================\n\
            Statistics for port 0 ------------------------------\n\
            Packets sent:                        5\n\
            Packets received:                    7\n\
            Packets dropped:                     2\n\
            Statistics for port 1 ------------------------------\n\
            Packets sent:                        1\n\
            Packets received:                    2\n\
            Packets dropped:                     0\n\
            Aggregate statistics ===============================\n\
            Total packets sent:                  6\n\
            Total packets received:              9\n\
            Total packets dropped:               2\n\
            ====================================================\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
