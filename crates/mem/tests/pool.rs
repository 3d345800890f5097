//! Mempools and packet buffers on `--no-huge` memory (4 KiB pages, IOVA as VA): these need no
//! hugepages, only permission to lock 2 MiB segments (CI runs as root).

use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burst_mem::lcore;
use burst_mem::mbuf::{DEFAULT_DATA_ROOM, DEFAULT_HEADROOM};
use burst_mem::{Memory, Mempool, MempoolConfig, PacketBuf, PacketPool, PacketPoolConfig};
use proptest::prelude::*;

use burst_mem::testing::memory;

fn pool(mem: &Memory, name: &str, count: usize, elt: usize, cache: usize) -> Mempool {
    let mut cfg = MempoolConfig::new(name, count, elt);
    cfg.cache_size = cache;
    Mempool::new(mem, &cfg).unwrap()
}

fn index_of(pool: &Mempool, obj: NonNull<u8>) -> usize {
    let base = pool.memzone().as_ptr() as usize;
    let off = obj.as_ptr() as usize - base;
    assert_eq!(off % pool.elt_size(), 0, "objects start on element boundaries");
    off / pool.elt_size()
}

#[test]
fn objects_are_distinct_aligned_and_inside_the_pool() {
    let mem = memory();
    let mp = pool(&mem, "distinct", 1000, 100, 0);
    assert_eq!(mp.elt_size(), 128, "object size rounds up to cache lines");
    let mut objs = vec![NonNull::dangling(); 1000];
    assert!(mp.get_bulk(&mut objs));
    assert_eq!(mp.available(), 0);
    assert!(mp.get().is_none(), "an empty pool hands out nothing");
    let set: HashSet<usize> = objs.iter().map(|o| o.as_ptr() as usize).collect();
    assert_eq!(set.len(), 1000);
    for o in &objs {
        assert_eq!(o.as_ptr() as usize % 64, 0);
        assert_eq!(mp.iova_of(o.as_ptr()), Some(o.as_ptr() as u64), "IOVA as VA");
    }
    // SAFETY: all taken from this pool above and not used since.
    unsafe { mp.put_bulk(&objs) };
    assert!(mp.is_full());
}

#[test]
fn bulk_get_is_all_or_nothing() {
    let mem = memory();
    let mp = pool(&mem, "bulk", 100, 64, 0);
    let mut big = vec![NonNull::dangling(); 101];
    assert!(!mp.get_bulk(&mut big));
    assert_eq!(mp.available(), 100, "a failed bulk get takes nothing");
    let mut some = vec![NonNull::dangling(); 60];
    assert!(mp.get_bulk(&mut some));
    let mut more = vec![NonNull::dangling(); 41];
    assert!(!mp.get_bulk(&mut more));
    assert_eq!(mp.in_use(), 60);
    // SAFETY: taken above.
    unsafe { mp.put_bulk(&some) };
    assert!(mp.is_full());
}

#[test]
fn lcore_caches_count_as_available_and_fall_back_to_the_ring() {
    let mem = memory();
    let mp = pool(&mem, "cached", 2048, 64, 256);
    let _lcore = lcore::claim_any().unwrap();
    let mut objs = vec![NonNull::dangling(); 32];
    assert!(mp.get_bulk(&mut objs));
    assert_eq!(mp.in_use(), 32);
    assert_eq!(mp.available(), 2048 - 32, "objects moved into the cache still count as available");
    // SAFETY: taken above.
    unsafe { mp.put_bulk(&objs) };
    assert!(mp.is_full());
    // More than the cache holds goes straight to the ring, and comes back the same way.
    let mut many = vec![NonNull::dangling(); 1500];
    assert!(mp.get_bulk(&mut many));
    assert_eq!(mp.in_use(), 1500);
    // SAFETY: taken above.
    unsafe { mp.put_bulk(&many) };
    assert!(mp.is_full());
}

