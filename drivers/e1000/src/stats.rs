//! Statistics: the device's read-to-clear counters (SDM 13.7) folded into 64-bit totals on
//! every read, merged with what only the driver sees, which its queues count in the port's
//! counters: frames it dropped (`ierrors`, `oerrors`) and buffers it could not get
//! (`rx_nombuf`); and the driver's own RX counters ([`RxCounters`]): checksum verdicts and
//! frames over several descriptors it dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use burst_ethdev::{Stats, XStat};
use burst_pci::Bar;

use crate::regs::*;

/// One device counter: its xstat name (DPDK's e1000 names), its register, and whether it is a
/// 64-bit low/high pair.
struct Counter {
    name: &'static str,
    reg: usize,
    wide: bool,
}

const fn c(name: &'static str, reg: usize) -> Counter {
    Counter { name, reg, wide: false }
}

const fn w(name: &'static str, reg: usize) -> Counter {
    Counter { name, reg, wide: true }
}

/// Every counter read, in this order (the `I_*` indices below point into it).
const COUNTERS: [Counter; 35] = [
    c("rx_good_packets_hw", GPRC),
    c("tx_good_packets_hw", GPTC),
    w("rx_good_bytes_hw", GORCL),
    w("tx_good_bytes_hw", GOTCL),
    c("rx_missed_packets", MPC),
    c("rx_crc_errors", CRCERRS),
    c("rx_align_errors", ALGNERRC),
    c("rx_symbol_errors", SYMERRS),
    c("rx_errors_hw", RXERRC),
    c("rx_length_errors", RLEC),
    c("rx_undersize_errors", RUC),
    c("rx_oversize_errors", ROC),
    c("rx_fragment_errors", RFC),
    c("rx_jabber_errors", RJC),
    c("rx_no_buffers", RNBC),
    c("rx_broadcast_packets", BPRC),
    c("rx_multicast_packets", MPRC),
    c("tx_broadcast_packets", BPTC),
    c("tx_multicast_packets", MPTC),
    c("rx_total_packets", TPR),
    c("tx_total_packets", TPT),
    w("rx_total_bytes", TORL),
    w("tx_total_bytes", TOTL),
    c("tx_single_collision_packets", SCC),
    c("tx_excessive_collision_packets", ECOL),
    c("tx_multiple_collision_packets", MCC),
    c("tx_late_collisions", LATECOL),
    c("tx_total_collisions", COLC),
    c("tx_deferred_packets", DC),
    c("tx_no_carrier_sense_packets", TNCRS),
    c("rx_carrier_ext_errors", CEXTERR),
    c("rx_xon_packets", XONRXC),
    c("tx_xon_packets", XONTXC),
    c("rx_xoff_packets", XOFFRXC),
    c("tx_xoff_packets", XOFFTXC),
];

const I_GPRC: usize = 0;
const I_GPTC: usize = 1;
const I_GORC: usize = 2;
const I_GOTC: usize = 3;
const I_MPC: usize = 4;
const I_CRCERRS: usize = 5;
const I_ALGNERRC: usize = 6;
const I_RXERRC: usize = 8;
const I_RLEC: usize = 9;
const I_RUC: usize = 10;
const I_ROC: usize = 11;
const I_ECOL: usize = 24;
const I_LATECOL: usize = 26;
const I_CEXTERR: usize = 30;

/// The Ethernet CRC, which the good-octet counters include (SDM 13.7.29, 13.7.31) and
/// `ibytes`/`obytes` do not.
const CRC_LEN: u64 = 4;

/// The device's counters since the last reset, 64 bits each.
#[derive(Debug)]
pub(crate) struct HwStats {
    totals: Mutex<[u64; COUNTERS.len()]>,
}

impl Default for HwStats {
    fn default() -> Self {
        HwStats { totals: Mutex::new([0; COUNTERS.len()]) }
    }
}

/// Reads every counter once (clearing it) into `acc`.
fn fold(bar: &Bar, acc: &mut [u64; COUNTERS.len()]) {
    for (total, ctr) in acc.iter_mut().zip(&COUNTERS) {
        let v = if ctr.wide {
            // Low first: reading the high half clears the pair (SDM 13.7).
            let lo = u64::from(bar.read32(ctr.reg));
            let hi = u64::from(bar.read32(ctr.reg + 4));
            (hi << 32) | lo
        } else {
            u64::from(bar.read32(ctr.reg))
        };
        *total = total.wrapping_add(v);
    }
}

