//! Programs a bench runs: found on `PATH`, started with their output in a log file (line by
//! line, under `stdbuf`), watched, signalled, and never left behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(super) fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

/// A program started by a bench, its stdout and stderr going to a log file. Dropping it stops
/// the program if it still runs (SIGINT, then SIGKILL), so none is left behind on any error.
pub(super) struct Program {
    pub(super) child: Child,
    bin: PathBuf,
    pub(super) log: PathBuf,
}

impl Program {
    /// Starts `bin ARGS` under `stdbuf -oL` (printf()s into a file are block-buffered; this
    /// makes them come a line at a time, so the output can be followed while it runs).
    pub(super) fn start(bin: &Path, args: &[String], log: &Path, stdin: Stdio) -> Result<Program, String> {
        let out = fs::File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = match find_on_path("stdbuf") {
            Some(stdbuf) => {
                let mut c = Command::new(stdbuf);
                c.arg("-oL").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(args)
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        Ok(Program { child, bin: bin.to_path_buf(), log: log.to_path_buf() })
    }

    /// Everything it printed so far.
    pub(super) fn output(&self) -> String {
        fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    pub(super) fn exited(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child.try_wait().map_err(|e| format!("waiting for {}: {e}", self.bin.display()))
    }

    pub(super) fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is our own child's,
            // not yet waited for (so not reused).
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Waits until it exits by itself, up to `timeout`; None if it has not.
    pub(super) fn wait_for(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, String> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited()? {
                return Ok(Some(s));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGINT, then SIGKILL if it has not gone within 10 s.
    pub(super) fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.signal(libc::SIGINT);
        if let Ok(Some(_)) = self.wait_for(Duration::from_secs(10)) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Ok if it exited with success, else what it said last.
    pub(super) fn check(&self, status: ExitStatus) -> Result<(), String> {
        if status.success() {
            return Ok(());
        }
        let text = self.output();
        let tail: Vec<&str> = text.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!(
            "exited with {status}; its output is in {}; it ended with:\n{}",
            self.log.display(),
            tail.join("\n")
        ))
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        self.stop();
    }
}
