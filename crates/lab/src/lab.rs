//! A running lab guest, seen from the host: boot it, run programs in it, talk to its NICs
//! over their wires, and tear it down. Dropping a [`Lab`] kills QEMU.
//!
//! QEMU is started with `PR_SET_PDEATHSIG`, so it also dies with the thread that booted it:
//! keep a `Lab` on the thread that created it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{nic_mac, LabConfig, NicModel};
use crate::guest_build::guest_binaries;
use crate::paths::KernelCache;
use crate::process::{Output, Process};
use crate::proto::{Event, Request};
use crate::qemu::{self, Accelerator, InheritedFds};
use crate::wire::Wire;
use crate::{initramfs, LabError};

/// How long [`Lab::sh`] and [`Lab::run`] let a command run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// Console bytes kept for error messages.
const CONSOLE_KEEP: usize = 1 << 20;

/// One NIC of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub model: NicModel,
    pub mac: [u8; 6],
    /// Guest PCI address, `0000:00:0S.0`.
    pub pci_address: String,
}

/// What the host's threads share.
#[derive(Default)]
pub(crate) struct Shared {
    /// Where each running process's events go; `None` once the control channel has closed.
    pub(crate) routes: Mutex<Option<HashMap<u32, mpsc::Sender<Event>>>>,
    console: Mutex<Vec<u8>>,
    qemu_stderr: Mutex<Vec<u8>>,
    qemu_status: Mutex<Option<std::process::ExitStatus>>,
    qemu_exited: Condvar,
}

impl Shared {
    fn console_tail(&self, lines: usize) -> String {
        let console = self.console.lock().expect("console lock");
        let text = String::from_utf8_lossy(&console);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last console line containing `needle`.
    fn console_line_with(&self, needle: &str) -> Option<String> {
        let console = self.console.lock().expect("console lock");
        String::from_utf8_lossy(&console).lines().rev().find(|l| l.contains(needle)).map(|l| l.trim().to_string())
    }

    /// Why the guest is gone, once the control channel has closed.
    pub(crate) fn death_reason(&self) -> String {
        let status = {
            let guard = self.qemu_status.lock().expect("status lock");
            let (guard, _) = self
                .qemu_exited
                .wait_timeout_while(guard, Duration::from_secs(5), |s| s.is_none())
                .expect("status lock");
            *guard
        };
        let tail = self.console_tail(40);
        // The panic line itself may have scrolled well above the tail: the stack trace and
        // the other CPUs' backtraces follow it.
        if let Some(panic) = self.console_line_with("Kernel panic") {
            return format!("the guest kernel panicked: {panic}\nlast console lines:\n{tail}");
        }
        let stderr = String::from_utf8_lossy(&self.qemu_stderr.lock().expect("stderr lock")).trim().to_string();
        match status {
            Some(s) => format!("QEMU exited ({s}); its messages: {stderr}\nlast console lines:\n{tail}"),
            None => format!("the control channel closed while QEMU still runs; last console lines:\n{tail}"),
        }
    }
}

/// A booted lab guest.
pub struct Lab {
    config: LabConfig,
    nics: Vec<Nic>,
    wires: Vec<Wire>,
    ctl: Mutex<UnixStream>,
    pub(crate) shared: Arc<Shared>,
    qemu: Arc<Mutex<Child>>,
    qemu_pid: u32,
    kernel_release: String,
    accel: Accelerator,
    boot_time: Duration,
    next_id: AtomicU32,
    threads: Vec<JoinHandle<()>>,
}

impl Lab {
    /// Builds the guest's binaries and initramfs, boots QEMU and waits for the guest agent.
    pub fn boot(config: LabConfig) -> Result<Lab, LabError> {
        config.validate()?;
        let kernel = KernelCache::load()?;
        let qemu_path = qemu_binary()?;
        let accel = qemu::resolve_accel(config.accel, &qemu_path, &kernel)?;
        let bins = guest_binaries()?;
        let initrd = memfd_with(&initramfs::build(&kernel, &bins)?)?;

        let mut wires = (0..config.nics.len())
            .map(|_| Wire::new())
            .collect::<Result<Vec<_>, _>>()
            .map_err(LabError::io("creating the wires' sockets"))?;
        let (ctl, qemu_ctl) = UnixStream::pair().map_err(LabError::io("creating the control socket"))?;
        let fds = InheritedFds {
            initrd: initrd.as_raw_fd(),
            control: qemu_ctl.as_raw_fd(),
            wires: wires.iter().map(Wire::qemu_fd).collect(),
        };
        let args = qemu::args(&config, accel, &kernel.vmlinuz(), &fds);
        let inherit: Vec<RawFd> = [fds.initrd, fds.control].into_iter().chain(fds.wires.iter().copied()).collect();

        let mut cmd = Command::new(&qemu_path);
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe calls (fcntl, prctl) on descriptors the parent keeps open.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &inherit {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| LabError::QemuStart { path: qemu_path.clone(), source })?;
        drop(qemu_ctl);
        drop(initrd);
        wires.iter_mut().for_each(Wire::release_qemu_end);

        let shared = Arc::new(Shared { routes: Mutex::new(Some(HashMap::new())), ..Shared::default() });
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::new();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let qemu_pid = child.id();
        let qemu = Arc::new(Mutex::new(child));
        threads.push(spawn_console_reader(stdout, shared.clone(), qemu.clone(), config.show_console));
        threads.push(spawn_stderr_reader(stderr, shared.clone()));
        let reader = ctl.try_clone().map_err(LabError::io("cloning the control socket"))?;
        threads.push(spawn_control_reader(reader, shared.clone(), ready_tx));

        let mut lab = Lab {
            nics: config
                .nics
                .iter()
                .enumerate()
                .map(|(i, &model)| Nic { model, mac: nic_mac(i), pci_address: config.nic_address(i) })
                .collect(),
            config,
            wires,
            ctl: Mutex::new(ctl),
            shared,
            qemu,
            qemu_pid,
            kernel_release: String::new(),
            accel,
            boot_time: Duration::ZERO,
            next_id: AtomicU32::new(1),
            threads,
        };
        match ready_rx.recv_timeout(lab.config.boot_timeout) {
            Ok(release) => {
                lab.kernel_release = release;
                lab.boot_time = started.elapsed();
                Ok(lab)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let console = lab.shared.console_tail(30);
                Err(LabError::BootTimeout { secs: lab.config.boot_timeout.as_secs(), console })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LabError::GuestDied { reason: lab.shared.death_reason() }),
        }
    }

