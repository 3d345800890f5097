//! Binding on fake trees, with the fake kernel (`crate::fake`) playing the kernel's part; the
//! host kernel's writes where a test needs nothing to react.

use super::*;
use crate::fake::{FakeDevice, FakeSysfs};

const E1000: &str = "0000:00:02.0";
const OVERRIDE: &str = "sys/bus/pci/devices/0000:00:02.0/driver_override";
const PROBE: &str = "sys/bus/pci/drivers_probe";

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

/// One e1000 on its kernel driver with interface eth0, in IOMMU group 1 unless `group` is None.
fn e1000(group: Option<u32>) -> FakeSysfs {
    let fake = FakeSysfs::new().unwrap();
    let mut dev = FakeDevice::new(E1000, 0x8086, 0x100e).driver("e1000").iface("eth0");
    if let Some(g) = group {
        dev = dev.group(g);
    }
    fake.add_device(dev).unwrap();
    fake
}

fn w(path: &str, value: &str) -> (String, String) {
    (path.to_string(), value.to_string())
}

#[test]
fn vfio_pci_and_back_to_the_kernel() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);

    let out = binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    assert_eq!(out.previous.as_deref(), Some("e1000"));
    assert_eq!((out.driver.as_str(), out.changed), ("vfio-pci", true));
    assert_eq!(out.loaded_modules, ["vfio_pci", "vfio_iommu_type1"]);
    assert!(out.notes.is_empty(), "{:?}", out.notes);
    assert_eq!(fake.modprobes(), ["vfio_pci", "vfio_iommu_type1"]);
    // The kernel's documented sequence, nothing else.
    assert_eq!(
        fake.writes(),
        [w(OVERRIDE, "vfio-pci"), w("sys/bus/pci/drivers/e1000/unbind", E1000), w(PROBE, E1000),]
    );
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!(dev.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(dev.driver_override.as_deref(), Some("vfio-pci"), "kept, so no kernel driver takes it back");
    assert!(dev.interfaces.is_empty());

    let back = binder.bind_kernel_default(addr(E1000), false).unwrap();
    assert_eq!((back.previous.as_deref(), back.driver.as_str()), (Some("vfio-pci"), "e1000"));
    assert!(back.changed && back.loaded_modules.is_empty());
    assert_eq!(
        fake.writes()[3..],
        [w(OVERRIDE, "\n"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000), w(PROBE, E1000)]
    );
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
    assert_eq!(dev.interfaces, ["eth0"]);

    // Already there: nothing is written.
    let again = binder.bind_kernel_default(addr(E1000), false).unwrap();
    assert!(!again.changed);
    assert_eq!(again.driver, "e1000");
    assert_eq!(fake.writes().len(), 6);
}

#[test]
fn naming_the_kernel_driver_also_goes_back_and_clears_the_override() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    let out = binder.bind(addr(E1000), "e1000", false).unwrap();
    assert_eq!((out.previous.as_deref(), out.driver.as_str()), (Some("vfio-pci"), "e1000"));
    assert_eq!(
        fake.writes()[3..],
        [w(OVERRIDE, "e1000"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000), w(PROBE, E1000), w(OVERRIDE, "\n"),]
    );
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
}

#[test]
fn binding_to_the_current_driver_does_nothing() {
    let fake = e1000(Some(1));
    fake.add_route("eth0").unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    // Not even the active-interface refusal: nothing would change.
    let out = Binder::new(&root, &kernel).bind(addr(E1000), "e1000", false).unwrap();
    assert!(!out.changed);
    assert!(fake.writes().is_empty() && fake.modprobes().is_empty());
}

#[test]
fn an_active_interface_is_refused_without_force() {
    let fake = e1000(Some(1));
    fake.add_route("eth0").unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    for result in
        [binder.bind(addr(E1000), "vfio-pci", false).map(|_| ()), binder.unbind(addr(E1000), false).map(|_| ())]
    {
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "0000:00:02.0 has an active interface eth0 (it has routes): use --force to take it anyway, \
             which cuts that interface's traffic"
        );
    }
    assert!(fake.writes().is_empty() && fake.modprobes().is_empty(), "refused before any change");

    let out = binder.bind(addr(E1000), "vfio-pci", true).unwrap();
    assert_eq!(out.driver, "vfio-pci");
    assert!(root.routed_interfaces().is_empty(), "the interface went, and its routes with it");
}

