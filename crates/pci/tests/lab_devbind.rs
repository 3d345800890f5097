//! devbind on a real kernel, in the lab: status, binding to vfio-pci and uio_pci_generic and
//! back to the kernel drivers, and the refusals (active interface, a device a process holds
//! open, vfio-pci without an IOMMU).
//! Each test boots QEMU once (TCG unless KVM really works); `cargo xtask setup` must have run.

use std::time::{Duration, Instant};

use burst_lab::{Iommu, Lab, LabConfig, NicModel, Output};
use serde_json::Value;

const E1000: &str = "0000:00:02.0";
const VIRTIO: &str = "0000:00:03.0";

fn boot(nics: &[NicModel], iommu: Iommu) -> Lab {
    let mut cfg = LabConfig::with_nics(nics);
    cfg.iommu = iommu;
    let start = Instant::now();
    let lab = Lab::boot(cfg).expect("lab boots (run `cargo xtask setup` first)");
    eprintln!("lab with {nics:?}, IOMMU {iommu:?}: up in {:.1} s", start.elapsed().as_secs_f64());
    lab
}

fn devbind(lab: &Lab, args: &[&str]) -> Output {
    let argv: Vec<&str> = std::iter::once("devbind").chain(args.iter().copied()).collect();
    lab.run(&argv, Duration::from_secs(60)).unwrap_or_else(|e| panic!("devbind {args:?}: {e}"))
}

fn devbind_ok(lab: &Lab, args: &[&str]) -> String {
    let out = devbind(lab, args);
    assert!(out.status.success(), "devbind {args:?}: {} {}", out.status, out.stderr_str());
    out.stdout_str()
}

/// A refusal: exit status 1 and one `devbind: ...` line on stderr, which is returned.
fn devbind_refused(lab: &Lab, args: &[&str]) -> String {
    let out = devbind(lab, args);
    let err = out.stderr_str();
    assert_eq!(out.status.shell_code(), 1, "devbind {args:?}: {err}");
    assert!(err.starts_with("devbind: ") && err.lines().count() == 1, "{err:?}");
    err
}

/// `devbind --status --json`'s entry for `addr`.
fn status_of(lab: &Lab, addr: &str) -> Value {
    let text = devbind_ok(lab, &["--status", "--json"]);
    let devices: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    devices.into_iter().find(|d| d["address"] == addr).unwrap_or_else(|| panic!("{addr} not in {text}"))
}

/// `pci-check hold ADDR` in the background: the device stays open until the process is
/// signalled. Its PID, from its `pid=` line.
fn hold<'l>(lab: &'l Lab, addr: &str) -> (burst_lab::Process<'l>, String) {
    let mut p = lab.spawn(&["pci-check", "hold", addr]).unwrap();
    p.wait_for_stdout("binding=", Duration::from_secs(30)).unwrap_or_else(|e| panic!("pci-check hold {addr}: {e}"));
    let out = String::from_utf8_lossy(p.stdout()).into_owned();
    let pid =
        out.lines().find_map(|l| l.strip_prefix("pid=")).unwrap_or_else(|| panic!("no pid in {out:?}")).to_string();
    (p, pid)
}

/// Unbinding a device that a process holds open would block in the kernel until the process
/// exits: devbind refuses at once, naming the process, `--force` or not. Then lets it go.
fn refused_while_held(lab: &Lab, addr: &str, file: &str, args: &[&[&str]]) {
    let (p, pid) = hold(lab, addr);
    for args in args {
        let t = Instant::now();
        let err = devbind_refused(lab, args);
        let took = t.elapsed();
        assert_eq!(
            err.trim_end(),
            format!(
                "devbind: {addr} is in use: pci-check (pid {pid}) has {file} open, and taking the device from its \
                 driver would wait until it exits: stop it first (`kill {pid}`)"
            )
        );
        eprintln!("devbind {args:?} refused in {:.2} s while pid {pid} holds {file}", took.as_secs_f64());
        assert!(took < Duration::from_secs(10), "refusing took {took:?}");
    }
    p.signal(15).unwrap();
    let out = p.wait(Duration::from_secs(10)).unwrap();
    assert_eq!(out.status, burst_lab::ExitStatus::Signal(15), "{}", out.stderr_str());
}

