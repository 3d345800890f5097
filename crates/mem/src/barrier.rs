//! The memory barriers a driver needs between the CPU, its DMA memory and its device's
//! registers: one function per kind of ordering, each saying why it exists and what it costs,
//! so that no driver picks a fence of its own (Linux's `dma_rmb`/`dma_wmb`/`mb`, DPDK's
//! `rte_io_rmb`/`rte_io_wmb`/`rte_smp_mb` name the same kinds).
//!
//! | function | orders | use it | x86-64 cost |
//! |:--|:--|:--|:--|
//! | [`dma_rmb`] | a load of a device-written flag before the loads that follow | after a descriptor's DD bit or a `used.idx` says "done", before reading the rest | none (compiler barrier) |
//! | [`dma_wmb`] | stores to DMA memory before a later store to DMA memory | descriptors written, then the index the device polls (`avail.idx`) | none (compiler barrier) |
//! | [`io_wmb`] | stores to DMA memory before a store to a register (MMIO or port I/O) | descriptors written, then the tail or notify doorbell | none (compiler barrier) |
//! | [`mb`] | stores before later loads (the one order x86 does not keep) | index published, then the device's "do not notify" flag read | a locked instruction |
//!
//! Why x86-64 needs so little: its memory model keeps loads in order with loads and stores in
//! order with stores, including stores to uncached (register) memory (Intel SDM vol. 3A, 9.2.2,
//! "Memory Ordering in P6 and More Recent Processor Families"). What the hardware does not do,
//! the compiler might: each barrier is at least a compiler fence, so no access moves across it.
//! The one reordering x86 does perform is a later load passing an earlier store (store
//! buffering), which [`mb`] prevents.
//!
//! On other architectures the functions fall back to Rust's fences of the same strength. Those
//! order memory as other CPUs see it; whether they order it for a device there (AArch64 wants
//! `dmb oshst` before a doorbell) is not proven here: burst is built and tested on x86-64 only.

use std::sync::atomic::{compiler_fence, fence, Ordering};

/// Orders the load that saw a device's "done" (a descriptor's DD bit, `used.idx`) before every
/// load after it, so nothing of the descriptor is read from before the device wrote it.
#[inline(always)]
pub fn dma_rmb() {
    if cfg!(target_arch = "x86_64") {
        compiler_fence(Ordering::Acquire);
    } else {
        fence(Ordering::Acquire);
    }
}

/// Orders every store to DMA memory before the next one: descriptors and ring entries become
/// visible to the device before the index that publishes them.
#[inline(always)]
pub fn dma_wmb() {
    if cfg!(target_arch = "x86_64") {
        compiler_fence(Ordering::Release);
    } else {
        fence(Ordering::Release);
    }
}

/// Orders every store to DMA memory before the next store to a device register: a device that
/// fetches descriptors when its tail or notify register is written finds them complete.
#[inline(always)]
pub fn io_wmb() {
    if cfg!(target_arch = "x86_64") {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// A full barrier: every store before it is visible before any load after it. Needed where the
/// driver publishes something and then reads a flag the device sets in reply to what it saw
/// (virtio 1.2, 2.7.13.4: `avail.idx` stored, then `used.flags` or `avail_event` loaded).
///
/// On x86-64 a locked read-modify-write of the word at the stack pointer does this at about half
/// the cost of `mfence` (DPDK's `rte_smp_mb` is a locked add below the stack pointer; this is a
/// locked `or` of 0 into the word at it).
#[inline(always)]
pub fn mb() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `lock or` of 0 into the word at the stack pointer leaves its value unchanged and
    // touches nothing else; the stack pointer always points at mapped, writable stack memory.
    // Only the flags are clobbered (not declared `preserves_flags`).
    unsafe {
        std::arch::asm!("lock or dword ptr [rsp], 0", options(nostack))
    };
    #[cfg(not(target_arch = "x86_64"))]
    fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Store buffering (Dekker's litmus test), two threads released together each round by a
    /// spinning rendezvous: with [`mb`] between each thread's store and its load, at least one
    /// thread sees the other's store. Without the barrier x86 lets both read the old values
    /// (seen here within the first few thousand rounds).
    #[test]
    fn the_full_barrier_forbids_store_buffering() {
        const ROUNDS: u32 = 200_000;
        let (x, y) = (AtomicU32::new(0), AtomicU32::new(0));
        let arrived = AtomicU32::new(0);
        let rendezvous = |round: u32| {
            arrived.fetch_add(1, Ordering::AcqRel);
            while arrived.load(Ordering::Acquire) < 2 * round {
                std::hint::spin_loop();
            }
        };
        let newest_seen: Vec<u32> = std::thread::scope(|s| {
            let other = s.spawn(|| {
                (1..=ROUNDS)
                    .map(|round| {
                        rendezvous(round);
                        x.store(round, Ordering::Relaxed);
                        mb();
                        y.load(Ordering::Relaxed)
                    })
                    .collect::<Vec<u32>>()
            });
            let mine: Vec<u32> = (1..=ROUNDS)
                .map(|round| {
                    rendezvous(round);
                    y.store(round, Ordering::Relaxed);
                    mb();
                    x.load(Ordering::Relaxed)
                })
                .collect();
            let theirs = other.join().unwrap();
            mine.iter().zip(theirs).map(|(&a, b)| a.max(b)).collect()
        });
        let both_old = newest_seen.iter().enumerate().filter(|&(i, &newest)| newest != i as u32 + 1).count();
        // Each load sees the other thread's store of its round or an older value; both older
        // means both loads passed their own thread's store.
        assert_eq!(both_old, 0, "rounds in which both loads passed their stores");
        dma_rmb();
        dma_wmb();
        io_wmb();
    }
}