#[test]
fn vfio_pci_without_an_iommu_is_refused_and_uio_works() {
    let fake = e1000(None);
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    let err = binder.bind(addr(E1000), "vfio-pci", false).unwrap_err();
    assert!(matches!(err, BindError::NoIommu { .. }));
    assert_eq!(
        err.to_string(),
        "cannot bind 0000:00:02.0 to vfio-pci: no IOMMU: boot with intel_iommu=on (or amd_iommu=on) and \
         enable VT-d/AMD-Vi, or use uio_pci_generic (IOVA as PA)"
    );
    assert!(fake.writes().is_empty() && fake.modprobes().is_empty());

    let out = binder.bind(addr(E1000), "uio_pci_generic", false).unwrap();
    assert_eq!(out.loaded_modules, ["uio_pci_generic"]);
    assert_eq!(root.uio_index(addr(E1000)), Some(0));
    assert_eq!(root.device(addr(E1000)).unwrap().driver_override.as_deref(), Some("uio_pci_generic"));
}

#[test]
fn a_module_that_will_not_load_says_which() {
    let fake = e1000(Some(1));
    fake.set_module_available("vfio_pci", None).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "cannot load module vfio_pci for driver vfio-pci (`modprobe vfio_pci`: FATAL: Module vfio_pci not found"
        ),
        "{text}"
    );
    assert!(text.contains("install your kernel's modules"), "{text}");
    assert!(fake.writes().is_empty());
    assert_eq!(root.device(addr(E1000)).unwrap().driver.as_deref(), Some("e1000"));

    let err = Binder::new(&root, &kernel).bind(addr(E1000), "igb_uio", false).unwrap_err();
    assert!(err.to_string().contains("build it from dpdk-kmods"), "{err}");
}

#[test]
fn a_module_without_that_pci_driver_is_an_error() {
    let fake = e1000(Some(1));
    fake.set_module_available("vfio_iommu_type1", Some("")).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio_iommu_type1", false).unwrap_err();
    assert!(matches!(err, BindError::NotAPciDriver { .. }), "{err}");
    assert!(err.to_string().contains("no PCI driver vfio_iommu_type1 in /sys/bus/pci/drivers"), "{err}");
}

#[test]
fn a_missing_vfio_iommu_backend_is_a_note() {
    let fake = e1000(Some(1));
    fake.set_module_available("vfio_iommu_type1", None).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let out = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap();
    assert_eq!(out.driver, "vfio-pci");
    assert_eq!(out.notes.len(), 1);
    assert!(out.notes[0].starts_with("`modprobe vfio_iommu_type1` failed"), "{:?}", out.notes);
}

#[test]
fn bad_driver_names_and_unknown_devices() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    for name in ["", "../../../devices", "vfio pci", ".hidden"] {
        let err = binder.bind(addr(E1000), name, false).unwrap_err();
        assert!(matches!(err, BindError::BadDriverName { .. }), "{name:?}: {err}");
    }
    let err = binder.bind(addr("00:09.0"), "vfio-pci", false).unwrap_err();
    assert_eq!(err.to_string(), "no PCI device 0000:00:09.0: see `devbind --status`");
    assert!(binder.unbind(addr("00:09.0"), false).is_err());
    assert!(binder.bind_kernel_default(addr("00:09.0"), false).is_err());
    assert!(fake.writes().is_empty());
}

#[test]
fn unbind_leaves_no_driver_and_no_override() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    let out = binder.unbind(addr(E1000), false).unwrap();
    assert_eq!(out.previous.as_deref(), Some("vfio-pci"));
    assert_eq!(fake.writes()[3..], [w(OVERRIDE, "\n"), w("sys/bus/pci/drivers/vfio-pci/unbind", E1000)]);
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver, dev.driver_override), (None, None));
    // Again: nothing to unbind.
    assert_eq!(binder.unbind(addr(E1000), false).unwrap().previous, None);
    assert_eq!(fake.writes().len(), 5);
    // And from no driver back to the kernel's.
    assert_eq!(binder.bind_kernel_default(addr(E1000), false).unwrap().driver, "e1000");
}

#[test]
fn the_kernel_default_loads_the_module_by_modalias_when_needed() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new(E1000, 0x8086, 0x100e).driver("vfio-pci").group(1))
        .unwrap()
        .set_kernel_driver(0x8086, Some(0x100e), "e1000")
        .unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let out = Binder::new(&root, &kernel).bind_kernel_default(addr(E1000), false).unwrap();
    assert_eq!(out.driver, "e1000");
    let alias = "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00";
    assert_eq!(out.loaded_modules, [alias]);
    assert_eq!(fake.modprobes(), [alias]);
}

