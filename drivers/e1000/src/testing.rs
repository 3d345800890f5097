//! What the unit tests and the benchmark (`benches/burst.rs`, feature `bench`) share: DMA
//! memory without hugepages, a doorbell that records instead of writing a register, the
//! device's side of a descriptor, and an RX and a TX queue run against those, with no device.
//! Not an API: hidden, and built only for tests and the benchmark.

use std::cell::Cell;

use std::sync::Arc;

use burst_ethdev::{RxOffloads, SwStats, TxOffloads};
use burst_mem::{Memory, PacketBuf, PacketPool};

use crate::desc::{RxDesc, TxDesc};
use crate::regs::{RDT, RXD_STAT_DD, RXD_STAT_EOP, TDT, TXD_STAT_DD};
use crate::ring::{wrap_add, DescRing, Descriptor, Doorbell};
use crate::rx::RxRing;
use crate::tx::TxRing;

/// A doorbell that remembers the last write.
#[derive(Default)]
pub struct Recorder {
    /// The last register written and its value.
    pub last: Cell<Option<(usize, u32)>>,
    /// How many writes.
    pub writes: Cell<usize>,
}

impl Doorbell for Recorder {
    #[inline]
    fn ring_tail(&self, reg: usize, value: u32) {
        self.last.set(Some((reg, value)));
        self.writes.set(self.writes.get() + 1);
    }
}

impl Recorder {
    /// The last value written to `reg`'s place, if the last write was to `reg`.
    fn last_to(&self, reg: usize) -> Option<u16> {
        self.last.get().filter(|&(r, _)| r == reg).map(|(_, v)| v as u16)
    }
}

/// Memory, names and pools without hugepages, as every driver's tests take them.
pub use burst_mem::testing::{memory, packet_pool as pool, unique_name as name};

/// A ring of `n` descriptors.
pub(crate) fn ring<D: Descriptor>(mem: &Memory, n: u16) -> DescRing<D> {
    DescRing::new(mem, &name("ring"), n, None).unwrap()
}

/// Writes back RX descriptor `i` as a device would: `length`, `status`, `errors`.
pub(crate) fn device_writes_rx(ring: &DescRing<RxDesc>, i: u16, length: u16, status: u8, errors: u8) {
    ring.desc(i).device_write_back(length, status, errors, 0);
}

/// Writes back RX descriptor `i` with the VLAN tag `special` it stripped.
#[cfg(test)]
pub(crate) fn device_writes_rx_vlan(
    ring: &DescRing<RxDesc>,
    i: u16,
    length: u16,
    status: u8,
    errors: u8,
    special: u16,
) {
    ring.desc(i).device_write_back(length, status, errors, special);
}

/// Sets the DD bit of TX descriptor `i`, as the device does when it is done with it.
pub(crate) fn device_done_tx(ring: &DescRing<TxDesc>, i: u16) {
    ring.desc(i).device_set_status(TXD_STAT_DD);
}

/// A started RX queue with a device that writes frames back into it as fast as asked: RDH is
/// the device's, RDT the last value the driver rang.
pub struct RxSim {
    rx: RxRing,
    bell: Recorder,
    /// RDH: the next descriptor the device fills.
    head: u16,
    /// The queue's counters.
    sw: SwStats,
}

impl RxSim {
    /// A queue of `n` descriptors armed from `pool` (2048-byte buffers).
    pub fn new(mem: &Memory, pool: &PacketPool, n: u16) -> RxSim {
        let sw = SwStats::new(1, 0);
        let mut rx = RxRing::new(ring(mem, n), pool.clone(), 2048, RxOffloads::NONE, sw.rx(0), Arc::default());
        rx.arm().expect("the pool fills the ring");
        let bell = Recorder::default();
        bell.ring_tail(RDT, u32::from(rx.tail()));
        RxSim { rx, bell, head: 0, sw }
    }

    /// The device receives `k` frames of `len` bytes (or as many as it has descriptors for),
    /// writing each descriptor back done, whole and error-free; returns how many.
    pub fn device_receives(&mut self, k: u16, len: u16) -> u16 {
        let n = self.rx.ring().len();
        let tail = self.bell.last_to(RDT).unwrap_or(0);
        let mut done = 0;
        while done < k && self.head != tail {
            device_writes_rx(self.rx.ring(), self.head, len, RXD_STAT_DD | RXD_STAT_EOP, 0);
            self.head = wrap_add(self.head, 1, n);
            done += 1;
        }
        done
    }

