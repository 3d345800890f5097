//! What a view costs on a forwarding loop's hot path: the MAC rewrites of pktgen's `mac` and
//! `macswap` modes and of l2fwd, over a burst of 32 frames of 64 bytes, each written through a
//! checked view and by the raw-offset code the views replaced (pktgen's `frame.rs` before
//! burst-net), which stays here as the yardstick.
//!
//! - `raw_set_32` / `view_copy_32`: `mac` mode: a destination and source built once
//!   ([`EthernetAddrs::new`]), copied into each frame ([`EthernetAddrs::copy_from`]).
//! - `view_set_32`: l2fwd's form, the two setters. Here, with both addresses in registers, it
//!   costs what the copy does; in pktgen's loop the compiler recomputed the addresses' halves
//!   for every frame (4 instructions a packet more), which is why `mac` mode copies.
//! - `raw_swap_32` / `view_swap_32`: `macswap`.
//! - `frame_set_32`: `mac` through [`EthernetFrame::new_checked`], which also reads the
//!   EtherType to find a VLAN tag: the price of checking more than the rewrite needs.
//!
//! Each variant is one `#[inline(never)]` function per burst, so that an instruction count
//! names it: `valgrind --tool=callgrind target/release/deps/rewrite-HASH --bench
//! --profile-time 2` and `callgrind_annotate`, Ir of the function over its calls. The frames
//! stay in L1, so time per burst is the instructions' cost and nothing else (the real loop also
//! takes each frame's first cache miss, the same for every variant).

use std::hint::black_box;

use burst_net::{EthernetAddrs, EthernetFrame, MacAddr};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BURST: usize = 32;
const FRAME: usize = 64;
const DST: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const SRC: MacAddr = MacAddr([2, 0x62, 0x75, 0, 0, 0]);

/// pktgen's `set_macs` before the views: one 12-byte copy of a prepared header.
#[inline(never)]
fn raw_set_32(frames: &mut [Vec<u8>], header: &[u8; 12]) {
    for f in frames {
        if let Some(h) = f.get_mut(..12) {
            h.copy_from_slice(header);
        }
    }
}

#[inline(never)]
fn view_copy_32(frames: &mut [Vec<u8>], addrs: &EthernetAddrs<[u8; 12]>) {
    for f in frames {
        if let Ok(mut a) = EthernetAddrs::new_checked(&mut f[..]) {
            a.copy_from(addrs);
        }
    }
}

#[inline(never)]
fn view_set_32(frames: &mut [Vec<u8>], dst: MacAddr, src: MacAddr) {
    for f in frames {
        if let Ok(mut a) = EthernetAddrs::new_checked(&mut f[..]) {
            a.set_dst(dst);
            a.set_src(src);
        }
    }
}

#[inline(never)]
fn frame_set_32(frames: &mut [Vec<u8>], dst: MacAddr, src: MacAddr) {
    for f in frames {
        if let Ok(mut e) = EthernetFrame::new_checked(&mut f[..]) {
            e.set_dst(dst);
            e.set_src(src);
        }
    }
}

/// pktgen's `swap_macs` before the views.
#[inline(never)]
fn raw_swap_32(frames: &mut [Vec<u8>]) {
    for f in frames {
        let Some(h) = f.first_chunk_mut::<12>() else { continue };
        let x = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let y = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let lo = (x >> 48) | (u64::from(y) << 16) | (x << 48);
        let hi = (x >> 16) as u32;
        h[..8].copy_from_slice(&lo.to_le_bytes());
        h[8..].copy_from_slice(&hi.to_le_bytes());
    }
}

#[inline(never)]
fn view_swap_32(frames: &mut [Vec<u8>]) {
    for f in frames {
        if let Ok(mut a) = EthernetAddrs::new_checked(&mut f[..]) {
            a.swap();
        }
    }
}

fn rewrite(c: &mut Criterion) {
    let mut frames: Vec<Vec<u8>> = (0..BURST).map(|i| vec![i as u8; FRAME]).collect();
    let mut header = [0u8; 12];
    header[..6].copy_from_slice(&DST.0);
    header[6..].copy_from_slice(&SRC.0);
    // The variants agree before they are timed.
    let mut a = frames.clone();
    let mut b = frames.clone();
    raw_set_32(&mut a, &header);
    view_set_32(&mut b, DST, SRC);
    assert_eq!(a, b);
    let addrs = EthernetAddrs::new(DST, SRC);
    let mut copied = frames.clone();
    view_copy_32(&mut copied, &addrs);
    assert_eq!(a, copied);
    frame_set_32(&mut b, DST, SRC);
    assert_eq!(a, b);
    raw_swap_32(&mut a);
    view_swap_32(&mut b);
    assert_eq!(a, b);
    assert_eq!(&a[0][..12], &[SRC.0, DST.0].concat()[..]);

    let mut g = c.benchmark_group("mac_rewrite");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("raw_set_32", |b| b.iter(|| raw_set_32(black_box(&mut frames), black_box(&header))));
    g.bench_function("view_copy_32", |b| b.iter(|| view_copy_32(black_box(&mut frames), black_box(&addrs))));
    g.bench_function("view_set_32", |b| b.iter(|| view_set_32(black_box(&mut frames), black_box(DST), black_box(SRC))));
    g.bench_function("frame_set_32", |b| {
        b.iter(|| frame_set_32(black_box(&mut frames), black_box(DST), black_box(SRC)))
    });
    g.bench_function("raw_swap_32", |b| b.iter(|| raw_swap_32(black_box(&mut frames))));
    g.bench_function("view_swap_32", |b| b.iter(|| view_swap_32(black_box(&mut frames))));
    g.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);