#[test]
fn no_kernel_driver_for_the_device_is_an_error() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new(E1000, 0x1234, 0x5678).driver("vfio-pci").group(1)).unwrap();
    fake.write(OVERRIDE, "vfio-pci\n").unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).bind_kernel_default(addr(E1000), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no kernel driver took 0000:00:02.0 (1234:5678): load the module for it (`modprobe MODULE`; \
         `lspci -k -s 0000:00:02.0` names it) and run `devbind --bind kernel 0000:00:02.0` again"
    );
    // Left as it was, not on no driver.
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
}

#[test]
fn a_failed_probe_write_puts_the_device_back() {
    let fake = e1000(Some(1));
    fake.fail_writes(PROBE, libc::EIO).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cannot write `0000:00:02.0` to ") && text.contains("drivers_probe"), "{text}");
    assert_eq!(
        fake.writes(),
        [
            w(OVERRIDE, "vfio-pci"),
            w("sys/bus/pci/drivers/e1000/unbind", E1000),
            w(PROBE, E1000),
            w(OVERRIDE, "\n"),
            w("sys/bus/pci/drivers/e1000/bind", E1000),
        ]
    );
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override), (Some("e1000"), None));
    assert_eq!(dev.interfaces, ["eth0"], "its interface is back");
}

#[test]
fn a_failed_probe_write_sends_a_device_back_to_its_user_space_driver() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    fake.fail_writes(PROBE, libc::EIO).unwrap();
    assert!(binder.bind_kernel_default(addr(E1000), false).is_err());
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
    assert!(binder.bind(addr(E1000), "e1000", false).is_err());
    let dev = root.device(addr(E1000)).unwrap();
    assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
}

#[test]
fn a_failed_unbind_write_restores_the_override() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    fake.fail_writes("sys/bus/pci/drivers/vfio-pci/unbind", libc::EBUSY).unwrap();
    for result in
        [binder.unbind(addr(E1000), false).map(drop), binder.bind_kernel_default(addr(E1000), false).map(drop)]
    {
        assert!(result.unwrap_err().to_string().contains("vfio-pci/unbind"));
        let dev = root.device(addr(E1000)).unwrap();
        assert_eq!((dev.driver.as_deref(), dev.driver_override.as_deref()), (Some("vfio-pci"), Some("vfio-pci")));
    }
}

#[test]
fn a_device_held_open_is_refused_naming_the_process_even_with_force() {
    let fake = e1000(Some(1));
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    binder.bind(addr(E1000), "vfio-pci", false).unwrap();
    let before = fake.writes().len();
    fake.add_process(4242, "l2fwd", &["/dev/null", "/dev/vfio/1"]).unwrap();
    fake.add_process(4343, "sshd", &["/dev/vfio/vfio", "/dev/vfio/2"]).unwrap();
    for force in [false, true] {
        let results = [
            binder.unbind(addr(E1000), force).map(drop),
            binder.bind(addr(E1000), "uio_pci_generic", force).map(drop),
            binder.bind_kernel_default(addr(E1000), force).map(drop),
        ];
        for result in results {
            assert_eq!(
                result.unwrap_err().to_string(),
                "0000:00:02.0 is in use: l2fwd (pid 4242) has /dev/vfio/1 open, and taking the device from its \
                 driver would wait until it exits: stop it first (`kill 4242`)"
            );
        }
    }
    assert_eq!(fake.writes().len(), before, "refused before any write");
    // Nothing would change: no refusal.
    assert!(!binder.bind(addr(E1000), "vfio-pci", false).unwrap().changed);

    // Two processes on /dev/uio0.
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new(E1000, 0x8086, 0x100e).driver("uio_pci_generic")).unwrap();
    fake.add_process(7, "a", &["/dev/uio0"]).unwrap().add_process(8, "b", &["/dev/uio0"]).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).unbind(addr(E1000), false).unwrap_err().to_string();
    assert!(err.contains("a (pid 7), b (pid 8) have /dev/uio0 open") && err.ends_with("(`kill 7 8`)"), "{err}");
}

