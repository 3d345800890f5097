//! IOMMU groups: whether a group can be used by VFIO (every device in it on a driver that
//! leaves DMA to its owner, or on none), and who holds a group file open when it cannot be.

use std::fs;
use std::path::Path;

use super::VfioError;
use crate::address::PciAddress;
use crate::sysfs::{device_dir, link_name, SysfsRoot};

/// Whether a device on `driver` leaves its IOMMU group usable by VFIO. Since Linux 5.19
/// (`iommu_group_claim_dma_owner`) a group is viable when every device in it is on no driver or
/// on a driver that sets `driver_managed_dma`: vfio-pci and its variant drivers
/// (`mlx5_vfio_pci`, `hisi_acc_vfio_pci`, ...), pci-stub and pcieport. Any other driver, a
/// bridge's `shpchp` included, makes the group unusable.
pub fn keeps_group_viable(driver: &str) -> bool {
    matches!(driver, "vfio-pci" | "pci-stub" | "pcieport") || driver.ends_with("_vfio_pci")
}

/// The IOMMU group of `addr`, after checking that every other device in it is on no driver or
/// on one that keeps the group viable ([`keeps_group_viable`]).
pub fn check_group_viable(sysfs_root: &Path, addr: PciAddress) -> Result<u32, VfioError> {
    let dev = device_dir(sysfs_root, addr);
    let link = dev.join("iommu_group");
    let group: u32 =
        link_name(&link).and_then(|g| g.parse().ok()).ok_or_else(|| VfioError::NoGroup { addr, path: link.clone() })?;
    let members = sysfs_root.join(format!("sys/kernel/iommu_groups/{group}/devices"));
    let mut names: Vec<String> = fs::read_dir(&members)
        .map(|d| d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    names.sort();
    for name in names {
        if name == addr.to_string() {
            continue;
        }
        let Some(driver) = link_name(&members.join(&name).join("driver")) else { continue };
        if !keeps_group_viable(&driver) {
            return Err(VfioError::GroupNotViable { addr, group, other: name, driver });
        }
    }
    Ok(group)
}

/// What to do when opening a device of `group` failed with `source`. EBUSY on the group file
/// means someone has it open already (a group file opens once): this process through another
/// container, or another process.
pub(super) fn open_hint(sysfs_root: &Path, group: u32, source: &vfio_ioctls::VfioError) -> String {
    const GENERIC: &str = "check that it is bound to vfio-pci (`devbind --status`) and that we are root";
    let busy = matches!(source, vfio_ioctls::VfioError::OpenGroup(e, _) if e.raw_os_error() == Some(libc::EBUSY));
    if !busy {
        return GENERIC.to_string();
    }
    let file = format!("/dev/vfio/{group}");
    let holders = SysfsRoot::at(sysfs_root).holders(&file);
    let me = std::process::id();
    if holders.iter().any(|h| h.pid == me) {
        return format!(
            "this process has {file} open already, through another container: a group opens once per process, \
             so pass the first device's container (`PciDevice::container()`, the same `Arc<Container>`) to \
             `PciDevice::open` for every device"
        );
    }
    match holders.as_slice() {
        [] => format!("{file} is open already (another process?); {GENERIC}"),
        others => format!(
            "{file} is open in {}: a group opens once; stop that process first",
            others.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A fake sysfs group: `members` are (address, driver, class).
    fn fake_group(tag: &str, members: &[(&str, Option<&str>, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("burst-pci-vfio-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let groups = root.join("sys/kernel/iommu_groups/7/devices");
        fs::create_dir_all(&groups).unwrap();
        fs::create_dir_all(root.join("sys/bus/pci/drivers")).unwrap();
        for (addr, driver, class) in members {
            let dev = root.join("sys/devices/pci0000:00").join(addr);
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("class"), format!("{class}\n")).unwrap();
            symlink(root.join("sys/kernel/iommu_groups/7"), dev.join("iommu_group")).unwrap();
            if let Some(d) = driver {
                let ddir = root.join("sys/bus/pci/drivers").join(d);
                fs::create_dir_all(&ddir).unwrap();
                symlink(&ddir, dev.join("driver")).unwrap();
            }
            fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
            symlink(&dev, root.join("sys/bus/pci/devices").join(addr)).unwrap();
            symlink(&dev, groups.join(addr)).unwrap();
        }
        root
    }

    #[test]
    fn a_group_with_a_device_on_a_kernel_driver_is_refused_naming_it() {
        let root = fake_group(
            "busy",
            &[("0000:00:10.0", Some("vfio-pci"), "0x020000"), ("0000:00:10.1", Some("e1000"), "0x020000")],
        );
        let err = check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IOMMU group 7 of 0000:00:10.0 is not viable: 0000:00:10.1 in the same group is bound to e1000; \
             VFIO needs every device of a group on vfio-pci (or pci-stub, pcieport) or on no driver: \
             bind it with `devbind -b vfio-pci 0000:00:10.1` or unbind it (`devbind -u 0000:00:10.1`)"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn unbound_devices_and_dma_managing_drivers_keep_a_group_viable() {
        // Linux 5.19+: no driver, or a driver with driver_managed_dma (VFIO and its variant
        // drivers, pci-stub, pcieport).
        let root = fake_group(
            "ok",
            &[
                ("0000:00:10.0", Some("vfio-pci"), "0x020000"),
                ("0000:00:10.1", None, "0x020000"),
                ("0000:00:10.2", Some("vfio-pci"), "0x020000"),
                ("0000:00:10.3", Some("mlx5_vfio_pci"), "0x020000"),
                ("0000:00:10.4", Some("pci-stub"), "0x020000"),
                ("0000:00:1c.0", Some("pcieport"), "0x060400"),
            ],
        );
        assert_eq!(check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap(), 7);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_bridge_on_another_driver_makes_the_group_unusable() {
        // Before 5.19 a bridge on any driver was let through; now only driver_managed_dma counts.
        let root = fake_group(
            "bridge",
            &[("0000:00:10.0", Some("vfio-pci"), "0x020000"), ("0000:00:1c.0", Some("shpchp"), "0x060400")],
        );
        let err = check_group_viable(&root, "0000:00:10.0".parse().unwrap()).unwrap_err();
        assert!(
            matches!(&err, VfioError::GroupNotViable { other, driver, .. } if other == "0000:00:1c.0" && driver == "shpchp"),
            "{err}"
        );
        fs::remove_dir_all(root).unwrap();
        for (driver, viable) in [
            ("vfio-pci", true),
            ("hisi_acc_vfio_pci", true),
            ("pci-stub", true),
            ("pcieport", true),
            ("shpchp", false),
            ("e1000", false),
            ("vfio_iommu_type1", false),
        ] {
            assert_eq!(keeps_group_viable(driver), viable, "{driver}");
        }
    }

    #[test]
    fn no_group_link_says_an_iommu_is_needed() {
        let root = fake_group("nogroup", &[("0000:00:02.0", Some("vfio-pci"), "0x020000")]);
        fs::remove_file(root.join("sys/devices/pci0000:00/0000:00:02.0/iommu_group")).unwrap();
        let err = check_group_viable(&root, "0000:00:02.0".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("has no IOMMU group") && err.contains("intel_iommu=on"), "{err}");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_busy_group_says_who_has_it() {
        let root = fake_group("busy-hint", &[("0000:00:02.0", Some("vfio-pci"), "0x020000")]);
        let busy = || vfio_ioctls::VfioError::OpenGroup(std::io::Error::from_raw_os_error(libc::EBUSY), "7".into());
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.starts_with("/dev/vfio/7 is open already"), "{hint}");
        // This process: a second container for a device of the same group.
        let fd = root.join(format!("proc/{}/fd", std::process::id()));
        fs::create_dir_all(&fd).unwrap();
        symlink("/dev/vfio/7", fd.join("9")).unwrap();
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.contains("through another container") && hint.contains("the same `Arc<Container>`"), "{hint}");
        assert!(!hint.contains("no other process"), "{hint}");
        fs::remove_dir_all(root.join("proc")).unwrap();
        // Another process.
        let other = root.join("proc/1/fd");
        fs::create_dir_all(&other).unwrap();
        symlink("/dev/vfio/7", other.join("5")).unwrap();
        fs::write(root.join("proc/1/comm"), "testpmd\n").unwrap();
        let hint = open_hint(&root, 7, &busy());
        assert!(hint.starts_with("/dev/vfio/7 is open in testpmd (pid 1)"), "{hint}");
        // Anything else: the usual checks.
        let hint = open_hint(&root, 7, &vfio_ioctls::VfioError::GroupViable);
        assert!(hint.contains("bound to vfio-pci"), "{hint}");
        fs::remove_dir_all(root).unwrap();
    }
}
