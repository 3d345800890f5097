//! Device names from the PCI ID database (`pci.ids`, from the pciutils/hwdata packages), when
//! the machine has it. Only vendor and device lines are read; subsystems and classes are not.

use std::collections::HashMap;
use std::fs;

use super::SysfsRoot;

/// Where distributions put `pci.ids`, relative to the root.
const PLACES: [&str; 3] = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids"];

/// Device names by vendor and device ID.
#[derive(Clone, Debug, Default)]
pub struct PciIds {
    names: HashMap<(u16, u16), String>,
}

impl PciIds {
    /// The first `pci.ids` found under `root`, or `None` if there is none.
    pub fn load(root: &SysfsRoot) -> Option<PciIds> {
        PLACES
            .iter()
            .find_map(|place| fs::read(root.path().join(place)).ok())
            .map(|b| PciIds::parse(&String::from_utf8_lossy(&b)))
    }

    /// Parses the text of a `pci.ids` file.
    pub fn parse(text: &str) -> PciIds {
        let mut names = HashMap::new();
        let mut vendor = None;
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with("C ") {
                break; // the class section, at the end
            }
            if let Some(rest) = line.strip_prefix('\t') {
                if rest.starts_with('\t') {
                    continue; // a subsystem
                }
                if let (Some(v), Some((id, name))) = (vendor, rest.split_once("  ")) {
                    if let Ok(id) = u16::from_str_radix(id, 16) {
                        names.insert((v, id), name.trim().to_string());
                    }
                }
            } else {
                vendor = line.split_once("  ").and_then(|(id, _)| u16::from_str_radix(id, 16).ok());
            }
        }
        PciIds { names }
    }

    /// The device's name, e.g. `82540EM Gigabit Ethernet Controller` for 8086:100e.
    pub fn device_name(&self, vendor: u16, device: u16) -> Option<&str> {
        self.names.get(&(vendor, device)).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_device_lines_give_names() {
        let ids = PciIds::parse(
            "# pci.ids\n1af4  Red Hat, Inc.\n\t1041  Virtio 1.0 network device\n\t\t1af4 1100  QEMU\n\
             8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n\
             \t\t1014 0269  iSeries 1000/100/10 Ethernet Adapter\nC 02  Network controller\n\t00  Ethernet controller\n",
        );
        assert_eq!(ids.device_name(0x8086, 0x100e), Some("82540EM Gigabit Ethernet Controller"));
        assert_eq!(ids.device_name(0x1af4, 0x1041), Some("Virtio 1.0 network device"));
        assert_eq!(ids.device_name(0x8086, 0x1014), None);
        assert_eq!(ids.device_name(0x8086, 0x0000), None);
    }
}
