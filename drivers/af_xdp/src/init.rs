//! A queue's AF_XDP socket, set up as af_xdp.rst orders it: open the socket, register the UMEM
//! (or share another socket's), size the fill, completion, RX and TX rings, map them, put
//! buffers on the fill ring, bind to the interface's queue, and turn busy polling on where the
//! kernel has it. Closing the socket (dropping [`XskSocket`]) takes it out of the XSKMAP.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::if_xdp::{
    SockaddrXdp, XdpDesc, XdpMmapOffsets, XdpStatistics, AF_XDP, SOL_XDP, SO_BUSY_POLL, SO_BUSY_POLL_BUDGET,
    SO_PREFER_BUSY_POLL, XDP_COPY, XDP_MMAP_OFFSETS, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING, XDP_RX_RING, XDP_STATISTICS,
    XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING, XDP_UMEM_PGOFF_COMPLETION_RING,
    XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_REG, XDP_USE_NEED_WAKEUP,
};
use crate::ring::XskRing;
use crate::umem::Umem;
use crate::XdpError;

/// `XDP_SHARED_UMEM` (if_xdp.h): bind sharing another socket's UMEM.
const XDP_SHARED_UMEM: u16 = 1 << 0;
/// How long a busy queue is tried again at bind.
const BIND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a busy poll may spin, µs (DPDK's `ETH_AF_XDP_DFLT_BUSY_TIMEOUT`).
const BUSY_POLL_USECS: libc::c_int = 20;

/// One queue's socket.
#[derive(Debug)]
pub(crate) struct XskSocket {
    fd: OwnedFd,
    /// The interface's queue it is bound to.
    pub(crate) queue_id: u32,
}

/// The four rings of a socket: RX and fill for the RX queue, TX and completion for the TX one.
pub(crate) struct Rings {
    pub(crate) rx: XskRing<XdpDesc>,
    pub(crate) fill: XskRing<u64>,
    pub(crate) tx: XskRing<XdpDesc>,
    pub(crate) comp: XskRing<u64>,
}

/// How a socket is made.
pub(crate) struct SocketConf<'a> {
    pub(crate) ifindex: u32,
    pub(crate) queue_id: u32,
    pub(crate) umem: &'a Umem,
    /// Register the UMEM on this socket, or share the one of this socket.
    pub(crate) share_with: Option<&'a XskSocket>,
    /// RX and fill ring entries; TX and completion ring entries (powers of two).
    pub(crate) rx_size: u32,
    pub(crate) tx_size: u32,
    pub(crate) force_copy: bool,
}

