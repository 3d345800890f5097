//! The scan against fake trees.

use super::*;
use crate::fake::{FakeDevice, FakeSysfs};

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

/// The lab's two NICs plus a disk controller: e1000 (eth1, with a route) and modern virtio
/// (eth0), each in its own IOMMU group.
fn lab_like() -> FakeSysfs {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(
        FakeDevice::new("0000:00:02.0", 0x8086, 0x100e).driver("e1000").group(1).iface("eth1").numa_node(0),
    )
    .unwrap()
    .add_device(FakeDevice::new("0000:00:03.0", 0x1af4, 0x1041).driver("virtio-pci").group(2).iface("eth0"))
    .unwrap()
    .add_device(FakeDevice::new("0000:00:1f.2", 0x8086, 0x2922).class(0x010601).driver("ahci").group(3))
    .unwrap()
    .add_route("eth1")
    .unwrap();
    fake
}

#[test]
fn scan_reads_every_field() {
    let fake = lab_like();
    let devices = fake.root().scan().unwrap();
    let addrs: Vec<String> = devices.iter().map(|d| d.address.to_string()).collect();
    assert_eq!(addrs, ["0000:00:02.0", "0000:00:03.0", "0000:00:1f.2"]);
    let e1000 = &devices[0];
    assert_eq!(
        *e1000,
        PciDeviceInfo {
            address: addr("0000:00:02.0"),
            vendor: 0x8086,
            device: 0x100e,
            subsystem_vendor: 0x1af4,
            subsystem_device: 0x1100,
            class: 0x020000,
            driver: Some("e1000".into()),
            iommu_group: Some(1),
            numa_node: Some(0),
            bars: vec![BarInfo { index: 0, start: 0xfebc0000, len: 0x20000, kind: BarKind::Mem, prefetchable: false }],
            interfaces: vec!["eth1".into()],
            active_interfaces: vec!["eth1".into()],
            active_masters: vec![],
            driver_override: None,
            modalias: Some("pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00".into()),
            uio: None,
        }
    );
    assert!(e1000.is_network() && e1000.is_active() && !e1000.on_user_space_driver());
    let virtio = &devices[1];
    assert_eq!((virtio.numa_node, virtio.is_active()), (None, false));
    assert_eq!(virtio.interfaces, ["eth0"]);
    assert_eq!(devices[2].kind(), DeviceKind::Other);
}

#[test]
fn device_reads_one_and_names_a_missing_one() {
    let fake = lab_like();
    let root = fake.root();
    assert_eq!(root.device(addr("00:03.0")).unwrap().driver.as_deref(), Some("virtio-pci"));
    let err = root.device(addr("0000:00:09.0")).unwrap_err();
    assert_eq!(err.to_string(), "no PCI device 0000:00:09.0: see `devbind --status`");
}

#[test]
fn driver_override_and_uio_show() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:04.0", 0x8086, 0x10c9).driver("uio_pci_generic")).unwrap();
    fake.write("sys/bus/pci/devices/0000:00:04.0/driver_override", "uio_pci_generic\n").unwrap();
    let root = fake.root();
    let dev = root.device(addr("00:04.0")).unwrap();
    assert_eq!(dev.driver_override.as_deref(), Some("uio_pci_generic"));
    assert_eq!(dev.uio, Some(0));
    assert_eq!(root.uio_index(dev.address), Some(0));
    assert!(dev.on_user_space_driver());
    assert_eq!(dev.iommu_group, None);
}

#[test]
fn iommu_groups_and_their_devices() {
    let fake = FakeSysfs::new().unwrap();
    assert!(!fake.root().iommu_present());
    fake.add_device(FakeDevice::new("0000:00:10.0", 0x8086, 0x100e).group(7))
        .unwrap()
        .add_device(FakeDevice::new("0000:00:10.1", 0x8086, 0x100e).group(7))
        .unwrap();
    let root = fake.root();
    assert!(root.iommu_present());
    assert_eq!(root.group_devices(7), [addr("00:10.0"), addr("00:10.1")]);
    assert!(root.group_devices(8).is_empty());
}

