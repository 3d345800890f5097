//! The EAL command line: every option, the `--` split, one-line usage errors with exit status 2,
//! and options built in code equal to the same options parsed.

use burst::lcores::{allowed_cpus, format_cpus};
use burst::{EalError, EalOptions, IovaMode};

/// Two lcores on CPUs this process may use (the same CPU twice on a one-CPU machine).
fn two_lcores() -> String {
    let cpus: Vec<usize> = allowed_cpus().unwrap().into_iter().collect();
    format!("0@{},1@{}", cpus[0], cpus.get(1).unwrap_or(&cpus[0]))
}

fn parse(args: &[&str]) -> Result<(EalOptions, Vec<String>), EalError> {
    EalOptions::parse(std::iter::once("prog").chain(args.iter().copied()))
}

#[test]
fn every_option_lands_in_its_field() {
    let lcores = two_lcores();
    let (o, app) = parse(&[
        "-l",
        &lcores,
        "--main-lcore",
        "1",
        "-a",
        "0000:00:02.0,rxq=2",
        "--allow",
        "00:03.0",
        "--vdev",
        "net_null0,size=128",
        "--vdev=net_ring0",
        "--iova-mode",
        "va",
        "-m",
        "64",
        "--huge-dir",
        "/mnt/huge",
        "--file-prefix",
        "app1",
        "--single-file-segments",
        "--log-level",
        "lib.eal:debug",
        "--sysfs-root",
        "/tmp/fake",
        "-n",
        "4",
    ])
    .unwrap();
    assert_eq!(app, ["prog"]);
    assert_eq!(o.lcores.as_deref(), Some(lcores.as_str()));
    assert_eq!(o.main_lcore, Some(1));
    assert_eq!(o.allow, ["0000:00:02.0,rxq=2", "00:03.0"]);
    assert_eq!(o.vdevs, ["net_null0,size=128", "net_ring0"]);
    assert_eq!(o.iova_mode, Some(IovaMode::Va));
    assert_eq!(o.memory_mb.as_deref(), Some("64"));
    assert_eq!(o.huge_dir.as_deref(), Some(std::path::Path::new("/mnt/huge")));
    assert_eq!(o.file_prefix.as_deref(), Some("app1"));
    assert!(o.single_file_segments && !o.no_huge && !o.no_pci);
    assert_eq!(o.log_level.as_deref(), Some("lib.eal:debug"));
    assert_eq!(o.sysfs_root.as_deref(), Some(std::path::Path::new("/tmp/fake")));
    assert!(o.handle_signals);

    let (o, _) =
        parse(&["-b", "00:04.0", "--block", "0000:00:05.0", "--socket-mem", "64,0", "--no-huge", "--no-pci"]).unwrap();
    assert_eq!(o.block, ["00:04.0", "0000:00:05.0"]);
    assert_eq!(o.socket_mem.as_deref(), Some("64,0"));
    assert!(o.no_huge && o.no_pci);
    assert_eq!(o.lcores, None);
    assert_eq!(o.main_lcore, None);
    assert!(!o.in_memory);
}

#[test]
fn flags_common_in_dpdk_scripts_are_accepted() {
    for args in [&["--in-memory"][..], &["--huge-unlink"], &["--in-memory", "--no-telemetry", "--proc-type", "auto"]] {
        let (o, _) = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert!(o.in_memory, "{args:?}");
    }
    let (o, _) = parse(&["--no-telemetry", "--proc-type=primary"]).unwrap();
    assert!(!o.in_memory);
    let err = parse(&["--proc-type", "secondary"]).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("no secondary processes"), "{err}");
}

#[test]
fn a_coremask_and_repeated_options_work_as_in_dpdk() {
    let cpus = allowed_cpus().unwrap();
    let first = *cpus.iter().next().unwrap();
    let (o, _) = parse(&["-c", &format!("{:#x}", 1u128 << first)]).unwrap();
    assert_eq!(o.lcores, Some(first.to_string()));
    // The last of a repeated single-value option wins, as with getopt.
    let (o, _) =
        parse(&["--file-prefix", "a", "--file-prefix", "b", "--log-level", "info", "--log-level", "8"]).unwrap();
    assert_eq!(o.file_prefix.as_deref(), Some("b"));
    assert_eq!(o.log_level.as_deref(), Some("8"));
}

#[test]
fn dashdash_splits_eal_options_from_the_application_s() {
    let (o, app) = parse(&["--no-pci", "--", "-p", "0x3", "--", "-q"]).unwrap();
    assert!(o.no_pci);
    assert_eq!(app, ["prog", "-p", "0x3", "--", "-q"]);
    let (o, app) = parse(&["--"]).unwrap();
    assert_eq!(o, EalOptions::new());
    assert_eq!(app, ["prog"]);
    let (_, app) = parse(&[]).unwrap();
    assert_eq!(app, ["prog"]);
    // Application options before `--` are not the EAL's: a usage error that says where they go.
    let err = parse(&["-p", "0x3", "--"]).unwrap_err();
    assert_eq!(err.to_string(), "unknown EAL option -p: see --help");
}