fn driver_of(lab: &Lab, addr: &str) -> Value {
    status_of(lab, addr)["driver"].clone()
}

/// The VFIO group device of `addr` exists: user space can open it.
fn assert_vfio_group_device(lab: &Lab, addr: &str) {
    let group = status_of(lab, addr)["iommu_group"].as_u64().unwrap_or_else(|| panic!("{addr} has no IOMMU group"));
    lab.sh_ok(&format!("test -c /dev/vfio/{group}")).unwrap_or_else(|e| panic!("no /dev/vfio/{group}: {e}"));
}

#[test]
fn vfio_pci_and_back_to_the_kernel_drivers_under_the_iommu() {
    let lab = boot(&[NicModel::E1000, NicModel::VirtioModern], Iommu::On);
    let start = Instant::now();
    let e1000_if = lab.nic_iface(0).unwrap();
    let virtio_if = lab.nic_iface(1).unwrap();

    // Both NICs on their kernel drivers, with their interfaces.
    let text = devbind_ok(&lab, &["--status"]);
    assert!(text.contains("Network devices using kernel driver\n"), "{text}");
    assert!(text.contains(&format!("{E1000} '8086:100e' if={e1000_if} drv=e1000")), "{text}");
    assert!(text.contains(&format!("{VIRTIO} '1af4:1041' if={virtio_if} drv=virtio-pci")), "{text}");
    assert!(!text.contains("0000:00:1e.0"), "the control channel is no network device: {text}");
    let e1000 = status_of(&lab, E1000);
    assert_eq!((e1000["vendor"].as_str(), e1000["device"].as_str()), (Some("0x8086"), Some("0x100e")));
    assert_eq!(e1000["interfaces"], serde_json::json!([e1000_if]));
    assert!(e1000["iommu_group"].is_u64() && !e1000["bars"].as_array().unwrap().is_empty());

    // An interface with an address and a route is active: refused without --force.
    lab.sh_ok(&format!("ip addr add 10.9.0.1/24 dev {e1000_if} && ip link set {e1000_if} up")).unwrap();
    assert!(devbind_ok(&lab, &["--status"]).contains(&format!("if={e1000_if} drv=e1000 *Active*")));
    let err = devbind_refused(&lab, &["-b", "vfio-pci", E1000]);
    assert_eq!(
        err.trim_end(),
        format!(
            "devbind: {E1000} has an active interface {e1000_if} (it has routes): use --force to take it \
             anyway, which cuts that interface's traffic"
        )
    );
    assert_eq!(driver_of(&lab, E1000), "e1000");
    let out = devbind_ok(&lab, &["-b", "vfio-pci", "--force", E1000]);
    assert!(out.starts_with(&format!("{E1000}: bound to vfio-pci (was on e1000; loaded vfio_pci")), "{out}");
    let e1000 = status_of(&lab, E1000);
    assert_eq!((&e1000["driver"], &e1000["active"]), (&Value::from("vfio-pci"), &Value::from(false)));
    assert_vfio_group_device(&lab, E1000);
    let group = e1000["iommu_group"].as_u64().unwrap();
    refused_while_held(
        &lab,
        E1000,
        &format!("/dev/vfio/{group}"),
        &[&["-u", E1000], &["-b", "e1000", "--force", E1000]],
    );
    assert_eq!(driver_of(&lab, E1000), "vfio-pci");

    // Back by naming the kernel driver, as with dpdk-devbind.
    let out = devbind_ok(&lab, &["-b", "e1000", E1000]);
    assert_eq!(out, format!("{E1000}: bound to e1000 (was on vfio-pci)\n"));
    let e1000 = status_of(&lab, E1000);
    assert_eq!((&e1000["driver"], &e1000["driver_override"]), (&Value::from("e1000"), &Value::Null));
    assert_eq!(e1000["interfaces"].as_array().map(Vec::len), Some(1), "{e1000}");

    // virtio by its interface name, then unbound, then back with the kernel's own choice.
    let out = devbind_ok(&lab, &["-b", "vfio-pci", &virtio_if]);
    assert_eq!(out, format!("{VIRTIO}: bound to vfio-pci (was on virtio-pci)\n"));
    assert_vfio_group_device(&lab, VIRTIO);
    let text = devbind_ok(&lab, &["--status-dev", "net"]);
    assert!(text.contains(&format!("=\n{VIRTIO} '1af4:1041' drv=vfio-pci\n")), "{text}");
    assert_eq!(devbind_ok(&lab, &["-u", "00:03.0"]), format!("{VIRTIO}: unbound from vfio-pci\n"));
    assert_eq!(driver_of(&lab, VIRTIO), Value::Null);
    assert!(devbind_ok(&lab, &["-s"]).contains(&format!("Other Network devices\n=====================\n{VIRTIO} ")));
    assert_eq!(
        devbind_ok(&lab, &["-b", "kernel", VIRTIO]),
        format!("{VIRTIO}: bound to virtio-pci (was on no driver)\n")
    );
    let virtio = status_of(&lab, VIRTIO);
    assert_eq!((&virtio["driver"], &virtio["driver_override"]), (&Value::from("virtio-pci"), &Value::Null));
    assert_eq!(virtio["interfaces"].as_array().map(Vec::len), Some(1), "{virtio}");
    eprintln!("devbind under the IOMMU: {:.1} s after boot", start.elapsed().as_secs_f64());
}

