//! The forwarding loop each lcore runs (DPDK's `l2fwd_main_loop`): receive a burst on each of
//! its ports, rewrite the addresses, buffer the packets per TX port, and send a buffer when it
//! holds a burst or every ~100 us.

use std::time::{Duration, Instant};

use burst::net::EthernetAddrs;
use burst::{MacAddr, PacketBuf, PortId, Runtime, RxQueue, TxQueue};

use crate::stats::PortCounters;

/// Packets per `rx_burst` and per TX buffer (DPDK's `MAX_PKT_BURST`).
pub const MAX_PKT_BURST: usize = 32;
/// How long a packet may wait in a TX buffer (DPDK's `BURST_TX_DRAIN_US`).
pub const BURST_TX_DRAIN: Duration = Duration::from_micros(100);

/// A TX queue with a buffer in front (DPDK's `rte_eth_dev_tx_buffer`): packets go out
/// [`MAX_PKT_BURST`] at a time, and what the queue does not take is freed and counted as
/// dropped (the `rte_eth_tx_buffer_count_callback` l2fwd installs).
pub struct TxBuffer<'p> {
    queue: TxQueue<'p>,
    pkts: Vec<PacketBuf>,
    stats: &'p PortCounters,
}

impl<'p> TxBuffer<'p> {
    /// A buffer for `queue`, counting into `stats`.
    pub fn new(queue: TxQueue<'p>, stats: &'p PortCounters) -> Self {
        TxBuffer { queue, pkts: Vec::with_capacity(MAX_PKT_BURST), stats }
    }

    /// Buffers `pkt`, sending the buffer once it is full (`rte_eth_tx_buffer`).
    #[inline]
    pub fn push(&mut self, pkt: PacketBuf) {
        self.pkts.push(pkt);
        if self.pkts.len() == MAX_PKT_BURST {
            self.flush();
        }
    }

    /// Sends what is buffered; drops what the queue did not take (`rte_eth_tx_buffer_flush`).
    #[inline]
    pub fn flush(&mut self) {
        if self.pkts.is_empty() {
            return;
        }
        let sent = self.queue.tx_burst(&mut self.pkts);
        self.stats.add_tx(sent, self.pkts.len());
        // Dropping a buffer gives it back to its pool.
        self.pkts.clear();
    }
}

/// One RX port of an lcore and where its packets go.
pub struct Forward<'p> {
    /// The RX port's queue 0.
    pub rx: RxQueue<'p>,
    /// The RX port's counters.
    pub rx_stats: &'p PortCounters,
    /// The destination port's queue 0, buffered.
    pub tx: TxBuffer<'p>,
    /// The destination port.
    pub dst: PortId,
    /// The destination port's MAC address: the new source address.
    pub dst_mac: MacAddr,
}

/// Rewrites the Ethernet addresses (DPDK's `l2fwd_mac_updating`): destination
/// 02:00:00:00:00:TX_PORT, source the TX port's address. A frame too short to hold them is left
/// alone (DPDK would write past its end).
#[inline]
fn update_macs(pkt: &mut PacketBuf, dst: PortId, dst_mac: MacAddr) {
    if let Ok(mut addrs) = EthernetAddrs::new_checked(pkt.data_mut()) {
        addrs.set_dst(MacAddr([0x02, 0, 0, 0, 0, dst as u8]));
        addrs.set_src(dst_mac);
    }
}

/// Runs until the runtime is asked to stop. `timer` is the main lcore's: every `period` it
/// calls `tick` (the statistics screen); other lcores pass `None`.
pub fn main_loop(
    rt: &Runtime,
    ports: &mut [Forward<'_>],
    mac_updating: bool,
    mut timer: Option<(Duration, &mut dyn FnMut())>,
) {
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(MAX_PKT_BURST);
    let mut prev = Instant::now();
    let mut since_tick = Duration::ZERO;
    while !rt.stop_requested() {
        // DPDK reads the TSC here; `Instant::now` is the vDSO's clock_gettime, which reads it too.
        let now = Instant::now();
        let diff = now - prev;
        if diff > BURST_TX_DRAIN {
            for f in ports.iter_mut() {
                f.tx.flush();
            }
            if let Some((period, tick)) = timer.as_mut() {
                since_tick += diff;
                if since_tick >= *period {
                    tick();
                    since_tick = Duration::ZERO;
                }
            }
            prev = now;
        }
        if ports.is_empty() {
            // An lcore with no port (only ever the main one, kept for the statistics screen)
            // need not spin.
            std::thread::sleep(BURST_TX_DRAIN);
            continue;
        }
        for f in ports.iter_mut() {
            let n = f.rx.rx_burst(&mut bufs, MAX_PKT_BURST);
            if n == 0 {
                continue;
            }
            f.rx_stats.add_rx(n);
            for mut pkt in bufs.drain(..) {
                if mac_updating {
                    update_macs(&mut pkt, f.dst, f.dst_mac);
                }
                f.tx.push(pkt);
            }
        }
    }
    // DPDK leaves what is buffered in the buffers; send it, so that every packet received is
    // counted as sent or dropped, and no buffer outlives the ports.
    for f in ports.iter_mut() {
        f.tx.flush();
    }
}