#[test]
fn a_slave_of_a_routed_master_is_refused_without_force() {
    let fake = e1000(Some(1));
    fake.enslave("eth0", "br0").unwrap().add_route("br0").unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let binder = Binder::new(&root, &kernel);
    let err = binder.bind(addr(E1000), "vfio-pci", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:00:02.0 has an active interface eth0: it is enslaved to br0, which has routes: use --force to \
         take it anyway, which cuts br0's traffic through eth0"
    );
    assert!(fake.writes().is_empty());
    assert_eq!(binder.bind(addr(E1000), "vfio-pci", true).unwrap().driver, "vfio-pci");
}

#[test]
fn devices_bound_together_are_not_noted_and_dma_managing_drivers_are_fine() {
    let fake = FakeSysfs::new().unwrap();
    for a in ["0000:00:10.0", "0000:00:10.1"] {
        fake.add_device(FakeDevice::new(a, 0x8086, 0x100e).driver("e1000").group(7)).unwrap();
    }
    let (root, kernel) = (fake.root(), fake.kernel());
    let both = [addr("00:10.0"), addr("00:10.1")];
    let binder = Binder::new(&root, &kernel).with_batch(&both);
    for a in both {
        let out = binder.bind(a, "vfio-pci", false).unwrap();
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }
    // A group-mate on pci-stub or pcieport keeps the group viable: no note either; on
    // another driver, a bridge's shpchp included, a note.
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("pci-stub").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:1c.0", 0x8086, 0x2948).class(0x060400).driver("pcieport").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:1d.0", 0x8086, 0x244e).class(0x060400).driver("shpchp").group(7))
        .unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let out = Binder::new(&root, &kernel).bind(addr("00:10.0"), "vfio-pci", false).unwrap();
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(out.notes[0].starts_with("IOMMU group 7 also holds 0000:00:1d.0 (on shpchp)"), "{:?}", out.notes);
}

#[test]
fn other_devices_in_the_group_are_noted() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).driver("e1000").group(7))
        .unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let out = Binder::new(&root, &kernel).bind(addr("00:10.0"), "vfio-pci", false).unwrap();
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
    assert!(out.notes[0].starts_with("IOMMU group 7 also holds 0000:00:10.1 (on e1000)"), "{}", out.notes[0]);
}

#[test]
fn a_probe_that_does_not_take_is_reported_and_undone() {
    // The host kernel's writes on a fake tree: the files change, nothing reacts, as when
    // a driver's probe fails.
    let fake = e1000(Some(1));
    fake.add_driver("vfio-pci").unwrap();
    fake.write("proc/modules", "vfio_iommu_type1 1 0 - Live 0x0\n").unwrap();
    let root = fake.root();
    let kernel = HostKernel::with_modprobe("/bin/false");
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "vfio-pci", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:00:02.0 did not bind to vfio-pci (it is on e1000 now): see the kernel's reason with `dmesg | tail`"
    );
    assert_eq!(fake.read("sys/bus/pci/drivers/e1000/unbind").unwrap(), E1000);
    assert_eq!(fake.read(PROBE).unwrap(), E1000);
    // driver_override is back to unset (a lone newline; the real kernel shows "(null)").
    assert!(fake.read(OVERRIDE).unwrap().starts_with('\n'));
}

#[test]
fn the_host_modprobe_reports_failures() {
    let fake = e1000(Some(1));
    let root = fake.root();
    let kernel = HostKernel::with_modprobe("/bin/false");
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
    assert!(err.to_string().contains("(`modprobe uio_pci_generic`: failed)"), "{err}");
    let kernel = HostKernel::with_modprobe("/nonexistent/modprobe");
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/modprobe not found (install kmod)"), "{err}");
    assert_eq!(fake.read(OVERRIDE).unwrap(), "(null)\n", "nothing written");
}

#[test]
fn a_missing_attribute_is_a_write_error_naming_it() {
    let fake = e1000(Some(1));
    std::fs::remove_file(fake.path().join(PROBE)).unwrap();
    let (root, kernel) = (fake.root(), fake.kernel());
    let err = Binder::new(&root, &kernel).bind(addr(E1000), "uio_pci_generic", false).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cannot write `0000:00:02.0` to ") && text.contains("drivers_probe"), "{text}");
}

#[test]
fn the_fake_kernel_refuses_a_real_tree() {
    assert!(crate::fake::FakeKernel::at("/").is_err());
}

#[test]
fn module_names_use_underscores() {
    assert_eq!(module_for_driver("vfio-pci"), "vfio_pci");
    assert_eq!(module_for_driver("uio_pci_generic"), "uio_pci_generic");
    assert_eq!(module_for_driver("virtio-pci"), "virtio_pci");
}
