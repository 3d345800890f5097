//! What a lab guest looks like: its NICs (model, MAC, PCI slot), IOMMU mode, memory and
//! hugepages. Every NIC gets a fixed MAC and PCI slot from its position, so tests and
//! documentation can name them (see `docs/lab.md`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::LabError;

/// The most NICs one guest can have: slots 02..09 on the q35 root bus.
pub const MAX_NICS: usize = 8;

/// First PCI slot used for NICs; NIC `i` sits at `0000:00:(FIRST_NIC_SLOT + i).0`.
pub const FIRST_NIC_SLOT: u8 = 0x02;

/// PCI slot of the lab's own control channel (a virtio-serial device), out of the NICs' range.
pub const CONTROL_SLOT: u8 = 0x1e;

/// An emulated NIC model QEMU can put in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NicModel {
    /// Intel 82540EM (QEMU `e1000`).
    E1000,
    /// Intel 82545EM copper (QEMU `e1000-82545em`).
    E1000_82545em,
    /// Intel 82544GC copper (QEMU `e1000-82544gc`).
    E1000_82544gc,
    /// Intel 82576 (QEMU `igb`, QEMU 8.0 and later).
    Igb,
    /// Transitional virtio-net (legacy I/O-port BAR plus modern capabilities), 1af4:1000.
    VirtioLegacy,
    /// Modern-only virtio-net (virtio 1.x), 1af4:1041.
    VirtioModern,
}

impl NicModel {
    /// Every model, in the order tests iterate them.
    pub const ALL: [NicModel; 6] = [
        NicModel::E1000,
        NicModel::E1000_82545em,
        NicModel::E1000_82544gc,
        NicModel::Igb,
        NicModel::VirtioLegacy,
        NicModel::VirtioModern,
    ];

    /// The name used on the command line (`--nic NAME`).
    pub fn name(self) -> &'static str {
        match self {
            NicModel::E1000 => "e1000",
            NicModel::E1000_82545em => "e1000-82545em",
            NicModel::E1000_82544gc => "e1000-82544gc",
            NicModel::Igb => "igb",
            NicModel::VirtioLegacy => "virtio-legacy",
            NicModel::VirtioModern => "virtio-modern",
        }
    }

    /// PCI vendor and device ID the guest sees.
    pub fn pci_id(self) -> (u16, u16) {
        match self {
            NicModel::E1000 => (0x8086, 0x100e),
            NicModel::E1000_82545em => (0x8086, 0x100f),
            NicModel::E1000_82544gc => (0x8086, 0x100c),
            NicModel::Igb => (0x8086, 0x10c9),
            NicModel::VirtioLegacy => (0x1af4, 0x1000),
            NicModel::VirtioModern => (0x1af4, 0x1041),
        }
    }

    /// The guest kernel's PCI driver for this NIC (the name under `/sys/bus/pci/drivers`).
    pub fn kernel_driver(self) -> &'static str {
        match self {
            NicModel::E1000 | NicModel::E1000_82545em | NicModel::E1000_82544gc => "e1000",
            NicModel::Igb => "igb",
            NicModel::VirtioLegacy | NicModel::VirtioModern => "virtio-pci",
        }
    }

    /// Whether this is a virtio device (its net interface hangs off a `virtioN` child).
    pub fn is_virtio(self) -> bool {
        matches!(self, NicModel::VirtioLegacy | NicModel::VirtioModern)
    }

    /// The QEMU `-device` driver and model-specific properties.
    ///
    /// The modern virtio NIC goes through the emulated IOMMU (`iommu_platform=on`) when
    /// there is one, so that a user-space driver's IO addresses are translated. QEMU refuses
    /// `iommu_platform` on a transitional device, so the legacy NIC always bypasses the
    /// IOMMU: it can be driven with IOVA as PA only.
    pub(crate) fn qemu_device(self, iommu: Iommu) -> String {
        match self {
            NicModel::E1000 => "e1000".into(),
            NicModel::E1000_82545em => "e1000-82545em".into(),
            NicModel::E1000_82544gc => "e1000-82544gc".into(),
            NicModel::Igb => "igb".into(),
            NicModel::VirtioLegacy => "virtio-net-pci,disable-legacy=off,disable-modern=off".into(),
            NicModel::VirtioModern => {
                let platform = if iommu == Iommu::Off { "off" } else { "on" };
                format!("virtio-net-pci,disable-legacy=on,disable-modern=off,iommu_platform={platform}")
            }
        }
    }
}

