//! The `l2fwd` binary's option errors: each ends with exactly one line `l2fwd: <message>` on
//! stderr and exit status 2, never a panic. No hugepages needed (`--no-huge`).

use std::process::{Command, Output};

fn l2fwd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l2fwd")).args(args).output().expect("running l2fwd")
}

/// Runs l2fwd on two net_null ports with `eal` extra runtime options and `app` options, expects a
/// usage error, and returns its message.
fn usage_error(eal: &[&str], app: &[&str]) -> String {
    let mut args = vec!["--no-huge", "--no-pci", "--vdev", "net_null0", "--vdev", "net_null1"];
    args.extend_from_slice(eal);
    args.push("--");
    args.extend_from_slice(app);
    let out = l2fwd(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}, stderr:\n{stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line on stderr:\n{stderr}");
    let message = lines[0].strip_prefix("l2fwd: ").unwrap_or_else(|| panic!("{args:?}: {stderr}"));
    message.to_string()
}

fn assert_has(message: &str, want: &str) {
    assert!(message.contains(want), "expected {want:?} in {message:?}");
}

#[test]
fn bad_portmasks() {
    assert_has(&usage_error(&[], &["-p", "0"]), "invalid portmask 0");
    assert_has(&usage_error(&[], &["-p", "zz"]), "invalid portmask \"zz\"");
    assert_has(&usage_error(&[], &[]), "-p <PORTMASK>");
}

#[test]
fn an_lcore_that_does_not_exist() {
    assert_has(&usage_error(&["-l", "64"], &["-p", "0x3"]), "lcore 64 does not exist");
}

#[test]
fn an_unknown_vdev() {
    assert_has(&usage_error(&["--vdev", "net_bogus0"], &["-p", "0x3"]), "net_bogus0");
}

#[test]
fn ports_masked_out_or_missing() {
    assert_has(&usage_error(&[], &["-p", "0x4"]), "invalid portmask 0x4: no port 2 here");
    assert_has(&usage_error(&[], &["-p", "0x3", "--portmap", "(0,2)"]), "port 2 is not enabled in the port mask");
    assert_has(&usage_error(&[], &["-p", "0x7", "--portmap", "(0,2)"]), "port 2 does not exist");
}

#[test]
fn an_odd_number_of_ports() {
    assert_has(&usage_error(&[], &["-p", "0x1"]), "odd number of ports in portmask 0x1");
}

#[test]
fn other_bad_options() {
    assert_has(&usage_error(&[], &["-p", "3", "-q", "0"]), "invalid queue number");
    assert_has(&usage_error(&[], &["-p", "3", "-T", "86401"]), "invalid timer period");
    assert_has(&usage_error(&["--bogus"], &["-p", "3"]), "--bogus");
    // One lcore for two ports at the default -q 1.
    let cpu = burst::lcores::allowed_cpus().unwrap().into_iter().next().unwrap();
    assert_has(&usage_error(&["--lcores", &format!("0@{cpu}")], &["-p", "3"]), "not enough cores");
}

#[test]
fn help_goes_to_stdout() {
    let out = l2fwd(&["--no-huge", "--", "-h"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("--portmap") && stdout.contains("-p <PORTMASK>"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
