//! net_ring's RX burst (DPDK's `eth_ring_rx`): dequeue what the other side sent.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, RxBurst, SlotGuard};
use burst_mem::ring::Consumer;
use burst_mem::PacketBuf;

/// An RX queue's handle: it owns the queue's ring end while it lives.
pub(crate) struct RingRx<'a> {
    pub ring: SlotGuard<'a, Consumer<PacketBuf>>,
    pub counters: Arc<QueueCounters>,
    /// The receiving port, stamped on each buffer.
    pub port: u16,
}

impl RxBurst for RingRx<'_> {
    #[inline]
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize {
        let start = bufs.len();
        let n = self.ring.dequeue_burst(bufs, max);
        if n == 0 {
            return 0;
        }
        let mut bytes = 0;
        for buf in &mut bufs[start..] {
            buf.set_port(self.port);
            bytes += buf.pkt_len() as usize;
        }
        self.counters.add(n as u64, bytes as u64);
        n
    }
}
