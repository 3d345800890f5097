//! devbind against fake sysfs trees: its library ([`devbind::run`]) with the fake kernel of
//! `burst_pci::fake` playing the kernel's part of binding, and the binary itself (`--sysfs-root`)
//! for what needs no kernel: options, `--help`, read-only status, a failing `modprobe`. Nothing
//! here touches the host's devices.

use std::path::Path;
use std::process::Command;

use burst_pci::fake::{FakeDevice, FakeKernel, FakeSysfs};
use clap::Parser;
use serde_json::Value;

/// devbind's options as its binary parses them (the binary adds only hidden test options).
#[derive(Parser)]
#[command(name = "devbind")]
struct Args {
    #[command(flatten)]
    options: devbind::Options,
}

/// What a run of devbind gave.
struct Output {
    code: u8,
    stdout: String,
    stderr: String,
}

/// devbind's library on `fake`, with its fake kernel.
fn devbind(fake: &FakeSysfs, args: &[&str]) -> Output {
    let argv = std::iter::once("devbind").chain(args.iter().copied());
    let parsed = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("devbind {args:?}: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = devbind::run(&parsed.options, &fake.root(), &fake.kernel(), &mut out, &mut err);
    Output { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

/// The devbind binary reading the tree at `root` (and the host's kernel: nothing here may need it).
fn binary(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devbind")).arg("--sysfs-root").arg(root).args(args).output().expect("run devbind")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn ok(fake: &FakeSysfs, args: &[&str]) -> String {
    let out = devbind(fake, args);
    assert_eq!(out.code, 0, "devbind {args:?}: {}", out.stderr);
    out.stdout
}

/// A runtime error: exit status 1 and exactly one `devbind: ...` line on stderr.
fn runtime_error(fake: &FakeSysfs, args: &[&str]) -> String {
    let out = devbind(fake, args);
    let err = out.stderr;
    assert_eq!(out.code, devbind::EXIT_FAILURE, "devbind {args:?}: {err}");
    assert!(err.starts_with("devbind: ") && err.ends_with('\n') && err.lines().count() == 1, "{err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The lab's layout: e1000 at 02.0 (eth1, group 1) and modern virtio at 03.0 (eth0, group 2),
/// both on their kernel drivers.
fn lab_like() -> FakeSysfs {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:02.0", 0x8086, 0x100e).driver("e1000").group(1).iface("eth1"))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:03.0", 0x1af4, 0x1041).driver("virtio-pci").group(2).iface("eth0"))
        .unwrap();
    fake
}

fn status_json(fake: &FakeSysfs) -> Vec<Value> {
    let text = ok(fake, &["--status", "--json"]);
    match serde_json::from_str(&text).unwrap() {
        Value::Array(devices) => devices,
        other => panic!("not an array: {other}"),
    }
}

fn device<'a>(devices: &'a [Value], addr: &str) -> &'a Value {
    devices.iter().find(|d| d["address"] == addr).unwrap_or_else(|| panic!("{addr} not in {devices:?}"))
}

#[test]
fn status_groups_devices_like_dpdk_devbind() {
    let fake = lab_like();
    fake.add_device(FakeDevice::new("0000:00:04.0", 0x8086, 0x10c9).driver("vfio-pci").group(3))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:05.0", 0x8086, 0x10c9).group(4))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:06.0", 0x8086, 0x37c8).class(0x0b4000).driver("qat_c62x"))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:1f.2", 0x8086, 0x2922).class(0x010601).driver("ahci"))
        .unwrap()
        .add_route("eth1")
        .unwrap()
        .set_pci_ids("8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n")
        .unwrap();
    let status = ok(&fake, &["--status"]);
    let want = "\
Network devices using a user-space driver (vfio-pci, uio_pci_generic, igb_uio)
==============================================================================
0000:00:04.0 '8086:10c9' drv=vfio-pci

Network devices using kernel driver
===================================
0000:00:02.0 '82540EM Gigabit Ethernet Controller 8086:100e' if=eth1 drv=e1000 unused=vfio-pci *Active*
0000:00:03.0 '1af4:1041' if=eth0 drv=virtio-pci unused=vfio-pci

Other Network devices
=====================
0000:00:05.0 '8086:10c9' unused=vfio-pci

Crypto devices using a user-space driver (vfio-pci, uio_pci_generic, igb_uio)
=============================================================================
<none>