#[test]
fn uio_pci_generic_and_back_in_passthrough_mode() {
    let lab = boot(&[NicModel::E1000], Iommu::Pt);
    let start = Instant::now();
    let out = devbind_ok(&lab, &["-b", "uio_pci_generic", "00:02.0"]);
    assert_eq!(out, format!("{E1000}: bound to uio_pci_generic (was on e1000; loaded uio_pci_generic)\n"));
    let e1000 = status_of(&lab, E1000);
    assert_eq!(e1000["driver"], "uio_pci_generic");
    let uio = e1000["uio"].as_u64().unwrap_or_else(|| panic!("no uio device: {e1000}"));
    lab.sh_ok(&format!("test -c /dev/uio{uio}")).unwrap_or_else(|e| panic!("no /dev/uio{uio}: {e}"));
    refused_while_held(&lab, E1000, &format!("/dev/uio{uio}"), &[&["--bind", "kernel", E1000]]);

    assert_eq!(
        devbind_ok(&lab, &["--bind", "kernel", E1000]),
        format!("{E1000}: bound to e1000 (was on uio_pci_generic)\n")
    );
    let e1000 = status_of(&lab, E1000);
    assert_eq!((&e1000["driver"], &e1000["uio"]), (&Value::from("e1000"), &Value::Null));
    assert_eq!(e1000["interfaces"].as_array().map(Vec::len), Some(1), "{e1000}");
    eprintln!("devbind in pass-through mode: {:.1} s after boot", start.elapsed().as_secs_f64());
}

#[test]
fn vfio_pci_is_refused_without_an_iommu() {
    let lab = boot(&[NicModel::E1000], Iommu::Off);
    let err = devbind_refused(&lab, &["-b", "vfio-pci", E1000]);
    assert_eq!(
        err.trim_end(),
        format!(
            "devbind: cannot bind {E1000} to vfio-pci: no IOMMU: boot with intel_iommu=on (or amd_iommu=on) \
             and enable VT-d/AMD-Vi, or use uio_pci_generic (IOVA as PA)"
        )
    );
    assert_eq!(driver_of(&lab, E1000), "e1000");
    assert_eq!(status_of(&lab, E1000)["iommu_group"], Value::Null);
    // Nothing was loaded on the way to the refusal.
    let modules = lab.sh_ok("cat /proc/modules").unwrap();
    assert!(!modules.contains("vfio_pci"), "{modules}");
}
