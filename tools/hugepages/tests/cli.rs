//! The `hugepages` binary against fake sysfs/procfs trees (`--sys-root`): nothing here touches
//! the host's hugepages or mounts.

use std::process::{Command, Output};

use burst_mem::hugepage::fake::FakeSysTree;
use burst_mem::hugepage::PageSize;

const NR_2M: &str = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const NR_1G: &str = "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";

fn hugepages(tree: &FakeSysTree, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hugepages"))
        .arg("--sys-root")
        .arg(tree.path())
        .args(args)
        .output()
        .expect("run hugepages")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A runtime error: exit status 1 and exactly one `hugepages: ...` line on stderr.
fn assert_runtime_error(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("hugepages: ") && err.ends_with('\n') && err.lines().count() == 1, "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The table's rows, each as its whitespace-separated cells.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines().take_while(|l| !l.is_empty()).map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

#[test]
fn show_prints_a_row_per_node_and_size_and_the_mounts() {
    let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(0), 4, 3).unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(1), 512, 512).unwrap();
    tree.set_counts(PageSize::SIZE_1G, Some(1), 2, 1).unwrap();
    tree.set_mounts(
        "proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n\
         nodev /mnt/huge\\040one hugetlbfs rw,relatime,pagesize=1024M 0 0\n",
    )
    .unwrap();
    let out = hugepages(&tree, &["--show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let expected: Vec<Vec<&str>> = vec![
        vec!["Node", "Pages", "Size", "Free", "Total"],
        vec!["0", "4", "2M", "3", "8M"],
        vec!["0", "0", "1G", "0", "0"],
        vec!["1", "512", "2M", "512", "1G"],
        vec!["1", "2", "1G", "1", "2G"],
    ];
    assert_eq!(rows(&text), expected, "{text}");
    assert!(text.contains("\nHugepages mounted on /dev/hugepages (2M pages)\n"), "{text}");
    assert!(text.contains("\nHugepages mounted on /mnt/huge one (1G pages)\n"), "{text}");
}

#[test]
fn show_says_when_nothing_is_mounted() {
    let tree = FakeSysTree::new().unwrap();
    let out = hugepages(&tree, &["-s"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Hugepages not mounted (run `hugepages --mount`)"), "{}", stdout(&out));
}

#[test]
fn show_json_has_every_count() {
    let tree = FakeSysTree::new().unwrap();
    tree.set_counts(PageSize::SIZE_2M, None, 6, 5).unwrap();
    tree.write("sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "1\n").unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(0), 6, 5).unwrap();
    tree.set_mounts("nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n").unwrap();
    let out = hugepages(&tree, &["--show", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["default_size"], "2M");
    assert_eq!(v["sizes"], serde_json::json!(["2M", "1G"]));
    assert_eq!(
        v["system"][0],
        serde_json::json!({"size": "2M", "size_bytes": 2097152, "total": 6, "free": 5, "reserved": 1, "surplus": 0})
    );
    assert_eq!(
        v["nodes"][0],
        serde_json::json!({"node": 0, "size": "2M", "size_bytes": 2097152, "total": 6, "free": 5, "surplus": 0})
    );
    assert_eq!(v["nodes"][1]["size"], "1G");
    assert_eq!(v["mounts"], serde_json::json!([{"path": "/dev/hugepages", "size": "2M", "size_bytes": 2097152}]));
}

#[test]
fn json_needs_show() {
    let tree = FakeSysTree::new().unwrap();
    let out = hugepages(&tree, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reserve_writes_nr_hugepages() {
    let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
    let out = hugepages(&tree, &["--reserve", "8M"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.read(NR_2M).unwrap(), "4\n");

    // Rounded up to whole pages, on one node.
    let out = hugepages(&tree, &["-r", "3M", "-n", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.read("sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages").unwrap(), "2\n");

    let out = hugepages(&tree, &["--reserve", "2G", "--pagesize", "1G"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.read(NR_1G).unwrap(), "2\n");
}

#[test]
fn reserve_uses_the_default_page_size() {
    let tree = FakeSysTree::new().unwrap();
    tree.set_meminfo(PageSize::SIZE_1G, 24 << 30).unwrap();
    let out = hugepages(&tree, &["--reserve", "1G"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tree.read(NR_1G).unwrap(), "1\n");
    assert_eq!(tree.read(NR_2M).unwrap(), "0\n");
}

#[test]
fn a_bad_size_is_a_usage_error() {
    let tree = FakeSysTree::new().unwrap();
    for args in [&["--reserve", "lots"][..], &["--setup", "1.5G"], &["-r", "512X"]] {
        let out = hugepages(&tree, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("bad size") && err.contains("512M"), "{err}");
    }
    assert_eq!(tree.read(NR_2M).unwrap(), "0\n");
}

#[test]
fn a_page_size_the_machine_lacks_is_refused_before_anything_changes() {
    let tree = FakeSysTree::new().unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(0), 8, 8).unwrap();
    let out = hugepages(&tree, &["--setup", "8M", "--pagesize", "4M"]);
    assert_runtime_error(&out, "unknown hugepage size `4M`: use one this machine supports: 2M, 1G");
    assert_eq!(tree.read("sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages").unwrap(), "8\n");

    let out = hugepages(&tree, &["--reserve", "8M", "--pagesize", "3M"]);
    assert_eq!(out.status.code(), Some(2), "3M is not a page size at all");
}

#[test]
fn reserving_more_than_the_machine_has_is_refused() {
    let tree = FakeSysTree::new().unwrap();
    let out = hugepages(&tree, &["--reserve", "100G"]);
    assert_runtime_error(&out, "refusing to reserve");
    assert_eq!(tree.read(NR_2M).unwrap(), "0\n");
}

#[test]
fn an_unknown_node_is_a_runtime_error() {
    let tree = FakeSysTree::new().unwrap();
    let out = hugepages(&tree, &["--reserve", "8M", "--node", "3"]);
    assert_runtime_error(&out, "NUMA node 3 does not exist: this machine has node(s) 0");
}

#[test]
fn clear_zeroes_every_size_on_every_node() {
    let tree = FakeSysTree::with_nodes(&[0, 1]).unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(0), 4, 4).unwrap();
    tree.set_counts(PageSize::SIZE_2M, Some(1), 4, 4).unwrap();
    tree.set_counts(PageSize::SIZE_1G, Some(1), 1, 1).unwrap();
    let out = hugepages(&tree, &["--clear", "--show"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for node in [0, 1] {
        for dir in ["hugepages-2048kB", "hugepages-1048576kB"] {
            let path = format!("sys/devices/system/node/node{node}/hugepages/{dir}/nr_hugepages");
            assert_eq!(tree.read(&path).unwrap(), "0\n", "{path}");
        }
    }
    // --show runs last, after the clear.
    assert!(rows(&stdout(&out)).iter().skip(1).all(|r| r[1] == "0"), "{}", stdout(&out));
}

#[test]
fn no_action_is_a_usage_error() {
    let tree = FakeSysTree::new().unwrap();
    let out = hugepages(&tree, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("Usage: hugepages") && err.contains("--show"), "{err}");
}

#[test]
fn mount_is_a_no_op_when_already_mounted_there() {
    let tree = FakeSysTree::new().unwrap();
    let dir = tree.path().join("huge");
    std::fs::create_dir(&dir).unwrap();
    tree.set_mounts(&format!("nodev {} hugetlbfs rw,pagesize=2M 0 0\n", dir.display())).unwrap();
    let out = hugepages(&tree, &["--mount", "--directory", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn mount_refuses_a_directory_mounted_for_another_size() {
    let tree = FakeSysTree::new().unwrap();
    let dir = tree.path().join("huge");
    std::fs::create_dir(&dir).unwrap();
    tree.set_mounts(&format!("nodev {} hugetlbfs rw,pagesize=1024M 0 0\n", dir.display())).unwrap();
    let out = hugepages(&tree, &["--mount", "--pagesize", "2M", "--directory", dir.to_str().unwrap()]);
    assert_runtime_error(&out, "already has a hugetlbfs mount for 1G pages, not 2M");
}

#[test]
fn unmount_refuses_what_is_not_really_hugetlbfs() {
    // /proc/mounts (fake) says hugetlbfs; statfs on the real directory says otherwise.
    let tree = FakeSysTree::new().unwrap();
    let dir = tree.path().join("huge");
    std::fs::create_dir(&dir).unwrap();
    tree.set_mounts(&format!("nodev {} hugetlbfs rw,pagesize=2M 0 0\n", dir.display())).unwrap();
    let out = hugepages(&tree, &["--unmount"]);
    assert_runtime_error(&out, "is not a hugetlbfs mount: refusing to unmount it");
}

#[test]
fn unmount_of_a_directory_with_nothing_mounted_does_nothing() {
    let tree = FakeSysTree::new().unwrap();
    tree.set_mounts("nodev /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n").unwrap();
    let dir = tree.path().join("elsewhere");
    let out = hugepages(&tree, &["--unmount", "--directory", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_tree_without_hugepages_is_an_error_not_a_panic() {
    let tree = FakeSysTree::empty().unwrap();
    let out = hugepages(&tree, &["--show"]);
    assert_runtime_error(&out, "this kernel has no hugepage support");
    let tree = FakeSysTree::new().unwrap();
    tree.write(NR_2M, "garbage\n").unwrap();
    let out = hugepages(&tree, &["--show", "--json"]);
    assert_runtime_error(&out, "nr_hugepages: `garbage` is not a page count");
}
