//! The front-end against a tiny in-test back-end: a unix-socket server thread that answers as
//! DPDK's back-end does and reports every message (with the descriptors that came along).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use burst_mem::shared::{FileId, MemoryListener, SharedSegment};

use super::frontend::{Options, VhostUser};
use super::msg::{self, proto, req};
use crate::spec::features as bits;
use crate::transport::{CtrlCommand, Notifier, QueueLayout, Transport};

const BACKEND_FEATURES: u64 =
    bits::VERSION_1 | bits::MRG_RXBUF | bits::MQ | bits::IN_ORDER | msg::F_PROTOCOL_FEATURES | (1 << 33);

#[derive(Debug)]
enum Event {
    Msg { request: u32, flags: u32, payload: Vec<u8>, fds: Vec<OwnedFd> },
    Closed,
}

impl Event {
    fn request(&self) -> u32 {
        match self {
            Event::Msg { request, .. } => *request,
            Event::Closed => 0,
        }
    }
}

/// Receives one message with its descriptors (what a back-end does).
fn recv_with_fds(sock: &UnixStream) -> Option<(u32, u32, Vec<u8>, Vec<OwnedFd>)> {
    let mut header = [0u8; 12];
    let mut cmsg = [0u64; 16];
    let mut iov = libc::iovec { iov_base: header.as_mut_ptr().cast(), iov_len: 12 };
    // SAFETY: an all-zero msghdr is valid.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cmsg.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: buffers live across the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut m, libc::MSG_WAITALL) };
    if n != 12 {
        return None;
    }
    let mut fds = Vec::new();
    // SAFETY: walks the control data the kernel wrote; each descriptor is ours.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(&m);
        while !hdr.is_null() {
            let count = ((*hdr).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
            let data = libc::CMSG_DATA(hdr).cast::<i32>();
            for i in 0..count {
                fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
            }
            hdr = libc::CMSG_NXTHDR(&m, hdr);
        }
    }
    let w = |i: usize| u32::from_ne_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
    let mut payload = vec![0u8; w(2) as usize];
    if !payload.is_empty() {
        use std::io::Read;
        (&*sock).read_exact(&mut payload).ok()?;
    }
    Some((w(0), w(1), payload, fds))
}

/// How the in-test back-end misbehaves. Occurrences count from 1 over the back-end's whole
/// life (all connections).
#[derive(Clone, Debug, Default)]
struct Script {
    /// Close a connection after that many messages.
    drop_after: Option<usize>,
    /// Answer the n-th such request, when it asks for an ack, with status 1.
    refuse: Option<(u32, usize)>,
    /// Answer the n-th such request (if it expects an answer) as if it were another request.
    mismatch: Option<(u32, usize)>,
    /// Wait this long before answering the n-th such request.
    delay: Option<(u32, usize, Duration)>,
}

/// Serves connections on `listener` one after another, answering like DPDK 22.11's back-end
/// (every message with NEED_REPLY gets an ack), except where `script` says otherwise.
fn serve(listener: UnixListener, events: Sender<Event>, script: Script) {
    let mut count = std::collections::HashMap::<u32, usize>::new();
    for conn in listener.incoming() {
        let Ok(sock) = conn else { return };
        let mut seen = 0usize;
        while let Some((request, flags, payload, fds)) = recv_with_fds(&sock) {
            let n = {
                let c = count.entry(request).or_default();
                *c += 1;
                *c
            };
            let hit = |what: Option<(u32, usize)>| what == Some((request, n));
            if let Some((r, k, d)) = script.delay {
                if (r, k) == (request, n) {
                    std::thread::sleep(d);
                }
            }
            let answer_as = if hit(script.mismatch) { req::GET_QUEUE_NUM } else { request };
            let reply = |payload: &[u8]| {
                let _ = msg::send(&sock, answer_as, msg::FLAG_REPLY, payload, &[]);
            };
            match request {
                req::GET_FEATURES => reply(&msg::u64_payload(BACKEND_FEATURES)),
                req::GET_PROTOCOL_FEATURES => reply(&msg::u64_payload(proto::REPLY_ACK | proto::MQ | (1 << 1))),
                req::GET_QUEUE_NUM => reply(&msg::u64_payload(4)),
                req::GET_VRING_BASE => reply(&payload[..8]),
                _ if flags & msg::FLAG_NEED_REPLY != 0 => reply(&msg::u64_payload(u64::from(hit(script.refuse)))),
                _ => {}
            }
            if events.send(Event::Msg { request, flags, payload, fds }).is_err() {
                return;
            }
            seen += 1;
            if script.drop_after == Some(seen) {
                break;
            }
        }
        let _ = events.send(Event::Closed);
    }
}