    /// The driver's RX burst: up to `max` frames appended to `out`.
    #[inline(never)]
    pub fn rx_burst(&mut self, out: &mut Vec<PacketBuf>, max: usize) -> usize {
        self.rx.burst(&self.bell, out, max, 0)
    }

    /// Frames the driver dropped and buffers it could not get.
    pub fn dropped_nombuf(&self) -> (u64, u64) {
        let s = self.sw.get();
        (s.ierrors, s.rx_nombuf)
    }
}

impl Drop for RxSim {
    fn drop(&mut self) {
        self.rx.release();
    }
}

/// A started TX queue with a device that sends whatever it is given when asked: TDH is the
/// device's, TDT the last value the driver rang.
pub struct TxSim {
    tx: TxRing,
    bell: Recorder,
    /// TDH: the next descriptor the device sends.
    head: u16,
    sw: SwStats,
}

impl TxSim {
    /// A queue of `n` descriptors.
    pub fn new(mem: &Memory, n: u16) -> TxSim {
        let sw = SwStats::new(0, 1);
        TxSim { tx: TxRing::new(ring(mem, n), TxOffloads::NONE, sw.tx(0)), bell: Recorder::default(), head: 0, sw }
    }

    /// The driver's TX burst: what fits is taken from the front of `bufs`.
    #[inline(never)]
    pub fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize {
        self.tx.burst(&self.bell, bufs)
    }

    /// The device sends every descriptor up to TDT and writes DD back into each (the driver
    /// sets RS on every one); returns how many.
    pub fn device_sends(&mut self) -> u16 {
        let n = self.tx.ring().len();
        let tail = self.bell.last_to(TDT).unwrap_or(0);
        let mut done = 0;
        while self.head != tail {
            device_done_tx(self.tx.ring(), self.head);
            self.head = wrap_add(self.head, 1, n);
            done += 1;
        }
        done
    }

    /// Buffers the driver could not send.
    pub fn errors(&self) -> u64 {
        self.sw.get().oerrors
    }
}

impl Drop for TxSim {
    fn drop(&mut self) {
        self.tx.release();
    }
}

/// The device's side of TX as SDM 3.3 and 3.5 describe it (and QEMU's `hw/net/e1000.c`
/// `process_tx_desc` does it), for the unit tests: it reads the descriptors the driver posted,
/// keeps the last TCP/IP context, gathers each packet's data, and returns the frames the wire
/// would carry: checksums inserted where POPTS asks, TCP segmented with TSE (headers repeated,
/// lengths, IP identification and sequence numbers advanced, PSH and FIN on the last segment
/// only), VLAN tags inserted with VLE. It sets DD in every descriptor, as RS asks.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TxWire {
    /// TDH: the next descriptor the device reads.
    pub head: u16,
    ctx: crate::desc::TxContext,
    data: Vec<u8>,
    popts: u8,
    tse: bool,
    vlan: Option<u16>,
}

#[cfg(test)]
impl TxWire {
    /// Sends every descriptor up to `tail`.
    pub(crate) fn send(&mut self, ring: &DescRing<TxDesc>, tail: u16) -> Vec<Vec<u8>> {
        use crate::regs::{TXD_CMD_DEXT, TXD_CMD_EOP, TXD_CMD_TSE, TXD_CMD_VLE, TXD_DTYP_CONTEXT};
        let mut frames = Vec::new();
        while self.head != tail {
            let d = ring.desc(self.head);
            let cmd = d.cmd();
            let (dtyp, popts, special) = d.data_fields();
            let extended = cmd & TXD_CMD_DEXT != 0;
            if extended && dtyp == TXD_DTYP_CONTEXT {
                self.ctx = d.context().0;
            } else {
                if self.data.is_empty() {
                    self.popts = if extended { popts } else { 0 };
                }
                self.tse |= extended && cmd & TXD_CMD_TSE != 0;
                let len = usize::from(d.length());
                // SAFETY: test memory is IOVA as VA, and the driver points a descriptor at `len`
                // bytes of a buffer it keeps until the descriptor is done.
                let bytes = unsafe { std::slice::from_raw_parts(d.buffer() as usize as *const u8, len) };
                self.data.extend_from_slice(bytes);
                if cmd & TXD_CMD_VLE != 0 {
                    self.vlan = Some(special);
                }
                if cmd & TXD_CMD_EOP != 0 {
                    frames.extend(self.frames());
                    self.data.clear();
                    (self.tse, self.vlan) = (false, None);
                }
            }
            d.device_set_status(TXD_STAT_DD);
            self.head = wrap_add(self.head, 1, ring.len());
        }
        frames
    }