Crypto devices using kernel driver
==================================
0000:00:06.0 '8086:37c8' drv=qat_c62x unused=vfio-pci

Other Crypto devices
====================
<none>

No 'Baseband' devices detected
==============================
";
    assert_eq!(status, want);
    // The binary prints the same, read-only, on the same tree.
    let out = binary(fake.path(), &["--status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);
}

#[test]
fn status_dev_net_shows_only_network_devices() {
    let fake = lab_like();
    fake.add_device(FakeDevice::new("0000:00:1f.2", 0x8086, 0x2922).class(0x010601).driver("ahci")).unwrap();
    let text = ok(&fake, &["--status-dev", "net"]);
    assert!(text.starts_with("Network devices using a user-space driver"), "{text}");
    assert!(!text.contains("Crypto") && !text.contains("0000:00:1f.2"), "{text}");
    let json: Value = serde_json::from_str(&ok(&fake, &["--status-dev", "net", "--json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
}

#[test]
fn json_has_every_scan_field() {
    let fake = lab_like();
    fake.add_route("eth1").unwrap();
    let devices = status_json(&fake);
    let e1000 = device(&devices, "0000:00:02.0");
    let want = serde_json::json!({
        "address": "0000:00:02.0", "vendor": "0x8086", "device": "0x100e",
        "subsystem_vendor": "0x1af4", "subsystem_device": "0x1100", "class": "0x020000",
        "kind": "net", "name": null, "driver": "e1000", "user_space_driver": false,
        "driver_override": null, "iommu_group": 1, "numa_node": null,
        "interfaces": ["eth1"], "active": true, "active_interfaces": ["eth1"], "active_masters": {}, "uio": null,
        "modalias": "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00",
        "bars": [{"index": 0, "start": "0xfebc0000", "len": 131072, "kind": "mem", "prefetchable": false}],
    });
    assert_eq!(*e1000, want);
    assert_eq!(device(&devices, "0000:00:03.0")["interfaces"], serde_json::json!(["eth0"]));
}

#[test]
fn bind_to_vfio_pci_and_back_by_address_and_by_interface() {
    let fake = lab_like();
    // By interface name, like dpdk-devbind.
    let out = ok(&fake, &["-b", "vfio-pci", "eth1"]);
    assert_eq!(out, "0000:00:02.0: bound to vfio-pci (was on e1000; loaded vfio_pci, vfio_iommu_type1)\n");
    let devices = status_json(&fake);
    let e1000 = device(&devices, "0000:00:02.0");
    assert_eq!((&e1000["driver"], &e1000["driver_override"]), (&Value::from("vfio-pci"), &Value::from("vfio-pci")));
    assert_eq!(e1000["interfaces"], serde_json::json!([]));
    let text = ok(&fake, &["-s"]);
    assert!(text.contains("=\n0000:00:02.0 '8086:100e' drv=vfio-pci\n"), "{text}");

    assert_eq!(ok(&fake, &["-b", "vfio-pci", "00:02.0"]), "0000:00:02.0: already on vfio-pci\n");
    // Back with the kernel's own choice, then out again and back by naming the driver.
    assert_eq!(ok(&fake, &["--bind", "kernel", "0000:00:02.0"]), "0000:00:02.0: bound to e1000 (was on vfio-pci)\n");
    assert_eq!(device(&status_json(&fake), "0000:00:02.0")["interfaces"], serde_json::json!(["eth1"]));
    ok(&fake, &["-b", "vfio-pci", "00:02.0"]);
    assert_eq!(ok(&fake, &["-b", "e1000", "00:02.0"]), "0000:00:02.0: bound to e1000 (was on vfio-pci)\n");
    let e1000 = device(&status_json(&fake), "0000:00:02.0").clone();
    assert_eq!((&e1000["driver"], &e1000["driver_override"]), (&Value::from("e1000"), &Value::Null));
}

#[test]
fn several_devices_at_once_and_status_after() {
    let fake = lab_like();
    let out = ok(&fake, &["-b", "uio_pci_generic", "00:02.0", "eth0", "0000:00:02.0", "--status"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0000:00:02.0: bound to uio_pci_generic (was on e1000; loaded uio_pci_generic)"));
    assert_eq!(lines.next(), Some("0000:00:03.0: bound to uio_pci_generic (was on virtio-pci)"));
    assert_eq!(lines.next(), Some("Network devices using a user-space driver (vfio-pci, uio_pci_generic, igb_uio)"));
    let devices = status_json(&fake);
    assert_eq!(device(&devices, "0000:00:02.0")["uio"], 0);
    assert_eq!(device(&devices, "0000:00:03.0")["uio"], 1);
}

#[test]
fn an_active_interface_is_refused_unless_forced() {
    let fake = lab_like();
    fake.add_route("eth1").unwrap();
    assert!(ok(&fake, &["-s"]).contains(" if=eth1 drv=e1000 *Active*\n"));
    let err = runtime_error(&fake, &["-b", "vfio-pci", "0000:00:02.0"]);
    assert_eq!(
        err,
        "devbind: 0000:00:02.0 has an active interface eth1 (it has routes): use --force to take it anyway, \
         which cuts that interface's traffic\n"
    );
    // With another device in the same command: checked first, so neither is touched.
    runtime_error(&fake, &["-b", "vfio-pci", "00:03.0", "00:02.0"]);
    runtime_error(&fake, &["-u", "eth1"]);
    // Already where the kernel put it: nothing would change, so nothing to refuse.
    assert_eq!(ok(&fake, &["-b", "kernel", "eth1"]), "0000:00:02.0: already on e1000\n");
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
    assert!(fake.modprobes().is_empty());

    assert_eq!(
        ok(&fake, &["-b", "vfio-pci", "--force", "00:02.0"]),
        "0000:00:02.0: bound to vfio-pci (was on e1000; loaded vfio_pci, vfio_iommu_type1)\n"
    );
}

#[test]
fn vfio_pci_is_refused_without_an_iommu() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:02.0", 0x8086, 0x100e).driver("e1000").iface("eth0")).unwrap();
    let err = runtime_error(&fake, &["-b", "vfio-pci", "00:02.0"]);
    assert_eq!(
        err,
        "devbind: cannot bind 0000:00:02.0 to vfio-pci: no IOMMU: boot with intel_iommu=on (or amd_iommu=on) \
         and enable VT-d/AMD-Vi, or use uio_pci_generic (IOVA as PA)\n"
    );
    assert!(fake.writes().is_empty());
    ok(&fake, &["-b", "uio_pci_generic", "00:02.0"]);
}

#[test]
fn unbind_leaves_the_device_on_no_driver() {
    let fake = lab_like();
    assert_eq!(ok(&fake, &["-u", "00:03.0"]), "0000:00:03.0: unbound from virtio-pci\n");
    assert_eq!(ok(&fake, &["--unbind", "00:03.0"]), "0000:00:03.0: was on no driver\n");
    let text = ok(&fake, &["--status-dev", "net"]);
    assert!(text.ends_with("Other Network devices\n=====================\n0000:00:03.0 '1af4:1041'\n"), "{text}");
    assert_eq!(ok(&fake, &["-b", "kernel", "00:03.0"]), "0000:00:03.0: bound to virtio-pci (was on no driver)\n");
}

#[test]
fn bad_and_unknown_devices_are_runtime_errors() {
    let fake = lab_like();
    let err = runtime_error(&fake, &["-b", "vfio-pci", "00:02"]);
    assert!(err.starts_with("devbind: bad PCI address \"00:02\""), "{err}");
    let err = runtime_error(&fake, &["-b", "vfio-pci", "0000:00:09.0"]);
    assert_eq!(err, "devbind: no PCI device 0000:00:09.0: see `devbind --status`\n");
    let err = runtime_error(&fake, &["-u", "eth9"]);
    assert!(err.starts_with("devbind: `eth9` is neither a PCI address nor a network interface"), "{err}");
    let err = runtime_error(&fake, &["-b", "../../x", "00:02.0"]);
    assert!(err.starts_with("devbind: `../../x` is not a driver name"), "{err}");
    assert!(fake.writes().is_empty());
}

#[test]
fn a_module_that_will_not_load_is_a_runtime_error() {
    let fake = lab_like();
    fake.set_module_available("vfio_pci", None).unwrap();
    let err = runtime_error(&fake, &["-b", "vfio-pci", "00:02.0"]);
    assert!(
        err.starts_with("devbind: cannot load module vfio_pci for driver vfio-pci (`modprobe vfio_pci`: FATAL"),
        "{err}"
    );
    // The binary, on the host kernel's path with another modprobe program: the error says which
    // module, and nothing is written.
    let out = binary(fake.path(), &["--modprobe", "/bin/false", "-b", "uio_pci_generic", "00:02.0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot load module uio_pci_generic"), "{}", text(&out.stderr));
    let over = fake.read("sys/bus/pci/devices/0000:00:02.0/driver_override").unwrap();
    assert_eq!(over, "(null)\n", "nothing written");
}

#[test]
fn a_shared_iommu_group_gets_a_note() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap();
    let out = devbind(&fake, &["-b", "vfio-pci", "00:10.0"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.starts_with("devbind: note: IOMMU group 7 also holds 0000:00:10.1 (on e1000)"),
        "{}",
        out.stderr
    );
}

#[test]
fn devices_bound_in_one_command_get_no_note_about_each_other() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap();
    let out = devbind(&fake, &["-b", "vfio-pci", "00:10.0", "00:10.1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "10.1 is bound in the same command");
    assert_eq!(out.stdout.lines().count(), 2);
}

#[test]
fn a_device_with_a_bad_file_is_left_out_of_the_status_with_a_warning() {
    let fake = lab_like();
    fake.add_device(FakeDevice::new("0000:00:05.0", 0x8086, 0x10c9).resource("0x1000\n")).unwrap();
    let out = devbind(&fake, &["--status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let err = out.stderr;
    assert!(err.starts_with("devbind: warning: 0000:00:05.0 left out: ") && err.lines().count() == 1, "{err}");
    assert!(err.contains("resource: expected lines of `0xSTART 0xEND 0xFLAGS`"), "{err}");
    let text = out.stdout;
    assert!(
        text.contains("0000:00:02.0 ") && text.contains("0000:00:03.0 ") && !text.contains("0000:00:05.0"),
        "{text}"
    );
    // Naming it is still an error: nothing to act on.
    let err = runtime_error(&fake, &["-u", "00:05.0"]);
    assert!(err.contains("resource: expected lines"), "{err}");
}

#[test]
fn a_device_a_process_holds_is_refused_naming_the_process() {
    let fake = lab_like();
    ok(&fake, &["-b", "vfio-pci", "00:02.0"]);
    let writes = fake.writes().len();
    fake.add_process(1234, "pci-check", &["/dev/vfio/1"]).unwrap();
    for args in [
        &["-u", "00:02.0"][..],
        &["-b", "kernel", "00:02.0", "--force"],
        &["-b", "uio_pci_generic", "00:03.0", "00:02.0"],
    ] {
        let err = runtime_error(&fake, args);
        assert_eq!(
            err,
            "devbind: 0000:00:02.0 is in use: pci-check (pid 1234) has /dev/vfio/1 open, and taking the device \
             from its driver would wait until it exits: stop it first (`kill 1234`)\n"
        );
    }
    assert_eq!(fake.writes().len(), writes, "nothing written, 00:03.0 included");
}

#[test]
fn the_fake_kernel_only_runs_on_a_fake_tree_and_a_missing_sysfs_is_explained() {
    let dir = std::env::temp_dir().join(format!("burst-devbind-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = FakeKernel::at(&dir).unwrap_err().to_string();
    assert!(err.contains("is not a fake sysfs tree"), "{err}");
    let out = binary(&dir, &["--status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("mount sysfs on /sys"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_exit_with_2() {
    let fake = lab_like();
    for args in [
        &[][..],
        &["-b", "vfio-pci"],
        &["-u"],
        &["00:02.0"],
        &["--json"],
        &["-b", "vfio-pci", "-u", "00:02.0"],
        &["--status-dev", "disk"],
        &["--frobnicate"],
        // The shipped binary has no fake kernel to hand binding to.
        &["--fake-kernel", "-u", "00:02.0"],
    ] {
        let out = binary(fake.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("panicked"));
    }
    assert!(fake.writes().is_empty());
    let out = Command::new(env!("CARGO_BIN_EXE_devbind")).arg("--help").output().unwrap();
    assert!(out.status.success() && text(&out.stdout).contains("--bind <DRIVER>"));
    assert!(!text(&out.stdout).contains("sysfs-root"), "test options stay hidden");
}