struct Backend {
    path: PathBuf,
    events: Receiver<Event>,
    dir: PathBuf,
}

impl Backend {
    fn start(drop_after: Option<usize>) -> Backend {
        Backend::scripted(Script { drop_after, ..Script::default() })
    }

    fn scripted(script: Script) -> Backend {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "burst-vhost-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let (events, rx) = channel();
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || serve(listener, events, script));
        Backend { path, events: rx, dir }
    }

    fn next(&self) -> Event {
        match self.events.recv_timeout(Duration::from_secs(5)) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => panic!("the back-end got nothing for 5 s"),
            Err(e) => panic!("{e}"),
        }
    }

    /// The next `n` events' request numbers.
    fn requests(&self, n: usize) -> Vec<(u32, Event)> {
        (0..n).map(|_| self.next()).map(|e| (e.request(), e)).collect()
    }

    fn opts(&self, queues: u16) -> Options {
        Options {
            path: self.path.clone(),
            queues,
            queue_size: 256,
            mac: [2, 0, 0, 0, 0, 1],
            name: "virtio_user0".into(),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn names(events: &[(u32, Event)]) -> Vec<&'static str> {
    events.iter().map(|(r, _)| req::name(*r)).collect()
}

fn memfd(len: usize) -> OwnedFd {
    // SAFETY: memfd_create reads a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"burst-test".as_ptr(), 0) };
    assert!(fd >= 0);
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on our descriptor.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) }, 0);
    fd
}

/// Memory for rings, in a memfd both sides can map: `pages` pages mapped here.
struct Shm {
    fd: OwnedFd,
    va: usize,
    len: usize,
}

impl Shm {
    fn new(len: usize) -> Shm {
        let fd = memfd(len);
        // SAFETY: a fresh shared mapping of our memfd.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Shm { fd, va: p as usize, len }
    }

    fn segment(&self, offset: usize, len: usize) -> SharedSegment<'_> {
        SharedSegment {
            va: self.va + offset,
            len,
            fd: self.fd.as_fd(),
            offset: offset as u64,
            file: FileId::of(self.fd.as_fd()).unwrap(),
        }
    }

    /// A queue layout inside this memory at `offset` (4 KiB per queue part).
    fn layout(&self, index: u16, offset: usize) -> QueueLayout {
        let (d, a, u) = (self.va + offset, self.va + offset + 0x1000, self.va + offset + 0x2000);
        QueueLayout {
            index,
            size: 256,
            desc_iova: d as u64,
            avail_iova: a as u64,
            used_iova: u as u64,
            desc_va: d,
            avail_va: a,
            used_va: u,
        }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.va as *mut libc::c_void, self.len) };
    }
}

