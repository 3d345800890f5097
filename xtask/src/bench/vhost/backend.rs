//! The vhost backend (testpmd at its prompt, driven through stdin) and one frontend run against
//! it: the frontend's statistics blocks each paired with the backend's `show port stats 0`, so
//! both cover the same seconds.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{ChildStdin, Stdio};
use std::time::{Duration, Instant};

use super::super::program::Program;
use super::super::signal::interrupted;
use super::{BACKEND_START, SLACK, STATS_BLOCK};

/// The vhost backend: testpmd in interactive mode, commands written to its stdin.
pub(super) struct Backend {
    /// Declared before `program`: dropped first, so testpmd sees the end of its input and quits.
    stdin: Option<ChildStdin>,
    program: Program,
}

impl Backend {
    pub(super) fn start(bin: &Path, args: &[String], log: &Path, sock: &Path) -> Result<Backend, String> {
        let mut program = Program::start(bin, args, log, Stdio::piped())?;
        let stdin = program.child.stdin.take();
        let mut b = Backend { stdin, program };
        let until = Instant::now() + BACKEND_START;
        while !sock.exists() {
            b.alive()?;
            if interrupted() {
                return Err("interrupted".into());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "it did not create {} within {} s; its output is in {}",
                    sock.display(),
                    BACKEND_START.as_secs(),
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(b)
    }

    fn alive(&mut self) -> Result<(), String> {
        match self.program.exited()? {
            None => Ok(()),
            Some(status) => {
                self.program.check(status)?;
                Err(format!("it exited; its output is in {}", self.program.log.display()))
            }
        }
    }

    fn send(&mut self, cmd: &str) -> Result<(), String> {
        self.alive()?;
        let stdin = self.stdin.as_mut().ok_or("its input is closed")?;
        writeln!(stdin, "{cmd}").and_then(|()| stdin.flush()).map_err(|e| format!("writing `{cmd}` to it: {e}"))
    }

    /// Stops forwarding, switches to `mode`, starts again, and asks for the statistics once
    /// so the next `show port stats` gives rates from here.
    pub(super) fn forward(&mut self, mode: &str) -> Result<(), String> {
        let mark = self.mark();
        for cmd in ["stop", &format!("set fwd {mode}"), "start", "show port stats 0"] {
            self.send(cmd)?;
        }
        if self.wait_for_stats(mark, 1, Duration::from_secs(10))? {
            Ok(())
        } else {
            Err(format!("it did not answer `show port stats 0`; its output is in {}", self.program.log.display()))
        }
    }

    /// Waits until its output since `mark` holds `n` statistics blocks; false if it has not
    /// printed them within `timeout`.
    fn wait_for_stats(&mut self, mark: usize, n: usize, timeout: Duration) -> Result<bool, String> {
        let until = Instant::now() + timeout;
        loop {
            if self.output_since(mark).matches(STATS_BLOCK).count() >= n {
                return Ok(true);
            }
            self.alive()?;
            if Instant::now() >= until {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bytes of output so far: where a run's output starts.
    fn mark(&self) -> usize {
        fs::metadata(&self.program.log).map(|m| m.len() as usize).unwrap_or(0)
    }

    pub(super) fn output_since(&self, mark: usize) -> String {
        let bytes = fs::read(&self.program.log).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    /// `quit`, and waits for it to go (killing it if it does not).
    pub(super) fn quit(mut self) {
        let _ = self.send("stop");
        let _ = self.send("quit");
        self.stdin = None;
        if let Ok(Some(_)) = self.program.wait_for(Duration::from_secs(10)) {
            return;
        }
        self.program.stop();
    }
}

/// Runs one frontend against the backend until it has printed `samples` statistics blocks,
/// asking the backend for its statistics each time; returns both outputs over the run.
pub(super) fn run_frontend(
    bin: &Path,
    args: &[String],
    log: &Path,
    samples: usize,
    backend: &mut Backend,
) -> Result<(String, String), String> {
    let mark = backend.mark();
    let mut program = Program::start(bin, args, log, Stdio::null())?;
    let deadline = Instant::now() + Duration::from_secs(samples as u64) + SLACK;
    let mut seen = 0;
    let mut signalled = false;
    let status = loop {
        if let Some(status) = program.exited()? {
            if !signalled {
                program.check(status)?;
                return Err(format!(
                    "it stopped by itself after {seen} of {samples} statistics blocks; its output is in {}",
                    log.display()
                ));
            }
            break status;
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "it printed {seen} of {samples} statistics blocks in time; its output is in {}",
                log.display()
            ));
        }
        backend.alive().map_err(|e| format!("the vhost backend failed during the run: {e}"))?;
        if !signalled {
            let blocks = program.output().matches("Rx-pps:").count();
            while seen < blocks {
                backend.send("show port stats 0")?;
                seen += 1;
            }
            if seen >= samples {
                program.signal(libc::SIGINT);
                signalled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    program.check(status)?;
    // The last `show port stats` answers.
    backend.wait_for_stats(mark, seen, Duration::from_secs(5))?;
    Ok((program.output(), backend.output_since(mark)))
}