#[test]
fn bad_options_are_one_line_usage_errors_with_a_hint() {
    let cpus = allowed_cpus().unwrap();
    let missing = (0..burst::mem::lcore::MAX_LCORES).find(|c| !cpus.contains(c)).unwrap().to_string();
    let not_there = format!("lcore {missing} does not exist: this process may run on CPUs {}", format_cpus(&cpus));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--foo"], "unknown EAL option --foo: see --help"),
        (vec!["--foo=3"], "unknown EAL option --foo: see --help"),
        (vec!["stray"], "application options go after `--`"),
        (vec!["-l"], "EAL option --lcores needs a value: see --help"),
        (vec!["-l", "abc"], "bad lcore list \"abc\""),
        (vec!["-l", "0-1,1"], "lcore 1 is given twice"),
        (vec!["-l", "200"], "lcore 200 is out of range"),
        (vec!["-l", &missing], &not_there),
        (vec!["-c", "0xg"], "not a hex CPU mask"),
        (vec!["-c", "1", "-l", "0"], "use one of them"),
        (vec!["--main-lcore", "x"], "not an lcore id"),
        (vec!["--main-lcore", "127"], "--main-lcore 127 is not in the lcore list"),
        (vec!["--iova-mode", "dc"], "use `pa` or `va`"),
        (vec!["-m", "lots"], "give megabytes per socket"),
        (vec!["--socket-mem", "1,,2"], "give megabytes per socket"),
        (vec!["-m", "64", "--socket-mem", "64"], "-m and --socket-mem cannot be used together"),
        (vec!["-a", "zz:zz"], "-a zz:zz"),
        (vec!["-a", "00:02.0", "-b", "00:03.0"], "cannot be used together"),
        (vec!["-a", "00:02.0", "--no-pci"], "--no-pci turns PCI off"),
        (vec!["-a", "00:02.0", "-a", "0000:00:02.0,x=1"], "-a 0000:00:02.0 is given twice"),
        (vec!["-a", "00:02.0,novalue"], "not key=value"),
        (vec!["-b", "nonsense"], "-b nonsense"),
        (vec!["--vdev", "net_null0", "--vdev", "net_null0,size=64"], "--vdev net_null0 is given twice"),
        (vec!["--vdev", ",size=1"], "the device name is empty"),
        (vec!["--log-level", "loud"], "use error, warning, info, debug, trace"),
        (vec!["--no-huge", "--iova-mode", "pa"], "--no-huge memory works with IOVA as VA only"),
        (vec!["--file-prefix", "a/b"], "--file-prefix \"a/b\""),
        (vec!["--file-prefix", ""], "--file-prefix \"\""),
        (vec!["-n", "x"], "memory channels are a number"),
    ];
    for (args, want) in cases {
        let err = parse(&args).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(want), "{args:?}: {text:?} does not contain {want:?}");
        assert!(!text.contains('\n'), "{args:?}: {text:?} is not one line");
        assert_eq!(err.exit_code(), 2, "{args:?}: {text}");
        assert!(err.is_usage() && !err.is_help());
    }
}

#[test]
fn help_is_the_usage_text_with_exit_status_0() {
    for flag in ["-h", "--help"] {
        let err = parse(&[flag, "--", "-p", "3"]).unwrap_err();
        assert!(err.is_help());
        assert_eq!(err.exit_code(), 0);
        let text = err.to_string();
        for opt in [
            "--lcores",
            "--main-lcore",
            "--allow",
            "--block",
            "--vdev",
            "--iova-mode",
            "--socket-mem",
            "--huge-dir",
            "--file-prefix",
            "--no-huge",
            "--single-file-segments",
            "--no-pci",
            "--log-level",
        ] {
            assert!(text.contains(opt), "{opt} missing from the help:\n{text}");
        }
        assert!(text.contains("prog [EAL options] -- [application options]"), "{text}");
        assert!(!text.contains("sysfs-root"), "the test-only option is hidden:\n{text}");
        assert_eq!(text, EalOptions::usage("prog"));
    }
}

#[test]
fn options_built_in_code_equal_the_same_options_parsed() {
    let lcores = two_lcores();
    let built = EalOptions::new()
        .lcores(&lcores)
        .main_lcore(0)
        .allow("0000:00:02.0,k=v")
        .vdev("net_null0")
        .vdev("net_ring0,pair=a")
        .iova_mode(IovaMode::Va)
        .memory_mb(128)
        .huge_dir("/dev/hugepages")
        .file_prefix("x")
        .single_file_segments()
        .log_level("info")
        .sysfs_root("/tmp/s");
    let (parsed, _) = parse(&[
        "-l",
        &lcores,
        "--main-lcore",
        "0",
        "-a",
        "0000:00:02.0,k=v",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_ring0,pair=a",
        "--iova-mode",
        "va",
        "-m",
        "128",
        "--huge-dir",
        "/dev/hugepages",
        "--file-prefix",
        "x",
        "--single-file-segments",
        "--log-level",
        "info",
        "--sysfs-root",
        "/tmp/s",
    ])
    .unwrap();
    assert_eq!(built, parsed);

    let built = EalOptions::new().block("00:04.0").socket_mem("32,0").no_huge().no_pci();
    let (parsed, _) = parse(&["-b", "00:04.0", "--socket-mem", "32,0", "--no-huge", "--no-pci"]).unwrap();
    assert_eq!(built, parsed);
    assert!(!EalOptions::new().handle_signals(false).handle_signals);
}
