//! The line protocol between the host (`Lab`) and the guest agent over the lab's
//! virtio-serial control port. One message a line, words separated by one space; anything
//! that may hold arbitrary bytes (arguments, output) is hex-encoded, so a line never needs
//! escaping.

use std::fmt::Write as _;

/// Host to guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Start `argv` (looked up on `PATH`) with stdin from `/dev/null`; `id` names it from now on.
    Spawn { id: u32, argv: Vec<Vec<u8>> },
    /// Send signal `signo` to the process `id`.
    Signal { id: u32, signo: i32 },
}

/// How a guest process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Guest to host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The agent is up; the guest kernel's release follows.
    Ready { kernel: String },
    /// Process `id` started with this guest PID.
    Started { id: u32, pid: u32 },
    /// Process `id` could not be started.
    SpawnFailed { id: u32, message: String },
    /// Bytes process `id` wrote to stdout.
    Stdout { id: u32, data: Vec<u8> },
    /// Bytes process `id` wrote to stderr.
    Stderr { id: u32, data: Vec<u8> },
    /// Process `id` ended; all its output was sent before this.
    Exited { id: u32, status: ExitStatus },
}

impl Request {
    pub fn encode(&self) -> String {
        match self {
            Request::Spawn { id, argv } => {
                let mut s = format!("spawn {id}");
                for a in argv {
                    s.push(' ');
                    s.push_str(&hex(a));
                }
                s
            }
            Request::Signal { id, signo } => format!("signal {id} {signo}"),
        }
    }

    pub fn decode(line: &str) -> Result<Request, String> {
        let mut w = line.split(' ');
        let kind = w.next().unwrap_or_default();
        let id = parse_num(w.next(), line)?;
        let req = match kind {
            "spawn" => {
                let argv = w.by_ref().map(unhex).collect::<Result<Vec<_>, _>>()?;
                if argv.is_empty() {
                    return Err(format!("spawn without a program: `{line}`"));
                }
                Request::Spawn { id, argv }
            }
            "signal" => Request::Signal { id, signo: parse_num(w.next(), line)? },
            _ => return Err(format!("unknown request `{line}`")),
        };
        if w.next().is_some() {
            return Err(format!("trailing words in `{line}`"));
        }
        Ok(req)
    }
}

impl Event {
    pub fn encode(&self) -> String {
        match self {
            Event::Ready { kernel } => format!("ready {}", hex(kernel.as_bytes())),
            Event::Started { id, pid } => format!("started {id} {pid}"),
            Event::SpawnFailed { id, message } => format!("spawn-failed {id} {}", hex(message.as_bytes())),
            Event::Stdout { id, data } => format!("stdout {id} {}", hex(data)),
            Event::Stderr { id, data } => format!("stderr {id} {}", hex(data)),
            Event::Exited { id, status: ExitStatus::Code(c) } => format!("exited {id} {c}"),
            Event::Exited { id, status: ExitStatus::Signal(s) } => format!("killed {id} {s}"),
        }
    }

    pub fn decode(line: &str) -> Result<Event, String> {
        let mut w = line.split(' ');
        let kind = w.next().unwrap_or_default();
        if kind == "ready" {
            let kernel = text(w.next(), line)?;
            return Ok(Event::Ready { kernel });
        }
        let id = parse_num(w.next(), line)?;
        let arg = w.next();
        let ev = match kind {
            "started" => Event::Started { id, pid: parse_num(arg, line)? },
            "spawn-failed" => Event::SpawnFailed { id, message: text(arg, line)? },
            "stdout" => Event::Stdout { id, data: unhex(arg.unwrap_or_default())? },
            "stderr" => Event::Stderr { id, data: unhex(arg.unwrap_or_default())? },
            "exited" => Event::Exited { id, status: ExitStatus::Code(parse_num(arg, line)?) },
            "killed" => Event::Exited { id, status: ExitStatus::Signal(parse_num(arg, line)?) },
            _ => return Err(format!("unknown event `{line}`")),
        };
        if w.next().is_some() {
            return Err(format!("trailing words in `{line}`"));
        }
        Ok(ev)
    }
}

fn parse_num<T: std::str::FromStr>(word: Option<&str>, line: &str) -> Result<T, String> {
    word.and_then(|w| w.parse().ok()).ok_or_else(|| format!("bad number in `{line}`"))
}

fn text(word: Option<&str>, line: &str) -> Result<String, String> {
    let bytes = unhex(word.ok_or_else(|| format!("missing text in `{line}`"))?)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of a hex string.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd-length hex `{s}`"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex `{s}`")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Spawn { id: 7, argv: vec![b"sh".to_vec(), b"-c".to_vec(), b"echo 'a b'\n".to_vec(), vec![]] },
            Request::Signal { id: 1, signo: 9 },
        ];
        for r in reqs {
            let line = r.encode();
            assert!(!line.contains('\n'));
            assert_eq!(Request::decode(&line).unwrap(), r);
        }
    }

    #[test]
    fn events_round_trip() {
        let evs = [
            Event::Ready { kernel: "6.1.0".into() },
            Event::Started { id: 3, pid: 42 },
            Event::SpawnFailed { id: 3, message: "No such file or directory (os error 2)".into() },
            Event::Stdout { id: 3, data: b"line\n\0\xff".to_vec() },
            Event::Stderr { id: 3, data: vec![] },
            Event::Exited { id: 3, status: ExitStatus::Code(-1) },
            Event::Exited { id: 3, status: ExitStatus::Signal(9) },
        ];
        for e in evs {
            assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for line in
            ["", "spawn", "spawn 1", "spawn x 00", "spawn 1 0", "spawn 1 zz", "signal 1", "nope 1", "signal 1 2 3"]
        {
            assert!(Request::decode(line).is_err(), "`{line}` accepted");
        }
        for line in ["", "ready", "started 1", "stdout 1 abc", "exited 1 x", "what 1 2"] {
            assert!(Event::decode(line).is_err(), "`{line}` accepted");
        }
    }
}
