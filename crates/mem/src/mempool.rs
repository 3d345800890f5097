//! Mempools: fixed-size objects in DMA memory, shared by all threads without locks.
//!
//! The objects live in one memzone; the free ones sit in a multi-producer/multi-consumer
//! [`SharedRing`] of addresses. Each lcore has a cache in front of the ring (DPDK's
//! `rte_mempool_cache`), so a burst of gets and puts on one core usually touches only that core's
//! cache: a copy of a few pointers, no atomic operation. Threads that are not lcores use the ring
//! directly. Gets and puts of many objects are all-or-nothing.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::error::MemError;
use crate::iova::IovaMode;
use crate::lcore::{self, MAX_LCORES};
use crate::memory::Memory;
use crate::memzone::{Memzone, MemzoneFlags};
use crate::ring::SharedRing;

/// l2fwd's cache size, and ours by default.
pub const DEFAULT_CACHE_SIZE: usize = 256;
/// The largest cache (DPDK's RTE_MEMPOOL_CACHE_MAX_SIZE).
pub const MAX_CACHE_SIZE: usize = 512;

/// How to build a mempool.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Its name (also its memzone's name, prefixed with `mp_`).
    pub name: String,
    /// How many objects.
    pub count: usize,
    /// Bytes per object (rounded up to a cache line).
    pub elt_size: usize,
    /// Objects each lcore keeps at hand; 0 for no caches.
    pub cache_size: usize,
    /// The NUMA socket; `None` for the caller's.
    pub socket: Option<u32>,
}

impl MempoolConfig {
    /// `count` objects of `elt_size` bytes, with the default cache.
    pub fn new(name: &str, count: usize, elt_size: usize) -> Self {
        MempoolConfig { name: name.to_string(), count, elt_size, cache_size: DEFAULT_CACHE_SIZE, socket: None }
    }
}

/// A pool of fixed-size objects in DMA memory. Clones share the pool.
pub struct Mempool {
    inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    /// Live `Mempool` handles: the one that brings this to 0 decides whether the pool can be
    /// freed (see `Drop for Mempool`).
    handles: AtomicUsize,
    name: String,
    ring: SharedRing<usize>,
    caches: Box<[CachePadded<Cache>]>,
    cache_size: usize,
    flush_threshold: usize,
    count: usize,
    elt_size: usize,
    /// Every object follows the last from the zone's start, none moved past a segment boundary.
    back_to_back: bool,
    zone: Memzone,
}

/// One lcore's stash of free objects. Only the thread holding that lcore id touches `objs`;
/// `len` is atomic only so that other threads can count (relaxed, for statistics).
struct Cache {
    len: AtomicU32,
    objs: UnsafeCell<Box<[usize]>>,
}

// SAFETY: `objs` of cache `i` is only accessed by the thread that holds lcore id `i`, and
// `lcore::claim` guarantees one such thread at a time; everything else is atomics or immutable.
unsafe impl Sync for PoolInner {}
// SAFETY: as above; nothing in the pool is tied to the thread that made it.
unsafe impl Send for PoolInner {}