/// Several lcores and a thread with no lcore get and put at random; a flag per object proves
/// that no object is ever held by two threads, and the pool is full at the end.
#[test]
fn threads_never_share_an_object_and_lose_none() {
    let mem = memory();
    let mp = pool(&mem, "threads", 4096, 64, 64);
    let held: Arc<Vec<AtomicBool>> = Arc::new((0..4096).map(|_| AtomicBool::new(false)).collect());
    let rounds = if cfg!(debug_assertions) { 20_000 } else { 200_000 };
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (mp, held) = (mp.clone(), Arc::clone(&held));
            std::thread::spawn(move || {
                let _lcore = (t < 3).then(|| lcore::claim_any().unwrap());
                let mut seed = 0x9e3779b97f4a7c15u64 ^ t as u64;
                let mut mine: Vec<NonNull<u8>> = Vec::new();
                for _ in 0..rounds {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let n = (seed % 48) as usize + 1;
                    if seed & 0x100 == 0 || mine.len() < n {
                        let mut got = vec![NonNull::dangling(); n];
                        if mp.get_bulk(&mut got) {
                            for o in &got {
                                let i = index_of(&mp, *o);
                                assert!(!held[i].swap(true, Ordering::AcqRel), "object {i} handed out twice");
                            }
                            mine.extend(got);
                        }
                    } else {
                        let give: Vec<_> = mine.drain(mine.len() - n..).collect();
                        for o in &give {
                            assert!(held[index_of(&mp, *o)].swap(false, Ordering::AcqRel));
                        }
                        // SAFETY: these came from this pool and this thread stops using them.
                        unsafe { mp.put_bulk(&give) };
                    }
                }
                for o in &mine {
                    assert!(held[index_of(&mp, *o)].swap(false, Ordering::AcqRel));
                }
                // SAFETY: as above.
                unsafe { mp.put_bulk(&mine) };
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(mp.is_full(), "available {} of {}", mp.available(), mp.capacity());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any sequence of bulk gets and puts: gets hand out only objects not already out, puts
    /// return them, counts always add up.
    #[test]
    fn gets_and_puts_keep_counts_exact(ops in prop::collection::vec((any::<bool>(), 1usize..200), 1..60),
                                       cache in prop::sample::select(vec![0usize, 32, 256])) {
        let mem = memory();
        let mp = pool(&mem, "prop", 500, 64, cache);
        let _lcore = lcore::claim_any().unwrap();
        let mut out: Vec<NonNull<u8>> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        for (get, n) in ops {
            if get {
                let mut got = vec![NonNull::dangling(); n];
                let ok = mp.get_bulk(&mut got);
                prop_assert_eq!(ok, n <= 500 - out.len());
                if ok {
                    for o in &got {
                        prop_assert!(seen.insert(o.as_ptr() as usize), "handed out twice");
                    }
                    out.extend(got);
                }
            } else {
                let n = n.min(out.len());
                let give: Vec<_> = out.drain(..n).collect();
                for o in &give {
                    seen.remove(&(o.as_ptr() as usize));
                }
                // SAFETY: taken from this pool in this test and not used again.
                unsafe { mp.put_bulk(&give) };
            }
            prop_assert_eq!(mp.in_use(), out.len());
        }
        // SAFETY: as above.
        unsafe { mp.put_bulk(&out) };
        prop_assert!(mp.is_full());
    }
}

fn packets(mem: &Memory, name: &str, count: usize) -> PacketPool {
    PacketPool::new(mem, &PacketPoolConfig::new(name, count)).unwrap()
}

#[test]
fn packet_buffers_have_dpdk_default_geometry() {
    let mem = memory();
    let pp = packets(&mem, "geometry", 64);
    let mut b = pp.alloc().unwrap();
    assert_eq!(b.headroom(), DEFAULT_HEADROOM as usize);
    assert_eq!(b.tailroom(), DEFAULT_DATA_ROOM as usize);
    assert_eq!(b.buf_len(), 2176);
    assert!(b.is_empty());
    assert_eq!(b.data_iova(), b.buf_iova() + 128);
    assert_eq!(b.buf_iova(), b.buf_addr() as u64, "IOVA as VA");
    b.set_port(3);
    b.set_rss_hash(0xdead_beef);
    b.set_vlan_tci(42);
    b.set_ol_flags(burst_mem::OlFlags::RX_RSS_HASH);
    assert_eq!((b.port(), b.rss_hash(), b.vlan_tci()), (3, 0xdead_beef, 42));
    drop(b);
    // A buffer comes back reset: no stale metadata from its last use.
    let mut all = Vec::with_capacity(64);
    assert!(pp.alloc_bulk(&mut all, 64));
    assert!(all.iter().all(|b| b.port() == 0 && b.ol_flags().is_empty() && b.is_empty() && b.headroom() == 128));
    PacketPool::free_bulk(&mut all);
    assert!(pp.mempool().is_full());
}

#[test]
fn large_bulk_allocations_are_all_or_nothing() {
    let mem = memory();
    let pp = packets(&mem, "bulk-large", 200);
    let mut held = Vec::with_capacity(200);
    assert!(pp.alloc_bulk(&mut held, 50));
    // 150 left: 160 (three chunks' worth of work) must fail and give back what it took.
    let mut bufs = Vec::with_capacity(200);
    assert!(!pp.alloc_bulk(&mut bufs, 160));
    assert!(bufs.is_empty());
    assert_eq!(pp.mempool().available(), 150);
    assert!(pp.alloc_bulk(&mut bufs, 150));
    assert_eq!(bufs.len(), 150);
    // More than the pool has, even absurdly more: false, nothing reserved, no panic.
    let mut none = Vec::new();
    assert!(!pp.alloc_bulk(&mut none, usize::MAX));
    assert_eq!(none.capacity(), 0);
    PacketPool::free_bulk(&mut bufs);
    PacketPool::free_bulk(&mut held);
    assert!(pp.mempool().is_full());
}

#[test]
fn buffers_allocated_as_received_hold_their_length_and_port_and_nothing_else() {
    let mem = memory();
    let pp = packets(&mem, "bulk-received", 64);
    let mut bufs = Vec::with_capacity(64);
    assert!(pp.alloc_bulk_received(&mut bufs, 32, 60, 7));
    assert!(bufs.iter().all(|b| b.len() == 60 && b.pkt_len() == 60 && b.nb_segs() == 1 && b.port() == 7));
    assert!(bufs.iter().all(|b| b.ol_flags().is_empty() && b.headroom() == usize::from(DEFAULT_HEADROOM)));
    // A length past the data room is clamped to it, as set_len clamps.
    assert!(pp.alloc_bulk_received(&mut bufs, 32, usize::MAX, 1));
    assert!(bufs[32..].iter().all(|b| b.len() == usize::from(DEFAULT_DATA_ROOM) && b.tailroom() == 0));
    // All or nothing, as alloc_bulk: the pool is empty now.
    assert!(!pp.alloc_bulk_received(&mut bufs, 1, 60, 0));
    assert_eq!(bufs.len(), 64);
    PacketPool::free_bulk(&mut bufs);
    assert!(pp.mempool().is_full());
    // Freed and allocated again plainly, they come back empty and portless.
    assert!(pp.alloc_bulk(&mut bufs, 64));
    assert!(bufs.iter().all(|b| b.is_empty() && b.port() == 0));
    PacketPool::free_bulk(&mut bufs);
    assert!(pp.mempool().is_full());
}

#[test]
fn prepend_append_adj_trim_respect_the_buffer_bounds() {
    let mem = memory();
    let pp = packets(&mem, "edit", 8);
    let mut b = pp.alloc().unwrap();
    b.append(10).unwrap().copy_from_slice(b"0123456789");
    assert_eq!(b.data(), b"0123456789");
    b.prepend(2).unwrap().copy_from_slice(b"ab");
    assert_eq!(b.data(), b"ab0123456789");
    assert_eq!(b.pkt_len(), 12);
    assert_eq!(b.adj(3).unwrap(), b"123456789");
    assert!(b.trim(4));
    assert_eq!(b.data(), b"12345");
    assert!(b.adj(6).is_none(), "adj past the end changes nothing");
    assert!(!b.trim(6));
    assert_eq!(b.data(), b"12345");
    assert!(b.prepend(b.headroom() + 1).is_none());
    assert!(b.append(b.tailroom() + 1).is_none());
    let room = b.tailroom();
    assert!(b.append(room).is_some());
    assert_eq!(b.tailroom(), 0);
    // A device-written length is clamped to what the buffer holds.
    let max = b.buf_len() - b.data_off() as usize;
    assert_eq!(b.set_len(60_000), max);
    assert_eq!(b.data().len(), max);
    assert!(!b.set_data(&vec![0u8; max + 1]));
    assert!(b.set_data(b"frame"));
    assert_eq!(b.data(), b"frame");
    drop(b);
    assert!(pp.mempool().is_full());
}

#[test]
fn buffers_move_between_threads_and_go_home_when_dropped() {
    let mem = memory();
    let pp = packets(&mem, "send", 512);
    let _lcore = lcore::claim_any().unwrap();
    let mut bufs = Vec::with_capacity(256);
    assert!(pp.alloc_bulk(&mut bufs, 256));
    assert_eq!(pp.mempool().in_use(), 256);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<PacketBuf>>();
    let worker = std::thread::spawn(move || {
        let _lcore = lcore::claim_any().unwrap();
        let mut got = rx.recv().unwrap();
        for (i, b) in got.iter_mut().enumerate() {
            b.set_data(&(i as u32).to_le_bytes());
        }
        let keep: Vec<_> = got.drain(..100).collect();
        PacketPool::free_bulk(&mut got);
        drop(keep);
    });
    tx.send(bufs).unwrap();
    worker.join().unwrap();
    assert!(pp.mempool().is_full(), "in use: {}", pp.mempool().in_use());
}

#[test]
fn a_pool_dropped_with_buffers_out_stays_alive_for_them() {
    let mem = memory();
    let pp = packets(&mem, "orphan", 16);
    let b = pp.alloc().unwrap();
    drop(pp);
    // The buffer goes home to a pool nobody else holds: no use-after-free.
    drop(b);
}

#[test]
fn a_bulk_get_bigger_than_the_cache_size_is_served_from_the_cache() {
    let mem = memory();
    let mp = pool(&mem, "small_cache", 10, 64, 4);
    let _lcore = lcore::claim_any().unwrap();
    let mut all = vec![NonNull::dangling(); 10];
    assert!(mp.get_bulk(&mut all));
    for o in &all[..5] {
        // SAFETY: taken above, put back once.
        unsafe { mp.put_bulk(std::slice::from_ref(o)) };
    }
    assert_eq!(mp.available(), 5);
    let mut five = vec![NonNull::dangling(); 5];
    assert!(mp.get_bulk(&mut five), "5 free objects, 5 asked");
    // SAFETY: taken above.
    unsafe { mp.put_bulk(&five) };
    // SAFETY: taken above.
    unsafe { mp.put_bulk(&all[5..]) };
    assert!(mp.is_full());
}

#[test]
fn absurd_memzone_requests_are_errors_not_panics() {
    let mem = memory();
    let flags = burst_mem::MemzoneFlags::NONE;
    assert!(matches!(mem.reserve("huge", usize::MAX, None, 64, flags), Err(burst_mem::MemError::TooLarge { .. })));
    assert!(mem.reserve("align", 64, None, 1 << 62, flags).is_err());
    assert!(mem.reserve("", 64, None, 64, flags).is_err());
    assert!(mem.reserve("zero", 0, None, 64, flags).is_err());
    assert!(mem.reserve("odd", 64, None, 96, flags).is_err());
    let a = mem.reserve("a", 4096, None, 64, flags).unwrap();
    let b = mem.reserve("b", 4096, None, 64, flags).unwrap();
    assert_ne!(a.as_ptr(), b.as_ptr());
    assert_eq!(mem.stats().memzones, 2);
}

#[test]
fn bad_pool_settings_are_errors_not_panics() {
    let mem = memory();
    let mut cfg = MempoolConfig::new("bad", 0, 64);
    assert!(Mempool::new(&mem, &cfg).unwrap_err().to_string().contains("count"));
    cfg.count = 10;
    cfg.cache_size = 10_000;
    assert!(Mempool::new(&mem, &cfg).unwrap_err().to_string().contains("cache size"));
    let mut pc = PacketPoolConfig::new("toolarge", 4);
    pc.data_room = 65_500;
    assert!(PacketPool::new(&mem, &pc).unwrap_err().to_string().contains("65535"));
}
