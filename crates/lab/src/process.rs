//! A program running in a lab guest: its streamed output, its exit status, signals to it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::proto::{Event, ExitStatus, Request};
use crate::LabError;

/// What a finished guest command left.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Something a running guest process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exited(ExitStatus),
}

/// A program running in the guest.
pub struct Process<'lab> {
    lab: &'lab Lab,
    id: u32,
    pid: u32,
    command: String,
    rx: mpsc::Receiver<Event>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
}

impl<'lab> Process<'lab> {
    pub(crate) fn new(lab: &'lab Lab, id: u32, command: String, rx: mpsc::Receiver<Event>) -> Self {
        Process { lab, id, pid: 0, command, rx, stdout: Vec::new(), stderr: Vec::new(), status: None }
    }

    pub(crate) fn set_pid(&mut self, pid: u32) {
        self.pid = pid;
    }

    /// The next raw protocol event, for `Lab::spawn` to see `started`.
    pub(crate) fn recv_raw(&self, timeout: Duration) -> Result<Event, mpsc::RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Its PID in the guest.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> &[u8] {
        &self.stdout
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> &[u8] {
        &self.stderr
    }

    /// The next thing it does within `timeout`, or `None`. After `Exited`, always `Exited`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ProcessEvent>, LabError> {
        if let Some(s) = self.status {
            return Ok(Some(ProcessEvent::Exited(s)));
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Event::Stdout { data, .. }) => {
                self.stdout.extend_from_slice(&data);
                Ok(Some(ProcessEvent::Stdout(data)))
            }
            Ok(Event::Stderr { data, .. }) => {
                self.stderr.extend_from_slice(&data);
                Ok(Some(ProcessEvent::Stderr(data)))
            }
            Ok(Event::Exited { status, .. }) => {
                self.status = Some(status);
                Ok(Some(ProcessEvent::Exited(status)))
            }
            Ok(other) => Err(LabError::Protocol(format!("unexpected event {other:?}"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(LabError::GuestDied { reason: self.lab.shared.death_reason() })
            }
        }
    }

    /// Waits for it to end. Past `timeout` it is killed (with its process group) and the
    /// result is [`LabError::CommandTimeout`].
    pub fn wait(self, timeout: Duration) -> Result<Output, LabError> {
        self.wait_with(timeout, |_| {})
    }

    /// Like [`Process::wait`], handing each event to `on_event` as it comes (to stream the
    /// output, say).
    pub fn wait_with(mut self, timeout: Duration, mut on_event: impl FnMut(&ProcessEvent)) -> Result<Output, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill()?;
                return Err(LabError::CommandTimeout { command: self.command.clone(), secs: timeout.as_secs() });
            }
            let Some(event) = self.next_event(left)? else { continue };
            on_event(&event);
            if let ProcessEvent::Exited(status) = event {
                return Ok(Output {
                    status,
                    stdout: std::mem::take(&mut self.stdout),
                    stderr: std::mem::take(&mut self.stderr),
                });
            }
        }
    }

    /// Waits until its stdout contains `pattern`.
    pub fn wait_for_stdout(&mut self, pattern: &str, timeout: Duration) -> Result<(), LabError> {
        let deadline = Instant::now() + timeout;
        while !String::from_utf8_lossy(&self.stdout).contains(pattern) {
            let left = deadline.saturating_duration_since(Instant::now());
            let ended = self.status.is_some();
            if left.is_zero() || ended {
                let mut output = String::from_utf8_lossy(&self.stdout).into_owned();
                output.push_str(&String::from_utf8_lossy(&self.stderr));
                if let Some(s) = self.status {
                    output.push_str(&format!("\n[{s}]"));
                }
                return Err(LabError::OutputTimeout {
                    command: self.command.clone(),
                    pattern: pattern.to_string(),
                    secs: timeout.as_secs(),
                    output,
                });
            }
            self.next_event(left)?;
        }
        Ok(())
    }

    /// Sends `signo` to its process group.
    pub fn signal(&self, signo: i32) -> Result<(), LabError> {
        self.lab.request(&Request::Signal { id: self.id, signo })
    }

    /// Sends SIGKILL to its process group.
    pub fn kill(&self) -> Result<(), LabError> {
        self.signal(libc::SIGKILL)
    }
}

impl std::fmt::Debug for Process<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("command", &self.command).field("pid", &self.pid).finish()
    }
}

impl Drop for Process<'_> {
    fn drop(&mut self) {
        if let Some(routes) = self.lab.shared.routes.lock().expect("routes lock").as_mut() {
            routes.remove(&self.id);
        }
    }
}