impl Mempool {
    /// Reserves memory for `config.count` objects and puts them all in the pool. No object
    /// straddles two segments that are not IOVA-contiguous, so each one can be handed to a
    /// device whole.
    pub fn new(memory: &Memory, config: &MempoolConfig) -> Result<Mempool, MemError> {
        if config.count == 0 || config.elt_size == 0 {
            return Err(MemError::BadRequest(format!("mempool {:?}: count and object size must be > 0", config.name)));
        }
        if config.cache_size > MAX_CACHE_SIZE {
            return Err(MemError::BadRequest(format!(
                "mempool {:?}: cache size {} is over the maximum {MAX_CACHE_SIZE}",
                config.name, config.cache_size
            )));
        }
        let elt = config.elt_size.next_multiple_of(64);
        let seg = memory.segment_size();
        if elt > seg {
            return Err(MemError::BadRequest(format!(
                "mempool {:?}: objects of {elt} bytes do not fit in a {seg}-byte segment",
                config.name
            )));
        }
        let bad = |what: &str| MemError::BadRequest(format!("mempool {:?}: {what}", config.name));
        let bytes = config.count.checked_mul(elt).ok_or_else(|| bad("count x object size overflows"))?;
        let zone_name = format!("mp_{}", config.name);
        // Lay the objects out so that none straddles two segments that are not IOVA-contiguous:
        // in VA mode every segment follows the last; in PA mode a pool that fits in one segment
        // asks for an IOVA-contiguous zone, and a bigger one starts on a segment boundary and
        // leaves the tail of each segment unused.
        let zone = if memory.iova_mode() == IovaMode::Va {
            memory.reserve(&zone_name, bytes, config.socket, 64, MemzoneFlags::NONE)?
        } else if bytes <= seg {
            memory.reserve(&zone_name, bytes, config.socket, 64, MemzoneFlags::IOVA_CONTIG)?
        } else {
            let per_seg = seg / elt;
            let full = (config.count - 1) / per_seg;
            let len = full * seg + (config.count - full * per_seg) * elt;
            memory.reserve(&zone_name, len, config.socket, seg, MemzoneFlags::NONE)?
        };
        let ring = SharedRing::new(config.count).map_err(|e| bad(&e.to_string()))?;
        let base = zone.as_ptr() as usize;
        let mut offset = 0;
        let mut objs = Vec::with_capacity(config.count);
        let mut back_to_back = true;
        while objs.len() < config.count {
            if offset + elt > zone.len() {
                return Err(bad("its objects do not fit in its memzone; this is a bug"));
            }
            let (first, last) = (base + offset, base + offset + elt - 1);
            if first / seg != last / seg {
                let boundary = last / seg * seg - base;
                let contiguous = zone.iova_at(boundary) == zone.iova_at(boundary - 1).map(|i| i + 1);
                if !contiguous {
                    offset = boundary;
                    back_to_back = false;
                    continue;
                }
            }
            objs.push(first);
            offset += elt;
        }
        assert!(ring.enqueue_bulk(&objs), "a fresh ring of exactly `count` slots takes `count` objects");
        let cache_size = config.cache_size;
        let flush_threshold = cache_size + cache_size / 2;
        let caches = (0..if cache_size > 0 { MAX_LCORES } else { 0 })
            .map(|_| {
                CachePadded::new(Cache {
                    len: AtomicU32::new(0),
                    objs: UnsafeCell::new(vec![0usize; 2 * flush_threshold.max(1)].into_boxed_slice()),
                })
            })
            .collect();
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                handles: AtomicUsize::new(1),
                name: config.name.clone(),
                ring,
                caches,
                cache_size,
                flush_threshold,
                count: config.count,
                elt_size: elt,
                back_to_back,
                zone,
            }),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// How many objects it holds in all.
    pub fn capacity(&self) -> usize {
        self.inner.count
    }

    /// Bytes per object.
    pub fn elt_size(&self) -> usize {
        self.inner.elt_size
    }

    /// Free objects: in the shared ring and in every lcore's cache. Exact when no thread is
    /// getting or putting at the same time.
    pub fn available(&self) -> usize {
        self.inner.available()
    }

    /// Objects handed out and not yet put back.
    pub fn in_use(&self) -> usize {
        self.inner.count.saturating_sub(self.inner.available())
    }

    /// True when every object is back.
    pub fn is_full(&self) -> bool {
        self.available() == self.inner.count
    }

    /// The memzone holding the objects.
    pub fn memzone(&self) -> &Memzone {
        &self.inner.zone
    }

    /// The distance between one object and the next when object `i` starts `i` times it from
    /// the memzone's start (always so in IOVA-as-VA mode, and for a pool that fits one segment);
    /// `None` when some object was moved past a segment boundary. A device that hands back
    /// addresses inside the pool's memory (AF_XDP's UMEM) finds the object of an address with it.
    pub fn object_stride(&self) -> Option<usize> {
        self.inner.back_to_back.then_some(self.inner.elt_size)
    }

    /// The IOVA of the byte at `ptr`, which must be inside one of this pool's objects.
    pub fn iova_of(&self, ptr: *const u8) -> Option<u64> {
        let zone = &self.inner.zone;
        let offset = (ptr as usize).checked_sub(zone.as_ptr() as usize)?;
        zone.iova_at(offset)
    }

    /// Fills `out` with free objects, or takes none and returns false.
    #[inline]
    pub fn get_bulk(&self, out: &mut [NonNull<u8>]) -> bool {
        self.inner.get_bulk(out)
    }

    /// One free object.
    #[inline]
    pub fn get(&self) -> Option<NonNull<u8>> {
        let mut one = [NonNull::dangling()];
        self.inner.get_bulk(&mut one).then_some(one[0])
    }

    /// Puts objects back.
    ///
    /// # Safety
    /// Every pointer must have come from this pool's `get`/`get_bulk`, and none may be used
    /// afterwards or put twice.
    #[inline]
    pub unsafe fn put_bulk(&self, objs: &[NonNull<u8>]) {
        // SAFETY: the caller's promise is the same as `PoolInner::put_bulk`'s.
        unsafe { self.inner.put_bulk(objs) }
    }

    pub(crate) fn inner_ptr(&self) -> *const PoolInner {
        Arc::as_ptr(&self.inner)
    }
}

impl Clone for Mempool {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        Mempool { inner: Arc::clone(&self.inner) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last handle: nobody can get objects any more, only put back those still out
        // (a packet buffer's drop finds its pool by address). `available` never counts an
        // object twice while puts run, so a zero here really means none is out.
        let in_use = self.in_use();
        if in_use > 0 {
            tracing::warn!(pool = %self.inner.name, in_use, "mempool dropped with objects in use: leaking it");
            std::mem::forget(Arc::clone(&self.inner));
        }
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.count)
            .field("available", &self.available())
            .finish()
    }
}

