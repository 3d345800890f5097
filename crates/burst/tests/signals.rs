//! SIGINT/SIGTERM: the first two are a stop request, the third kills. Signals are process-wide, so
//! the killing case runs in a child process (this test binary, running one test).

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::Mutex;

use burst::{EalOptions, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

fn runtime() -> Runtime {
    Runtime::init(EalOptions::new().no_huge().no_pci()).unwrap()
}

fn raise(sig: libc::c_int) {
    // SAFETY: raise has no preconditions; the runtime's handler is installed for `sig`.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

fn disposition(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is a valid output buffer; a null new action only queries.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) }, 0);
    old.sa_sigaction
}

#[test]
fn the_first_signal_is_a_stop_request_and_handlers_go_with_the_last_runtime() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for sig in [libc::SIGINT, libc::SIGTERM] {
        assert_eq!(disposition(sig), libc::SIG_DFL);
        let a = runtime();
        let b = runtime();
        assert!(!a.stop_requested() && !b.stop_requested());
        assert_ne!(disposition(sig), libc::SIG_DFL);
        raise(sig);
        assert!(a.stop_requested() && b.stop_requested(), "a signal stops every runtime that handles them");
        drop(a);
        assert_ne!(disposition(sig), libc::SIG_DFL, "b still handles signals");
        drop(b);
        assert_eq!(disposition(sig), libc::SIG_DFL, "the default disposition is back");
    }
    // A new runtime starts with no stop requested.
    assert!(!runtime().stop_requested());
}

const CHILD: &str = "BURST_SIGNAL_TEST_CHILD";

/// Run by `a_third_signal_kills_a_stuck_application`, in a child process; does nothing otherwise.
#[test]
fn child_raises_sigint_three_times() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = runtime();
    raise(libc::SIGINT);
    println!("stop requested: {}", rt.stop_requested());
    // GNU timeout sends its signal twice: the second must not kill.
    raise(libc::SIGINT);
    println!("alive after two");
    raise(libc::SIGINT);
    println!("alive after three");
}

#[test]
fn a_third_signal_kills_a_stuck_application() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_raises_sigint_three_times", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.signal(), Some(libc::SIGINT), "{:?}\n{stdout}", out.status);
    assert!(stdout.contains("stop requested: true"), "{stdout}");
    assert!(stdout.contains("alive after two"), "{stdout}");
    assert!(!stdout.contains("alive after three"), "{stdout}");
}
