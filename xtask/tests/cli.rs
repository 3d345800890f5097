//! `cargo xtask lab` as a user runs it: output streamed, the command's exit status passed
//! through, clear errors and distinct statuses for bad options, time limits and guest panics.
//! Boots QEMU; `cargo xtask setup` must have run (the README's test command does).

use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).output().expect("xtask runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn lab_runs_the_command_and_exits_with_its_status() {
    let out =
        xtask(&["lab", "--nic", "e1000", "--", "sh", "-c", "grep -c ^processor /proc/cpuinfo; echo oops >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2\n");
    assert!(text(&out.stderr).contains("oops"));
}

#[test]
fn lab_stops_a_command_past_its_time_limit() {
    let out = xtask(&["lab", "--timeout", "2", "--", "sleep", "100"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(text(&out.stderr).contains("did not finish within 2 s"), "{}", text(&out.stderr));
}

#[test]
fn lab_reports_a_guest_panic() {
    let out = xtask(&["lab", "--", "sh", "-c", "echo c > /proc/sysrq-trigger"]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(err.contains("the guest kernel panicked") && err.contains("Kernel panic"), "{err}");
}

#[test]
fn bad_options_are_refused_before_anything_boots() {
    for (args, needle) in [
        (&["lab", "--nic", "e1001", "--", "true"][..], "unknown NIC model `e1001`"),
        (&["lab", "--iommu", "maybe", "--", "true"][..], "use on, pt or off"),
        (&["lab", "--mem", "lots", "--", "true"][..], "bad memory size"),
        (&["lab", "--mem", "256M", "--hugepages", "128", "--", "true"][..], "give at least 512 MiB"),
        (&["lab"][..], "CMD"),
    ] {
        let out = xtask(args);
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        let code = out.status.code();
        // clap's usage errors are 2; a config the lab refuses is 1; never a panic (101).
        assert!(code == Some(2) || code == Some(1), "{args:?}: {code:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn setup_a_second_time_does_nothing_and_says_so() {
    let out = xtask(&["setup"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.starts_with("setup: nothing to do"), "{said}");
}