impl fmt::Display for NicModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NicModel {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NicModel::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            LabError::Config(format!(
                "unknown NIC model `{s}`: use one of {}",
                NicModel::ALL.map(NicModel::name).join(", ")
            ))
        })
    }
}

/// How the guest's IOMMU is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Iommu {
    /// An emulated Intel IOMMU, translating: `vfio-pci` works, IOVA as VA.
    #[default]
    On,
    /// The emulated IOMMU in pass-through mode (`iommu=pt`): `uio_pci_generic` works, IOVA as PA.
    Pt,
    /// No IOMMU at all: `uio_pci_generic` only.
    Off,
}

impl Iommu {
    /// The name used on the command line (`--iommu NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Iommu::On => "on",
            Iommu::Pt => "pt",
            Iommu::Off => "off",
        }
    }
}

impl fmt::Display for Iommu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Iommu {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" => Ok(Iommu::On),
            "pt" => Ok(Iommu::Pt),
            "off" => Ok(Iommu::Off),
            _ => Err(LabError::Config(format!("unknown IOMMU mode `{s}`: use on, pt or off"))),
        }
    }
}

/// Which QEMU accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM when `/dev/kvm` can be opened, TCG otherwise. `BURST_LAB_ACCEL=tcg|kvm` overrides.
    #[default]
    Auto,
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation (QEMU's TCG), works everywhere.
    Tcg,
}

impl FromStr for Accel {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => Err(LabError::Config(format!("unknown accelerator `{s}`: use auto, kvm or tcg"))),
        }
    }
}

/// Everything needed to boot one lab guest.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// NICs in slot order: NIC `i` is at PCI slot `FIRST_NIC_SLOT + i` with MAC [`nic_mac`]`(i)`.
    pub nics: Vec<NicModel>,
    /// IOMMU mode.
    pub iommu: Iommu,
    /// Guest memory in MiB.
    pub mem_mib: u32,
    /// 2 MiB hugepages reserved at boot.
    pub hugepages: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Accelerator.
    pub accel: Accel,
    /// How long the guest may take from QEMU start to the agent being ready.
    pub boot_timeout: Duration,
    /// Extra kernel command-line arguments.
    pub kernel_args: Vec<String>,
    /// Copy the guest's console to stderr as it comes (`BURST_LAB_CONSOLE=1`).
    pub show_console: bool,
    /// Put the last two NICs in one IOMMU group: functions 0 and 1 of one multifunction slot
    /// ([`SHARED_GROUP_SLOT`]), which the kernel groups together since they have no ACS.
    pub shared_group: bool,
    /// The emulated IOMMU's address width (`aw-bits`, 39 or 48); `None` is QEMU's default
    /// (48 in QEMU 10). 39 bits cannot translate user-space virtual addresses above 512 GiB.
    pub iommu_aw_bits: Option<u8>,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            nics: Vec::new(),
            iommu: Iommu::On,
            mem_mib: 1024,
            hugepages: 64,
            cpus: 2,
            accel: Accel::Auto,
            boot_timeout: Duration::from_secs(90),
            kernel_args: Vec::new(),
            show_console: std::env::var_os("BURST_LAB_CONSOLE").is_some_and(|v| v != "0"),
            shared_group: false,
            iommu_aw_bits: None,
        }
    }
}

impl LabConfig {
    /// A config with the given NICs and defaults for the rest.
    pub fn with_nics(nics: &[NicModel]) -> Self {
        LabConfig { nics: nics.to_vec(), ..LabConfig::default() }
    }

