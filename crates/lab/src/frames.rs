//! Numbered, check-summed test frames: what the lab sends over a wire to prove that
//! frames arrive, arrive once, in order and intact. The conformance suite uses the same
//! format.
//!
//! Layout (all integers big-endian):
//!
//! | bytes  | field                                        |
//! |--------|----------------------------------------------|
//! | 0..6   | destination MAC                              |
//! | 6..12  | source MAC                                   |
//! | 12..14 | EtherType 0x88B5 (IEEE local experimental 1) |
//! | 14..18 | magic `BRST`                                 |
//! | 18..22 | sequence number                              |
//! | 22..24 | frame length (without FCS)                   |
//! | 24..n-4| pattern: byte k = seq * 31 + k (mod 256)     |
//! | n-4..n | FNV-1a 32 of bytes 0..n-4                    |

use std::fmt;

/// EtherType of test frames (IEEE 802 local experimental EtherType 1).
pub const ETHERTYPE: u16 = 0x88b5;
/// Smallest test frame: the minimum Ethernet frame without FCS.
pub const MIN_LEN: usize = 60;
/// Largest test frame for a standard 1500-byte MTU, without FCS.
pub const MAX_LEN: usize = 1514;
/// Largest test frame the format can describe.
pub const MAX_FORMAT_LEN: usize = u16::MAX as usize;

const MAGIC: &[u8; 4] = b"BRST";
const HEADER: usize = 24;
const TRAILER: usize = 4;

/// The fields of a valid test frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFrame {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub seq: u32,
    pub len: usize,
}

/// Why bytes are not a valid test frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Not ours: another EtherType, or no magic. Traffic the guest kernel sends by itself.
    Foreign,
    /// Ours, but the length field disagrees with the bytes received.
    Length { expected: usize, got: usize },
    /// Ours, but the content changed on the way.
    Corrupt { seq: u32 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Foreign => write!(f, "not a test frame"),
            FrameError::Length { expected, got } => {
                write!(f, "test frame says it is {expected} bytes but {got} arrived")
            }
            FrameError::Corrupt { seq } => write!(f, "test frame {seq} arrived corrupted"),
        }
    }
}

impl std::error::Error for FrameError {}

impl TestFrame {
    /// Builds frame `seq` of `len` bytes (clamped to `MIN_LEN..=MAX_FORMAT_LEN`).
    pub fn build(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
        let len = len.clamp(MIN_LEN, MAX_FORMAT_LEN);
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
        f[14..18].copy_from_slice(MAGIC);
        f[18..22].copy_from_slice(&seq.to_be_bytes());
        f[22..24].copy_from_slice(&(len as u16).to_be_bytes());
        for (k, b) in f[HEADER..len - TRAILER].iter_mut().enumerate() {
            *b = seq.wrapping_mul(31).wrapping_add(k as u32) as u8;
        }
        let sum = fnv1a(&f[..len - TRAILER]);
        f[len - TRAILER..].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// Checks `bytes` and returns the frame's fields.
    pub fn parse(bytes: &[u8]) -> Result<TestFrame, FrameError> {
        if bytes.len() < HEADER + TRAILER || bytes[12..14] != ETHERTYPE.to_be_bytes() || &bytes[14..18] != MAGIC {
            return Err(FrameError::Foreign);
        }
        let seq = u32::from_be_bytes([bytes[18], bytes[19], bytes[20], bytes[21]]);
        let expected = usize::from(u16::from_be_bytes([bytes[22], bytes[23]]));
        if expected != bytes.len() {
            return Err(FrameError::Length { expected, got: bytes.len() });
        }
        let body = &bytes[..expected - TRAILER];
        let sum = u32::from_be_bytes(bytes[expected - TRAILER..].try_into().expect("4 bytes"));
        if fnv1a(body) != sum {
            return Err(FrameError::Corrupt { seq });
        }
        let mut dst = [0; 6];
        let mut src = [0; 6];
        dst.copy_from_slice(&bytes[0..6]);
        src.copy_from_slice(&bytes[6..12]);
        Ok(TestFrame { dst, src, seq, len: expected })
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x52, 0x54, 0, 0xb5, 0, 0];
    const B: [u8; 6] = [0xff; 6];

    #[test]
    fn build_then_parse_every_size() {
        for len in MIN_LEN..=MAX_LEN {
            let f = TestFrame::build(B, A, len as u32 * 7, len);
            assert_eq!(f.len(), len);
            let t = TestFrame::parse(&f).unwrap();
            assert_eq!(t, TestFrame { dst: B, src: A, seq: len as u32 * 7, len });
        }
    }

    #[test]
    fn any_flipped_bit_is_caught() {
        let f = TestFrame::build(B, A, 5, 100);
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                assert!(TestFrame::parse(&g).is_err(), "flip at byte {i} bit {bit} missed");
            }
        }
    }

    #[test]
    fn truncated_padded_and_foreign_frames_are_told_apart() {
        let f = TestFrame::build(B, A, 1, 200);
        assert_eq!(TestFrame::parse(&f[..150]), Err(FrameError::Length { expected: 200, got: 150 }));
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 4]);
        assert!(matches!(TestFrame::parse(&padded), Err(FrameError::Length { .. })));
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(TestFrame::parse(&arp), Err(FrameError::Foreign));
        assert_eq!(TestFrame::parse(&[0; 10]), Err(FrameError::Foreign));
    }

    #[test]
    fn short_sizes_are_clamped_to_the_minimum() {
        assert_eq!(TestFrame::build(B, A, 0, 1).len(), MIN_LEN);
    }
}