fn setopt<T>(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, val: &T) -> std::io::Result<()> {
    // SAFETY: setsockopt reads size_of::<T>() bytes of `val`.
    let r = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, opt, (val as *const T).cast(), std::mem::size_of::<T>() as u32)
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_XDP socket: fails with EPERM without CAP_NET_RAW.
pub(crate) fn open_socket(queue: u32) -> Result<OwnedFd, XdpError> {
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NoCapNetRaw,
            _ => XdpError::Socket { queue, step: "socket(AF_XDP)", source: e },
        });
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl XskSocket {
    /// Makes the socket and its rings as `c` says; the fill ring is left empty.
    pub(crate) fn open(c: &SocketConf<'_>) -> Result<(XskSocket, Rings), XdpError> {
        let q = c.queue_id;
        let step = |step| move |source| XdpError::Socket { queue: q, step, source };
        let fd = open_socket(q)?;
        // 1. The UMEM ("UMEM"): registered once; a socket sharing it only brings its own fill and
        //    completion rings.
        if c.share_with.is_none() {
            setopt(&fd, SOL_XDP, XDP_UMEM_REG, &c.umem.reg()).map_err(step("setsockopt(XDP_UMEM_REG)"))?;
        }
        // 2. The rings' sizes ("Rings").
        setopt(&fd, SOL_XDP, XDP_UMEM_FILL_RING, &c.rx_size).map_err(step("setsockopt(XDP_UMEM_FILL_RING)"))?;
        setopt(&fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &c.tx_size)
            .map_err(step("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
        setopt(&fd, SOL_XDP, XDP_RX_RING, &c.rx_size).map_err(step("setsockopt(XDP_RX_RING)"))?;
        setopt(&fd, SOL_XDP, XDP_TX_RING, &c.tx_size).map_err(step("setsockopt(XDP_TX_RING)"))?;
        // 3. Where each ring's indices and entries lie, then the mappings.
        let mut off = XdpMmapOffsets::default();
        let mut len = std::mem::size_of::<XdpMmapOffsets>() as u32;
        // SAFETY: getsockopt writes at most `len` bytes into `off`.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                SOL_XDP,
                XDP_MMAP_OFFSETS,
                (&mut off as *mut XdpMmapOffsets).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(step("getsockopt(XDP_MMAP_OFFSETS)")(std::io::Error::last_os_error()));
        }
        let raw = fd.as_raw_fd();
        let rings = Rings {
            rx: XskRing::map(raw, XDP_PGOFF_RX_RING, &off.rx, c.rx_size).map_err(step("mmap of the RX ring"))?,
            fill: XskRing::map(raw, XDP_UMEM_PGOFF_FILL_RING, &off.fr, c.rx_size)
                .map_err(step("mmap of the fill ring"))?,
            tx: XskRing::map(raw, XDP_PGOFF_TX_RING, &off.tx, c.tx_size).map_err(step("mmap of the TX ring"))?,
            comp: XskRing::map(raw, XDP_UMEM_PGOFF_COMPLETION_RING, &off.cr, c.tx_size)
                .map_err(step("mmap of the completion ring"))?,
        };
        // 4. Bind to the interface's queue, asking to be told when a syscall is needed.
        let mut flags = XDP_USE_NEED_WAKEUP;
        if c.force_copy {
            flags |= XDP_COPY;
        }
        let mut sxdp = SockaddrXdp {
            sxdp_family: AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: c.ifindex,
            sxdp_queue_id: q,
            sxdp_shared_umem_fd: 0,
        };
        if let Some(first) = c.share_with {
            // The kernel refuses any other flag with this one (`xsk_bind`: EINVAL): the copy
            // mode and the need-wakeup protocol are the first socket's, inherited with its UMEM.
            sxdp.sxdp_flags = XDP_SHARED_UMEM;
            sxdp.sxdp_shared_umem_fd = first.fd.as_raw_fd() as u32;
        }
        //    A socket of this queue closed just before (our own last stop) lets go of the queue
        //    in the kernel's deferred work (`xp_release_deferred`): a busy queue is tried again
        //    for a while before it counts as someone else's.
        let until = std::time::Instant::now() + BIND_PATIENCE;
        loop {
            // SAFETY: bind reads a sockaddr_xdp of the size given.
            let r = unsafe {
                libc::bind(raw, (&sxdp as *const SockaddrXdp).cast(), std::mem::size_of::<SockaddrXdp>() as u32)
            };
            if r == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EBUSY) || std::time::Instant::now() >= until {
                return Err(step("bind to the interface's queue")(e));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok((XskSocket { fd, queue_id: q }, rings))
    }

    /// Turns busy polling on with `budget` (Linux 5.11); false where the kernel refuses.
    pub(crate) fn busy_poll(&self, budget: u32) -> bool {
        let one: libc::c_int = 1;
        setopt(&self.fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &one).is_ok()
            && setopt(&self.fd, libc::SOL_SOCKET, SO_BUSY_POLL, &BUSY_POLL_USECS).is_ok()
            && setopt(&self.fd, libc::SOL_SOCKET, SO_BUSY_POLL_BUDGET, &(budget as libc::c_int)).is_ok()
    }

    /// The socket's descriptor (for the XSKMAP).
    pub(crate) fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// The kernel's counters for this socket.
    pub(crate) fn statistics(&self) -> XdpStatistics {
        let mut st = XdpStatistics::default();
        let mut len = std::mem::size_of::<XdpStatistics>() as u32;
        // SAFETY: getsockopt writes at most `len` bytes into `st`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_XDP,
                XDP_STATISTICS,
                (&mut st as *mut XdpStatistics).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return XdpStatistics::default();
        }
        st
    }

    /// Lets the kernel go on with RX (a busy poll, or the fill ring's wake-up): the one syscall
    /// an RX burst may make.
    #[inline]
    pub(crate) fn wake_rx(&self) {
        // SAFETY: a zero-length, non-blocking receive: no buffer is written.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Makes the kernel send what the TX ring holds: the one syscall a TX burst may make.
    #[inline]
    pub(crate) fn kick_tx(&self) {
        // SAFETY: a zero-length, non-blocking send: no buffer is read.
        unsafe { libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    }
}
