//! pktgen as a user runs it: on net_null and net_ring ports with `--no-huge --no-pci` (no root,
//! no hugepages), lcores 0 and 1. Each run checks its counters add up: per stream
//! `rx + generated = tx + dropped`, and the streams' counts agree with the drivers' own. A run
//! that ends with status 0 has also found every buffer back in its pool after the ports closed
//! (pktgen checks, and exits 1 otherwise). Nothing here asserts on speed.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

const EAL: &[&str] = &["-l", "0,1", "--no-huge", "--no-pci"];

fn pktgen(eal: &[&str], app: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(EAL)
        .args(eal)
        .arg("--")
        .args(app)
        .stdin(Stdio::null())
        .output()
        .expect("pktgen runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs to the end and returns the `RESULT` object, after the checks every run must pass.
fn run_ok(eal: &[&str], app: &[&str]) -> Value {
    let out = pktgen(eal, app);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("Forward statistics for port 0"), "{stdout}");
    let total = stdout.lines().find_map(|l| l.strip_prefix("Total: ")).expect("a Total line");
    assert!(total.ends_with(" Mpps"), "{total}");
    let last = stdout.lines().last().unwrap_or_default();
    let json = last.strip_prefix("RESULT ").unwrap_or_else(|| panic!("the last line is RESULT: {stdout}"));
    let v: Value = serde_json::from_str(json).expect("RESULT is JSON");
    check_counts(&v);
    v
}

fn n(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// What every report must satisfy: the totals balance (every packet received or generated was
/// sent or dropped; rxonly frees what it receives), the ports sum to the totals, and each port's
/// counts are the driver's.
fn check_counts(v: &Value) {
    let total = &v["total"];
    if v["mode"] == "rxonly" {
        assert_eq!((n(total, "tx_packets"), n(total, "tx_dropped"), n(total, "generated")), (0, 0, 0), "{v}");
    } else {
        assert_eq!(
            n(total, "rx_packets") + n(total, "generated"),
            n(total, "tx_packets") + n(total, "tx_dropped"),
            "rx + generated = tx + dropped: {v}"
        );
    }
    let ports = v["ports"].as_array().expect("ports");
    for key in ["rx_packets", "tx_packets", "tx_dropped", "generated"] {
        assert_eq!(ports.iter().map(|p| n(p, key)).sum::<u64>(), n(total, key), "{key}: {v}");
    }
    for p in ports {
        let s = &p["port_stats"];
        assert_eq!(n(s, "ipackets"), n(p, "rx_packets"), "the driver saw what the streams received: {p}");
        assert_eq!(n(s, "opackets"), n(p, "tx_packets"), "the driver sent what the streams sent: {p}");
    }
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn io_between_two_null_ports_reports_per_port_and_in_total() {
    let v = run_ok(&["--vdev", "net_null0", "--vdev", "net_null1"], &["--run-seconds", "1"]);
    assert_eq!((v["mode"].as_str(), n(&v, "lcores"), n(&v, "streams"), n(&v, "burst")), (Some("io"), 1, 2, 32));
    for p in v["ports"].as_array().unwrap() {
        assert!(n(p, "rx_packets") > 0, "{p}");
        assert_eq!(n(p, "tx_dropped"), 0, "net_null takes everything: {p}");
        assert_eq!(n(p, "generated"), 0);
    }
    // io: what port 0 received left on port 1 and the other way round.
    let (p0, p1) = (&v["ports"][0], &v["ports"][1]);
    assert_eq!(n(p0, "rx_packets"), n(p1, "tx_packets"));
    assert_eq!(n(p1, "rx_packets"), n(p0, "tx_packets"));
}

#[test]
fn io_over_a_ring_pair_keeps_the_tx_first_burst_going_round() {
    let v = run_ok(
        &["--vdev", "net_ring0,pair=a", "--vdev", "net_ring1,pair=a"],
        &["--tx-first", "--burst", "16", "--run-seconds", "0.3"],
    );
    let total = &v["total"];
    assert_eq!(n(total, "generated"), 32, "one burst of 16 per stream");
    assert!(n(total, "rx_packets") > 32, "the packets went round: {v}");
}

#[test]
fn macswap_on_a_ring_loopback_port() {
    let v = run_ok(&["--vdev", "net_ring0"], &["--forward-mode=macswap", "--tx-first", "--run-seconds", "0.3"]);
    assert_eq!(n(&v, "streams"), 1);
    assert!(n(&v["ports"][0], "rx_packets") > 0, "{v}");
}

#[test]
fn mac_mode_with_a_peer_address_over_a_ring_pair() {
    let v = run_ok(
        &["--vdev", "net_ring0,pair=m", "--vdev", "net_ring1,pair=m"],
        &["--forward-mode", "mac", "--eth-peer", "1,02:00:00:00:00:aa", "--tx-first", "--run-seconds", "0.3"],
    );
    assert!(n(&v["total"], "rx_packets") > 0, "{v}");
}

#[test]
fn txonly_fills_a_ring_pair_and_counts_what_did_not_fit() {
    // Nobody receives in txonly: each 1024-slot ring fills, then TX refuses and pktgen drops.
    // The buffers left in the rings go back to the pool when the ports close.
    let v = run_ok(
        &["--vdev", "net_ring0,pair=t", "--vdev", "net_ring1,pair=t"],
        &["--forward-mode=txonly", "--txpkts", "128", "--run-seconds", "0.3"],
    );
    let total = &v["total"];
    assert_eq!(n(total, "rx_packets"), 0);
    assert_eq!(n(total, "tx_packets"), 2 * 1024, "each ring holds 1024: {v}");
    assert!(n(total, "tx_dropped") > 0, "{v}");
    assert_eq!(n(total, "generated"), n(total, "tx_packets") + n(total, "tx_dropped"));
}

#[test]
fn rxonly_receives_and_sends_nothing() {
    let v = run_ok(&["--vdev", "net_null0,size=128"], &["--forward-mode=rxonly", "--run-seconds", "0.3"]);
    let p = &v["ports"][0];
    assert!(n(p, "rx_packets") > 0, "{v}");
    assert_eq!((n(p, "tx_packets"), n(p, "tx_dropped")), (0, 0));
    assert!(v["total_mpps"].as_f64().unwrap() > 0.0, "rxonly's total counts received packets");
}

#[test]
fn txonly_with_two_queues_per_port_runs_four_streams_on_one_lcore() {
    let v = run_ok(
        &["--vdev", "net_null0", "--vdev", "net_null1"],
        &["--forward-mode=txonly", "--rxq=2", "--txq=2", "--run-seconds", "0.3"],
    );
    assert_eq!(n(&v, "streams"), 4);
    for p in v["ports"].as_array().unwrap() {
        assert!(n(p, "tx_packets") > 0, "{p}");
        assert_eq!(n(p, "rx_packets"), 0);
    }
}

#[test]
fn sigint_stops_the_run_with_the_final_report() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(EAL)
        .args(["--vdev", "net_null0", "--", "--stats-period", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pktgen starts");
    // Wait until it forwards: the line before the loop.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !text(&seen).contains("Forwarding until SIGINT") {
        let got = std::io::Read::read(&mut stdout, &mut buf).expect("reading pktgen's output");
        assert!(got > 0, "pktgen ended early: {}", text(&seen));
        seen.extend_from_slice(&buf[..got]);
    }
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut rest).expect("reading pktgen's output");
    seen.extend_from_slice(&rest);
    let status = child.wait().expect("pktgen exits");
    let out = text(&seen);
    assert!(status.success(), "{status:?}: {out}");
    assert!(out.contains("\nTotal: "), "{out}");
    assert!(out.lines().last().unwrap_or_default().starts_with("RESULT {"), "{out}");
}

/// Runs a bad command line: one line on stderr, `pktgen: ...` naming `needle`, status 2.
fn usage_error(eal: &[&str], app: &[&str], needle: &str) {
    let out = pktgen(eal, app);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{eal:?} -- {app:?}: {stderr}");
    assert!(stderr.starts_with("pktgen: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn option_errors_are_one_line_and_exit_2() {
    let null2 = ["--vdev", "net_null0", "--vdev", "net_null1"];
    usage_error(&null2, &["--burst", "0"], "--burst 0");
    usage_error(&null2, &["--burst=600"], "<= 512");
    usage_error(&null2, &["--forward-mode=flowgen"], "flowgen");
    usage_error(&null2, &["--txpkts", "20"], ">= 42");
    usage_error(&null2, &["--txpkts", "9000"], "data room");
    usage_error(&null2, &["--nb-cores", "2"], "--nb-cores 2");
    usage_error(&null2, &["--eth-peer", "5,02:00:00:00:00:05"], "no port 5");
    usage_error(&null2, &["--run-seconds", "-1"], "--run-seconds");
    usage_error(&null2, &["--bogus"], "--bogus");
    usage_error(&[], &["--run-seconds", "1"], "no ports");
    usage_error(&["--vdev", "net_bogus0"], &[], "net_bogus0");
}

#[test]
fn a_lone_main_lcore_cannot_forward() {
    let out = Command::new(env!("CARGO_BIN_EXE_pktgen"))
        .args(["-l", "0", "--no-huge", "--no-pci", "--vdev", "net_null0", "--", "--run-seconds", "1"])
        .output()
        .expect("pktgen runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("pktgen: no forwarding lcore"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    let out = pktgen(&[], &["--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    for option in [
        "--forward-mode",
        "--burst",
        "--txpkts",
        "--nb-cores",
        "--stats-period",
        "--run-seconds",
        "--eth-peer",
        "--mbuf-size",
        "--max-pkt-len",
        "--tx-offloads",
        "--rx-offloads",
        "csum",
    ] {
        assert!(stdout.contains(option), "{option}: {stdout}");
    }
}

#[test]
fn txonly_with_txpkts_sends_chains_that_net_null_takes_whole() {
    let v = run_ok(
        &["--vdev", "net_null0"],
        &["--forward-mode=txonly", "--txpkts=14,20,8,100", "--mbuf-size=1152", "--run-seconds", "0.3"],
    );
    let p = &v["ports"][0];
    assert!(n(p, "tx_packets") > 0, "{v}");
    assert_eq!(n(&p["port_stats"], "obytes"), 142 * n(p, "tx_packets"), "every packet 142 bytes: {p}");
    assert_eq!(p["tx_offloads"], "0x8000", "multi_segs turned on for the chains: {p}");
}

#[test]
fn csum_over_a_ring_pair_counts_no_bad_checksum_in_txonly_frames() {
    // --tx-first's frames have good IPv4 checksums and no UDP checksum: nothing is bad. (What
    // csum counts and writes on bad frames is tested in tests/modes.rs.)
    let v = run_ok(
        &["--vdev", "net_ring0,pair=c", "--vdev", "net_ring1,pair=c"],
        &["--forward-mode=csum", "--tx-first", "--txpkts=60,40", "--run-seconds", "0.3"],
    );
    let total = &v["total"];
    assert!(n(total, "rx_packets") > 64, "the frames went round: {v}");
    assert_eq!((n(total, "bad_ip_csum"), n(total, "bad_l4_csum"), n(total, "unparsed")), (0, 0, 0), "{v}");
}

#[test]
fn jumbo_frames_on_small_buffers_go_round_a_ring_pair_as_chains() {
    // 9000-byte frames in 9 segments of 1000 on buffers of 1024 bytes of data: the ports scatter
    // (ring passes chains whole) and send chains; the MTU is 9000.
    let nine = ["1000"; 9].join(",");
    let v = run_ok(
        &["--vdev", "net_ring0,pair=j", "--vdev", "net_ring1,pair=j"],
        &["--max-pkt-len=9018", "--mbuf-size=1152", "--tx-first", "--txpkts", &nine, "--run-seconds", "0.3"],
    );
    let total = &v["total"];
    assert_eq!(n(total, "generated"), 64, "{v}");
    assert!(n(total, "rx_packets") > 64, "the chains went round: {v}");
    for p in v["ports"].as_array().unwrap() {
        assert_eq!(
            (n(p, "mtu"), &p["rx_offloads"], &p["tx_offloads"]),
            (9000, &"0x2000".into(), &"0x8000".into()),
            "{p}"
        );
        let s = &p["port_stats"];
        assert_eq!(n(s, "obytes"), 9000 * n(s, "opackets"), "{p}");
    }
}

#[test]
fn packet_model_option_errors_are_one_line_and_exit_2() {
    let null = ["--vdev", "net_null0"];
    usage_error(&null, &["--txpkts=99999999999999999999"], "not a length in bytes");
    usage_error(&null, &["--txpkts=2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000,2000"], "68000 bytes in all, must be <= 65535");
    usage_error(
        &null,
        &["--forward-mode=txonly", "--txpkts=1000,1000", "--max-pkt-len=1500"],
        "larger than --max-pkt-len 1500",
    );
    usage_error(&null, &["--mbuf-size=18446744073709551617"], "not a size");
    usage_error(&null, &["--max-pkt-len=99999999999"], "--max-pkt-len");
    usage_error(&null, &["--tx-offloads=0x10000000000000000"], "more than 64 bits");
    usage_error(&null, &["--tx-offloads=ipv4_cksum,frobnicate"], "\"frobnicate\" is neither a hexadecimal mask");
    usage_error(&null, &["--rx-offloads=0x80"], "bits 0x80 are no offload burst knows");
    // Offloads burst knows that the port does not have: named, with the port and its driver.
    usage_error(&null, &["--tx-offloads=ipv4_cksum"], "port 0 (net_null) cannot do the TX offloads ipv4_cksum");
    usage_error(&null, &["--rx-offloads=0x2000"], "port 0 (net_null) cannot do the RX offloads scatter");
    // A frame larger than a buffer on a port that cannot scatter.
    usage_error(&null, &["--max-pkt-len=3000"], "cannot scatter");
}
