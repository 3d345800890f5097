//! Running closures on lcores: [`Runtime::scope`] makes the calling thread the main lcore and
//! hands out an [`LcoreScope`] whose [`LcoreScope::launch`] starts a closure on a worker lcore
//! (DPDK's `rte_eal_remote_launch`): a thread named `lcore-N`, pinned to the lcore's CPU, holding
//! lcore id N (so mempool caches work). [`LcoreJoin::join`] is `rte_eal_wait_lcore`; every
//! lcore still running when the scope's closure returns is waited for before `scope` returns.
//!
//! Built on `std::thread::scope`, so launched closures may borrow from outside the scope (the
//! runtime's ports, a pool) without `Arc`.

use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};

use burst_mem::lcore;

use crate::error::EalError;
use crate::lcores::{self, LcoreInfo};
use crate::Runtime;

/// Launches closures on lcores; lives for one [`Runtime::scope`].
pub struct LcoreScope<'scope, 'env: 'scope> {
    scope: &'scope Scope<'scope, 'env>,
    rt: &'env Runtime,
}

/// A closure running on an lcore; [`LcoreJoin::join`] waits for its result.
pub struct LcoreJoin<'scope, R> {
    handle: ScopedJoinHandle<'scope, Option<R>>,
    lcore: u32,
}

impl<'scope, 'env> LcoreScope<'scope, 'env> {
    /// Runs `f` on worker lcore `lcore`: a new thread pinned to its CPU, holding its lcore id.
    /// Errors: no such lcore, the main lcore (it runs the scope's closure), or an lcore some
    /// thread already holds (launched and still running).
    pub fn launch<F, R>(&self, lcore: u32, f: F) -> Result<LcoreJoin<'scope, R>, EalError>
    where
        F: FnOnce() -> R + Send + 'scope,
        R: Send + 'scope,
    {
        let rt = self.rt;
        if lcore == rt.main_lcore() {
            return Err(EalError::Lcore(format!(
                "lcore {lcore} is the main lcore, which runs the scope's closure: launch on a worker lcore ({})",
                list(&rt.worker_lcores())
            )));
        }
        let LcoreInfo { cpu, .. } = *rt.lcores().iter().find(|l| l.id == lcore).ok_or_else(|| {
            EalError::Lcore(format!(
                "there is no lcore {lcore}: the runtime has lcores {} (add it with -l)",
                list(&rt.lcores().iter().map(|l| l.id).collect::<Vec<_>>())
            ))
        })?;
        // The new thread says whether it could pin itself and claim the id before running `f`,
        // so that a busy lcore is this call's error rather than the thread's.
        let (started_tx, started) = mpsc::sync_channel::<Result<(), String>>(1);
        let handle = std::thread::Builder::new()
            .name(format!("lcore-{lcore}"))
            .spawn_scoped(self.scope, move || {
                let guard = lcores::pin_to(cpu)
                    .map_err(|e| format!("cannot pin lcore {lcore} to CPU {cpu}: {e}"))
                    .and_then(|()| lcore::claim(lcore).map_err(|e| format!("cannot launch on lcore {lcore}: {e}")));
                match guard {
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        None
                    }
                    Ok(guard) => {
                        let _ = started_tx.send(Ok(()));
                        let r = f();
                        drop(guard);
                        Some(r)
                    }
                }
            })
            .map_err(|source| EalError::Os { what: "starting an lcore thread", source })?;
        match started.recv() {
            Ok(Ok(())) => Ok(LcoreJoin { handle, lcore }),
            Ok(Err(message)) => {
                let _ = handle.join();
                Err(EalError::Lcore(message))
            }
            Err(mpsc::RecvError) => {
                let _ = handle.join();
                Err(EalError::Lcore(format!("the thread for lcore {lcore} ended before it started")))
            }
        }
    }

    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        self.rt.main_lcore()
    }

    /// The runtime.
    pub fn runtime(&self) -> &'env Runtime {
        self.rt
    }
}

impl<R> LcoreJoin<'_, R> {
    /// Waits for the closure and returns its result; re-raises its panic.
    pub fn join(self) -> R {
        match self.handle.join() {
            Ok(Some(r)) => r,
            Ok(None) => unreachable!("lcore {}: a launch that succeeded ran its closure", self.lcore),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The lcore it runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Whether the closure has returned.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<R> std::fmt::Debug for LcoreJoin<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LcoreJoin(lcore {})", self.lcore)
    }
}

impl std::fmt::Debug for LcoreScope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LcoreScope(main lcore {})", self.rt.main_lcore())
    }
}

fn list(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".to_string();
    }
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Restores the calling thread's CPU mask on drop.
struct RestoreAffinity(libc::cpu_set_t);

impl Drop for RestoreAffinity {
    fn drop(&mut self) {
        if let Err(e) = lcores::set_affinity(&self.0) {
            tracing::warn!("restoring the thread's CPU mask after the lcore scope failed: {e}");
        }
    }
}

impl Runtime {
    /// Runs `f` on the calling thread as the main lcore (its lcore id claimed, pinned to its CPU,
    /// for the scope's duration; the thread's CPU mask is restored afterwards). Inside,
    /// `s.launch(lcore, closure)` starts a closure on a worker lcore. Every launched lcore is
    /// joined before `scope` returns.
    ///
    /// Panics if the calling thread cannot become the main lcore (it already runs as another
    /// lcore, or another thread holds the main lcore's id); [`Runtime::try_scope`] returns that
    /// as an error instead.
    pub fn scope<'env, F, T>(&'env self, f: F) -> T
    where
        F: for<'scope> FnOnce(&LcoreScope<'scope, 'env>) -> T,
    {
        match self.try_scope(f) {
            Ok(t) => t,
            Err(e) => panic!("Runtime::scope: {e}"),
        }
    }

    /// [`Runtime::scope`], with an error when the calling thread cannot become the main lcore.
    pub fn try_scope<'env, F, T>(&'env self, f: F) -> Result<T, EalError>
    where
        F: for<'scope> FnOnce(&LcoreScope<'scope, 'env>) -> T,
    {
        let main = self.main_lcore();
        let cpu = self.lcores().iter().find(|l| l.id == main).map(|l| l.cpu).unwrap_or_default();
        let _claim = match lcore::current() {
            Some(id) if id == main => None,
            Some(other) => {
                return Err(EalError::Lcore(format!(
                    "this thread runs as lcore {other}, so it cannot be the main lcore {main}: call scope from a thread that is no lcore"
                )))
            }
            None => Some(lcore::claim(main).map_err(|e| EalError::Lcore(format!("cannot run as the main lcore: {e}")))?),
        };
        let old =
            lcores::get_affinity().map_err(|source| EalError::Os { what: "reading the thread's CPU mask", source })?;
        lcores::pin_to(cpu).map_err(|source| EalError::Os { what: "pinning the main lcore to its CPU", source })?;
        let _restore = RestoreAffinity(old);

        Ok(std::thread::scope(|s| {
            // If `f` panics, `std::thread::scope` joins the workers before the panic goes on:
            // ask them to stop, or a worker polling until `stop_requested` would hang the process.
            let _stop_on_panic = StopOnPanic(self);
            f(&LcoreScope { scope: s, rt: self })
        }))
    }
}

/// Requests a stop when dropped during a panic.
struct StopOnPanic<'a>(&'a Runtime);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.request_stop();
        }
    }
}
