//! Namespaces and veth pairs made with iproute2's `ip`, removed when dropped (a namespace takes
//! its interfaces with it), and raw sockets at the far ends.
//!
//! Nothing here touches the host's own interfaces: every interface is made inside a namespace
//! this process made. A test that cannot make them (not root, no `ip`) fails, saying what is
//! missing; none is skipped.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use burst_net::MacAddr;

/// Fails the test, saying what it needs, unless the process is root and `ip` runs.
pub fn require_root_and_ip() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test makes network namespaces and veth pairs: run it as root (sudo -E cargo test ...)");
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            panic!("this test makes network namespaces with iproute2's `ip`, which is missing: install iproute2 (`apt-get install iproute2`; .ci/run does)")
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A network namespace of this test, deleted (with its interfaces) when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetNs {
    /// A new namespace called `burst-TAG-PID-N`, with IPv6 off (so the kernel sends nothing of
    /// its own on the test's wires) and loopback up.
    pub fn new(tag: &str) -> NetNs {
        require_root_and_ip();
        let name = format!("burst-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        run(Command::new("ip").args(["netns", "add", &name]))
            .unwrap_or_else(|e| panic!("cannot make network namespace {name}: {e}"));
        let ns = NetNs { name };
        ns.enter(|| {
            for knob in ["all", "default"] {
                let path = format!("/proc/sys/net/ipv6/conf/{knob}/disable_ipv6");
                // A kernel without IPv6 has no such file: then there is nothing to quiet.
                let _ = std::fs::write(path, "1");
            }
        });
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name (for `ip netns exec NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`, failing the test if it fails.
    pub fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `f` on a thread of its own inside the namespace (a network namespace is a thread's:
    /// sockets and netlink requests made there are the namespace's) and returns what it returns.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.set_thread();
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Moves the calling thread into the namespace. Threads it starts afterwards are in it too.
    pub fn set_thread(&self) {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        // SAFETY: setns on an open namespace file affects only the calling thread's namespaces.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns into {}: {}", self.name, std::io::Error::last_os_error());
        }
    }

    /// `ip netns exec NAME PROGRAM`, to run a program inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: {e}");
        }
    }
}

/// A veth pair: `a` in namespace `ns_a`, `b` in `ns_b`, both up, with fixed addresses, and
/// `queues` RX and TX queues each (veth takes several since Linux 4.19).
pub fn veth(ns_a: &NetNs, a: &str, mac_a: MacAddr, ns_b: &NetNs, b: &str, mac_b: MacAddr, queues: u32) {
    let q = queues.to_string();
    run(Command::new("ip").args(["-n", ns_a.name(), "link", "add", a]).args([
        "address",
        &mac_a.to_string(),
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "address",
        &mac_b.to_string(),
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        ns_b.name(),
    ]))
    .unwrap_or_else(|e| panic!("cannot make veth pair {a}/{b}: {e}"));
    ns_a.ip(&["link", "set", a, "up"]);
    ns_b.ip(&["link", "set", b, "up"]);
}

/// A raw `AF_PACKET` socket on one interface of the namespace it was opened in (packet(7)):
/// sends whole frames, receives every frame the interface receives.
#[derive(Debug)]
pub struct RawSocket {
    fd: OwnedFd,
}

impl RawSocket {
    /// A socket bound to interface `name` of the calling thread's namespace.
    pub fn open(name: &str) -> RawSocket {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ALL as u16).to_be())) };
        assert!(fd >= 0, "socket(AF_PACKET): {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cname = std::ffi::CString::new(name).expect("no NUL in an interface name");
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        assert!(ifindex != 0, "no interface {name} here");
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid start.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: binding to a sockaddr_ll of the right size.
        let r = unsafe {
            libc::bind(fd.as_raw_fd(), (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of_val(&sll) as u32)
        };
        assert!(r == 0, "bind to {name}: {}", std::io::Error::last_os_error());
        // Only what arrives: not what this socket (or anything else here) sends.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with an int option.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                23, // PACKET_IGNORE_OUTGOING
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        // SAFETY: setsockopt with an int option.
        unsafe {
            libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_AUXDATA, (&one as *const libc::c_int).cast(), 4)
        };
        RawSocket { fd }
    }

    /// Sends one frame; false when the kernel had no room for it just now.
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: send reads `frame.len()` bytes of `frame`.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        n == frame.len() as isize
    }

    /// Sends one frame, retrying for a second while the kernel has no room.
    pub fn send_retry(&self, frame: &[u8]) {
        let until = Instant::now() + Duration::from_secs(1);
        while !self.send(frame) {
            assert!(Instant::now() < until, "sending a frame: {}", std::io::Error::last_os_error());
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// The next frame received within `timeout`, with the VLAN tag the kernel took off on
    /// receive put back where it was (packet(7), `PACKET_AUXDATA`), as it was on the wire.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
        if r <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        let mut ctrl = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is plain data; all zeroes is a valid start.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&ctrl);
        // SAFETY: recvmsg writes into the buffers `msg` points at, within their lengths.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return None;
        }
        buf.truncate(n as usize);
        // SAFETY: the control buffer was filled by recvmsg; CMSG_* walk it within its length.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: a control message header inside the buffer.
            let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
            if level == libc::SOL_PACKET && kind == PACKET_AUXDATA {
                // SAFETY: a PACKET_AUXDATA message carries a struct tpacket_auxdata.
                let aux: libc::tpacket_auxdata = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 && buf.len() >= 12 {
                    let tpid =
                        if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    let mut tag = [0u8; 4];
                    tag[..2].copy_from_slice(&tpid.to_be_bytes());
                    tag[2..].copy_from_slice(&aux.tp_vlan_tci.to_be_bytes());
                    buf.splice(12..12, tag);
                }
            }
            // SAFETY: as above.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        Some(buf)
    }
}

/// packet(7)'s option for the metadata of each received frame (if_packet.h).
const PACKET_AUXDATA: libc::c_int = 8;

/// Runs `f` on a thread of its own whose effective capabilities lack `caps` (capget(2) and
/// capset(2) are per thread: the rest of the process keeps them), in namespace `ns`.
pub fn without_caps<T: Send>(ns: &NetNs, caps: &[u32], f: impl FnOnce() -> T + Send) -> T {
    ns.enter(|| {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        let mut hdr = Header { version: VERSION_3, pid: 0 };
        let mut data = [Data::default(); 2];
        // SAFETY: capget fills two Data structs for version 3 of the calling thread (pid 0).
        let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, data.as_mut_ptr()) };
        assert_eq!(r, 0, "capget: {}", std::io::Error::last_os_error());
        for &c in caps {
            data[(c / 32) as usize].effective &= !(1 << (c % 32));
        }
        // SAFETY: capset of the calling thread's own sets, only narrowed.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
        assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
        f()
    })
}
