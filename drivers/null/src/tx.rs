//! net_null's TX burst functions (DPDK's `eth_null_tx` and `eth_null_copy_tx`): take every
//! packet, count it, free it.

use std::sync::Arc;

use burst_ethdev::{QueueCounters, SlotGuard, TxBurst};
use burst_mem::{PacketBuf, PacketPool};

/// A TX queue's state, lent to its handle while the handle lives.
#[derive(Debug)]
pub(crate) struct TxState {
    /// Where copy mode reads packets to: `size` bytes; empty otherwise.
    pub scratch: Box<[u8]>,
    /// The port's counters for this queue.
    pub counters: Arc<QueueCounters>,
}

/// Counts and frees everything in `bufs`; returns how many.
#[inline(always)]
fn drop_all(bufs: &mut Vec<PacketBuf>, counters: &QueueCounters) -> usize {
    let n = bufs.len();
    let bytes: u64 = bufs.iter().map(|b| u64::from(b.pkt_len())).sum();
    PacketPool::free_bulk(bufs);
    counters.add(n as u64, bytes);
    n
}

/// The plain mode: packets are freed unread.
pub(crate) struct NullTx<'a> {
    pub _state: SlotGuard<'a, TxState>,
    pub counters: Arc<QueueCounters>,
}

impl TxBurst for NullTx<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        drop_all(bufs, &self.counters)
    }
}

/// Copy mode (`copy=1`): each packet's first `size` bytes are read into the scratch buffer
/// before it is freed, as a device would read them.
pub(crate) struct NullTxCopy<'a> {
    pub state: SlotGuard<'a, TxState>,
    pub counters: Arc<QueueCounters>,
}

impl TxBurst for NullTxCopy<'_> {
    #[inline]
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        let scratch = &mut self.state.scratch[..];
        for buf in bufs.iter() {
            let data = buf.data();
            let n = data.len().min(scratch.len());
            scratch[..n].copy_from_slice(&data[..n]);
        }
        // The copies land in memory the queue keeps, so they are not optimised away.
        std::hint::black_box(&*scratch);
        drop_all(bufs, &self.counters)
    }
}
