//! The vhost-user protocol's messages and how they travel (QEMU docs/interop/vhost-user.rst,
//! "Message Specification"): a 12-byte header (request, flags, payload size, all native-endian
//! u32), then the payload; file descriptors ride along as `SCM_RIGHTS` ancillary data.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;

/// Front-end message types ("Front-end message types" in the spec).
pub(crate) mod req {
    pub const GET_FEATURES: u32 = 1;
    pub const SET_FEATURES: u32 = 2;
    pub const SET_OWNER: u32 = 3;
    pub const SET_MEM_TABLE: u32 = 5;
    pub const SET_VRING_NUM: u32 = 8;
    pub const SET_VRING_ADDR: u32 = 9;
    pub const SET_VRING_BASE: u32 = 10;
    pub const GET_VRING_BASE: u32 = 11;
    pub const SET_VRING_KICK: u32 = 12;
    pub const SET_VRING_CALL: u32 = 13;
    pub const GET_PROTOCOL_FEATURES: u32 = 15;
    pub const SET_PROTOCOL_FEATURES: u32 = 16;
    pub const GET_QUEUE_NUM: u32 = 17;
    pub const SET_VRING_ENABLE: u32 = 18;

    /// The request's name, for errors and logs.
    pub fn name(request: u32) -> &'static str {
        match request {
            GET_FEATURES => "GET_FEATURES",
            SET_FEATURES => "SET_FEATURES",
            SET_OWNER => "SET_OWNER",
            SET_MEM_TABLE => "SET_MEM_TABLE",
            SET_VRING_NUM => "SET_VRING_NUM",
            SET_VRING_ADDR => "SET_VRING_ADDR",
            SET_VRING_BASE => "SET_VRING_BASE",
            GET_VRING_BASE => "GET_VRING_BASE",
            SET_VRING_KICK => "SET_VRING_KICK",
            SET_VRING_CALL => "SET_VRING_CALL",
            GET_PROTOCOL_FEATURES => "GET_PROTOCOL_FEATURES",
            SET_PROTOCOL_FEATURES => "SET_PROTOCOL_FEATURES",
            GET_QUEUE_NUM => "GET_QUEUE_NUM",
            SET_VRING_ENABLE => "SET_VRING_ENABLE",
            _ => "unknown request",
        }
    }
}

/// Header flags: bits 0-1 the version (1), bit 2 "this is a reply", bit 3 "reply needed".
pub(crate) const VERSION: u32 = 0x1;
pub(crate) const FLAG_REPLY: u32 = 1 << 2;
pub(crate) const FLAG_NEED_REPLY: u32 = 1 << 3;
const VERSION_MASK: u32 = 0x3;

/// Feature bit 30 of GET_FEATURES: the back-end speaks protocol features.
pub(crate) const F_PROTOCOL_FEATURES: u64 = 1 << 30;

/// Protocol feature bits ("Protocol features" in the spec).
pub(crate) mod proto {
    pub const MQ: u64 = 1 << 0;
    pub const REPLY_ACK: u64 = 1 << 3;
}

/// The most regions a memory table holds without `CONFIGURE_MEM_SLOTS` (QEMU's and DPDK's
/// `VHOST_MEMORY_MAX_NREGIONS`), and so the most descriptors a message carries.
pub(crate) const MAX_REGIONS: usize = 8;

/// The largest payload we accept in a reply (a memory table is the largest message: 8 + 8*32).
const MAX_PAYLOAD: usize = 4096;

const HEADER: usize = 12;

/// A memory region of SET_MEM_TABLE: guest physical address, size, our virtual address, offset in
/// the file whose descriptor comes with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MemRegion {
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
    pub mmap_offset: u64,
}

/// SET_MEM_TABLE's payload: `u32 nregions, u32 padding, regions`.
pub(crate) fn mem_table(regions: &[MemRegion]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + regions.len() * 32);
    p.extend_from_slice(&(regions.len() as u32).to_ne_bytes());
    p.extend_from_slice(&0u32.to_ne_bytes());
    for r in regions {
        for v in [r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
    }
    p
}

/// `struct vhost_vring_state`: ring index and a number (size, base, enable).
pub(crate) fn vring_state(index: u32, num: u32) -> Vec<u8> {
    let mut p = index.to_ne_bytes().to_vec();
    p.extend_from_slice(&num.to_ne_bytes());
    p
}

/// `struct vhost_vring_addr`: index, flags, then the descriptor table, used ring, available
/// ring and log addresses, in that order, as the front-end's virtual addresses.
pub(crate) fn vring_addr(index: u32, desc: u64, used: u64, avail: u64) -> Vec<u8> {
    let mut p = index.to_ne_bytes().to_vec();
    p.extend_from_slice(&0u32.to_ne_bytes());
    for v in [desc, used, avail, 0u64] {
        p.extend_from_slice(&v.to_ne_bytes());
    }
    p
}

/// A u64 payload.
pub(crate) fn u64_payload(v: u64) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A received message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub request: u32,
    pub flags: u32,
    pub payload: Vec<u8>,
}

