//! A queue pair's socket, set up as packet_mmap.rst orders it: open, choose the frame format,
//! the TX options, ask for the rings, map them, bind to the interface, join the fanout group.
//! Closing the socket (dropping [`PacketSocket`]) unmaps the rings and takes it out of the
//! group; nothing outlives the process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::args::PacketArgs;
use crate::ring::{Mapping, Ring};
use crate::tpacket::{
    TpacketReq, TpacketStats, PACKET_FANOUT, PACKET_FANOUT_FLAG_DEFRAG, PACKET_FANOUT_FLAG_ROLLOVER,
    PACKET_FANOUT_FLAG_UNIQUEID, PACKET_IGNORE_OUTGOING, PACKET_LOSS, PACKET_QDISC_BYPASS, PACKET_RX_RING,
    PACKET_STATISTICS, PACKET_TX_RING, PACKET_VERSION, TPACKET_V2,
};
use crate::PacketError;

/// One queue pair's socket and its rings.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    /// The rings' memory, which `rx` and `tx` point into. Dropped before `fd`: the rings are
    /// unmapped, then the socket closed.
    _map: Mapping,
    fd: OwnedFd,
    /// The RX ring, for a queue that receives.
    pub(crate) rx: Option<Ring>,
    /// The TX ring, for a queue that sends.
    pub(crate) tx: Option<Ring>,
}

/// How a socket joins its port's fanout group (`PACKET_FANOUT`, packet(7)).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fanout {
    /// The port has one receiving queue: no group.
    None,
    /// The first socket: the kernel picks a group id no one else uses.
    New(u32),
    /// The others: join group `id` in the same mode.
    Join { id: u16, mode: u32 },
}

