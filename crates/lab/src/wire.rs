//! A NIC's wire: the host's end of a connected UDP socket pair on 127.0.0.1. QEMU gets the
//! other end (`-netdev dgram,local.type=fd`); each datagram is one Ethernet frame without
//! FCS. The kernel picks both ports, so any number of labs can run side by side.

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::frames::{FrameError, TestFrame};

/// Socket buffers big enough for bursts of thousands of full-size frames.
const SOCKET_BUFFER: i32 = 8 << 20;

/// The host's end of one NIC's wire.
pub struct Wire {
    host: UdpSocket,
    /// QEMU's end, until QEMU has inherited it.
    qemu: Option<OwnedFd>,
}

impl Wire {
    pub(crate) fn new() -> io::Result<Wire> {
        let host = UdpSocket::bind("127.0.0.1:0")?;
        let qemu = UdpSocket::bind("127.0.0.1:0")?;
        host.connect(qemu.local_addr()?)?;
        qemu.connect(host.local_addr()?)?;
        grow_buffers(&host);
        grow_buffers(&qemu);
        Ok(Wire { host, qemu: Some(qemu.into()) })
    }

    /// QEMU's end, to be inherited by the QEMU process.
    pub(crate) fn qemu_fd(&self) -> RawFd {
        self.qemu.as_ref().expect("QEMU's end is still held").as_raw_fd()
    }

    /// Closes our copy of QEMU's end once QEMU holds it.
    pub(crate) fn release_qemu_end(&mut self) {
        self.qemu = None;
    }

    /// The host's UDP port, for capturing a wire with `tcpdump -i lo udp port N`.
    pub fn host_port(&self) -> u16 {
        self.host.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Puts one frame on the wire, towards the guest's NIC.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.host.send(frame).map(|_| ())
    }

    /// The next frame from the guest's NIC, or `None` if none came within `timeout`.
    pub fn recv(&self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 65536];
        self.host.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        match self.host.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Ok(None),
            // Nobody at QEMU's end yet (or any more): nothing to read.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Drops every frame waiting on the host's end.
    pub fn drain(&self) -> io::Result<usize> {
        let mut n = 0;
        while self.recv(Duration::from_micros(1))?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Receives test frames until `count` have come or `timeout` has passed, skipping
    /// foreign traffic (whatever else the guest's kernel sends).
    pub fn recv_test_frames(&self, count: usize, timeout: Duration) -> io::Result<Received> {
        let deadline = Instant::now() + timeout;
        let mut got = Received::default();
        while got.frames.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(bytes) = self.recv(left)? else { break };
            match TestFrame::parse(&bytes) {
                Ok(f) => got.frames.push(f),
                Err(FrameError::Foreign) => got.foreign += 1,
                Err(e) => got.bad.push(e),
            }
        }
        Ok(got)
    }
}

/// What [`Wire::recv_test_frames`] collected.
#[derive(Debug, Default)]
pub struct Received {
    /// Valid test frames, in arrival order.
    pub frames: Vec<TestFrame>,
    /// Test frames that arrived damaged.
    pub bad: Vec<FrameError>,
    /// Frames that were not test frames.
    pub foreign: usize,
}

fn grow_buffers(sock: &UdpSocket) {
    let set = |opt: i32| {
        // SAFETY: setsockopt with a pointer to a live i32 and its size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&SOCKET_BUFFER as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        rc == 0
    };
    // The FORCE options pass net.core.[rw]mem_max but need root; the plain ones are capped.
    if !set(libc::SO_RCVBUFFORCE) {
        set(libc::SO_RCVBUF);
    }
    if !set(libc::SO_SNDBUFFORCE) {
        set(libc::SO_SNDBUF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_between_the_two_ends() {
        let w = Wire::new().unwrap();
        let qemu_end = UdpSocket::from(w.qemu.as_ref().unwrap().try_clone().unwrap());
        let frame = TestFrame::build([0xff; 6], [2, 0, 0, 0, 0, 1], 9, 64);
        w.send(&frame).unwrap();
        let mut buf = [0u8; 2048];
        let n = qemu_end.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &frame[..]);

        qemu_end.send(&frame).unwrap();
        qemu_end.send(b"not a test frame").unwrap();
        let got = w.recv_test_frames(1, Duration::from_secs(1)).unwrap();
        assert_eq!(got.frames.len(), 1);
        assert_eq!(got.frames[0].seq, 9);
        assert_eq!(w.drain().unwrap(), 1);
        assert!(w.recv(Duration::from_millis(10)).unwrap().is_none());
    }
}
