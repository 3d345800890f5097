//! The container's logic against the recording fake of its ioctls (`vfio/fake.rs`): a group
//! joining, the mappings replayed in a new IOMMU, a mapping made after a group joined, unmapping
//! when memory shrinks, and the error paths. No `/dev/vfio` needed.

use std::path::PathBuf;

use burst_mem::{MemConfig, Memory, MemzoneFlags};

use super::*;
use crate::vfio::fake::{Call, FakeIoctls, OpenFailure};

/// The lab's IOMMU (QEMU 10's intel-iommu): everything up to 48 bits but the MSI window.
const LAB: [IovaRange; 2] =
    [IovaRange { start: 0, end: 0xfedf_ffff }, IovaRange { start: 0xfef0_0000, end: 0xffff_ffff_ffff }];
const PAGE_SIZES: u64 = 0x4020_1000;
const SEG: usize = 2 << 20;
/// Two ranges to map, IOVA as VA.
const A: u64 = 0x7f00_0000_0000;
const B: u64 = 0x7f00_0040_0000;

fn lab() -> (FakeIoctls, Arc<Container<FakeIoctls>>) {
    let fake = FakeIoctls::new(PAGE_SIZES, Some(LAB.to_vec()));
    (fake.clone(), Container::with_ioctls(fake))
}

/// A sysfs root with nothing in it: opening goes through the fake, and an open error's hint
/// finds no process holding the group.
fn root() -> PathBuf {
    std::env::temp_dir().join(format!("burst-pci-container-test-{}-empty", std::process::id()))
}

fn addr(group: u32) -> PciAddress {
    format!("0000:00:{group:02x}.0").parse().unwrap()
}

/// Opens the device of `group` (one device per group, at 00:GROUP.0).
fn open(c: &Arc<Container<FakeIoctls>>, group: u32) -> Arc<OpenDevice<FakeIoctls>> {
    c.open(&root(), addr(group), group, None).unwrap()
}

fn map(iova: u64, len: usize) -> Call {
    Call::Map { iova, len }
}

#[test]
fn nothing_reaches_the_kernel_before_a_device_opens() {
    let (fake, c) = lab();
    assert!(matches!(c.map_dma(A as usize, A, SEG), Err(VfioError::NoIommuYet)));
    assert!(matches!(c.unmap_dma(A, SEG), Err(VfioError::NoIommuYet)));
    assert!(matches!(c.check_iova(A, 4096), Err(VfioError::NoIommuYet)));
    assert_eq!((c.open_devices(), c.iova_ranges(), c.iova_page_sizes()), (0, None, 0));
    assert_eq!(fake.take_calls(), []);
}

#[test]
fn the_first_device_sets_the_iommu_up_and_a_second_group_joins_it_without_a_replay() {
    let (fake, c) = lab();
    let first = open(&c, 7);
    assert_eq!(fake.take_calls(), [Call::SetContainer(7), Call::SetIommu, Call::GetInfo]);
    assert_eq!(c.open_devices(), 1);
    assert_eq!(c.iova_ranges(), Some(LAB.to_vec()));
    assert_eq!((c.iova_page_sizes(), c.address_width()), (PAGE_SIZES, Some(48)));
    c.map_dma(A as usize, A, SEG).unwrap();
    assert_eq!(fake.take_calls(), [map(A, SEG)]);

    // Another group joins the IOMMU that exists: nothing is mapped again.
    let second = open(&c, 8);
    assert_eq!(fake.take_calls(), [Call::SetContainer(8), Call::GetInfo]);
    // Another device of the first group: its group is in already.
    let first_again = open(&c, 7);
    assert_eq!(fake.take_calls(), [Call::GetInfo]);
    assert_eq!(c.open_devices(), 3);

    drop(first);
    assert_eq!(fake.take_calls(), [], "group 7 still has a device open");
    drop(first_again);
    assert_eq!(fake.take_calls(), [Call::UnsetContainer(7)]);
    assert_eq!(fake.mapped(), [(A, SEG)], "group 8 keeps the IOMMU, and the mapping with it");
    drop(second);
    assert_eq!(fake.take_calls(), [Call::UnsetContainer(8)]);
    assert_eq!((c.open_devices(), fake.mapped()), (0, vec![]));
}

