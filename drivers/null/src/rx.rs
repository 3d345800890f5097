//! net_null's RX burst functions, one per mode (DPDK's `eth_null_rx`, `eth_null_copy_rx`,
//! `eth_null_no_rx`).

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::{PacketBuf, PacketPool};

/// An RX queue's settings, lent to its handle while the handle lives.
#[derive(Debug)]
pub(crate) struct RxState {
    /// Where the buffers come from.
    pub pool: PacketPool,
    /// Bytes per packet; at most the pool's data room (checked at setup).
    pub size: u16,
    /// The port's number, stamped on every buffer.
    pub port: u16,
    /// What copy mode writes into each buffer: `size` bytes; empty otherwise.
    pub template: Box<[u8]>,
    /// The port's counters for this queue.
    pub counters: Arc<QueueCounters>,
}

impl RxState {
    /// Takes `max` fresh buffers and gives them the length and port of a received packet; all
    /// or nothing, as DPDK's `rte_pktmbuf_alloc_bulk`. Returns where the new buffers start in
    /// `bufs`, or `None` (counted as `rx_nombuf`) when the pool is short.
    #[inline(always)]
    fn receive(&self, bufs: &mut Vec<PacketBuf>, max: usize, counters: &QueueCounters) -> Option<usize> {
        let start = bufs.len();
        let size = usize::from(self.size);
        // `size` fits the data room (checked at setup), so the clamp never bites.
        if !self.pool.alloc_bulk_received(bufs, max, size, self.port) {
            counters.add_nombuf(max as u64);
            return None;
        }
        counters.add(max as u64, (max * size) as u64);
        Some(start)
    }
}

/// The plain mode: buffers of `size` bytes, data untouched.
pub(crate) struct NullRx<'a> {
    pub state: SlotGuard<'a, RxState>,
    pub counters: Arc<QueueCounters>,
}

impl RxBurst for NullRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        match self.state.receive(bufs, max, &self.counters) {
            Some(_) => max,
            None => 0,
        }
    }
}

/// Copy mode (`copy=1`): the template is written into every buffer.
pub(crate) struct NullRxCopy<'a> {
    pub state: SlotGuard<'a, RxState>,
    pub counters: Arc<QueueCounters>,
}

impl RxBurst for NullRxCopy<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        let state = &*self.state;
        let Some(start) = state.receive(bufs, max, &self.counters) else { return 0 };
        let template = &state.template[..];
        for buf in &mut bufs[start..] {
            let data = buf.data_mut();
            let n = data.len().min(template.len());
            data[..n].copy_from_slice(&template[..n]);
        }
        max
    }
}

/// `no-rx=1`: nothing ever arrives (the queue is still set up, as in DPDK).
pub(crate) struct NullRxNone<'a> {
    pub _state: SlotGuard<'a, RxState>,
}

impl RxBurst for NullRxNone<'_> {
    #[inline]
    fn rx_burst(&mut self, _bufs: &mut Vec<PacketBuf>, _max: usize) -> usize {
        0
    }
}