fn setopt<T>(fd: &OwnedFd, queue: u16, opt: libc::c_int, val: &T, step: &'static str) -> Result<(), PacketError> {
    // SAFETY: setsockopt reads size_of::<T>() bytes of `val`.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    };
    if r != 0 {
        return Err(PacketError::Socket { queue, step, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// The fanout argument for `mode` with DPDK's flags: fragments reassembled before hashing, a
/// full socket's frames rolled over to the next.
fn fanout_arg(id: u16, mode: u32, extra: u32) -> u32 {
    u32::from(id) | ((mode | PACKET_FANOUT_FLAG_DEFRAG | PACKET_FANOUT_FLAG_ROLLOVER | extra) << 16)
}

/// Opens a socket of `ifindex`: AF_PACKET fails with EPERM without CAP_NET_RAW.
pub(crate) fn open_socket() -> Result<OwnedFd, PacketError> {
    // Protocol 0: the socket receives nothing until `bind` names a protocol (packet(7)).
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => PacketError::NoCapNetRaw,
            _ => PacketError::Socket { queue: 0, step: "socket(AF_PACKET)", source: e },
        });
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl PacketSocket {
    /// Queue pair `queue`'s socket on interface `ifindex`: an RX ring if `rx`, a TX ring if `tx`,
    /// in the geometry `args` gives.
    pub(crate) fn open(
        ifindex: u32,
        queue: u16,
        args: &PacketArgs,
        rx: bool,
        tx: bool,
        fanout: Fanout,
    ) -> Result<PacketSocket, PacketError> {
        let fd = open_socket()?;
        let one: libc::c_int = 1;
        // 1. The frame format: TPACKET_V2 (packet_mmap.rst, "AF_PACKET TPACKET_V2 example"; DPDK's
        //    choice too). Measured against TPACKET_V3 in docs/kernel-ports.md.
        setopt(&fd, queue, PACKET_VERSION, &TPACKET_V2, "setsockopt(PACKET_VERSION, TPACKET_V2)")?;
        // 2. TX: a malformed frame is skipped, not a stop of the whole ring; straight to the
        //    driver when asked; our own frames not received back.
        setopt(&fd, queue, PACKET_LOSS, &one, "setsockopt(PACKET_LOSS)")?;
        if args.qdisc_bypass {
            setopt(&fd, queue, PACKET_QDISC_BYPASS, &one, "setsockopt(PACKET_QDISC_BYPASS)")?;
        }
        setopt(&fd, queue, PACKET_IGNORE_OUTGOING, &one, "setsockopt(PACKET_IGNORE_OUTGOING)")?;
        // 3. The rings ("Setting up the ring"): frames per block times blocks.
        let req = TpacketReq {
            tp_block_size: args.blocksz,
            tp_block_nr: args.blocks(),
            tp_frame_size: args.framesz,
            tp_frame_nr: args.framecnt,
        };
        let ring_len = req.tp_block_size as usize * req.tp_block_nr as usize;
        if rx {
            setopt(&fd, queue, PACKET_RX_RING, &req, "setsockopt(PACKET_RX_RING)")?;
        }
        if tx {
            setopt(&fd, queue, PACKET_TX_RING, &req, "setsockopt(PACKET_TX_RING)")?;
        }
        // 4. One mapping of both, RX first ("Mapping and use of the circular buffer").
        let len = ring_len * (usize::from(rx) + usize::from(tx));
        let map = Mapping::new(fd.as_raw_fd(), len).map_err(|source| PacketError::Socket {
            queue,
            step: "mmap of the rings",
            source,
        })?;
        // SAFETY: the mapping holds the RX ring then the TX ring, each `ring_len` bytes as the
        // kernel accepted them.
        let (rx_ring, tx_ring) = unsafe {
            let rx_ring = rx.then(|| Ring::new(map.base(), &req));
            let tx_ring = tx.then(|| Ring::new(map.base().add(if rx { ring_len } else { 0 }), &req));
            (rx_ring, tx_ring)
        };
        // 5. Bind to the interface: every protocol for a receiving queue, none for a TX-only one.
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = if rx { (libc::ETH_P_ALL as u16).to_be() } else { 0 };
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind reads a sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of_val(&sll) as u32)
        };
        if r != 0 {
            return Err(PacketError::Socket {
                queue,
                step: "bind to the interface",
                source: std::io::Error::last_os_error(),
            });
        }
        // 6. The fanout group, once bound (packet(7), PACKET_FANOUT).
        match fanout {
            Fanout::None => {}
            Fanout::New(mode) => setopt(
                &fd,
                queue,
                PACKET_FANOUT,
                &fanout_arg(0, mode, PACKET_FANOUT_FLAG_UNIQUEID),
                "setsockopt(PACKET_FANOUT)",
            )?,
            Fanout::Join { id, mode } => {
                setopt(&fd, queue, PACKET_FANOUT, &fanout_arg(id, mode, 0), "setsockopt(PACKET_FANOUT)")?
            }
        }
        Ok(PacketSocket { _map: map, fd, rx: rx_ring, tx: tx_ring })
    }

    /// The fanout group this socket is in (the id the kernel picked for [`Fanout::New`]).
    pub(crate) fn fanout_id(&self, queue: u16) -> Result<u16, PacketError> {
        let mut val: u32 = 0;
        let mut len = 4u32;
        // SAFETY: getsockopt writes at most `len` bytes into `val`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_FANOUT,
                (&mut val as *mut u32).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(PacketError::Socket {
                queue,
                step: "getsockopt(PACKET_FANOUT)",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(val as u16)
    }

    /// Frames received and dropped since the last call (reading zeroes the kernel's counters).
    pub(crate) fn take_stats(&self) -> TpacketStats {
        let mut st = TpacketStats::default();
        let mut len = std::mem::size_of::<TpacketStats>() as u32;
        // SAFETY: getsockopt writes at most `len` bytes into `st`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut st as *mut TpacketStats).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return TpacketStats::default();
        }
        st
    }

    /// Asks the kernel to send what the TX ring holds, without waiting (the one syscall of a TX
    /// burst). `Err` carries the errno for what is not "no room just now".
    #[inline]
    pub(crate) fn kick(&self) -> Result<(), i32> {
        // SAFETY: a zero-length send with no buffer and no address: the kernel walks the TX ring.
        let r =
            unsafe { libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if e != libc::EAGAIN && e != libc::ENOBUFS {
                return Err(e);
            }
        }
        Ok(())
    }
}
