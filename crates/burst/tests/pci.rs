//! PCI device selection on fake sysfs trees (`burst_pci::fake`): which devices become ports and
//! what `-a` errors say. Nothing here touches the host's devices.

use burst::ethdev::{DevArgs, EthDev, EthError, PciDriver, PciId, PciProbe, PciSpec, Registry};
use burst::pci::PciAddress;
use burst::probe::select_pci;
use burst::{EalOptions, Runtime};
use burst_pci::fake::{FakeDevice, FakeSysfs};

fn refuse(_: PciProbe) -> Result<Box<dyn EthDev>, EthError> {
    Err(EthError::NotSupported { driver: "net_test", what: "probe" })
}

static TEST_PCI: PciDriver = PciDriver { name: "net_test", ids: &[PciId::new(0x8086, 0x100e)], probe: refuse };

fn registry() -> Registry {
    Registry::new().pci(&TEST_PCI)
}

fn addr(s: &str) -> PciAddress {
    s.parse().unwrap()
}

fn fake() -> FakeSysfs {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new("0000:00:02.0", 0x8086, 0x100e).driver("vfio-pci").group(2)).unwrap();
    fake.add_device(FakeDevice::new("0000:00:03.0", 0x8086, 0x100e).driver("uio_pci_generic")).unwrap();
    fake.add_device(FakeDevice::new("0000:00:04.0", 0x8086, 0x100e).driver("e1000").group(4).iface("eth0")).unwrap();
    fake.add_device(FakeDevice::new("0000:00:05.0", 0x1af4, 0x1000).driver("vfio-pci").group(5)).unwrap();
    fake.add_device(FakeDevice::new("0000:00:06.0", 0x8086, 0x100e).driver("vfio-pci").group(6)).unwrap();
    fake.add_device(FakeDevice::new("0000:00:07.0", 0x8086, 0x100e)).unwrap();
    fake.add_device(FakeDevice::new("0000:00:08.0", 0x8086, 0x100e).driver("igb_uio")).unwrap();
    fake
}

#[test]
fn without_allow_every_user_space_device_a_driver_takes_is_chosen_minus_blocked() {
    let fake = fake();
    let chosen = select_pci(&fake.root(), &registry(), &[], &[addr("00:06.0")]).unwrap();
    let got: Vec<(String, &str)> = chosen.iter().map(|c| (c.info.address.to_string(), c.driver.name)).collect();
    assert_eq!(got, [("0000:00:02.0".to_string(), "net_test"), ("0000:00:03.0".to_string(), "net_test")]);
    // No PCI driver in the registry: nothing is chosen.
    assert!(select_pci(&fake.root(), &Registry::new(), &[], &[]).unwrap().is_empty());
}

#[test]
fn allowed_devices_are_chosen_in_address_order_with_their_arguments() {
    let fake = fake();
    let (_, args) = DevArgs::parse("0000:00:03.0,rxq=2").unwrap();
    let allow = [
        PciSpec { addr: addr("00:03.0"), args: args.clone() },
        PciSpec { addr: addr("00:02.0"), args: DevArgs::none("0000:00:02.0") },
    ];
    let chosen = select_pci(&fake.root(), &registry(), &allow, &[]).unwrap();
    let got: Vec<String> = chosen.iter().map(|c| c.info.address.to_string()).collect();
    assert_eq!(got, ["0000:00:02.0", "0000:00:03.0"]);
    assert_eq!(chosen[1].args.get("rxq"), Some("2"));
}

fn init_error(fake: &FakeSysfs, allow: &str, registry: Registry) -> burst::EalError {
    let opts = EalOptions::new().no_huge().sysfs_root(fake.path()).allow(allow);
    Runtime::init_with(opts, registry).unwrap_err()
}

#[test]
fn an_allowed_device_on_a_kernel_driver_says_how_to_bind_it() {
    let fake = fake();
    let err = init_error(&fake, "00:04.0", registry());
    assert_eq!(
        err.to_string(),
        "-a 0000:00:04.0: 0000:00:04.0 is bound to e1000, a kernel driver: run `devbind -b vfio-pci 0000:00:04.0` (or uio_pci_generic)"
    );
    assert_eq!(err.exit_code(), 1);
    let err = init_error(&fake, "00:07.0", registry()).to_string();
    assert!(err.contains("is bound to no driver: run `devbind -b vfio-pci 0000:00:07.0`"), "{err}");
    let err = init_error(&fake, "00:08.0", registry()).to_string();
    assert!(
        err.contains("bound to igb_uio, which burst does not drive: run `devbind -b vfio-pci 0000:00:08.0`"),
        "{err}"
    );
}

#[test]
fn an_allowed_device_that_is_missing_or_has_no_driver_is_an_error() {
    let fake = fake();
    let err = init_error(&fake, "00:09.0", registry()).to_string();
    assert_eq!(err, "-a 0000:00:09.0: there is no PCI device 0000:00:09.0: check the address with `devbind --status`");
    let err = init_error(&fake, "00:05.0", registry()).to_string();
    assert_eq!(err, "-a 0000:00:05.0: no burst driver takes 1af4:1000: the drivers here take net_test (8086:100e)");
    let err = init_error(&fake, "00:02.0", Registry::new()).to_string();
    assert!(err.contains("no burst driver takes 8086:100e: this build has no PCI driver"), "{err}");
}

#[test]
fn a_tree_with_no_device_for_us_gives_vdev_ports_only() {
    let fake = fake();
    let opts = EalOptions::new().no_huge().sysfs_root(fake.path()).vdev("net_null0");
    // A registry with no PCI driver leaves the vfio-pci devices alone.
    let rt = Runtime::init_with(opts, Registry::new().vdev(&burst_net_null::DRIVER)).unwrap();
    assert_eq!(rt.ports().len(), 1);
    assert_eq!(rt.port(0).unwrap().name(), "net_null0");
    // Blocking everything we would take works the same.
    let opts = EalOptions::new().no_huge().sysfs_root(fake.path()).block("00:02.0").block("00:03.0").block("00:06.0");
    let rt = Runtime::init_with(opts, registry()).unwrap();
    assert!(rt.ports().is_empty());
}

#[test]
fn opening_a_chosen_device_that_cannot_be_opened_fails_init_with_the_reason() {
    let fake = fake();
    // uio_pci_generic: the fake tree has no /dev/uio0 to open (and the host's is never looked
    // at): init fails with the device's error.
    let err = init_error(&fake, "00:03.0", registry());
    assert!(matches!(err, burst::EalError::Device(_)), "{err:?}");
    let text = err.to_string();
    let node = fake.path().join("dev/uio0");
    assert!(text.contains(&format!("opening {} for 0000:00:03.0 failed", node.display())), "{text}");
}