#[test]
fn modules_and_drivers() {
    let fake = lab_like();
    let root = fake.root();
    assert!(root.module_loaded("e1000"));
    assert!(root.module_loaded("virtio-pci"), "- and _ are the same");
    assert!(!root.module_loaded("vfio_pci"));
    assert!(root.driver_loaded("virtio-pci"));
    assert!(!root.driver_loaded("vfio-pci"));
    assert!(!root.driver_loaded("../devices"));
    assert_eq!(root.drivers(), ["ahci", "e1000", "virtio-pci"]);
}

#[test]
fn ipv6_routes_make_an_interface_active() {
    let fake = lab_like();
    fake.add_ipv6_route("eth0").unwrap();
    let root = fake.root();
    assert_eq!(root.routed_interfaces().into_iter().collect::<Vec<_>>(), ["eth0", "eth1"]);
    assert_eq!(root.device(addr("00:03.0")).unwrap().active_interfaces, ["eth0"]);
}

#[test]
fn device_arguments_are_addresses_or_interfaces() {
    let fake = lab_like();
    let root = fake.root();
    assert_eq!(root.resolve("0000:00:02.0").unwrap(), addr("00:02.0"));
    assert_eq!(root.resolve("00:03.0").unwrap(), addr("00:03.0"));
    assert_eq!(root.resolve("eth1").unwrap(), addr("00:02.0"));
    assert_eq!(root.resolve("eth0").unwrap(), addr("00:03.0"));
    let missing = root.resolve("00:09.0").unwrap_err();
    assert_eq!(missing.to_string(), "no PCI device 0000:00:09.0: see `devbind --status`");
    let bad = root.resolve("00:02").unwrap_err().to_string();
    assert!(bad.contains("bad PCI address \"00:02\"") && bad.contains("0000:00:02.0"), "{bad}");
    let bad = root.resolve("0000:00:20.0").unwrap_err().to_string();
    assert!(bad.contains("device 20 is over"), "{bad}");
    let none = root.resolve("eth7").unwrap_err().to_string();
    assert!(none.starts_with("`eth7` is neither a PCI address nor a network interface"), "{none}");
}

#[test]
fn a_tree_without_pci_says_to_mount_sysfs() {
    let dir = std::env::temp_dir().join(format!("burst-no-sysfs-{}", std::process::id()));
    let err = SysfsRoot::at(&dir).scan().unwrap_err();
    assert!(matches!(err, SysfsError::NoSysfs { .. }), "{err}");
    assert!(err.to_string().contains("mount sysfs on /sys"), "{err}");
}

#[test]
fn garbage_in_a_file_is_named_by_device_and_skipped_by_the_scan() {
    let fake = lab_like();
    let root = fake.root();
    fake.write("sys/bus/pci/devices/0000:00:02.0/vendor", "intel\n").unwrap();
    let err = root.device(addr("00:02.0")).unwrap_err().to_string();
    assert!(err.contains("0000:00:02.0/vendor: expected a hex vendor ID like 0x8086, found \"intel\""), "{err}");
    fake.write("sys/bus/pci/devices/0000:00:02.0/vendor", "0x18086\n").unwrap();
    assert!(root.device(addr("00:02.0")).is_err());
    fake.write("sys/bus/pci/devices/0000:00:02.0/vendor", "0x8086\n").unwrap();
    fake.write("sys/bus/pci/devices/0000:00:02.0/resource", "0x1000\n").unwrap();
    let err = root.device(addr("00:02.0")).unwrap_err().to_string();
    assert!(err.contains("resource: expected lines of `0xSTART 0xEND 0xFLAGS`"), "{err}");

    // The scan goes on without it, and says which device it left out and why.
    let scan = root.scan_all().unwrap();
    let addrs: Vec<String> = scan.devices.iter().map(|d| d.address.to_string()).collect();
    assert_eq!(addrs, ["0000:00:03.0", "0000:00:1f.2"]);
    assert_eq!(scan.skipped.len(), 1);
    assert_eq!(scan.skipped[0].0, addr("00:02.0"));
    assert!(scan.skipped[0].1.to_string().contains("resource: expected lines"), "{:?}", scan.skipped);
    assert_eq!(root.scan().unwrap().len(), 2);
    // Interface names still resolve for the devices that were read.
    assert_eq!(root.resolve("eth0").unwrap(), addr("00:03.0"));
}