impl HwStats {
    fn update(&self, bar: &Bar) -> std::sync::MutexGuard<'_, [u64; COUNTERS.len()]> {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        fold(bar, &mut t);
        t
    }

    /// The basic counters. Received packets and bytes are what the driver handed the
    /// application, from `sw` (the queues' counters): frames the device counted good but the
    /// driver dropped (a descriptor that lied, a frame over several buffers) are neither, and
    /// count in `ierrors` with the device's receive errors. Sent packets and bytes are the
    /// device's (frames on the wire, CRC not counted); `oerrors` adds the buffers no descriptor
    /// could carry.
    pub(crate) fn stats(&self, bar: &Bar, sw: &Stats) -> Stats {
        let h = self.update(bar);
        let (rx_dropped, tx_dropped) = (sw.ierrors, sw.oerrors);
        let opackets = h[I_GPTC];
        let obytes = h[I_GOTC].saturating_sub(h[I_GPTC] * CRC_LEN);
        let ierrors = h[I_CRCERRS] + h[I_ALGNERRC] + h[I_RXERRC] + h[I_RLEC] + h[I_RUC] + h[I_ROC] + h[I_CEXTERR];
        Stats {
            ipackets: sw.ipackets,
            opackets,
            ibytes: sw.ibytes,
            obytes,
            imissed: h[I_MPC],
            ierrors: ierrors + rx_dropped,
            oerrors: h[I_ECOL] + h[I_LATECOL] + tx_dropped,
            rx_nombuf: sw.rx_nombuf,
            q_ipackets: sw.q_ipackets.clone(),
            q_opackets: vec![opackets],
            q_ibytes: sw.q_ibytes.clone(),
            q_obytes: vec![obytes],
            q_errors: vec![ierrors + rx_dropped],
        }
    }

    /// The device's own view, for the closing log line: good frames and their bytes (CRC not
    /// counted) each way, missed frames, receive errors.
    pub(crate) fn device_totals(&self, bar: &Bar) -> [u64; 6] {
        let h = self.update(bar);
        [
            h[I_GPRC],
            h[I_GORC].saturating_sub(h[I_GPRC] * CRC_LEN),
            h[I_GPTC],
            h[I_GOTC].saturating_sub(h[I_GPTC] * CRC_LEN),
            h[I_MPC],
            h[I_CRCERRS] + h[I_ALGNERRC] + h[I_RXERRC] + h[I_RLEC] + h[I_RUC] + h[I_ROC] + h[I_CEXTERR],
        ]
    }

    /// Every device counter by its DPDK e1000 name, then the driver's drops.
    pub(crate) fn xstats(&self, bar: &Bar, sw: &Stats) -> Vec<XStat> {
        let t = self.update(bar);
        let mut out: Vec<XStat> = COUNTERS.iter().zip(t.iter()).map(|(c, v)| XStat::new(c.name, *v)).collect();
        out.push(XStat::new("rx_driver_dropped_packets", sw.ierrors));
        out.push(XStat::new("tx_driver_dropped_packets", sw.oerrors));
        out
    }

    /// Zeroes the device's counters (the registers by reading them).
    pub(crate) fn reset(&self, bar: &Bar) {
        let mut t = self.update(bar);
        *t = [0; COUNTERS.len()];
    }
}

/// What the RX queue counts beyond the port's counters, by xstat name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RxCount {
    /// Frames delivered with the device's verdict "IPv4 header checksum bad" (IPE).
    IpCksumBad,
    /// Frames delivered with the device's verdict "TCP/UDP checksum bad" (TCPE).
    L4CksumBad,
    /// Frames over several descriptors dropped: without scatter, every one; with it, those whose
    /// write-backs cannot be believed (a length of 0 or past the buffer, more than the device's
    /// longest frame, no EOP in time) or that end with an error. Also in `ierrors`.
    ChainErrors,
}

impl RxCount {
    const ALL: [RxCount; 3] = [RxCount::IpCksumBad, RxCount::L4CksumBad, RxCount::ChainErrors];

    fn name(self) -> &'static str {
        match self {
            RxCount::IpCksumBad => "rx_ip_checksum_errors",
            RxCount::L4CksumBad => "rx_l4_checksum_errors",
            RxCount::ChainErrors => "rx_chain_errors",
        }
    }
}

/// The RX queue's own counters: written by the one handle polling the queue (a relaxed load and
/// store, no locked instruction, as `burst_ethdev::QueueCounters`), read by anyone; a reset is a
/// baseline the reader keeps, so no increment is lost to it.
#[derive(Debug, Default)]
pub(crate) struct RxCounters {
    values: [AtomicU64; 3],
    base: Mutex<[u64; 3]>,
}

impl RxCounters {
    /// Counts `n` more of `what` (the polling handle only).
    #[inline]
    pub(crate) fn add(&self, what: RxCount, n: u64) {
        let c = &self.values[what as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    fn now(&self) -> [u64; 3] {
        std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed))
    }

    /// Each counter since the last reset.
    pub(crate) fn get(&self, what: RxCount) -> u64 {
        let base = self.base.lock().unwrap_or_else(|e| e.into_inner());
        self.values[what as usize].load(Ordering::Relaxed).wrapping_sub(base[what as usize])
    }

    /// Counts from zero again.
    pub(crate) fn reset(&self) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = self.now();
    }

    /// The counters as xstats.
    pub(crate) fn xstats(&self) -> impl Iterator<Item = XStat> + '_ {
        RxCount::ALL.into_iter().map(|c| XStat::new(c.name(), self.get(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_counters_count_from_their_last_reset() {
        let c = RxCounters::default();
        c.add(RxCount::ChainErrors, 3);
        c.add(RxCount::IpCksumBad, 1);
        c.reset();
        c.add(RxCount::ChainErrors, 2);
        let got: Vec<(String, u64)> = c.xstats().map(|x| (x.name, x.value)).collect();
        let want = [("rx_ip_checksum_errors", 0), ("rx_l4_checksum_errors", 0), ("rx_chain_errors", 2)];
        assert_eq!(got, want.map(|(n, v)| (n.to_string(), v)));
    }

    #[test]
    fn indices_name_the_registers_they_claim() {
        for (i, reg) in [
            (I_GPRC, GPRC),
            (I_GPTC, GPTC),
            (I_GORC, GORCL),
            (I_GOTC, GOTCL),
            (I_MPC, MPC),
            (I_CRCERRS, CRCERRS),
            (I_ALGNERRC, ALGNERRC),
            (I_RXERRC, RXERRC),
            (I_RLEC, RLEC),
            (I_RUC, RUC),
            (I_ROC, ROC),
            (I_ECOL, ECOL),
            (I_LATECOL, LATECOL),
            (I_CEXTERR, CEXTERR),
        ] {
            assert_eq!(COUNTERS[i].reg, reg, "{}", COUNTERS[i].name);
        }
        let mut names: Vec<_> = COUNTERS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COUNTERS.len(), "xstat names are unique");
    }
}
