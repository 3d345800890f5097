//! `pci-check`'s argument checks, on the host: every case fails before a device is opened, and
//! the address names no device anyway (`0000:ff:1f.7`), so nothing here touches the host's PCI
//! devices. Out-of-range numbers are errors, never silently truncated.

use std::path::Path;
use std::process::Command;

const NOWHERE: &str = "0000:ff:1f.7";

/// Runs pci-check, which must fail with exit status 1 and one `pci-check: ...` line; the line.
fn refused(args: &[&str]) -> String {
    assert!(!Path::new("/sys/bus/pci/devices").join(NOWHERE).exists(), "{NOWHERE} exists on this machine");
    let out = Command::new(env!("CARGO_BIN_EXE_pci-check")).args(args).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "pci-check {args:?}: {err}");
    assert!(err.starts_with("pci-check: ") && err.lines().count() == 1, "{err:?}");
    err
}

#[test]
fn numbers_too_large_for_their_field_are_errors() {
    let err = refused(&["read", NOWHERE, "256", "0", "8"]);
    assert_eq!(err, "pci-check: BAR 256 is out of range: at most 0xff\n");
    let err = refused(&["config", NOWHERE, "0x10004", "32"]);
    assert_eq!(err, "pci-check: OFFSET 0x10004 is out of range: at most 0xffff\n");
    let err = refused(&["irq-enable", NOWHERE, "msix", "0x100000001"]);
    assert_eq!(err, "pci-check: N 0x100000001 is out of range: at most 0xffffffff\n");
    let err = refused(&["write-read", NOWHERE, "0", "0", "0x100", "8"]);
    assert_eq!(err, "pci-check: VALUE 0x100 does not fit in 8 bits\n");
    let err = refused(&["hold", NOWHERE, "0x1ffffffffffffffff"]);
    assert!(err.contains("\"0x1ffffffffffffffff\" is not a number"), "{err}");
}

#[test]
fn numbers_that_fit_reach_the_device_lookup() {
    // An offset near 2^64 parses; the BAR check (in the lab) then refuses it without a panic.
    let err = refused(&["read", NOWHERE, "0", "0xffffffffffffffff", "8"]);
    assert!(err.starts_with("pci-check: there is no PCI device 0000:ff:1f.7"), "{err}");
}
