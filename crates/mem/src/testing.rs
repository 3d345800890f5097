//! Memory and pools for tests and benches that need no hugepages and no device: 4 KiB pages
//! (`--no-huge`) with IOVAs as virtual addresses, so a test device can follow the addresses a
//! driver writes. Behind the `testing` feature; no product build has it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{IovaMode, MemConfig, Memory, PacketPool, PacketPoolConfig};

/// The most memory one [`memory`] hands out: pages are taken as reservations need them.
const MAX_MEM: u64 = 1 << 30;

/// `--no-huge` memory with IOVA as VA. Pinning the pages needs `mlock` rights: root, or a
/// large enough `ulimit -l`.
pub fn memory() -> Memory {
    Memory::new(MemConfig {
        iova_mode: IovaMode::Va,
        no_huge: true,
        max_mem_per_socket: MAX_MEM,
        ..MemConfig::default()
    })
    .expect("--no-huge memory: pinning its pages needs root or a larger `ulimit -l`")
}

/// `prefix` and a number no other call of this process got: memzone and pool names are unique
/// per memory.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A pool of `count` default buffers (2048 bytes of data room, 128 of headroom) with no per-lcore
/// cache, so that the pool's counts are exact whichever thread frees.
pub fn packet_pool(mem: &Memory, count: usize) -> PacketPool {
    let mut cfg = PacketPoolConfig::new(&unique_name("pool"), count);
    cfg.cache_size = 0;
    PacketPool::new(mem, &cfg).expect("a packet pool in test memory")
}

/// A packet holding `bytes` in segments of `lens[0]`, `lens[1]`, ... bytes (fewer where the bytes
/// run out; a 0 makes an empty segment), then one more with whatever `lens` left over, each
/// buffer from `pool`. Panics when the pool runs dry or a segment does not fit a buffer: a
/// test's own mistake.
pub fn chain_from(pool: &PacketPool, bytes: &[u8], lens: &[usize]) -> crate::PacketBuf {
    let mut rest = bytes;
    let mut cuts: Vec<usize> = lens
        .iter()
        .map(|&n| {
            let n = n.min(rest.len());
            rest = &rest[n..];
            n
        })
        .collect();
    if !rest.is_empty() || cuts.is_empty() {
        cuts.push(rest.len());
    }
    let mut at = 0;
    let mut head: Option<crate::PacketBuf> = None;
    for n in cuts {
        let mut seg = pool.alloc().expect("a buffer for a test packet");
        assert!(seg.set_data(&bytes[at..at + n]), "a {n}-byte segment does not fit a buffer of {pool:?}");
        at += n;
        match head.as_mut() {
            None => head = Some(seg),
            Some(h) => h.chain(seg).map_err(|(_, e)| e).expect("segments chain"),
        }
    }
    head.expect("at least one segment")
}
