//! The control virtqueue (virtio 1.2, 5.1.6.5): one command at a time, synchronously. A command
//! is a chain of three descriptors into this queue's own buffer: the `class`/`command` header
//! (device-readable), the data (device-readable), the `ack` byte (device-writable). The driver
//! polls `used.idx` until the device has used the chain, for at most [`TIMEOUT`].
//!
//! Whatever the used entry says (id, length) is ignored: only the ack byte in our own buffer is
//! read, and only after the device moved `used.idx`.

use std::time::{Duration, Instant};

use burst_mem::barrier::io_wmb;
use burst_mem::Memzone;

use crate::spec::ctrl::VIRTIO_NET_OK;
use crate::spec::ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use crate::transport::Notifier;
use crate::virtqueue::Vring;

/// How long a command may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// Where each part of a command lives in the buffer.
const OFF_HDR: usize = 0;
const OFF_DATA: usize = 64;
const OFF_ACK: usize = 1024;
/// The largest command data.
pub(crate) const MAX_DATA: usize = OFF_ACK - OFF_DATA;
/// Bytes of command buffer needed.
pub(crate) const BUF_LEN: usize = OFF_ACK + 64;

/// The control queue's state.
pub(crate) struct CtrlQueue {
    vq: Vring,
    buf: Memzone,
    pub(crate) notifier: Option<Notifier>,
    avail_idx: u16,
    last_used: u16,
    /// Base of `buf` as descriptors carry it.
    base: u64,
    /// A command timed out: the device may still complete it and write the ack byte, which the
    /// next command would take for its own answer. No command goes out until the next start.
    stuck: bool,
    /// The next descriptor to use: commands take descriptors in ring order, as IN_ORDER
    /// requires (2.7.5: "starting from offset 0 in the table, and wrapping around").
    next_desc: u16,
}

impl std::fmt::Debug for CtrlQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlQueue").field("vq", &self.vq).finish()
    }
}

impl CtrlQueue {
    /// A queue on `vq` (at least 3 descriptors) with `buf` (at least [`BUF_LEN`] bytes).
    pub(crate) fn new(vq: Vring, buf: Memzone) -> CtrlQueue {
        assert!(buf.len() >= BUF_LEN && vq.size() >= 4);
        CtrlQueue { vq, buf, notifier: None, avail_idx: 0, last_used: 0, base: 0, stuck: false, next_desc: 0 }
    }

    /// The ring.
    pub(crate) fn vring(&self) -> &Vring {
        &self.vq
    }

    /// Clears the ring for a start (the device is reset); `va`: descriptors carry virtual
    /// addresses.
    pub(crate) fn reset(&mut self, va: bool) {
        self.vq.clear();
        self.avail_idx = 0;
        self.last_used = 0;
        self.notifier = None;
        self.stuck = false;
        self.next_desc = 0;
        self.base = if va { self.buf.as_ptr() as u64 } else { self.buf.iova() };
    }

    /// Sends one command and waits for the device's ack. `Err` says what went wrong.
    pub(crate) fn command(&mut self, class: u8, command: u8, data: &[u8]) -> Result<(), String> {
        if data.len() > MAX_DATA {
            return Err(format!("control command data of {} bytes is too long", data.len()));
        }
        if self.stuck {
            return Err(format!(
                "control command {class}/{command} not sent: an earlier command timed out and the device may still \
                 answer it; stop and start the port"
            ));
        }
        let p = self.buf.as_ptr();
        // SAFETY: the buffer is ours and BUF_LEN long; the device only reads it once the chain
        // is published below (and is done with the previous one: commands are synchronous).
        unsafe {
            p.add(OFF_HDR).write_volatile(class);
            p.add(OFF_HDR + 1).write_volatile(command);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(OFF_DATA), data.len());
            // Anything but OK until the device writes its answer.
            p.add(OFF_ACK).write_volatile(0xff);
        }
        let view = *self.vq.view();
        let b = self.base;
        let mask = self.vq.size() - 1;
        // The chain: header, data (if any), ack, on consecutive descriptors.
        let head = self.next_desc & mask;
        let mut d = head;
        let step = |d: u16| d.wrapping_add(1) & mask;
        view.set_desc(d, b + OFF_HDR as u64, 2, VRING_DESC_F_NEXT, step(d));
        d = step(d);
        if !data.is_empty() {
            view.set_desc(d, b + OFF_DATA as u64, data.len() as u32, VRING_DESC_F_NEXT, step(d));
            d = step(d);
        }
        view.set_desc(d, b + OFF_ACK as u64, 1, VRING_DESC_F_WRITE, 0);
        self.next_desc = step(d);
        view.set_avail_ring(self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        view.publish_avail(self.avail_idx);
        // The chain and `avail.idx` reach memory before the notification (2.7.13.3, 2.7.13.4).
        io_wmb();
        if let Some(n) = &self.notifier {
            n.notify();
        }
        let deadline = Instant::now() + TIMEOUT;
        let mut spins = 0u32;
        loop {
            let used = view.used_idx_acquire();
            if used != self.last_used {
                self.last_used = used;
                break;
            }
            if Instant::now() >= deadline {
                self.stuck = true;
                return Err(format!("the device did not answer control command {class}/{command} within {TIMEOUT:?}"));
            }
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        // SAFETY: inside our buffer; the device has used the chain.
        let ack = unsafe { p.add(OFF_ACK).read_volatile() };
        if ack == VIRTIO_NET_OK {
            Ok(())
        } else {
            Err(format!("the device refused control command {class}/{command} (ack {ack})"))
        }
    }
}