#[test]
fn mappings_come_back_when_a_device_opens_after_the_last_closed() {
    let (fake, c) = lab();
    let dev = open(&c, 7);
    c.map_dma(A as usize, A, SEG).unwrap();
    c.map_dma(B as usize, B, SEG).unwrap();
    c.unmap_dma(A, SEG).unwrap();
    drop(dev);
    assert_eq!(fake.mapped(), [], "the IOMMU went with the last device");
    assert!(matches!(c.map_dma(A as usize, A, SEG), Err(VfioError::NoIommuYet)));
    fake.take_calls();

    // A new IOMMU (another group, even): what is still mapped through the container, B, is
    // mapped in it again; A, unmapped, is not.
    let _dev = open(&c, 9);
    assert_eq!(fake.take_calls(), [Call::SetContainer(9), Call::SetIommu, Call::GetInfo, map(B, SEG)]);
    assert_eq!(fake.mapped(), [(B, SEG)]);
}

#[test]
fn memory_that_grows_and_shrinks_after_a_group_joined_is_mapped_and_unmapped() {
    // The container's real user: `burst_mem::Memory` maps each segment it adds through its
    // mappers and unmaps each it gives back. --no-huge memory, IOVA as VA: no root needed.
    let mem = Memory::new(MemConfig { iova_mode: IovaMode::Va, no_huge: true, ..MemConfig::default() }).unwrap();
    let (fake, c) = lab();
    let dev = open(&c, 7);
    fake.take_calls();
    let id = mem.add_dma_mapper(c.clone()).unwrap();
    assert_eq!(fake.take_calls(), [], "no segment mapped yet");

    let zone = mem.reserve("rx_ring", 4096, None, 4096, MemzoneFlags::IOVA_CONTIG).unwrap();
    let iova = mem.memzone_info("rx_ring").unwrap().iova;
    let calls = fake.take_calls();
    let [Call::Map { iova: seg_iova, len: seg }] = calls[..] else { panic!("one segment mapped: {calls:?}") };
    assert_eq!(seg, mem.segment_size());
    assert!(seg_iova <= iova && iova + 4096 <= seg_iova + seg as u64, "{iova:#x} in {seg_iova:#x} +{seg:#x}");
    assert_eq!(fake.mapped(), [(seg_iova, seg)]);
    assert_eq!(mem.iova_of(zone.as_ptr()), Some(iova));

    drop(zone);
    assert_eq!(fake.take_calls(), [Call::Unmap { iova: seg_iova, len: seg }]);
    assert_eq!(fake.mapped(), []);
    // Forgotten by the container too: a new IOMMU gets nothing.
    drop(dev);
    let _dev = open(&c, 7);
    assert!(!fake.take_calls().iter().any(|call| matches!(call, Call::Map { .. })));
    mem.remove_dma_mapper(id);
}

#[test]
fn a_failed_replay_is_an_error_and_counts_the_device_out() {
    let (fake, c) = lab();
    let dev = open(&c, 7);
    c.map_dma(A as usize, A, SEG).unwrap();
    drop(dev);
    fake.take_calls();

    fake.fail_next_map(libc::ENOMEM);
    let Err(err) = c.open(&root(), addr(7), 7, None) else { panic!("opened") };
    assert!(matches!(&err, VfioError::Replay { source, .. } if matches!(**source, VfioError::Dma { .. })), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("opening 0000:00:07.0 set up the container's IOMMU again"), "{text}");
    assert!(text.contains("raise RLIMIT_MEMLOCK"), "{text}");
    assert_eq!(c.open_devices(), 0);
    assert_eq!(
        fake.take_calls(),
        [Call::SetContainer(7), Call::SetIommu, Call::GetInfo, map(A, SEG), Call::UnsetContainer(7)],
        "the device was closed again"
    );
    // Still remembered: the next device maps it.
    let _dev = open(&c, 7);
    assert_eq!(fake.mapped(), [(A, SEG)]);
}

#[test]
fn an_iommu_that_outlived_its_devices_keeps_its_mappings_and_the_replay_accepts_them() {
    // vfio-ioctls keeps a group in the container when opening its device failed half-way: the
    // IOMMU then outlives the last open device.
    let (fake, c) = lab();
    let dev = open(&c, 7);
    fake.fail_next_open(OpenFailure::Device(libc::ENODEV));
    assert!(matches!(c.open(&root(), addr(8), 8, None), Err(VfioError::Open { group: 8, .. })));
    assert_eq!(c.open_devices(), 1);
    c.map_dma(A as usize, A, SEG).unwrap();
    c.map_dma(B as usize, B, SEG).unwrap();
    drop(dev);
    assert_eq!(c.open_devices(), 0);
    assert_eq!(fake.mapped(), [(A, SEG), (B, SEG)], "group 8 holds the IOMMU");

    // With no device open, an unmap still reaches the kernel (here the IOMMU has it).
    c.unmap_dma(B, SEG).unwrap();
    assert_eq!(fake.mapped(), [(A, SEG)]);
    fake.take_calls();

    // Group 8's device opens: A, which the IOMMU still holds (EEXIST), is fine; B is gone.
    let _dev = open(&c, 8);
    assert_eq!(fake.take_calls(), [Call::GetInfo, map(A, SEG)]);
    assert_eq!((c.open_devices(), fake.mapped()), (1, vec![(A, SEG)]));
}