/// Reads (and so resets) a kick eventfd the back-end got; `None` when nothing was kicked.
fn read_kicks(fd: &OwnedFd) -> Option<u64> {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a local from an eventfd we own (non-blocking: the front-end
    // made it with EFD_NONBLOCK).
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    (n == 8).then_some(v)
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_of(payload: &[u8]) -> (u32, u32) {
    (u32::from_ne_bytes(payload[..4].try_into().unwrap()), u32::from_ne_bytes(payload[4..8].try_into().unwrap()))
}

const HANDSHAKE: [&str; 4] = ["SET_OWNER", "GET_FEATURES", "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES"];

#[test]
fn handshake_negotiates_and_config_is_emulated() {
    let be = Backend::start(None);
    let t = VhostUser::connect(be.opts(2)).unwrap();
    let ev = be.requests(5);
    let mut want = HANDSHAKE.to_vec();
    want.push("GET_QUEUE_NUM");
    assert_eq!(names(&ev), want);
    let Event::Msg { payload, .. } = &ev[3].1 else { panic!() };
    assert_eq!(u64::from_ne_bytes(payload[..8].try_into().unwrap()), proto::REPLY_ACK | proto::MQ, "only what we use");
    let f = t.device_features();
    assert_eq!(f & (1 << 33), 0, "ACCESS_PLATFORM is not passed on");
    for bit in [
        bits::VERSION_1,
        bits::MRG_RXBUF,
        bits::MQ,
        bits::IN_ORDER,
        bits::MAC,
        bits::STATUS,
        bits::CTRL_VQ,
        bits::CTRL_RX,
    ] {
        assert_ne!(f & bit, 0, "feature {bit:#x}");
    }
    let mut cfg = [0u8; 10];
    t.read_config(0, &mut cfg);
    assert_eq!(&cfg[..6], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(u16::from_le_bytes([cfg[6], cfg[7]]), 1, "link up while connected");
    assert_eq!(u16::from_le_bytes([cfg[8], cfg[9]]), 2, "max_virtqueue_pairs = queues");
    assert!(t.uses_va() && !t.queue_size_settable());
    assert_eq!((t.queue_max_size(3), t.queue_max_size(4), t.queue_max_size(5)), (256, 256, 0));
    assert!(t.control(CtrlCommand { class: 0, command: 0, data: &[1] }).unwrap().is_ok(), "promiscuous: ack");
    t.control(CtrlCommand { class: 1, command: 1, data: &[2, 9, 9, 9, 9, 9] }).unwrap().unwrap();
    t.read_config(0, &mut cfg);
    assert_eq!(&cfg[..6], &[2, 9, 9, 9, 9, 9], "MAC_ADDR_SET lands in the config");
    assert!(t.control(CtrlCommand { class: 4, command: 0, data: &3u16.to_le_bytes() }).unwrap().is_err());
}

#[test]
fn a_missing_socket_says_to_start_the_backend() {
    let be = Backend::start(None);
    let mut opts = be.opts(1);
    opts.path = be.dir.join("nothing-here");
    let err = VhostUser::connect(opts).err().unwrap().to_string();
    assert!(err.contains("start the back-end first") && err.contains("nothing-here"), "{err}");
}

#[test]
fn too_many_queues_for_the_backend_is_refused() {
    let be = Backend::start(None);
    let err = VhostUser::connect(be.opts(8)).err().unwrap().to_string();
    assert!(err.contains("at most 4 queue pairs"), "{err}");
}

/// Sets up queues 0 and 1 plus the control queue and goes live; checks the start sequence.
fn go_live(t: &VhostUser, shm: &Shm) -> Vec<Notifier> {
    t.set_driver_features(bits::VERSION_1 | bits::MRG_RXBUF | bits::CTRL_VQ | bits::MAC | bits::MQ).unwrap();
    let n0 = t.setup_queue(&shm.layout(0, 0)).unwrap();
    let n1 = t.setup_queue(&shm.layout(1, 0x3000)).unwrap();
    let nc = t.setup_queue(&shm.layout(2, 0x6000)).unwrap();
    t.set_status(1 | 2 | 8).unwrap();
    t.set_status(1 | 2 | 8 | 4).unwrap();
    vec![n0, n1, nc]
}

const START: [&str; 15] = [
    "SET_VRING_CALL",
    "SET_VRING_CALL",
    "SET_FEATURES",
    "SET_MEM_TABLE",
    "SET_VRING_NUM",
    "SET_VRING_BASE",
    "SET_VRING_ADDR",
    "SET_VRING_KICK",
    "SET_VRING_NUM",
    "SET_VRING_BASE",
    "SET_VRING_ADDR",
    "SET_VRING_KICK",
    "SET_VRING_ENABLE",
    "SET_VRING_ENABLE",
    "",
];

fn check_start(ev: &[(u32, Event)], shm: &Shm, base: u32) {
    assert_eq!(names(ev), START[..14].to_vec());
    for (r, e) in ev {
        let Event::Msg { flags, .. } = e else { panic!() };
        assert_ne!(flags & msg::FLAG_NEED_REPLY, 0, "{} asks for an ack (REPLY_ACK)", req::name(*r));
    }
    let Event::Msg { payload, flags, .. } = &ev[2].1 else { panic!() };
    let sent = u64::from_ne_bytes(payload[..8].try_into().unwrap());
    assert_eq!(sent, bits::VERSION_1 | bits::MRG_RXBUF | bits::MQ | msg::F_PROTOCOL_FEATURES, "no emulated bits");
    assert_ne!(flags & msg::FLAG_NEED_REPLY, 0, "REPLY_ACK is used");
    let Event::Msg { payload, fds, .. } = &ev[3].1 else { panic!() };
    assert_eq!(fds.len(), 1, "one descriptor per region");
    let w = |i: usize| u64::from_ne_bytes(payload[8 + i * 8..16 + i * 8].try_into().unwrap());
    assert_eq!((w(0), w(1), w(2), w(3)), (shm.va as u64, shm.len as u64, shm.va as u64, 0), "gpa = uva = VA");
    // The back-end maps the descriptor and sees our bytes.
    // SAFETY: a shared mapping of the received memfd, unmapped below.
    let p =
        unsafe { libc::mmap(std::ptr::null_mut(), shm.len, libc::PROT_READ, libc::MAP_SHARED, fds[0].as_raw_fd(), 0) };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: both mappings are `shm.len` long; 0x10 is inside.
    unsafe {
        ((shm.va + 0x10) as *mut u8).write_volatile(0x77);
        assert_eq!((p as *const u8).add(0x10).read_volatile(), 0x77);
        libc::munmap(p, shm.len);
    }
    let Event::Msg { payload, .. } = &ev[5].1 else { panic!() };
    assert_eq!(state_of(payload), (0, base), "vring base");
    let Event::Msg { payload, .. } = &ev[6].1 else { panic!() };
    let desc = u64::from_ne_bytes(payload[8..16].try_into().unwrap());
    let used = u64::from_ne_bytes(payload[16..24].try_into().unwrap());
    assert_eq!((desc, used), (shm.va as u64, shm.va as u64 + 0x2000));
    let Event::Msg { payload, fds, .. } = &ev[7].1 else { panic!() };
    assert_eq!((fds.len(), payload[0]), (1, 0), "the kick eventfd of queue 0");
    let Event::Msg { payload, .. } = &ev[12].1 else { panic!() };
    assert_eq!(state_of(payload), (0, 1));
}

#[test]
fn driver_ok_gives_the_backend_memory_and_rings_and_reset_takes_them_back() {
    let be = Backend::start(None);
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    let listener = t.listener();
    listener.segment_added(&shm.segment(0, 0x10000)).unwrap();
    let notifiers = go_live(&t, &shm);
    let ev = be.requests(14);
    check_start(&ev, &shm, 0);
    // Kicks reach the back-end through the eventfd it got: the one made at start, then ours.
    let Event::Msg { fds, .. } = &ev[7].1 else { panic!() };
    assert_eq!(read_kicks(&fds[0]), Some(1), "every queue is kicked at start");
    notifiers[0].notify();
    assert_eq!(read_kicks(&fds[0]), Some(1));
    // More memory while live: pause, new table with two regions, resume.
    let more = Shm::new(0x4000);
    listener.segment_added(&more.segment(0, 0x4000)).unwrap();
    let ev = be.requests(5);
    assert_eq!(
        names(&ev),
        ["SET_VRING_ENABLE", "SET_VRING_ENABLE", "SET_MEM_TABLE", "SET_VRING_ENABLE", "SET_VRING_ENABLE"]
    );
    let Event::Msg { payload, fds, .. } = &ev[2].1 else { panic!() };
    assert_eq!((payload[0], fds.len()), (2, 2));
    t.reset().unwrap();
    let ev = be.requests(4);
    assert_eq!(names(&ev), ["SET_VRING_ENABLE", "SET_VRING_ENABLE", "GET_VRING_BASE", "GET_VRING_BASE"]);
    assert_eq!(t.status(), 0);
}

#[test]
fn more_than_eight_regions_are_refused_with_advice() {
    let be = Backend::start(None);
    let t = VhostUser::connect(be.opts(1)).unwrap();
    let shms: Vec<Shm> = (0..9).map(|_| Shm::new(0x1000)).collect();
    let l = t.listener();
    for s in &shms[..8] {
        l.segment_added(&s.segment(0, 0x1000)).unwrap();
    }
    let err = l.segment_added(&shms[8].segment(0, 0x1000)).unwrap_err().to_string();
    assert!(err.contains("--single-file-segments") && err.contains("at most 8"), "{err}");
}

#[test]
fn a_restarted_backend_gets_the_rings_back_where_they_were() {
    let be = Backend::start(Some(4 + 14));
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    t.listener().segment_added(&shm.segment(0, 0x10000)).unwrap();
    let notifiers = go_live(&t, &shm);
    let ev = be.requests(14);
    check_start(&ev, &shm, 0);
    let Event::Msg { fds: tx_kick, .. } = &ev[11].1 else { panic!() };
    assert_eq!(read_kicks(&tx_kick[0]), Some(1), "queue 1 kicked at start");
    // The back-end processed 7 buffers of queue 0, then died.
    // SAFETY: the used ring of queue 0 is at 0x2000 in `shm`; idx at +2.
    unsafe { ((shm.va + 0x2002) as *mut u16).write_volatile(7) };
    assert!(matches!(be.next(), Event::Closed));
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while t.connected() {
        assert!(std::time::Instant::now() < deadline, "the monitor did not notice the back-end leaving");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cfg = [0u8; 8];
    t.read_config(0, &mut cfg);
    assert_eq!(u16::from_le_bytes([cfg[6], cfg[7]]), 0, "link down while disconnected");
    notifiers[0].notify(); // the data path keeps kicking meanwhile
                           // The same socket path comes back (the serve thread accepts the next connection).
    let ev = be.requests(4 + 14);
    assert_eq!(names(&ev[..4]), HANDSHAKE);
    check_start(&ev[4..], &shm, 7);
    let Event::Msg { fds, .. } = &ev[4 + 7].1 else { panic!() };
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a local from the received eventfd: the kick made while
    // disconnected is there, so it is the same eventfd.
    assert_eq!(unsafe { libc::read(fds[0].as_raw_fd(), (&mut v as *mut u64).cast(), 8) }, 8);
    assert!(v >= 1);
    wait_until("the link comes back", || t.connected());
    // The replay kicked every queue: a back-end that waits for kicks sees the TX chains and RX
    // buffers left in the rings.
    assert_eq!(read_kicks(&tx_kick[0]), Some(1), "queue 1 kicked after the replay");
}

/// Sets up queues 0, 1 and the control queue with memory, and asks for DRIVER_OK.
fn try_go_live(t: &VhostUser, shm: &Shm) -> Result<(), crate::VirtioError> {
    t.listener().segment_added(&shm.segment(0, 0x10000)).unwrap();
    t.set_driver_features(bits::VERSION_1 | bits::MRG_RXBUF | bits::CTRL_VQ | bits::MAC | bits::MQ).unwrap();
    for (i, off) in [(0, 0), (1, 0x3000), (2, 0x6000)] {
        t.setup_queue(&shm.layout(i, off)).unwrap();
    }
    t.set_status(1 | 2 | 8).unwrap();
    t.set_status(1 | 2 | 8 | 4)
}

/// A start refused once the back-end has rings: the socket is closed before `set_status`
/// returns (the back-end then lets go of the rings), and the reset after it sends nothing.
fn refused_start_closes(refuse: (u32, usize), messages: usize) {
    let be = Backend::scripted(Script { refuse: Some(refuse), ..Script::default() });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    let err = try_go_live(&t, &shm).unwrap_err().to_string();
    assert!(err.contains(req::name(refuse.0)), "{err}");
    assert!(!t.connected(), "the connection is closed before set_status returns");
    assert_eq!(names(&be.requests(messages)), START[..messages].to_vec());
    assert!(matches!(be.next(), Event::Closed), "the socket is closed");
    t.reset().unwrap();
    assert_eq!(t.status(), 0);
    // Next: the monitor's new connection, which replays nothing (the port is not started).
    assert_eq!(names(&be.requests(4)), HANDSHAKE);
    wait_until("reconnected", || t.connected());
}

#[test]
fn a_start_refused_after_the_rings_went_out_closes_the_socket() {
    refused_start_closes((req::SET_VRING_ENABLE, 2), 14);
    refused_start_closes((req::SET_VRING_KICK, 2), 12);
}

#[test]
fn a_refused_stop_still_stops_every_ring_then_closes_the_socket() {
    // SET_VRING_ENABLE 1, 2 are the start's; 3 is the stop's for ring 0.
    let be = Backend::scripted(Script { refuse: Some((req::SET_VRING_ENABLE, 3)), ..Script::default() });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    try_go_live(&t, &shm).unwrap();
    be.requests(14);
    t.reset().unwrap();
    assert!(!t.connected(), "a failed stop closes the connection before reset returns");
    let ev = be.requests(4);
    assert_eq!(names(&ev), ["SET_VRING_ENABLE", "SET_VRING_ENABLE", "GET_VRING_BASE", "GET_VRING_BASE"]);
    let states: Vec<(u32, u32)> = ev
        .iter()
        .map(|(_, e)| match e {
            Event::Msg { payload, .. } => state_of(payload),
            Event::Closed => panic!(),
        })
        .collect();
    assert_eq!(states, [(0, 0), (1, 0), (0, 0), (1, 0)], "every ring disabled and stopped despite the refusal");
    assert!(matches!(be.next(), Event::Closed));
}

#[test]
fn a_refused_memory_update_drops_the_segment_and_the_connection() {
    let be = Backend::scripted(Script { refuse: Some((req::SET_MEM_TABLE, 2)), ..Script::default() });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    try_go_live(&t, &shm).unwrap();
    be.requests(14);
    let more = Shm::new(0x4000);
    let l = t.listener();
    let err = l.segment_added(&more.segment(0, 0x4000)).unwrap_err().to_string();
    assert!(err.contains("SET_MEM_TABLE"), "{err}");
    assert!(!t.connected(), "link down: the rings are paused and the back-end may have no table");
    let ev = be.requests(4);
    assert_eq!(names(&ev[..3]), ["SET_VRING_ENABLE", "SET_VRING_ENABLE", "SET_MEM_TABLE"]);
    assert!(matches!(ev[3].1, Event::Closed));
    // The monitor replays the start with the table as it is: the refused segment is not in it.
    let ev = be.requests(4 + 14);
    assert_eq!(names(&ev[..4]), HANDSHAKE);
    check_start(&ev[4..], &shm, 0);
    let Event::Msg { payload, fds, .. } = &ev[4 + 3].1 else { panic!() };
    assert_eq!((payload[0], fds.len()), (1, 1), "only the first region");
    wait_until("reconnected", || t.connected());
    // The memory maps the same segment again later: accepted (no stale entry, no panic).
    l.segment_added(&more.segment(0, 0x4000)).unwrap();
    let ev = be.requests(5);
    let Event::Msg { payload, .. } = &ev[2].1 else { panic!() };
    assert_eq!(payload[0], 2);
}

#[test]
fn the_config_and_memory_do_not_wait_for_a_slow_reconnect() {
    // The first connection closes after the handshake; the second one's GET_FEATURES takes
    // 1.5 s to answer.
    let be = Backend::scripted(Script {
        drop_after: Some(4),
        delay: Some((req::GET_FEATURES, 2, Duration::from_millis(1500))),
        ..Script::default()
    });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    assert!(matches!(be.next(), Event::Closed));
    assert_eq!(be.next().request(), req::SET_OWNER, "the monitor reconnects");
    std::thread::sleep(Duration::from_millis(200)); // the monitor now waits for GET_FEATURES
    let shm = Shm::new(0x10000);
    let begin = std::time::Instant::now();
    let mut cfg = [0u8; 8];
    t.read_config(0, &mut cfg);
    let connected = t.connected();
    let status = t.status();
    let _ = t.device_features();
    t.listener().segment_added(&shm.segment(0, 0x10000)).unwrap();
    let took = begin.elapsed();
    assert!(took < Duration::from_millis(500), "calls waited {took:?} behind the reconnect");
    assert_eq!((u16::from_le_bytes([cfg[6], cfg[7]]), connected, status), (0, false, 0), "link down meanwhile");
    wait_until("reconnected", || t.connected());
}

#[test]
fn a_refusal_of_any_message_is_seen() {
    // SET_VRING_CALL is not a message that "matters": with REPLY_ACK it is acked all the same.
    let be = Backend::scripted(Script { refuse: Some((req::SET_VRING_CALL, 1)), ..Script::default() });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    let err = try_go_live(&t, &shm).unwrap_err().to_string();
    assert!(err.contains("refused SET_VRING_CALL"), "{err}");
    assert_eq!(names(&be.requests(1)), ["SET_VRING_CALL"]);
    // Refused before any ring went out: the connection stays and a new start works.
    assert!(t.connected());
    t.set_status(1 | 2 | 8 | 4).unwrap();
    check_start(&be.requests(14), &shm, 0);
}

#[test]
fn a_mismatched_reply_resyncs_by_reconnecting() {
    let be = Backend::scripted(Script { mismatch: Some((req::SET_FEATURES, 1)), ..Script::default() });
    let t = VhostUser::connect(be.opts(1)).unwrap();
    be.requests(4);
    let shm = Shm::new(0x10000);
    let err = try_go_live(&t, &shm).unwrap_err().to_string();
    assert!(err.contains("expected the reply to SET_FEATURES"), "{err}");
    assert_eq!(names(&be.requests(3)), ["SET_VRING_CALL", "SET_VRING_CALL", "SET_FEATURES"]);
    assert!(matches!(be.next(), Event::Closed), "out of step: the connection is dropped");
    assert_eq!(names(&be.requests(4)), HANDSHAKE, "and made again");
    wait_until("reconnected", || t.connected());
    t.set_status(1 | 2 | 8 | 4).unwrap();
    check_start(&be.requests(14), &shm, 0);
}