    /// The guest's NICs, in slot order.
    pub fn nics(&self) -> &[Nic] {
        &self.nics
    }

    /// The wire of NIC `index`.
    pub fn wire(&self, index: usize) -> &Wire {
        &self.wires[index]
    }

    /// The configuration this guest was booted with.
    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    /// The guest kernel's release.
    pub fn kernel_release(&self) -> &str {
        &self.kernel_release
    }

    /// Whether the guest runs under KVM or TCG.
    pub fn accelerator(&self) -> Accelerator {
        self.accel
    }

    /// Time from starting QEMU to the guest agent being ready.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// What the guest kernel printed on its console so far (the last lines).
    pub fn console_tail(&self, lines: usize) -> String {
        self.shared.console_tail(lines)
    }

    /// Starts `argv` in the guest (found on the guest's `PATH`, in its own process group).
    pub fn spawn<S: AsRef<str>>(&self, argv: &[S]) -> Result<Process<'_>, LabError> {
        let command = argv.iter().map(|a| a.as_ref()).collect::<Vec<_>>().join(" ");
        if argv.is_empty() {
            return Err(LabError::Config("nothing to run: the command is empty".into()));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        match self.shared.routes.lock().expect("routes lock").as_mut() {
            Some(routes) => routes.insert(id, tx),
            None => return Err(LabError::GuestDied { reason: self.shared.death_reason() }),
        };
        let argv = argv.iter().map(|a| a.as_ref().as_bytes().to_vec()).collect();
        self.request(&Request::Spawn { id, argv })?;
        let mut proc = Process::new(self, id, command, rx);
        match proc.recv_raw(Duration::from_secs(30)) {
            Ok(Event::Started { pid, .. }) => {
                proc.set_pid(pid);
                Ok(proc)
            }
            Ok(Event::SpawnFailed { message, .. }) => {
                Err(LabError::SpawnFailed { command: proc.command().to_string(), message })
            }
            Ok(other) => Err(LabError::Protocol(format!("expected `started`, got {other:?}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(LabError::Protocol(format!("the agent did not answer the request to start `{}`", proc.command())))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(LabError::GuestDied { reason: self.shared.death_reason() })
            }
        }
    }

    /// Runs `argv` to completion, within `timeout`.
    pub fn run<S: AsRef<str>>(&self, argv: &[S], timeout: Duration) -> Result<Output, LabError> {
        self.spawn(argv)?.wait(timeout)
    }

    /// Runs a shell script (`sh -c SCRIPT`) to completion, whatever its exit status.
    pub fn sh(&self, script: &str) -> Result<Output, LabError> {
        self.run(&["sh", "-c", script], DEFAULT_COMMAND_TIMEOUT)
    }

    /// Runs a shell script that must succeed and returns its stdout.
    pub fn sh_ok(&self, script: &str) -> Result<String, LabError> {
        let out = self.sh(script)?;
        if out.status.success() {
            Ok(out.stdout_str())
        } else {
            Err(LabError::CommandFailed {
                command: script.to_string(),
                status: out.status.to_string(),
                stderr: out.stderr_str(),
            })
        }
    }

    /// Binds the guest's PCI device `addr` to `driver` the way the kernel documents it
    /// (`driver_override`, unbind, `drivers_probe`), loading the module first; returns the
    /// driver the device ends up on. For tests that must not depend on `devbind`.
    pub fn bind(&self, addr: &str, driver: &str) -> Result<String, LabError> {
        let module = driver.replace('-', "_");
        let dev = format!("/sys/bus/pci/devices/{addr}");
        let out = self.sh_ok(&format!(
            "set -e
             modprobe {module}
             echo {driver} > {dev}/driver_override
             if [ -e {dev}/driver ]; then echo {addr} > {dev}/driver/unbind; fi
             echo {addr} > /sys/bus/pci/drivers_probe
             basename $(readlink {dev}/driver)"
        ))?;
        Ok(out.trim().to_string())
    }

    /// The guest kernel's network interface on NIC `index`, when a kernel driver holds it.
    pub fn nic_iface(&self, index: usize) -> Result<String, LabError> {
        let addr = &self.nics[index].pci_address;
        let out = self.sh_ok(&format!(
            "ls /sys/bus/pci/devices/{addr}/net /sys/bus/pci/devices/{addr}/virtio*/net 2>/dev/null; true"
        ))?;
        out.split_whitespace()
            .find(|w| !w.ends_with(':') && !w.is_empty())
            .map(str::to_string)
            .ok_or_else(|| LabError::Config(format!("NIC {index} ({addr}) has no kernel network interface")))
    }

    pub(crate) fn request(&self, req: &Request) -> Result<(), LabError> {
        let mut line = req.encode();
        line.push('\n');
        let mut ctl = self.ctl.lock().expect("control lock");
        ctl.write_all(line.as_bytes()).map_err(|_| LabError::GuestDied { reason: self.shared.death_reason() })
    }

    fn kill_qemu(&self) {
        let mut child = self.qemu.lock().expect("qemu lock");
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_qemu();
        // Unblock the control reader if QEMU somehow left the socket open.
        if let Ok(ctl) = self.ctl.lock() {
            let _ = ctl.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("nics", &self.nics).field("qemu_pid", &self.qemu_pid).finish()
    }
}

fn spawn_console_reader(
    mut stdout: impl Read + Send + 'static,
    shared: Arc<Shared>,
    qemu: Arc<Mutex<Child>>,
    echo: bool,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if echo {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    let mut console = shared.console.lock().expect("console lock");
                    console.extend_from_slice(&buf[..n]);
                    if console.len() > 2 * CONSOLE_KEEP {
                        let cut = console.len() - CONSOLE_KEEP;
                        console.drain(..cut);
                    }
                }
            }
        }
        // QEMU closed its stdout: it is exiting.
        let status = qemu.lock().expect("qemu lock").wait().ok();
        *shared.qemu_status.lock().expect("status lock") = status;
        shared.qemu_exited.notify_all();
    })
}