#[test]
fn bad_mappings_are_refused_before_the_kernel_and_its_refusals_say_what_to_do() {
    let (fake, c) = lab();
    let _dev = open(&c, 7);
    fake.take_calls();
    let err = c.map_dma(0, 1 << 48, SEG).unwrap_err();
    assert!(matches!(err, VfioError::AddressWidth { needed: 49, width: 48, mode: Some(IovaMode::Pa), .. }), "{err}");
    let err = c.map_dma(0xfee0_0000, 0xfee0_0000, 4096).unwrap_err().to_string();
    assert!(err.contains("MSI window"), "{err}");
    assert!(matches!(c.map_dma(A as usize, A, 0), Err(VfioError::BadRange { .. })));
    assert_eq!(fake.take_calls(), [], "checked before any ioctl");

    fake.fail_next_map(libc::ENOMEM);
    let err = c.map_dma(A as usize, A, SEG).unwrap_err();
    assert!(matches!(err, VfioError::Dma { op: "mapping", .. }), "{err}");
    assert!(err.to_string().contains("ENOMEM: raise RLIMIT_MEMLOCK"), "{err}");
    c.map_dma(A as usize, A, SEG).unwrap();
    let err = c.map_dma(A as usize, A, SEG).unwrap_err().to_string();
    assert!(err.contains("EEXIST: the range is already mapped"), "{err}");

    // Part of a mapping: the kernel refuses, the mapping stays, and so does the container's record.
    let err = c.unmap_dma(A, 4096).unwrap_err();
    assert!(matches!(err, VfioError::Dma { op: "unmapping", .. }), "{err}");
    assert!(err.to_string().ends_with("; unmap exactly what was mapped"), "{err}");
    assert_eq!(fake.mapped(), [(A, SEG)]);
    // Something never mapped: the kernel unmaps nothing, which is an error too.
    assert!(matches!(c.unmap_dma(B, SEG), Err(VfioError::Dma { op: "unmapping", .. })));
    c.unmap_dma(A, SEG).unwrap();
    assert_eq!(fake.mapped(), []);
}

#[test]
fn without_iommu_info_the_narrowest_sysfs_width_decides() {
    let fake = FakeIoctls::new(PAGE_SIZES, Some(LAB.to_vec()));
    fake.fail_info();
    let c = Container::with_ioctls(fake.clone());
    let _first = c.open(&root(), addr(7), 7, Some(48)).unwrap();
    let _second = c.open(&root(), addr(8), 8, Some(39)).unwrap();
    let _third = c.open(&root(), addr(9), 9, None).unwrap();
    assert_eq!((c.iova_ranges(), c.address_width()), (None, Some(39)));
    c.map_dma(0x7f_ffe0_0000, 0x7f_ffe0_0000, SEG).unwrap();
    let err = c.map_dma(0x80_0000_0000, 0x80_0000_0000, SEG).unwrap_err();
    assert!(matches!(err, VfioError::AddressWidth { needed: 40, width: 39, .. }), "{err}");
}

#[test]
fn a_group_someone_holds_is_an_open_error_with_a_hint_and_nothing_is_counted() {
    let (fake, c) = lab();
    fake.fail_next_open(OpenFailure::Group(libc::EBUSY));
    let Err(err) = c.open(&root(), addr(7), 7, None) else { panic!("opened") };
    assert!(matches!(err, VfioError::Open { group: 7, .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("cannot open 0000:00:07.0 through VFIO (group 7)"), "{text}");
    assert!(text.contains("/dev/vfio/7 is open already"), "{text}");
    assert_eq!((c.open_devices(), fake.take_calls()), (0, vec![]));
    // The group is free again: it opens.
    let _dev = open(&c, 7);
    assert_eq!(c.open_devices(), 1);
}
