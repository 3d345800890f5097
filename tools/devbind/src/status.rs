//! `--status`: devices grouped like `dpdk-devbind.py --status`, or JSON.

use std::fmt::Write;

use burst_pci::sysfs::{BarKind, DeviceKind, PciDeviceInfo, PciIds, SysfsRoot, USER_SPACE_DRIVERS};
use serde_json::{json, Value};

/// Sections per kind of device, each device on one line:
///
/// ```text
/// Network devices using a user-space driver (vfio-pci, uio_pci_generic, igb_uio)
/// ==============================================================================
/// 0000:00:02.0 '82540EM Gigabit Ethernet Controller 8086:100e' drv=vfio-pci unused=uio_pci_generic
///
/// Network devices using kernel driver
/// ===================================
/// 0000:00:03.0 '1af4:1041' if=eth0 drv=virtio-pci unused=vfio-pci *Active*
///
/// Other Network devices
/// =====================
/// <none>
/// ```
pub fn text(root: &SysfsRoot, devices: &[PciDeviceInfo], kinds: &[DeviceKind]) -> String {
    let ids = PciIds::load(root);
    let loaded: Vec<&str> = USER_SPACE_DRIVERS.iter().copied().filter(|d| root.driver_loaded(d)).collect();
    let mut out = String::new();
    for &kind in kinds {
        let of_kind: Vec<&PciDeviceInfo> = devices.iter().filter(|d| d.kind() == kind).collect();
        if !out.is_empty() {
            out.push('\n');
        }
        if of_kind.is_empty() {
            section(&mut out, &format!("No '{}' devices detected", kind.title()), &[]);
            continue;
        }
        let line = |d: &&PciDeviceInfo| device_line(d, ids.as_ref(), &loaded);
        let user: Vec<String> = of_kind.iter().filter(|d| d.on_user_space_driver()).map(line).collect();
        let kernel: Vec<String> =
            of_kind.iter().filter(|d| d.driver.is_some() && !d.on_user_space_driver()).map(line).collect();
        let none: Vec<String> = of_kind.iter().filter(|d| d.driver.is_none()).map(line).collect();
        let title = kind.title();
        section(
            &mut out,
            &format!("{title} devices using a user-space driver ({})", USER_SPACE_DRIVERS.join(", ")),
            &user,
        );
        out.push('\n');
        section(&mut out, &format!("{title} devices using kernel driver"), &kernel);
        out.push('\n');
        section(&mut out, &format!("Other {title} devices"), &none);
    }
    out
}

fn section(out: &mut String, title: &str, lines: &[String]) {
    let _ = writeln!(out, "{title}\n{}", "=".repeat(title.len()));
    if lines.is_empty() && !title.starts_with("No '") {
        out.push_str("<none>\n");
    }
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// `0000:00:02.0 'NAME 8086:100e' if=eth0 drv=e1000 unused=vfio-pci *Active*`.
fn device_line(d: &PciDeviceInfo, ids: Option<&PciIds>, loaded: &[&str]) -> String {
    let id = format!("{:04x}:{:04x}", d.vendor, d.device);
    let desc = match ids.and_then(|ids| ids.device_name(d.vendor, d.device)) {
        Some(name) => format!("{name} {id}"),
        None => id,
    };
    let mut line = format!("{} '{desc}'", d.address);
    if !d.interfaces.is_empty() {
        let _ = write!(line, " if={}", d.interfaces.join(","));
    }
    if let Some(driver) = &d.driver {
        let _ = write!(line, " drv={driver}");
    }
    let unused: Vec<&str> = loaded.iter().copied().filter(|u| d.driver.as_deref() != Some(u)).collect();
    if !unused.is_empty() {
        let _ = write!(line, " unused={}", unused.join(","));
    }
    if d.is_active() {
        line.push_str(" *Active*");
    }
    line
}

/// The devices as a JSON array, one object per device with every field of the scan.
pub fn json(root: &SysfsRoot, devices: &[PciDeviceInfo]) -> String {
    let ids = PciIds::load(root);
    let hex = |v: u64, digits: usize| format!("0x{v:0digits$x}");
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            let bars: Vec<Value> = d
                .bars
                .iter()
                .map(|b| {
                    json!({
                        "index": b.index,
                        "start": hex(b.start, 1),
                        "len": b.len,
                        "kind": match b.kind { BarKind::Mem => "mem", BarKind::Io => "io" },
                        "prefetchable": b.prefetchable,
                    })
                })
                .collect();
            json!({
                "address": d.address.to_string(),
                "vendor": hex(d.vendor.into(), 4),
                "device": hex(d.device.into(), 4),
                "subsystem_vendor": hex(d.subsystem_vendor.into(), 4),
                "subsystem_device": hex(d.subsystem_device.into(), 4),
                "class": hex(d.class.into(), 6),
                "kind": d.kind().name(),
                "name": ids.as_ref().and_then(|ids| ids.device_name(d.vendor, d.device)),
                "driver": d.driver,
                "user_space_driver": d.on_user_space_driver(),
                "driver_override": d.driver_override,
                "iommu_group": d.iommu_group,
                "numa_node": d.numa_node,
                "interfaces": d.interfaces,
                "active": d.is_active(),
                "active_interfaces": d.active_interfaces,
                "active_masters": d.active_masters.iter().map(|(i, m)| (i.clone(), Value::from(m.as_str()))).collect::<serde_json::Map<String, Value>>(),
                "uio": d.uio,
                "modalias": d.modalias,
                "bars": bars,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&Value::Array(list)).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}
