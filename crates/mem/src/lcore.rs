//! Logical cores: each thread that polls queues claims an lcore id, which indexes per-lcore
//! state such as mempool caches. Exactly one thread holds an id at a time, which is what makes
//! that state safe to use without locks.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

/// The most lcores a process can have (DPDK's default RTE_MAX_LCORE).
pub const MAX_LCORES: usize = 128;

/// The id a thread without an lcore reports.
const NONE: u32 = u32::MAX;

static TAKEN: [AtomicBool; MAX_LCORES] = [const { AtomicBool::new(false) }; MAX_LCORES];

thread_local! {
    static CURRENT: Cell<u32> = const { Cell::new(NONE) };
}

/// The calling thread's lcore id, if it claimed one.
#[inline]
pub fn current() -> Option<u32> {
    let id = CURRENT.with(Cell::get);
    (id != NONE).then_some(id)
}

/// Why an lcore could not be claimed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LcoreError {
    /// The id is past [`MAX_LCORES`].
    #[error("lcore {0} is out of range: lcore ids go from 0 to {max}", max = MAX_LCORES - 1)]
    OutOfRange(u32),
    /// Another thread holds it.
    #[error("lcore {0} is already claimed by another thread")]
    Taken(u32),
    /// This thread already has one.
    #[error("this thread already runs as lcore {0}")]
    AlreadyClaimed(u32),
    /// Every id is held.
    #[error("all {MAX_LCORES} lcore ids are in use")]
    Exhausted,
}

/// Proof that the current thread runs as an lcore; dropping it gives the id back. Not `Send`:
/// it belongs to the thread that claimed it.
#[derive(Debug)]
pub struct LcoreGuard {
    id: u32,
    _not_send: PhantomData<*const ()>,
}

impl LcoreGuard {
    /// The claimed id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// Makes the calling thread lcore `id`.
pub fn claim(id: u32) -> Result<LcoreGuard, LcoreError> {
    if let Some(have) = current() {
        return Err(LcoreError::AlreadyClaimed(have));
    }
    let slot = TAKEN.get(id as usize).ok_or(LcoreError::OutOfRange(id))?;
    if slot.swap(true, Ordering::AcqRel) {
        return Err(LcoreError::Taken(id));
    }
    CURRENT.with(|c| c.set(id));
    Ok(LcoreGuard { id, _not_send: PhantomData })
}

/// Makes the calling thread the lowest free lcore id.
pub fn claim_any() -> Result<LcoreGuard, LcoreError> {
    if let Some(have) = current() {
        return Err(LcoreError::AlreadyClaimed(have));
    }
    for id in 0..MAX_LCORES as u32 {
        match claim(id) {
            Ok(guard) => return Ok(guard),
            Err(LcoreError::Taken(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(LcoreError::Exhausted)
}

impl Drop for LcoreGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(NONE));
        TAKEN[self.id as usize].store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_has_one_holder_at_a_time() {
        let guard = claim(MAX_LCORES as u32 - 1).unwrap();
        assert_eq!(current(), Some(MAX_LCORES as u32 - 1));
        assert_eq!(claim(3).unwrap_err(), LcoreError::AlreadyClaimed(MAX_LCORES as u32 - 1));
        std::thread::spawn(|| assert_eq!(claim(MAX_LCORES as u32 - 1).unwrap_err(), LcoreError::Taken(127)))
            .join()
            .unwrap();
        drop(guard);
        assert_eq!(current(), None);
        assert_eq!(claim(MAX_LCORES as u32).unwrap_err(), LcoreError::OutOfRange(128));
    }
}