    /// The frames of the packet gathered.
    fn frames(&self) -> Vec<Vec<u8>> {
        use crate::regs::{TXC_TUCMD_IP, TXC_TUCMD_TCP};
        let c = self.ctx;
        let mut out = Vec::new();
        if self.tse {
            let hdrlen = usize::from(c.hdrlen);
            let (hdr, payload) = self.data.split_at(hdrlen.min(self.data.len()));
            let chunks: Vec<&[u8]> = payload.chunks(usize::from(c.mss).max(1)).collect();
            for (k, chunk) in chunks.iter().enumerate() {
                let mut f = [hdr, chunk].concat();
                let (ip, l4) = (usize::from(c.ipcss), usize::from(c.tucss));
                let len = f.len();
                if c.tucmd & TXC_TUCMD_IP != 0 {
                    put16(&mut f, ip + 2, (len - ip) as u16);
                    let id = get16(&f, ip + 4).wrapping_add(k as u16);
                    put16(&mut f, ip + 4, id);
                } else {
                    put16(&mut f, ip + 4, (len - ip - 40) as u16);
                }
                if c.tucmd & TXC_TUCMD_TCP != 0 {
                    let seq = u32::from_be_bytes(f[l4 + 4..l4 + 8].try_into().unwrap());
                    let seq = seq.wrapping_add((k * usize::from(c.mss)) as u32);
                    f[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
                    if k + 1 < chunks.len() {
                        f[l4 + 13] &= !0x09; // PSH, FIN
                    }
                }
                if self.popts & crate::regs::TXD_POPTS_TXSM != 0 {
                    // The pseudo-header's sum lacks the length: each segment's is added (3.5).
                    let at = usize::from(c.tucso);
                    let sum = u32::from(get16(&f, at)) + (f.len() - l4) as u32;
                    put16(&mut f, at, ((sum >> 16) + (sum & 0xffff)) as u16);
                }
                out.push(self.finish(f));
            }
        } else {
            out.push(self.finish(self.data.clone()));
        }
        out
    }

    /// Checksums (TXSM, then IXSM, as QEMU does) and the VLAN tag.
    fn finish(&self, mut f: Vec<u8>) -> Vec<u8> {
        use crate::regs::{TXD_POPTS_IXSM, TXD_POPTS_TXSM};
        let c = self.ctx;
        let mut put_sum = |start: usize, end: u16, at: u8| {
            let end = if end == 0 { f.len() } else { usize::from(end) + 1 };
            let sum = burst_net::Checksum::new().add_bytes(&f[start..end.min(f.len())]).finish();
            put16(&mut f, usize::from(at), sum);
        };
        if self.popts & TXD_POPTS_TXSM != 0 {
            put_sum(usize::from(c.tucss), c.tucse, c.tucso);
        }
        if self.popts & TXD_POPTS_IXSM != 0 {
            put_sum(usize::from(c.ipcss), c.ipcse, c.ipcso);
        }
        if let Some(tci) = self.vlan {
            let mut tag = vec![0x81, 0x00];
            tag.extend_from_slice(&tci.to_be_bytes());
            f.splice(12..12, tag);
        }
        f
    }
}

#[cfg(test)]
fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

#[cfg(test)]
fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_queues_move_every_frame_and_give_every_buffer_back() {
        let mem = memory();
        let pool = pool(&mem, 128);
        let mut rx = RxSim::new(&mem, &pool, 32);
        let mut tx = TxSim::new(&mem, 32);
        let mut bufs = Vec::new();
        for round in 0..5 {
            assert_eq!(rx.device_receives(20, 60), 20, "round {round}");
            assert_eq!(rx.rx_burst(&mut bufs, 32), 20);
            assert!(bufs.iter().all(|b| b.len() == 60));
            assert_eq!(tx.tx_burst(&mut bufs), 20);
            assert!(bufs.is_empty());
            assert_eq!(tx.device_sends(), 20);
        }
        // The device never passes the driver's tail: 31 of 32 descriptors are its.
        assert_eq!(rx.device_receives(40, 60), 31);
        assert_eq!((rx.dropped_nombuf(), tx.errors()), ((0, 0), 0));
        drop((rx, tx));
        assert!(pool.mempool().is_full());
    }
}