impl Message {
    /// The payload as a u64 (GET_FEATURES, REPLY_ACK, ...).
    pub fn u64(&self) -> Option<u64> {
        Some(u64::from_ne_bytes(self.payload.get(..8)?.try_into().ok()?))
    }
}

/// Sends one message with `fds` attached.
pub(crate) fn send(sock: &UnixStream, request: u32, flags: u32, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&request.to_ne_bytes());
    buf.extend_from_slice(&(flags | VERSION).to_ne_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
    buf.extend_from_slice(payload);
    send_with_fds(sock, &buf, fds)
}

fn send_with_fds(sock: &UnixStream, buf: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_REGIONS, "at most {MAX_REGIONS} descriptors per message");
    let mut cmsg = [0u64; 16]; // 128 bytes, 8-aligned: room for a header and 8 descriptors
    let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid (no name, no iov, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points to `cmsg`, 128 bytes, at least `space` (<= 48) long and
        // aligned for cmsghdr; CMSG_FIRSTHDR/CMSG_DATA stay inside it.
        unsafe {
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            (*hdr).cmsg_level = libc::SOL_SOCKET;
            (*hdr).cmsg_type = libc::SCM_RIGHTS;
            (*hdr).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(hdr).cast::<RawFd>(), fds.len());
        }
    }
    // The whole message goes in one sendmsg (a stream socket may split large writes, but the
    // kernel takes messages this small whole); loop on a short write for the rest, without fds.
    // SAFETY: `msg` points to live buffers (`buf`, `cmsg`) for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut sent = n as usize;
    while sent < buf.len() {
        // SAFETY: sends the rest of `buf`, which is live.
        let n =
            unsafe { libc::send(sock.as_raw_fd(), buf[sent..].as_ptr().cast(), buf.len() - sent, libc::MSG_NOSIGNAL) };
        if n <= 0 {
            return Err(io::Error::last_os_error());
        }
        sent += n as usize;
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; descriptors sent along are closed (a front-end expects none).
fn recv_exact(sock: &UnixStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let mut cmsg = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf[got..].as_mut_ptr().cast(), iov_len: buf.len() - got };
        // SAFETY: an all-zero msghdr is valid.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg);
        // SAFETY: the iov points into `buf` past what is filled, the control buffer is `cmsg`;
        // both live across the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the vhost-user back-end closed the socket"));
        }
        close_received_fds(&msg);
        got += n as usize;
    }
    Ok(())
}

fn close_received_fds(msg: &libc::msghdr) {
    // SAFETY: walks the control data the kernel just wrote into the buffer `msg` points to;
    // every descriptor found was installed in this process for us and is ours to close.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(msg);
        while !hdr.is_null() {
            if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*hdr).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                for i in 0..n {
                    libc::close(data.add(i).read_unaligned());
                }
            }
            hdr = libc::CMSG_NXTHDR(msg, hdr);
        }
    }
}

/// Receives one message (header, then `size` bytes of payload).
pub(crate) fn recv(sock: &UnixStream) -> io::Result<Message> {
    let mut header = [0u8; HEADER];
    recv_exact(sock, &mut header)?;
    let word = |i: usize| u32::from_ne_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let (request, flags, size) = (word(0), word(1), word(2) as usize);
    if flags & VERSION_MASK != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "vhost-user message with version {} (flags {flags:#x}); only version 1 exists",
                flags & VERSION_MASK
            ),
        ));
    }
    if size > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("vhost-user message with a {size}-byte payload"),
        ));
    }
    let mut payload = vec![0u8; size];
    recv_exact(sock, &mut payload)?;
    Ok(Message { request, flags, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_layouts_match_the_spec() {
        let r = MemRegion { guest_phys_addr: 1, memory_size: 2, userspace_addr: 3, mmap_offset: 4 };
        let t = mem_table(&[r, r]);
        assert_eq!(t.len(), 8 + 64);
        assert_eq!(&t[..4], &2u32.to_ne_bytes());
        assert_eq!(&t[8..16], &1u64.to_ne_bytes());
        assert_eq!(&t[32..40], &4u64.to_ne_bytes());
        let a = vring_addr(3, 0x1000, 0x3000, 0x2000);
        assert_eq!(a.len(), 40);
        assert_eq!(&a[8..16], &0x1000u64.to_ne_bytes(), "descriptor table first");
        assert_eq!(&a[16..24], &0x3000u64.to_ne_bytes(), "then the used ring");
        assert_eq!(&a[24..32], &0x2000u64.to_ne_bytes(), "then the available ring");
        assert_eq!(vring_state(1, 256).len(), 8);
    }

    #[test]
    fn messages_and_descriptors_cross_a_socket_pair() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        send(&a, req::SET_VRING_KICK, 0, &u64_payload(1), &[f.as_raw_fd()]).unwrap();
        let m = recv(&b).unwrap();
        assert_eq!((m.request, m.flags, m.u64()), (req::SET_VRING_KICK, VERSION, Some(1)));
        drop(a);
        let err = recv(&b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
