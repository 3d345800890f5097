//! SIGINT and SIGTERM as a stop request, as DPDK's sample applications handle them
//! (`signal_handler` in examples/l2fwd/main.c sets `force_quit`).
//!
//! A signal sets a process-wide flag that [`crate::Runtime::stop_requested`] reports; the lcore
//! loops see it and return. A second signal does nothing more, as in DPDK: GNU `timeout` and
//! some supervisors send each signal twice (to the process, then to its group), and that must
//! not cut the clean shutdown short. The third restores the default disposition and raises the
//! signal again, so a stuck application can still be killed by pressing Ctrl-C three times.
//! The handler only touches atomics and calls `signal`/`raise`, which are async-signal-safe.
//!
//! The handlers are installed while at least one runtime that asked for them lives; when the
//! last one goes, the dispositions in place before are restored.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// How many SIGINT/SIGTERM arrived since the handlers were installed.
static SIGNALLED: AtomicU32 = AtomicU32::new(0);

/// The signal that kills instead of asking to stop.
const KILLING_SIGNAL: u32 = 3;

/// The signals handled.
const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

struct Installed {
    runtimes: usize,
    old: Vec<(libc::c_int, libc::sigaction)>,
}

// SAFETY: `sigaction` structs are plain data (a handler address, flags, a mask); they are only
// passed back to the kernel.
unsafe impl Send for Installed {}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed { runtimes: 0, old: Vec::new() });

/// Whether SIGINT or SIGTERM arrived since the handlers were installed.
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::Relaxed) > 0
}

extern "C" fn on_signal(sig: libc::c_int) {
    if SIGNALLED.fetch_add(1, Ordering::Relaxed) + 1 >= KILLING_SIGNAL {
        // The third signal: let it do what it would have done without us.
        // SAFETY: signal(2) and raise(3) are async-signal-safe (signal-safety(7)). The signal is
        // blocked while this handler runs, so the raised one is delivered, with the default
        // disposition, when the handler returns.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Keeps the handlers installed while it lives.
#[derive(Debug)]
pub(crate) struct SignalGuard(());

/// Installs the handlers (for the first runtime that asks) and clears the flag.
pub(crate) fn install() -> io::Result<SignalGuard> {
    let mut inst = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if inst.runtimes == 0 {
        SIGNALLED.store(0, Ordering::Relaxed);
        let mut old = Vec::new();
        for sig in SIGNALS {
            // SAFETY: a zeroed sigaction is a valid value to fill in.
            let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            // SAFETY: sigemptyset initialises the mask we own.
            unsafe { libc::sigemptyset(&mut act.sa_mask) };
            // SAFETY: as above.
            let mut prev: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointers to sigaction structs we own; the handler is async-signal-safe.
            if unsafe { libc::sigaction(sig, &act, &mut prev) } != 0 {
                let err = io::Error::last_os_error();
                restore(&old);
                return Err(err);
            }
            old.push((sig, prev));
        }
        inst.old = old;
    }
    inst.runtimes += 1;
    Ok(SignalGuard(()))
}

fn restore(old: &[(libc::c_int, libc::sigaction)]) {
    for (sig, act) in old {
        // SAFETY: `act` is what sigaction gave us for this signal.
        if unsafe { libc::sigaction(*sig, act, std::ptr::null_mut()) } != 0 {
            tracing::warn!("restoring the disposition of signal {sig} failed: {}", io::Error::last_os_error());
        }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let mut inst = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        inst.runtimes -= 1;
        if inst.runtimes == 0 {
            let old = std::mem::take(&mut inst.old);
            restore(&old);
        }
    }
}