fn as_addrs(objs: &[NonNull<u8>]) -> &[usize] {
    // SAFETY: NonNull<u8> has the same size and alignment as usize and every bit pattern of
    // a NonNull is a valid usize.
    unsafe { std::slice::from_raw_parts(objs.as_ptr().cast(), objs.len()) }
}

fn as_addrs_mut(objs: &mut [NonNull<u8>]) -> &mut [usize] {
    // SAFETY: as above; callers only store addresses of pool objects (never 0) through it.
    unsafe { std::slice::from_raw_parts_mut(objs.as_mut_ptr().cast(), objs.len()) }
}

impl PoolInner {
    /// Free objects. Objects only ever leave one place (ring or cache) before they arrive in
    /// another, and the ring is read first: a flush stores the cache's new length (release)
    /// before it enqueues, so a reader that sees the enqueue also sees the shorter cache. The
    /// count can fall short while objects move, never over.
    fn available(&self) -> usize {
        let in_ring = self.ring.len();
        let cached: usize = self.caches.iter().map(|c| c.len.load(Ordering::Acquire) as usize).sum();
        in_ring + cached
    }

    /// The calling lcore's cache, if it has one.
    #[inline]
    fn my_cache(&self) -> Option<&Cache> {
        if self.cache_size == 0 {
            return None;
        }
        lcore::current().map(|id| &*self.caches[id as usize])
    }

    #[inline]
    pub(crate) fn get_bulk(&self, out: &mut [NonNull<u8>]) -> bool {
        let n = out.len();
        let dst = as_addrs_mut(out);
        let Some(cache) = self.my_cache() else {
            return self.ring.dequeue_bulk(dst);
        };
        // SAFETY: this thread holds the lcore id that owns this cache (see `Cache`).
        let objs = unsafe { &mut *cache.objs.get() };
        let mut len = cache.len.load(Ordering::Relaxed) as usize;
        if n > self.cache_size {
            // Too big for the cache: from the ring, else from the cache, else from both.
            if self.ring.dequeue_bulk(dst) {
                return true;
            }
            if len >= n {
                dst.copy_from_slice(&objs[len - n..len]);
                cache.len.store((len - n) as u32, Ordering::Release);
                return true;
            }
            if len == 0 || !self.ring.dequeue_bulk(&mut dst[..n - len]) {
                return false;
            }
            dst[n - len..].copy_from_slice(&objs[..len]);
            cache.len.store(0, Ordering::Release);
            return true;
        }
        if len < n {
            // Refill to the cache size plus what is asked, as DPDK does; failing that, just
            // what is missing.
            let want = self.cache_size + n - len;
            if self.ring.dequeue_bulk(&mut objs[len..len + want]) {
                len += want;
            } else if self.ring.dequeue_bulk(&mut objs[len..n]) {
                len = n;
            } else {
                return false;
            }
        }
        dst.copy_from_slice(&objs[len - n..len]);
        cache.len.store((len - n) as u32, Ordering::Release);
        true
    }

    /// # Safety
    /// As [`Mempool::put_bulk`].
    #[inline]
    pub(crate) unsafe fn put_bulk(&self, objs: &[NonNull<u8>]) {
        let n = objs.len();
        let src = as_addrs(objs);
        let Some(cache) = self.my_cache().filter(|_| n <= self.flush_threshold) else {
            let ok = self.ring.enqueue_bulk(src);
            debug_assert!(ok, "the ring has room for every object of the pool");
            return;
        };
        // SAFETY: this thread holds the lcore id that owns this cache (see `Cache`).
        let cached = unsafe { &mut *cache.objs.get() };
        let mut len = cache.len.load(Ordering::Relaxed) as usize;
        cached[len..len + n].copy_from_slice(src);
        len += n;
        if len >= self.flush_threshold {
            // Shorten the cache before the objects reach the ring (see `available`); only
            // this thread reads the slots past the new length.
            cache.len.store(self.cache_size as u32, Ordering::Release);
            let ok = self.ring.enqueue_bulk(&cached[self.cache_size..len]);
            debug_assert!(ok, "the ring has room for every object of the pool");
            return;
        }
        cache.len.store(len as u32, Ordering::Release);
    }
}

/// Puts one object back into the pool at `pool` (for packet buffers, which find their pool by
/// address).
///
/// # Safety
/// `pool` must be a live pool (pools with objects out are never freed) and `obj` one of its
/// objects, handed out and not used again.
#[inline]
pub(crate) unsafe fn put_one(pool: *const PoolInner, obj: NonNull<u8>) {
    // SAFETY: the caller promises `pool` is live and `obj` is its own.
    unsafe { (*pool).put_bulk(&[obj]) }
}
