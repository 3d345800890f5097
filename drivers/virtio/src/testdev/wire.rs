//! What the test device does with a TX chain before it reaches the wire, as a device honouring
//! the offload features it offers must (virtio 1.2, 5.1.6.2): the net header read and
//! stripped, a partial checksum finished (`CSUM`), a TCP packet segmented (`HOST_TSO4/6`), and a
//! request for a feature the driver did not negotiate refused with a panic (a driver bug).
//!
//! Segmentation follows Linux's GSO, which QEMU's and DPDK's vhost back-ends hand such packets to
//! or imitate: the headers (`hdr_len` bytes) repeated in front of each `gso_size`-byte piece of
//! payload, IPv4's total length, identification (+1 per segment) and header checksum, IPv6's
//! payload length, TCP's sequence number and flags (FIN and PSH on the last segment only, CWR
//! on the first only), and each segment's checksum from the driver's seed: the whole L4 length
//! taken out of it, the segment's put in (`tcp_gso_segment`), then the sum from `csum_start` on.

use crate::offload::{add_ones_complement, partial_checksum, NetHdr};
use crate::spec::features as f;
use crate::spec::net_hdr::*;

/// The frames a chain of `bytes` (its net header of `hdr_len` bytes first) becomes on the wire,
/// for a driver that negotiated `features`.
pub(super) fn transmit(features: u64, hdr_len: usize, bytes: &[u8]) -> Vec<Vec<u8>> {
    assert!(bytes.len() >= hdr_len, "a chain shorter than the net header");
    let h = NetHdr::from_bytes(bytes[..10].try_into().expect("10 bytes"));
    assert_eq!(h.flags & VIRTIO_NET_HDR_F_DATA_VALID, 0, "5.1.6.2.1: the driver MUST NOT set DATA_VALID");
    let mut frame = bytes[hdr_len..].to_vec();
    if h.gso_type != VIRTIO_NET_HDR_GSO_NONE {
        let need = match h.gso_type {
            VIRTIO_NET_HDR_GSO_TCPV4 => f::HOST_TSO4,
            VIRTIO_NET_HDR_GSO_TCPV6 => f::HOST_TSO6,
            other => panic!("gso_type {other:#x}: not one this device offers"),
        };
        assert_ne!(features & need, 0, "gso_type {:#x} without {}", h.gso_type, f::describe(need));
        assert_ne!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, "5.1.6.2.1: segmentation needs NEEDS_CSUM");
        return segment(&frame, h);
    }
    if h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        assert_ne!(features & f::CSUM, 0, "NEEDS_CSUM without CSUM");
        finish(&mut frame, usize::from(h.csum_start), usize::from(h.csum_offset));
    }
    vec![frame]
}

/// Stores the finished checksum of `frame` from `start` at `start + offset`.
fn finish(frame: &mut [u8], start: usize, offset: usize) {
    let value = partial_checksum([&frame[..]], start).expect("csum_start inside the frame");
    let at = start + offset;
    frame.get_mut(at..at + 2).expect("the checksum field inside the frame").copy_from_slice(&value.to_be_bytes());
}

/// The segments of the TCP packet `frame` (see the module docs).
fn segment(frame: &[u8], h: NetHdr) -> Vec<Vec<u8>> {
    let (hl, cs, mss) = (usize::from(h.hdr_len), usize::from(h.csum_start), usize::from(h.gso_size));
    assert!(mss > 0, "gso_size 0");
    assert!(cs + 20 <= hl && hl <= frame.len(), "hdr_len {hl} and csum_start {cs} in a frame of {}", frame.len());
    assert_eq!(h.csum_offset, 16, "a TCP segmentation request sums into TCP's checksum field");
    let l2 = if frame[12..14] == [0x81, 0x00] { 18 } else { 14 };
    let v4 = frame[l2] >> 4 == 4;
    let seed = u16::from_be_bytes([frame[cs + 16], frame[cs + 17]]);
    // Ones' complement subtraction of the whole L4 length: adding its complement.
    let total = (frame.len() - cs) as u32;
    let base = add_ones_complement(seed, !total);
    let seq0 = u32::from_be_bytes(frame[cs + 4..cs + 8].try_into().expect("4 bytes"));
    let id0 = u16::from_be_bytes([frame[l2 + 4], frame[l2 + 5]]);
    let pieces: Vec<&[u8]> = frame[hl..].chunks(mss).collect();
    assert!(!pieces.is_empty(), "a segmentation request with no payload");
    let last = pieces.len() - 1;
    let mut out = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.into_iter().enumerate() {
        let mut s = frame[..hl].to_vec();
        s.extend_from_slice(p);
        if v4 {
            let ihl = usize::from(s[l2] & 0xf) * 4;
            let total_len = (s.len() - l2) as u16;
            s[l2 + 2..l2 + 4].copy_from_slice(&total_len.to_be_bytes());
            s[l2 + 4..l2 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            s[l2 + 10..l2 + 12].fill(0);
            let c = burst_net::checksum::checksum(&s[l2..l2 + ihl]);
            s[l2 + 10..l2 + 12].copy_from_slice(&c.to_be_bytes());
        } else {
            let payload_len = (s.len() - l2 - 40) as u16;
            s[l2 + 4..l2 + 6].copy_from_slice(&payload_len.to_be_bytes());
        }
        let seq = seq0.wrapping_add((i * mss) as u32);
        s[cs + 4..cs + 8].copy_from_slice(&seq.to_be_bytes());
        if i < last {
            s[cs + 13] &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            s[cs + 13] &= !0x80; // CWR
        }
        let seg_seed = add_ones_complement(base, (s.len() - cs) as u32);
        s[cs + 16..cs + 18].copy_from_slice(&seg_seed.to_be_bytes());
        finish(&mut s, cs, 16);
        out.push(s);
    }
    out
}
