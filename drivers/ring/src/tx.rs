//! net_ring's TX burst (DPDK's `eth_ring_tx`): enqueue as many as the ring has room for.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::ring::Producer;
use burst_mem::PacketBuf;

/// A TX queue's handle: it owns the queue's ring end while it lives.
pub(crate) struct RingTx<'a> {
    pub ring: SlotGuard<'a, Producer<PacketBuf>>,
    pub counters: Arc<QueueCounters>,
}

fn bytes(bufs: &[PacketBuf]) -> usize {
    bufs.iter().map(|b| b.pkt_len() as usize).sum()
}

impl TxBurst for RingTx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        // Count bytes before the enqueue: once in the ring, a packet is the receiver's and may
        // already be gone. What the ring did not take is still ours, at the front of `bufs`.
        let offered = bytes(bufs);
        let n = self.ring.enqueue_burst(bufs);
        if n == 0 {
            return 0;
        }
        self.counters.add(n as u64, (offered - bytes(bufs)) as u64);
        n
    }
}
