//! What the container's IOMMU translates: the usable IOVA ranges from `VFIO_IOMMU_GET_INFO`'s
//! IOVA-range capability (Linux 5.4+; the ioctl itself is in `ioctls.rs`), else the Intel IOMMU's
//! address width from sysfs (DPDK's way), and the check every mapping passes first.

use std::fs;
use std::path::Path;

use burst_mem::IovaMode;
use vfio_bindings::bindings::vfio::{VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE};

use super::VfioError;
use crate::address::PciAddress;
use crate::sysfs::device_dir;

/// A range of IOVAs the IOMMU translates, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRange {
    /// First usable IOVA.
    pub start: u64,
    /// Last usable IOVA.
    pub end: u64,
}

impl std::fmt::Display for IovaRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}..={:#x}", self.start, self.end)
    }
}

/// Bits needed to write `last`, the highest address of a range.
pub(super) fn bits_for(last: u64) -> u8 {
    (64 - last.leading_zeros()) as u8
}

/// The check behind [`Container::check_iova`]. `mode` says what the IOVA is, for the advice
/// when it does not fit.
pub(super) fn check_range(
    iova: u64,
    len: u64,
    ranges: Option<&[IovaRange]>,
    sysfs_width: Option<u8>,
    mode: Option<IovaMode>,
) -> Result<(), VfioError> {
    let last = match len.checked_sub(1) {
        None => return Err(VfioError::BadRange { iova, len, problem: "is empty (the length is zero)" }),
        Some(l) => iova.checked_add(l).ok_or(VfioError::BadRange {
            iova,
            len,
            problem: "wraps around the end of the 64-bit address space",
        })?,
    };
    let width = match ranges {
        Some(r) if !r.is_empty() => r.iter().map(|r| bits_for(r.end)).max(),
        _ => sysfs_width,
    };
    if let Some(width) = width {
        if bits_for(last) > width {
            return Err(VfioError::AddressWidth { iova, len, needed: bits_for(last), width, mode });
        }
    }
    if let Some(ranges) = ranges {
        if !ranges.iter().any(|r| r.start <= iova && last <= r.end) {
            let usable = ranges.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
            return Err(VfioError::ReservedRange { iova, last, usable });
        }
    }
    Ok(())
}

pub(super) fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a filled `vfio_iommu_type1_info` and its capability chain (`vfio_info_cap_header`:
/// id u16, version u16, next u32 from the start of the info) for the IOVA-range capability
/// (`nr_iovas` u32, reserved u32, then `{start, end}` u64 pairs).
pub(super) fn parse_iommu_info(b: &[u8]) -> (u64, Option<Vec<IovaRange>>) {
    let flags = ne_u32(b, 4).unwrap_or(0);
    let page_sizes = ne_u64(b, 8).unwrap_or(0);
    if flags & VFIO_IOMMU_INFO_CAPS == 0 {
        return (page_sizes, None);
    }
    let mut next = ne_u32(b, 16).unwrap_or(0) as usize;
    let mut hops = 0;
    while next != 0 && hops < 16 {
        hops += 1;
        let (Some(header), Some(link)) = (ne_u32(b, next), ne_u32(b, next + 4)) else { break };
        let id = header & 0xffff;
        if id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let n = ne_u32(b, next + 8).unwrap_or(0) as usize;
            let ranges: Option<Vec<IovaRange>> = (0..n)
                .map(|i| {
                    let at = next + 16 + i * 16;
                    Some(IovaRange { start: ne_u64(b, at)?, end: ne_u64(b, at + 8)? })
                })
                .collect();
            return (page_sizes, ranges);
        }
        next = link as usize;
    }
    (page_sizes, None)
}

/// The Intel IOMMU's maximum guest address width for the device's IOMMU: CAP register bits
/// 21:16 plus one (VT-d spec 11.4.2, "Capability Register"), as DPDK reads it from
/// `/sys/bus/pci/devices/ADDR/iommu/intel-iommu/cap`.
pub fn intel_iommu_width(sysfs_root: &Path, addr: PciAddress) -> Option<u8> {
    let path = device_dir(sysfs_root, addr).join("iommu/intel-iommu/cap");
    let text = fs::read_to_string(path).ok()?;
    let cap = u64::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some(mgaw(cap))
}

