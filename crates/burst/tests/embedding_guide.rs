//! `docs/embedding.md` is a program told in sections: its Rust blocks, pasted in order, must be
//! exactly `examples/forward.rs` (which `cargo test` builds), and that program must do what the
//! guide says it does. No root, no hugepages (`--no-huge`), two `net_ring` ports.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// The guide's ```rust blocks, in order, joined by one empty line.
fn guide_program(markdown: &str) -> String {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```rust") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap_or_default().join("\n")),
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "docs/embedding.md: a ```rust block is not closed");
    blocks.join("\n\n") + "\n"
}

#[test]
fn the_guides_blocks_pasted_in_order_are_the_example() {
    let guide = std::fs::read_to_string(workspace_file("docs/embedding.md")).expect("docs/embedding.md");
    let example = std::fs::read_to_string(workspace_file("crates/burst/examples/forward.rs")).expect("the example");
    let pasted = guide_program(&guide);
    if pasted != example {
        let line = pasted.lines().zip(example.lines()).position(|(a, b)| a != b);
        let line = line.unwrap_or_else(|| pasted.lines().count().min(example.lines().count()));
        panic!(
            "docs/embedding.md's Rust blocks differ from crates/burst/examples/forward.rs from line {}:\n  guide:   \
             {:?}\n  example: {:?}\nchange both together",
            line + 1,
            pasted.lines().nth(line),
            example.lines().nth(line)
        );
    }
}

/// The example's binary, which `cargo test` builds with the tests.
fn example_binary() -> PathBuf {
    // Tests run from target/<profile>/deps/; examples are in target/<profile>/examples/.
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe.parent().and_then(Path::parent).map(|dir| dir.join("examples").join("forward"));
    match bin {
        Some(bin) if bin.exists() => bin,
        _ => panic!(
            "the example binary is not built next to this test ({}): run `cargo test -p burst`, which builds \
             the examples, or `cargo build -p burst --example forward` first",
            exe.display()
        ),
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(example_binary()).args(args).output().expect("the example runs");
    let code = out.status.code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const RING_PAIR: [&str; 5] = ["--no-huge", "--vdev", "net_ring0,pair=wire", "--vdev", "net_ring1,pair=wire"];

#[test]
fn the_guides_program_routes_its_own_frames_and_gets_every_one_back() {
    for lcores in [["-l", "0,1"], ["--lcores", "0@0,1@0"]] {
        let mut args = lcores.to_vec();
        args.extend(RING_PAIR);
        args.extend(["--", "20000"]);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{lcores:?}: exit {code}\n{stdout}{stderr}");
        assert!(
            stdout.contains("sent 20000 frames from port 0, port 1 routed 20000, 20000 came back intact"),
            "{lcores:?}:\n{stdout}"
        );
        assert!(stdout.contains("port 1: net_ring1 02:62:75:00:00:01 link up"), "{stdout}");
    }
}

#[test]
fn the_guides_program_refuses_what_it_cannot_run_with_one_line() {
    let (code, stdout, stderr) = run(&["-l", "0,1", "--no-huge", "--vdev", "net_ring0", "--", "10"]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert!(stderr.starts_with("myfwd: two ports are needed"), "{stderr}");
    let mut args = vec!["-l", "0"];
    args.extend(RING_PAIR);
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("a worker lcore is needed: -l 0,1, or --lcores 0@0,1@0"), "{stderr}");
    let mut args = vec!["-l", "0,1"];
    args.extend(RING_PAIR);
    args.extend(["--", "lots"]);
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("FRAMES must be a number of frames from 1 to 100000000"), "{stderr}");
    let (code, _, stderr) = run(&["--no-such-option"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.starts_with("myfwd: "), "{stderr}");
}

/// Review 15: the program's last line says how many frames it sent, and that is how many it
/// sent. When nothing comes back (two `net_null` ports: TX frees, nothing is routed), the window
/// stops the sender after 512 frames, yet the line says `sent {FRAMES} frames`: it prints the
/// request, not `next`.
#[test]
fn the_guides_program_reports_the_frames_it_really_sent() {
    let (code, stdout, stderr) =
        run(&["-l", "0,1", "--no-huge", "--vdev", "net_null0", "--vdev", "net_null1", "--", "1000"]);
    assert_eq!(code, 1, "nothing comes back: {stdout}{stderr}");
    assert!(stdout.contains("sent 512 frames from port 0"), "the window holds 512 frames out:\n{stdout}");
}