#[test]
fn a_device_that_goes_away_is_no_device_not_a_read_error() {
    let fake = lab_like();
    let root = fake.root();
    // Gone from under the scan: its directory and link are removed (hot unplug).
    std::fs::remove_file(fake.path().join("sys/bus/pci/devices/0000:00:03.0")).unwrap();
    let err = root.device(addr("00:03.0")).unwrap_err();
    assert!(matches!(err, SysfsError::NoDevice { .. }), "{err}");
    // A link to a directory that is gone: the same.
    std::fs::remove_dir_all(fake.path().join("sys/devices/pci0000:00/0000:00:02.0")).unwrap();
    let err = root.device(addr("00:02.0")).unwrap_err();
    assert!(matches!(err, SysfsError::NoDevice { .. }), "{err}");
    let scan = root.scan_all().unwrap();
    assert_eq!((scan.devices.len(), scan.skipped.len()), (1, 0), "{:?}", scan.skipped);
}

#[test]
fn a_slave_of_a_routed_bridge_or_bond_is_active() {
    let fake = lab_like();
    let root = fake.root();
    // eth0 (00:03.0) in bond0, which is in br0; only br0 has a route.
    fake.enslave("eth0", "bond0").unwrap().enslave("bond0", "br0").unwrap();
    let dev = root.device(addr("00:03.0")).unwrap();
    assert!(dev.active_interfaces.is_empty(), "no routes yet: {dev:?}");
    fake.add_route("br0").unwrap();
    let dev = root.device(addr("00:03.0")).unwrap();
    assert_eq!(dev.active_interfaces, ["eth0"]);
    assert_eq!(dev.active_masters, [("eth0".to_string(), "br0".to_string())]);
    assert!(dev.is_active());
    // A route on the interface itself is the plain case.
    assert!(root.device(addr("00:02.0")).unwrap().active_masters.is_empty());
}

#[test]
fn missing_optional_files_are_none() {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:05.0", 0x8086, 0x100e).without_modalias()).unwrap();
    for file in ["numa_node", "resource", "driver_override", "subsystem_vendor"] {
        std::fs::remove_file(fake.path().join("sys/bus/pci/devices/0000:00:05.0").join(file)).unwrap();
    }
    let dev = fake.root().device(addr("00:05.0")).unwrap();
    assert_eq!((dev.numa_node, dev.bars.len(), dev.driver_override, dev.modalias), (None, 0, None, None));
    assert_eq!((dev.subsystem_vendor, dev.subsystem_device), (0, 0x1100));
}

#[test]
fn pci_ids_under_the_root_name_devices() {
    let fake = lab_like();
    assert!(PciIds::load(&fake.root()).is_none());
    fake.set_pci_ids("8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n").unwrap();
    let ids = PciIds::load(&fake.root()).unwrap();
    assert_eq!(ids.device_name(0x8086, 0x100e), Some("82540EM Gigabit Ethernet Controller"));
}

#[test]
fn the_hosts_sysfs_scans_read_only() {
    // Reading the machine's own devices is safe, and must not fail where there is sysfs.
    let root = SysfsRoot::host();
    if root.devices_dir().is_dir() {
        let devices = root.scan().unwrap();
        assert!(devices.windows(2).all(|w| w[0].address < w[1].address));
    }
}

#[test]
fn holders_are_the_processes_with_the_file_open() {
    let fake = lab_like();
    let root = fake.root();
    assert!(root.holders("/dev/vfio/1").is_empty());
    fake.add_process(300, "testpmd", &["/dev/vfio/vfio", "/dev/vfio/1"])
        .unwrap()
        .add_process(20, "l2fwd", &["/dev/vfio/1"])
        .unwrap()
        .add_process(21, "other", &["/dev/vfio/10", "/dev/uio1"])
        .unwrap();
    let holders = root.holders("/dev/vfio/1");
    assert_eq!(holders.iter().map(|h| (h.pid, h.name.as_str())).collect::<Vec<_>>(), [(20, "l2fwd"), (300, "testpmd")]);
    assert_eq!(holders[0].to_string(), "l2fwd (pid 20)");
    assert!(root.holders("/dev/uio0").is_empty());
    assert_eq!(root.holders("/dev/uio1").len(), 1);
}