fn spawn_stderr_reader(mut stderr: impl Read + Send + 'static, shared: Arc<Shared>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            let mut kept = shared.qemu_stderr.lock().expect("stderr lock");
            if kept.len() < CONSOLE_KEEP {
                kept.extend_from_slice(&buf[..n]);
            }
        }
    })
}

fn spawn_control_reader(ctl: UnixStream, shared: Arc<Shared>, ready: mpsc::Sender<String>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(ctl).lines() {
            let Ok(line) = line else { break };
            let event = match Event::decode(&line) {
                Ok(e) => e,
                Err(e) => {
                    // Keep the complaint where error messages look.
                    let note = format!("\n[burst-lab host] bad control line ignored: {e}\n");
                    shared.console.lock().expect("console lock").extend_from_slice(note.as_bytes());
                    continue;
                }
            };
            let id = match &event {
                Event::Ready { kernel } => {
                    let _ = ready.send(kernel.clone());
                    continue;
                }
                Event::Started { id, .. }
                | Event::SpawnFailed { id, .. }
                | Event::Stdout { id, .. }
                | Event::Stderr { id, .. }
                | Event::Exited { id, .. } => *id,
            };
            let routes = shared.routes.lock().expect("routes lock");
            if let Some(tx) = routes.as_ref().and_then(|r| r.get(&id)) {
                let _ = tx.send(event);
            }
        }
        // The guest is gone: every waiting process learns it through a closed channel, and
        // nothing can be started any more.
        *shared.routes.lock().expect("routes lock") = None;
    })
}

/// The QEMU binary: `BURST_LAB_QEMU`, or `qemu-system-x86_64` on `PATH`.
pub fn qemu_binary() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("BURST_LAB_QEMU") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::NotSetUp { what: "qemu-system-x86_64 (QEMU 8.0 or newer)".into() })
}

/// An anonymous in-memory file holding `data`, for QEMU to read as `/dev/fd/N`.
fn memfd_with(data: &[u8]) -> Result<OwnedFd, LabError> {
    let name = c"burst-lab-initramfs";
    // SAFETY: `name` is NUL-terminated; the result is checked before use.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(LabError::io("creating the initramfs memfd")(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(LabError::io("writing the initramfs"))?;
    Ok(file.into())
}
