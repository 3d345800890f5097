//! `--socket-mem 1024,0` and `-m 512`: memory to reserve at start, in megabytes.

use crate::error::MemError;

/// Memory reserved at start and kept for the life of the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SocketMem {
    /// Nothing up front: memory grows on demand.
    #[default]
    None,
    /// `-m N`: N megabytes in all.
    Total(u64),
    /// `--socket-mem A,B,...`: bytes per socket, in socket order.
    PerSocket(Vec<u64>),
}

const MIB: u64 = 1 << 20;

fn megabytes(input: &str, part: &str) -> Result<u64, MemError> {
    let bad = |reason: String| MemError::BadSocketMem { input: input.to_string(), reason };
    let part = part.trim();
    if part.is_empty() {
        return Err(bad("an amount is empty".into()));
    }
    let mb: u64 = part.parse().map_err(|_| bad(format!("{part:?} is not a whole number of megabytes")))?;
    mb.checked_mul(MIB).ok_or_else(|| bad(format!("{part} megabytes is more than any machine has")))
}

impl SocketMem {
    /// Parses `-m`'s value: megabytes in all.
    pub fn parse_total(input: &str) -> Result<SocketMem, MemError> {
        Ok(SocketMem::Total(megabytes(input, input)?))
    }

    /// Parses `--socket-mem`'s value: comma-separated megabytes per socket.
    pub fn parse_per_socket(input: &str) -> Result<SocketMem, MemError> {
        let amounts = input.split(',').map(|p| megabytes(input, p)).collect::<Result<Vec<_>, _>>()?;
        Ok(SocketMem::PerSocket(amounts))
    }

    /// All bytes asked for.
    pub fn total(&self) -> u64 {
        match self {
            SocketMem::None => 0,
            SocketMem::Total(b) => *b,
            SocketMem::PerSocket(v) => v.iter().sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_totals_and_per_socket_lists() {
        assert_eq!(SocketMem::parse_total("512").unwrap(), SocketMem::Total(512 * MIB));
        assert_eq!(SocketMem::parse_per_socket("1024,0").unwrap(), SocketMem::PerSocket(vec![1024 * MIB, 0]));
        assert_eq!(SocketMem::parse_per_socket(" 64 ").unwrap().total(), 64 * MIB);
    }

    #[test]
    fn bad_strings_are_typed_errors_that_say_what_to_give() {
        for bad in ["", "1024,", "abc", "1G", "-5", "1,,2", "99999999999999999999"] {
            let err = SocketMem::parse_per_socket(bad).unwrap_err();
            assert!(matches!(err, MemError::BadSocketMem { .. }), "{bad:?}: {err:?}");
            assert!(err.to_string().contains("--socket-mem 1024,0"), "{err}");
        }
        assert!(SocketMem::parse_total("12MB").is_err());
    }
}
