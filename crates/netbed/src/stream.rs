//! The mixed stream the l2fwd tests push through a port: frames of 60 to 1514 bytes, plain,
//! VLAN-tagged, IPv6 and broadcast, each carrying its direction and sequence number in its last
//! eight bytes, and the check that one came out of l2fwd byte for byte as it went in, but for
//! l2fwd's address rewrite.

use burst_net::MacAddr;

/// IEEE 802 local experimental EtherType 1 (IEEE Std 802, 9.2.2): nothing else sends it.
pub const LOCAL_EXPERIMENTAL: u16 = 0x88b5;

/// Tags the last eight bytes of every frame of the stream: "BR", the direction, a zero byte,
/// then the sequence number.
const MARK: [u8; 2] = *b"BR";

/// Frame `seq` of direction `dir`, `len` bytes (60 to 1514; an IPv6 one at least 62): kind
/// `seq % 4` is plain unicast, VLAN-tagged (802.1Q, VID 100 + dir), IPv6 (a header, then an
/// unparsed payload: next header 59, "no next header"), or broadcast.
pub fn frame(dir: u8, seq: u32, len: usize) -> Vec<u8> {
    let kind = seq % 4;
    let len = len.clamp(if kind == 2 { 62 } else { 60 }, 1514);
    let mut f = vec![0u8; len];
    let dst = if kind == 3 { MacAddr::BROADCAST } else { MacAddr([0x02, 0xaa, 0, 0, dir, (seq % 251) as u8]) };
    f[..6].copy_from_slice(&dst.bytes());
    f[6..12].copy_from_slice(&[0x02, 0xbb, 0, 0, dir, (seq % 241) as u8]);
    let body = match kind {
        1 => {
            f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            f[14..16].copy_from_slice(&(100 + u16::from(dir)).to_be_bytes());
            f[16..18].copy_from_slice(&LOCAL_EXPERIMENTAL.to_be_bytes());
            18
        }
        2 => {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut f[14..54];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&((len - 54) as u16).to_be_bytes());
            ip[6] = 59;
            ip[7] = 64;
            ip[8] = 0xfd;
            ip[23] = 1 + dir;
            ip[24] = 0xfd;
            ip[39] = 2 + dir;
            54
        }
        _ => {
            f[12..14].copy_from_slice(&LOCAL_EXPERIMENTAL.to_be_bytes());
            14
        }
    };
    for (i, b) in f[body..len - 8].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(131).wrapping_add(i * 7) as u8;
    }
    let tail = &mut f[len - 8..];
    tail[..2].copy_from_slice(&MARK);
    tail[2] = dir;
    tail[3] = 0;
    tail[4..].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The length of frame `seq` of a stream of `n`: every size from 60 to 1514 comes up, spread
/// over the sequence.
pub fn len_of(dir: u8, seq: u32) -> usize {
    60 + (seq as usize * 1031 + usize::from(dir) * 13) % 1455
}

/// The whole stream of direction `dir`: `n` frames.
pub fn stream(dir: u8, n: u32) -> Vec<Vec<u8>> {
    (0..n).map(|s| frame(dir, s, len_of(dir, s))).collect()
}

/// The direction and sequence number a frame of the stream carries; `None` for anything else.
pub fn id_of(frame: &[u8]) -> Option<(u8, u32)> {
    let tail = frame.get(frame.len().checked_sub(8)?..)?;
    (tail[..2] == MARK && tail[3] == 0).then(|| (tail[2], u32::from_be_bytes([tail[4], tail[5], tail[6], tail[7]])))
}

/// Checks that `got` is `sent` after l2fwd's rewrite (destination 02:00:00:00:00:TXPORT, source
/// the TX port's address) and nothing else changed.
pub fn check_rewrite(sent: &[u8], got: &[u8], dst: MacAddr, src: MacAddr) -> Result<(), String> {
    if got.len() != sent.len() {
        return Err(format!("{} bytes sent, {} arrived", sent.len(), got.len()));
    }
    if got[..6] != dst.bytes() || got[6..12] != src.bytes() {
        return Err(format!(
            "addresses {} <- {}, expected {dst} <- {src}",
            MacAddr(got[..6].try_into().unwrap_or_default()),
            MacAddr(got[6..12].try_into().unwrap_or_default())
        ));
    }
    match got[12..].iter().zip(&sent[12..]).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("byte {} differs: sent {:#04x}, got {:#04x}", i + 12, sent[i + 12], got[i + 12])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_has_every_kind_and_size_and_carries_its_ids() {
        let s = stream(1, 3000);
        assert!(s.iter().any(|f| f.len() == 60) && s.iter().any(|f| f.len() == 1514));
        assert!(s.iter().any(|f| f[12..14] == [0x81, 0x00]));
        assert!(s.iter().any(|f| f[12..14] == [0x86, 0xdd]));
        assert!(s.iter().any(|f| f[..6] == [0xff; 6]));
        for (i, f) in s.iter().enumerate() {
            assert_eq!(id_of(f), Some((1, i as u32)));
        }
        let mut got = s[5].clone();
        let (d, m) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 9, 9, 9, 9, 9]));
        got[..6].copy_from_slice(&d.bytes());
        got[6..12].copy_from_slice(&m.bytes());
        assert_eq!(check_rewrite(&s[5], &got, d, m), Ok(()));
        got[40] ^= 1;
        assert!(check_rewrite(&s[5], &got, d, m).unwrap_err().contains("byte 40"));
    }
}
