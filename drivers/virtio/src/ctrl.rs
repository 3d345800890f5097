//! The control virtqueue (virtio 1.2, 5.1.6.5): one command at a time, synchronously. A command
//! is a chain of three descriptors into this queue's own buffer: the `class`/`command` header
//! (device-readable), the data (device-readable), the `ack` byte (device-writable). The driver
//! polls `used.idx` until the device has used the chain, for at most [`TIMEOUT`].
//!
//! Whatever the used entry says (id, length) is ignored: the chain is taken back by position
//! (only one is ever in flight), and only the ack byte in our own buffer is read, and only after
//! the device moved `used.idx`. Descriptors come from the shared [`Virtqueue`] in ring order, as
//! IN_ORDER requires (2.7.9: "starting from offset 0 in the table, and wrapping around"): each
//! command gives its own back, in order, before the next takes any.

use std::time::{Duration, Instant};

use burst_mem::barrier::io_wmb;
use burst_mem::Memzone;

use crate::error::VirtioError;
use crate::spec::ctrl::VIRTIO_NET_OK;
use crate::spec::ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use crate::virtqueue::Virtqueue;
use crate::vring::Vring;

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
    pub(crate) vq: Virtqueue,
    buf: Memzone,
    /// Base of `buf` as descriptors carry it.
    base: u64,
}

impl std::fmt::Debug for CtrlQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtrlQueue").field("vq", &self.vq).finish()
    }
}

impl CtrlQueue {
    /// A queue on `vq` (at least 4 descriptors) with `buf` (at least [`BUF_LEN`] bytes).
    pub(crate) fn new(vq: Vring, buf: Memzone) -> CtrlQueue {
        assert!(buf.len() >= BUF_LEN && vq.size() >= 4);
        CtrlQueue { vq: Virtqueue::new(vq), buf, base: 0 }
    }

    /// Clears the ring for a start (the device is reset); `va`: descriptors carry virtual
    /// addresses. A command that timed out is forgotten with the ring: the device that could
    /// still answer it was reset.
    pub(crate) fn reset(&mut self, va: bool) {
        self.vq.reset();
        self.base = if va { self.buf.as_ptr() as u64 } else { self.buf.iova() };
    }

    /// Sends one command and waits for the device's ack. `Err` says what went wrong.
    pub(crate) fn command(&mut self, class: u8, command: u8, data: &[u8]) -> Result<(), VirtioError> {
        if data.len() > MAX_DATA {
            return Err(VirtioError::CtrlDataTooLong { len: data.len(), max: MAX_DATA });
        }
        // A command that timed out may still be answered, and its ack byte taken for the next
        // command's: nothing goes out until the next start. Nor after the device used more
        // chains than it was given.
        let parts = if data.is_empty() { 2 } else { 3 };
        if self.vq.is_broken() || self.vq.free_descs() < parts {
            return Err(VirtioError::CtrlStuck { class, command });
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
        // The chain: header, data (if any), ack. Free descriptors were checked above.
        let mut ids = [0u16; 3];
        for id in &mut ids[..parts] {
            *id = self.vq.alloc_desc().unwrap_or_default();
        }
        let b = self.base;
        let (head, ack) = (ids[0], ids[parts - 1]);
        self.vq.set_desc(head, b + OFF_HDR as u64, 2, VRING_DESC_F_NEXT, ids[1]);
        if parts == 3 {
            self.vq.set_desc(ids[1], b + OFF_DATA as u64, data.len() as u32, VRING_DESC_F_NEXT, ack);
        }
        self.vq.set_desc(ack, b + OFF_ACK as u64, 1, VRING_DESC_F_WRITE, 0);
        self.vq.post(head);
        self.vq.publish();
        // The chain and `avail.idx` reach memory before the notification (2.7.13.3, 2.7.13.4).
        io_wmb();
        self.vq.notify();
        self.wait(class, command)?;
        self.vq.next_in_order();
        for &id in &ids[..parts] {
            self.vq.free_desc(id);
        }
        // SAFETY: inside our buffer; the device has used the chain.
        let ack = unsafe { p.add(OFF_ACK).read_volatile() };
        if ack == VIRTIO_NET_OK {
            Ok(())
        } else {
            Err(VirtioError::CtrlRefused { class, command, ack })
        }
    }

    /// Polls until the device has used the chain in flight, for at most [`TIMEOUT`]; on a
    /// timeout the queue stops (see [`CtrlQueue::command`]).
    fn wait(&mut self, class: u8, command: u8) -> Result<(), VirtioError> {
        let deadline = Instant::now() + TIMEOUT;
        let mut spins = 0u32;
        loop {
            match self.vq.used_pending() {
                Some(0) => {}
                Some(_) => return Ok(()),
                None => return Err(VirtioError::CtrlOverclaim { class, command }),
            }
            if Instant::now() >= deadline {
                self.vq.mark_broken();
                return Err(VirtioError::CtrlTimeout { class, command, timeout: TIMEOUT });
            }
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::VirtioError;
    use crate::testdev::{device, memory, pool, started};

    #[test]
    fn a_device_that_uses_more_than_the_command_in_flight_stops_the_queue_until_restart() {
        let dev = device();
        let mem = memory();
        let pool = pool(&mem, 300);
        let mut port = started(&dev, &mem, 1, &pool);
        let ctrl = *dev.state().queues.keys().next_back().expect("the control queue, last");
        dev.state().ctrl_silent = true;
        dev.used_jump(ctrl, 2);
        let err = port.set_promiscuous(true).unwrap_err();
        assert!(matches!(err.driver_error::<VirtioError>(), Some(VirtioError::CtrlOverclaim { .. })), "{err}");
        dev.state().ctrl_silent = false;
        let err = port.set_allmulticast(true).unwrap_err();
        assert!(matches!(err.driver_error::<VirtioError>(), Some(VirtioError::CtrlStuck { .. })), "{err}");
        assert!(!port.promiscuous() && !port.allmulticast(), "neither setting took");
        port.stop().unwrap();
        port.start().unwrap();
        port.set_allmulticast(true).unwrap();
        port.stop().unwrap();
        assert!(pool.mempool().is_full());
    }
}