fn mgaw(cap: u64) -> u8 {
    ((cap >> 16) & 0x3f) as u8 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mgaw_is_bits_21_to_16_plus_one() {
        // The lab's QEMU 10 intel-iommu (aw-bits=48): cap 0xd2008c222f0606.
        assert_eq!(mgaw(0x00d2_008c_222f_0606), 48);
        // aw-bits=39 (QEMU before 9.2): MGAW field 38.
        assert_eq!(mgaw(0x00d2_008c_2226_0606), 39);
    }

    fn info_with_ranges(ranges: &[(u64, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[4..8].copy_from_slice(&VFIO_IOMMU_INFO_CAPS.to_ne_bytes());
        b[8..16].copy_from_slice(&0x4020_1000u64.to_ne_bytes());
        // A migration capability first, to be skipped, then the IOVA ranges.
        b[16..20].copy_from_slice(&24u32.to_ne_bytes());
        b.extend_from_slice(&2u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&48u32.to_ne_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(&(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16).to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&(ranges.len() as u32).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        for (s, e) in ranges {
            b.extend_from_slice(&s.to_ne_bytes());
            b.extend_from_slice(&e.to_ne_bytes());
        }
        b
    }

    const LAB_RANGES: [(u64, u64); 2] = [(0, 0xfedf_ffff), (0xfef0_0000, 0xffff_ffff_ffff)];

    #[test]
    fn iova_ranges_are_read_from_the_capability_chain() {
        let (sizes, ranges) = parse_iommu_info(&info_with_ranges(&LAB_RANGES));
        assert_eq!(sizes, 0x4020_1000);
        let ranges = ranges.unwrap();
        assert_eq!(ranges, LAB_RANGES.map(|(start, end)| IovaRange { start, end }).to_vec());
        // No caps flag: no ranges. Truncated chain: no ranges, no panic.
        let mut b = info_with_ranges(&LAB_RANGES);
        b[4] = 0;
        assert_eq!(parse_iommu_info(&b).1, None);
        let b = info_with_ranges(&LAB_RANGES);
        assert_eq!(parse_iommu_info(&b[..60]).1, None);
    }

    #[test]
    fn ranges_and_widths_decide_what_may_be_mapped() {
        let ranges: Vec<IovaRange> = LAB_RANGES.map(|(start, end)| IovaRange { start, end }).to_vec();
        let r = Some(ranges.as_slice());
        let va = Some(IovaMode::Va);
        assert!(check_range(0x7f12_3440_0000, 2 << 20, r, None, va).is_ok(), "a 47-bit VA fits 48 bits");
        assert!(check_range(0x1000_0000, 2 << 20, r, None, None).is_ok());
        let err = check_range(1 << 48, 4096, r, None, None).unwrap_err();
        assert!(matches!(err, VfioError::AddressWidth { needed: 49, width: 48, .. }), "{err}");
        let err = check_range(0xfee0_0000, 4096, r, None, None).unwrap_err().to_string();
        assert!(err.contains("MSI window") && err.contains("0xfef00000..=0xffffffffffff"), "{err}");
        assert!(check_range(0xfed0_0000, 2 << 20, r, None, None).is_err(), "straddles the hole");
        // Only the sysfs width known: the lab with aw-bits=39 and IOVA as VA.
        let err = check_range(0x7fab_cd00_0000, 2 << 20, None, Some(39), va).unwrap_err().to_string();
        assert_eq!(
            err,
            "IOVA 0x7fabcd000000 (+0x200000) needs 47 address bits but the IOMMU handles 39: use --iova-mode=pa \
             (the IOVAs are then physical addresses), or give the IOMMU 48 address bits \
             (QEMU: -device intel-iommu,aw-bits=48, QEMU 10's default)"
        );
        assert!(check_range(0x7f_ffe0_0000, 2 << 20, None, Some(39), None).is_ok(), "ends at 2^39 - 1");
        assert!(check_range(0x7f_fff0_0000, 2 << 20, None, Some(39), None).is_err());
        assert!(check_range(0x1000, 4096, None, None, None).is_ok(), "nothing known: the kernel decides");
    }

    #[test]
    fn empty_and_wrapping_ranges_say_so() {
        let err = check_range(0x1000, 0, None, None, None).unwrap_err().to_string();
        assert_eq!(err, "IOVA range 0x1000 (+0x0) is empty (the length is zero): nothing can be mapped there");
        let err = check_range(u64::MAX, 2, None, None, None).unwrap_err().to_string();
        assert!(err.contains("wraps around the end of the 64-bit address space"), "{err}");
        assert!(!err.contains("address bits"), "{err}");
        assert!(check_range(u64::MAX, 1, None, None, None).is_ok(), "the last byte itself");
    }

    #[test]
    fn width_advice_fits_the_iova_mode() {
        let err = |mode, iova| check_range(iova, 4096, None, Some(39), mode).unwrap_err().to_string();
        // IOVA as PA already: no advice to switch to PA.
        let pa = err(Some(IovaMode::Pa), 0x80_0000_0000);
        assert!(!pa.contains("use --iova-mode=pa"), "{pa}");
        assert!(pa.contains("so --iova-mode=pa cannot help: give the IOMMU 48 address bits"), "{pa}");
        // Not known: both cases, each with its advice.
        let unknown = err(None, 0x7f00_0000_0000);
        assert!(
            unknown.contains("with IOVA as VA, use --iova-mode=pa (the IOVAs are then physical addresses); with IOVA as PA, give the IOMMU 48"),
            "{unknown}"
        );
        // Beyond what any IOMMU translates: no advice to widen it.
        let far = check_range(1 << 60, 4096, None, Some(48), Some(IovaMode::Pa)).unwrap_err().to_string();
        assert!(far.contains("cannot help") && far.contains("are rare") && !far.contains("aw-bits"), "{far}");
        let far_va = check_range(1 << 60, 4096, None, Some(48), Some(IovaMode::Va)).unwrap_err().to_string();
        assert!(far_va.ends_with("use --iova-mode=pa (the IOVAs are then physical addresses)"), "{far_va}");
    }

    #[test]
    fn intel_width_comes_from_the_devices_iommu_cap() {
        let root = std::env::temp_dir().join(format!("burst-pci-vfio-{}-width", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dev = root.join("sys/bus/pci/devices/0000:00:02.0");
        fs::create_dir_all(&dev).unwrap();
        assert_eq!(intel_iommu_width(&root, "0000:00:02.0".parse().unwrap()), None);
        fs::create_dir_all(dev.join("iommu/intel-iommu")).unwrap();
        fs::write(dev.join("iommu/intel-iommu/cap"), "d2008c222f0606\n").unwrap();
        assert_eq!(intel_iommu_width(&root, "0000:00:02.0".parse().unwrap()), Some(48));
        fs::remove_dir_all(root).unwrap();
    }
}
