//! A lab run never hangs: a panicking guest, a guest that does not come up in time and a
//! command past its limit each end with a clear error. Boots QEMU; needs `cargo xtask setup`.

use std::time::{Duration, Instant};

use burst_lab::{ExitStatus, Lab, LabConfig, LabError, NicModel};

/// SIGTERM on Linux.
const SIGTERM: i32 = 15;

#[test]
fn commands_report_output_and_status_and_time_limits_hold() {
    let lab = Lab::boot(LabConfig::default()).unwrap();
    assert!(lab.kernel_release().starts_with("6."), "{}", lab.kernel_release());

    let out = lab.sh("echo out; echo err >&2; exit 7").unwrap();
    assert_eq!(out.status, ExitStatus::Code(7));
    assert_eq!(out.stdout_str(), "out\n");
    assert_eq!(out.stderr_str(), "err\n");

    // Hugepages asked for are reserved, and hugetlbfs is mounted.
    let huge = lab.sh_ok("grep HugePages_Total /proc/meminfo; grep -c hugetlbfs /proc/mounts").unwrap();
    assert!(huge.contains("HugePages_Total:      64"), "{huge}");

    match lab.spawn(&["no-such-program"]) {
        Err(LabError::SpawnFailed { command, .. }) => assert_eq!(command, "no-such-program"),
        other => panic!("expected SpawnFailed, got {other:?}"),
    }

    // Past its limit, a command (and its children) is killed and the lab stays usable.
    let started = Instant::now();
    match lab.run(&["sh", "-c", "sleep 100 & sleep 100"], Duration::from_secs(2)) {
        Err(LabError::CommandTimeout { secs: 2, .. }) => {}
        other => panic!("expected CommandTimeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let left = lab.sh("for i in $(seq 50); do pidof sleep >/dev/null || exit 0; sleep 0.1; done; ps; exit 1").unwrap();
    assert!(left.status.success(), "the timed-out command's children survived:\n{}", left.stdout_str());

    // A signal ends a process and is reported as such.
    let mut p = lab.spawn(&["sh", "-c", "echo started; exec sleep 100"]).unwrap();
    p.wait_for_stdout("started", Duration::from_secs(10)).unwrap();
    p.signal(SIGTERM).unwrap();
    let out = p.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(out.status, ExitStatus::Signal(SIGTERM));
}

#[test]
fn a_guest_kernel_panic_is_an_error_naming_the_panic() {
    let lab = Lab::boot(LabConfig::with_nics(&[NicModel::E1000])).unwrap();
    let started = Instant::now();
    match lab.sh("echo c > /proc/sysrq-trigger; sleep 100") {
        Err(LabError::GuestDied { reason }) => assert!(reason.contains("panicked"), "{reason}"),
        other => panic!("expected GuestDied, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // Anything after that fails at once, too.
    assert!(matches!(lab.sh("true"), Err(LabError::GuestDied { .. })));
}

#[test]
fn a_guest_that_does_not_come_up_in_time_is_an_error() {
    // No boot of this kernel gets to the agent in a tenth of a second.
    let cfg = LabConfig { boot_timeout: Duration::from_millis(100), ..LabConfig::default() };
    let started = Instant::now();
    match Lab::boot(cfg) {
        Err(LabError::BootTimeout { .. }) => {}
        other => panic!("expected BootTimeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(60));
}