    /// Checks the config before any process is started.
    pub fn validate(&self) -> Result<(), LabError> {
        if self.nics.len() > MAX_NICS {
            return Err(LabError::Config(format!("{} NICs asked, the lab has slots for {MAX_NICS}", self.nics.len())));
        }
        if let Some(bits) = self.iommu_aw_bits {
            if bits != 39 && bits != 48 {
                return Err(LabError::Config(format!("IOMMU address width {bits}: QEMU's intel-iommu takes 39 or 48")));
            }
        }
        if self.shared_group && self.nics.len() < 2 {
            return Err(LabError::Config("--shared-group needs at least two NICs".into()));
        }
        // Leave the guest at least 256 MiB besides its hugepages.
        let huge_mib = u64::from(self.hugepages) * 2;
        if u64::from(self.mem_mib) < huge_mib + 256 {
            return Err(LabError::Config(format!(
                "--hugepages {} needs {huge_mib} MiB but --mem is {} MiB: give at least {} MiB",
                self.hugepages,
                self.mem_mib,
                huge_mib + 256
            )));
        }
        if self.cpus == 0 {
            return Err(LabError::Config("the guest needs at least one CPU".into()));
        }
        Ok(())
    }
}

/// The MAC address of NIC `index`: `52:54:00:b5:00:0N`.
pub fn nic_mac(index: usize) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0xb5, 0x00, index as u8]
}

/// The guest PCI address of NIC `index`: `0000:00:0S.0` with `S = 2 + index`.
pub fn nic_pci_address(index: usize) -> String {
    format!("0000:00:{:02x}.0", usize::from(FIRST_NIC_SLOT) + index)
}

/// The slot whose two functions hold the last two NICs with [`LabConfig::shared_group`].
pub const SHARED_GROUP_SLOT: u8 = 0x10;

impl LabConfig {
    /// NIC `index`'s slot and function.
    pub fn nic_slot(&self, index: usize) -> (u8, u8) {
        let n = self.nics.len();
        if self.shared_group && n >= 2 && index >= n - 2 {
            (SHARED_GROUP_SLOT, (index + 2 - n) as u8)
        } else {
            (FIRST_NIC_SLOT + index as u8, 0)
        }
    }

    /// NIC `index`'s guest PCI address, `0000:00:SS.F`.
    pub fn nic_address(&self, index: usize) -> String {
        let (slot, function) = self.nic_slot(index);
        format!("0000:00:{slot:02x}.{function}")
    }
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Parses a memory size such as `1024`, `512M`, `2G` into MiB.
pub fn parse_mem_mib(s: &str) -> Result<u32, LabError> {
    let bad = || LabError::Config(format!("bad memory size `{s}`: write it as 1024, 512M or 2G"));
    let (digits, mult) = match s.chars().last() {
        Some('G' | 'g') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    let n: u32 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(mult).filter(|&m| m > 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_round_trip_by_name() {
        for m in NicModel::ALL {
            assert_eq!(m.name().parse::<NicModel>().unwrap(), m);
        }
        let err = "e1001".parse::<NicModel>().unwrap_err().to_string();
        assert!(err.contains("e1001") && err.contains("virtio-modern"), "{err}");
    }

    #[test]
    fn nic_slots_and_macs_are_fixed() {
        assert_eq!(nic_pci_address(0), "0000:00:02.0");
        assert_eq!(nic_pci_address(7), "0000:00:09.0");
        let cfg = LabConfig { nics: vec![NicModel::E1000; 3], shared_group: true, ..LabConfig::default() };
        let addrs: Vec<String> = (0..3).map(|i| cfg.nic_address(i)).collect();
        assert_eq!(addrs, ["0000:00:02.0", "0000:00:10.0", "0000:00:10.1"]);
        assert_eq!(format_mac(&nic_mac(1)), "52:54:00:b5:00:01");
        assert_eq!(parse_mac("52:54:00:B5:00:01"), Some(nic_mac(1)));
        for bad in ["", "52:54:00:b5:00", "52:54:00:b5:00:01:02", "52:54:00:b5:00:1", "zz:54:00:b5:00:01"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn mem_sizes_parse() {
        assert_eq!(parse_mem_mib("1024").unwrap(), 1024);
        assert_eq!(parse_mem_mib("512M").unwrap(), 512);
        assert_eq!(parse_mem_mib("2G").unwrap(), 2048);
        for bad in ["", "G", "0", "1T", "-1", "99999999G"] {
            assert!(parse_mem_mib(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn validate_checks_hugepages_fit_and_nic_count() {
        let mut c = LabConfig::default();
        assert!(c.validate().is_ok());
        c.hugepages = 512;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("1280 MiB"), "{err}");
        c.hugepages = 0;
        c.nics = vec![NicModel::E1000; MAX_NICS + 1];
        assert!(c.validate().is_err());
    }
}
