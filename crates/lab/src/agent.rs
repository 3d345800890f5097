//! The guest side of the lab: `burst-lab-agent serve` runs the host's commands and streams
//! their output back over the virtio-serial control port; `burst-lab-agent send-frames`
//! puts test frames on a NIC's wire through an `AF_PACKET` socket.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::frames::TestFrame;
use crate::proto::{Event, ExitStatus, Request};

/// Name of the control port, as given to QEMU's `virtserialport`.
pub const CONTROL_PORT: &str = "burst.ctl";

/// How long a process's output may trail its exit (a background child holding the pipe).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

type Port = Arc<Mutex<File>>;

fn send(port: &Port, ev: &Event) {
    let mut line = ev.encode();
    line.push('\n');
    // A poisoned lock means a writer thread panicked mid-line: the channel is unusable.
    let mut f = port.lock().expect("control port lock");
    // If the host has gone there is no one to tell.
    let _ = f.write_all(line.as_bytes());
}

/// Finds the control port's device node; it appears once the host has added the port.
fn find_port(timeout: Duration) -> io::Result<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(dir) = fs::read_dir("/sys/class/virtio-ports") {
            for e in dir.flatten() {
                let name = fs::read_to_string(e.path().join("name")).unwrap_or_default();
                if name.trim() == CONTROL_PORT {
                    let dev = PathBuf::from("/dev").join(e.file_name());
                    if dev.exists() {
                        return Ok(dev);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no virtio port named {CONTROL_PORT}")));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Serves the host until the control port closes.
pub fn serve() -> io::Result<()> {
    let path = find_port(Duration::from_secs(30))?;
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let reader = BufReader::new(file.try_clone()?);
    let port: Port = Arc::new(Mutex::new(file));
    let pids: Arc<Mutex<HashMap<u32, i32>>> = Arc::default();

    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    send(&port, &Event::Ready { kernel });

    for line in reader.lines() {
        let line = line?;
        match Request::decode(&line) {
            Ok(Request::Spawn { id, argv }) => spawn(&port, &pids, id, argv),
            Ok(Request::Signal { id, signo }) => {
                if let Some(&pid) = pids.lock().expect("pid table").get(&id) {
                    // SAFETY: kill(2) has no memory-safety preconditions. The negative pid
                    // signals the process group the child leads, as a terminal would.
                    unsafe { libc::kill(-pid, signo) };
                }
            }
            Err(e) => eprintln!("burst-lab-agent: ignoring bad request: {e}"),
        }
    }
    Ok(())
}

fn spawn(port: &Port, pids: &Arc<Mutex<HashMap<u32, i32>>>, id: u32, argv: Vec<Vec<u8>>) {
    let mut argv = argv.into_iter().map(std::ffi::OsString::from_vec);
    let program = argv.next().expect("the protocol guarantees a program");
    let child = Command::new(&program)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            send(port, &Event::SpawnFailed { id, message: e.to_string() });
            return;
        }
    };
    let pid = child.id();
    pids.lock().expect("pid table").insert(id, pid as i32);
    send(port, &Event::Started { id, pid });

    let (done_tx, done_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    forward(port.clone(), stdout, done_tx.clone(), move |data| Event::Stdout { id, data });
    forward(port.clone(), stderr, done_tx, move |data| Event::Stderr { id, data });

    let port = port.clone();
    let pids = pids.clone();
    thread::spawn(move || {
        let status = match child.wait() {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(c), _) => ExitStatus::Code(c),
                (None, Some(sig)) => ExitStatus::Signal(sig),
                (None, None) => ExitStatus::Code(-1),
            },
            Err(_) => ExitStatus::Code(-1),
        };
        pids.lock().expect("pid table").remove(&id);
        // All output first: wait for both pipes to close, but not forever.
        let deadline = Instant::now() + OUTPUT_GRACE;
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                break;
            }
        }
        send(&port, &Event::Exited { id, status });
    });
}

fn forward(
    port: Port,
    mut pipe: impl Read + Send + 'static,
    done: mpsc::Sender<()>,
    event: impl Fn(Vec<u8>) -> Event + Send + 'static,
) {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => send(&port, &event(buf[..n].to_vec())),
            }
        }
        let _ = done.send(());
    });
}

/// Sends `count` test frames of `len` bytes, numbered from 0, on interface `iface`.
pub fn send_frames(iface: &str, count: u32, len: usize, dst: [u8; 6]) -> io::Result<()> {
    let src = read_mac(iface)?;
    let sock = PacketSocket::bind(iface)?;
    for seq in 0..count {
        sock.send(&TestFrame::build(dst, src, seq, len))?;
    }
    Ok(())
}

fn read_mac(iface: &str) -> io::Result<[u8; 6]> {
    let text = fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    crate::config::parse_mac(text.trim())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad MAC `{}`", text.trim())))
}

/// An `AF_PACKET` raw socket bound to one interface.
struct PacketSocket {
    fd: std::os::fd::OwnedFd,
}

impl PacketSocket {
    fn bind(iface: &str) -> io::Result<PacketSocket> {
        use std::os::fd::FromRawFd;
        let name = std::ffi::CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface {iface}")));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value to fill in.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd })
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: `frame` is valid for reads of `frame.len()` bytes.
            let n =
                unsafe { libc::send(std::os::fd::AsRawFd::as_raw_fd(&self.fd), frame.as_ptr().cast(), frame.len(), 0) };
            if n >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            // The qdisc is full: the NIC is slower than we are; wait for it.
            if err.raw_os_error() == Some(libc::ENOBUFS) {
                thread::sleep(Duration::from_micros(100));
                continue;
            }
            return Err(err);
        }
    }
}
