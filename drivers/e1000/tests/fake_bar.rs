//! The e1000 port end to end without QEMU: a fake sysfs tree binds a device to
//! uio_pci_generic, whose `resource0` is a plain file the driver maps as BAR0, and the test
//! plays the device through the same file (pread/pwrite see what the driver's mapping sees):
//! a thread clears CTRL.RST as a reset completes, and the test writes RX write-backs into the
//! ring (test memory is IOVA as VA, so RDBAL/RDBAH are the ring's address) and the
//! read-to-clear statistics registers (zeroed again after each read, as the device clears them).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use burst_e1000::regs::*;
use burst_ethdev::{DevArgs, PciId, PciProbe, Port, PortConf};
use burst_mem::testing::{memory, packet_pool};
use burst_pci::fake::{FakeDevice, FakeSysfs};
use burst_pci::PciDevice;

const ADDR: &str = "0000:00:03.0";

/// BAR0 as the device sees it: the file behind the driver's mapping.
struct Device {
    _fake: FakeSysfs,
    bar: Arc<File>,
    stop: Arc<AtomicBool>,
    /// While set, CTRL.RST never clears (a device that does not finish its reset).
    stuck: Arc<AtomicBool>,
    resetter: Option<std::thread::JoinHandle<()>>,
}

impl Device {
    fn read32(&self, reg: usize) -> u32 {
        let mut b = [0u8; 4];
        self.bar.read_exact_at(&mut b, reg as u64).unwrap();
        u32::from_le_bytes(b)
    }

    fn write32(&self, reg: usize, v: u32) {
        self.bar.write_all_at(&v.to_le_bytes(), reg as u64).unwrap();
    }

    /// Writes back RX descriptor `i` (length, status), as the device does when done.
    fn rx_write_back(&self, i: usize, length: u16, status: u8) {
        self.rx_write_back_full(i, length, status, 0, 0);
    }

    /// Writes back RX descriptor `i` with its errors and special (VLAN tag) fields too (SDM 3.2.3).
    fn rx_write_back_full(&self, i: usize, length: u16, status: u8, errors: u8, special: u16) {
        let ring = (u64::from(self.read32(RDBAH)) << 32 | u64::from(self.read32(RDBAL))) as usize;
        let wb = u64::from(length) | u64::from(status) << 32 | u64::from(errors) << 40 | u64::from(special) << 48;
        // SAFETY: test memory is IOVA as VA: RDBAL/RDBAH hold the address of the driver's ring,
        // of at least `i + 1` 16-byte descriptors; the write-back half is bytes 8..16.
        unsafe { ((ring + 16 * i + 8) as *mut u64).write_volatile(wb.to_le()) };
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.resetter.take() {
            let _ = t.join();
        }
    }
}

/// A fake 82540EM bound to uio_pci_generic, its address in RAL0/RAH0, and the probed device.
fn fake_e1000() -> (Device, PciDevice) {
    let fake = FakeSysfs::new().unwrap();
    fake.add_device(FakeDevice::new(ADDR, 0x8086, 0x100e).driver("uio_pci_generic")).unwrap();
    let dir = fake.path().join("sys/bus/pci/devices").join(ADDR);
    std::fs::write(dir.join("config"), [0u8; 256]).unwrap();
    std::fs::write(dir.join("resource0"), vec![0u8; 0x20000]).unwrap();
    let uio = std::fs::read_dir(dir.join("uio")).unwrap().next().unwrap().unwrap().file_name();
    let dev_dir: PathBuf = fake.path().join("dev");
    std::fs::create_dir_all(&dev_dir).unwrap();
    std::fs::write(dev_dir.join(uio), b"").unwrap();
    let bar = Arc::new(File::options().read(true).write(true).open(dir.join("resource0")).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stuck = Arc::new(AtomicBool::new(false));
    let resetter = {
        let (bar, stop, stuck) = (Arc::clone(&bar), Arc::clone(&stop), Arc::clone(&stuck));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if stuck.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(100));
                    continue;
                }
                let mut b = [0u8; 4];
                bar.read_exact_at(&mut b, CTRL as u64).unwrap();
                let ctrl = u32::from_le_bytes(b);
                if ctrl & CTRL_RST != 0 {
                    bar.write_all_at(&(ctrl & !CTRL_RST).to_le_bytes(), CTRL as u64).unwrap();
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let device = Device { _fake: fake, bar, stop, stuck, resetter: Some(resetter) };
    device.write32(RAL0, 0x1200_5452);
    device.write32(RAH0, 0x5634 | RAH_AV);
    let pci = PciDevice::open(device._fake.path(), ADDR.parse().unwrap(), None).unwrap();
    (device, pci)
}

fn port(pci: PciDevice, memory: burst_mem::Memory) -> Port {
    let probe = PciProbe {
        device: pci,
        socket: None,
        id: PciId::new(0x8086, 0x100e),
        memory,
        args: DevArgs::none(ADDR),
        port_id: 0,
    };
    Port::new(0, (burst_e1000::DRIVER.probe)(probe).unwrap())
}

fn set_up(port: &mut Port, pool: &burst_mem::PacketPool) {
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 32, pool).unwrap();
    port.tx_queue_setup(0, 32).unwrap();
    port.start().unwrap();
}

/// Review 15: the basic counters never go back without a reset. A frame the device counted good
/// (GPRC) but the driver dropped (longer than its buffer) is `ierrors`, not `ipackets`; the
/// driver's part lives in the port's queue counters, which `Port::configure` makes anew, while
/// the device's totals (HwStats) live on. After a reconfigure the dropped frame turns into a
/// received one: `ipackets` goes up by it and `ierrors` down. (Before the change the driver kept
/// its own drop counts next to the device's, and both lived as long as the port.)
#[test]
fn a_reconfigure_does_not_turn_dropped_frames_into_received_ones() {
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    set_up(&mut port, &pool);
    // One frame of 5000 bytes into a 2048-byte buffer: the device counts it good, the driver
    // drops it.
    device.rx_write_back(0, 5000, RXD_STAT_DD | RXD_STAT_EOP);
    device.write32(GPRC, 1);
    device.write32(GORCL, 5004);
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::new();
        assert_eq!(rx.rx_burst(&mut bufs, 32), 0, "dropped");
    }
    let before = port.stats();
    // Read to clear.
    device.write32(GPRC, 0);
    device.write32(GORCL, 0);
    assert_eq!((before.ipackets, before.ierrors), (0, 1), "{before:?}");

    port.stop().unwrap();
    set_up(&mut port, &pool);
    let after = port.stats();
    assert_eq!(
        (after.ipackets, after.ierrors),
        (before.ipackets, before.ierrors),
        "the same frame, counted again after a reconfigure: {after:?}"
    );
    port.close().unwrap();
}

/// Review 15: counters agree with each other. The frame the driver dropped is not in
/// `ipackets` (the device's GPRC less the driver's drops) but its bytes stay in `ibytes` (the
/// device's GORC, nothing taken off), so bytes per packet come out wrong.
#[test]
fn a_dropped_frame_counts_in_neither_packets_nor_bytes() {
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    set_up(&mut port, &pool);
    device.rx_write_back(0, 5000, RXD_STAT_DD | RXD_STAT_EOP);
    device.write32(GPRC, 1);
    device.write32(GORCL, 5004);
    {
        let mut rx = port.rx_queue(0).unwrap();
        assert_eq!(rx.rx_burst(&mut Vec::new(), 32), 0, "dropped");
    }
    let s = port.stats();
    assert_eq!((s.ipackets, s.ibytes, s.ierrors), (0, 0, 1), "{s:?}");
    port.close().unwrap();
}

/// Review 15: a reset that failed leaves the port unable to start as if nothing happened. e1000's
/// `reset` closes first (rings and buffers gone, `rx_bsize` forgotten) and then finds CTRL.RST
/// stuck; `Port::reset` returns the error but leaves the port `Stopped` with every queue still
/// "set up", so `start` succeeds: RCTL.EN goes on with no ring behind it and `rx_queue(0)` says
/// the queue is busy.
#[test]
fn a_failed_reset_does_not_leave_a_startable_port_without_rings() {
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    set_up(&mut port, &pool);
    device.stuck.store(true, Ordering::Relaxed);
    assert!(port.reset().is_err(), "CTRL.RST never clears");
    device.stuck.store(false, Ordering::Relaxed);
    let started = port.start();
    let rctl = device.read32(RCTL);
    let rx = port.rx_queue(0).map(|_| ());
    assert!(
        started.is_err(),
        "started after a failed reset: RCTL {rctl:#x} (EN {}), rx_queue(0): {rx:?}",
        rctl & RCTL_EN != 0
    );
}

/// The offloads the port asks for reach the device at start: CTRL.VME with VET for VLAN strip
/// and insert, RXCSUM for the checksum checks; a start without them turns them off again.
#[test]
fn offloads_program_vlan_mode_and_receive_checksums() {
    use burst_ethdev::{RxOffloads, TxOffloads};
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    let info = port.info().clone();
    assert!(info.rx_offload_capa.contains(RxOffloads::SCATTER | RxOffloads::VLAN_STRIP | RxOffloads::CHECKSUM));
    assert!(info.tx_offload_capa.contains(
        TxOffloads::MULTI_SEGS
            | TxOffloads::IPV4_CKSUM
            | TxOffloads::UDP_CKSUM
            | TxOffloads::TCP_CKSUM
            | TxOffloads::TCP_TSO
            | TxOffloads::VLAN_INSERT
    ));
    assert_eq!(info.tx_desc_lim.nb_seg_max, 255, "DPDK's EM_TX_MAX_SEG");
    let conf = PortConf {
        rx_offloads: RxOffloads::VLAN_STRIP | RxOffloads::CHECKSUM,
        tx_offloads: TxOffloads::VLAN_INSERT | TxOffloads::IPV4_CKSUM,
        ..PortConf::queues(1, 1)
    };
    port.configure(&conf).unwrap();
    port.rx_queue_setup(0, 32, &pool).unwrap();
    port.tx_queue_setup(0, 32).unwrap();
    port.start().unwrap();
    assert_ne!(device.read32(CTRL) & CTRL_VME, 0, "CTRL.VME");
    assert_eq!(device.read32(VET), 0x8100);
    assert_eq!(device.read32(RXCSUM), RXCSUM_IPOFLD | RXCSUM_TUOFLD);
    port.stop().unwrap();
    set_up(&mut port, &pool);
    assert_eq!((device.read32(CTRL) & CTRL_VME, device.read32(RXCSUM)), (0, 0), "off again");
    port.close().unwrap();
    assert!(pool.mempool().is_full());
}

/// The 8254x strips and inserts tags under one switch: insertion alone is refused at configure,
/// saying why and what to do.
#[test]
fn vlan_insert_without_strip_is_refused() {
    use burst_ethdev::TxOffloads;
    let (_device, pci) = fake_e1000();
    let mut port = port(pci, memory());
    let conf = PortConf { tx_offloads: TxOffloads::VLAN_INSERT, ..PortConf::queues(1, 1) };
    let e = port.configure(&conf).unwrap_err();
    assert_eq!(e.driver_error::<burst_e1000::E1000Error>(), Some(&burst_e1000::E1000Error::VlanInsertWithoutStrip));
    assert!(e.to_string().contains("ask for both"), "{e}");
    port.close().unwrap();
}

/// Jumbo frames on 2 KiB buffers: an MTU of 9000 is refused without scatter (the frame does not
/// fit one buffer) and taken with it; long packet enable goes on, the buffers stay 2048 bytes.
#[test]
fn scatter_takes_jumbo_frames_on_small_buffers() {
    use burst_ethdev::RxOffloads;
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    let jumbo = PortConf { mtu: Some(9000), ..PortConf::queues(1, 1) };
    port.configure(&jumbo).unwrap();
    let refused = port.rx_queue_setup(0, 32, &pool).unwrap_err().to_string();
    assert!(refused.contains("9018") && refused.contains("2048"), "{refused}");
    port.configure(&PortConf { rx_offloads: RxOffloads::SCATTER, ..jumbo }).unwrap();
    port.rx_queue_setup(0, 32, &pool).unwrap();
    port.tx_queue_setup(0, 32).unwrap();
    port.start().unwrap();
    let rctl = device.read32(RCTL);
    assert_ne!(rctl & RCTL_LPE, 0, "long packet enable");
    assert_eq!(rctl & (RCTL_BSEX | (3 << RCTL_BSIZE_SHIFT)), 0, "2048-byte buffers");
    port.close().unwrap();
    assert!(pool.mempool().is_full());
}

/// Write-backs that lie, through the port as an application sees it (scatter on, MTU 9000): a
/// chain in three buffers arrives whole; a zero-length middle segment, a length past the buffer
/// and a frame whose EOP never comes (it outgrows the device's 16384 bytes) each cost their frame,
/// counted once in `ierrors` and `rx_chain_errors`, and the frames after them arrive; a chain
/// that runs past the descriptors handed to the device is never read past them. No buffer is lost.
#[test]
fn hostile_chains_through_the_port_cost_their_frame_never_a_buffer() {
    use burst_ethdev::RxOffloads;
    const MORE: u8 = RXD_STAT_DD;
    const DONE: u8 = RXD_STAT_DD | RXD_STAT_EOP;
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    port.configure(&PortConf { rx_offloads: RxOffloads::SCATTER, mtu: Some(9000), ..PortConf::queues(1, 1) }).unwrap();
    port.rx_queue_setup(0, 32, &pool).unwrap();
    port.tx_queue_setup(0, 32).unwrap();
    port.start().unwrap();
    let mut writes: Vec<(u16, u8)> = vec![
        (2048, MORE),
        (2048, MORE),
        (100, DONE), // a good chain of 4196 bytes
        (2048, MORE),
        (0, MORE),
        (100, DONE), // a zero-length middle segment
        (2048, MORE),
        (3000, DONE), // a length past the 2048-byte buffer
        (60, DONE),   // a good frame
    ];
    // EOP never comes: the ninth full buffer passes 16384 bytes; the frame is dropped there and
    // the rest of it, up to the next EOP, with it.
    writes.extend([(2048, MORE); 9]);
    writes.push((60, DONE));
    // Good frames up to descriptor 28, then a chain over 29, 30 and 31: RDT is 31, so the
    // device never owned 31 and its write-back there is not read.
    while writes.len() < 29 {
        writes.push((60, DONE));
    }
    writes.extend([(2048, MORE), (2048, MORE), (100, DONE)]);
    for (i, &(len, status)) in writes.iter().enumerate() {
        device.rx_write_back(i, len, status);
    }
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::new();
        let got = rx.rx_burst(&mut bufs, 32);
        let good_after = 29 - 19;
        assert_eq!(got, 2 + good_after, "the chain, the frame after the lies, and the good frames after");
        assert_eq!((bufs[0].pkt_len(), bufs[0].nb_segs()), (4196, 3));
        assert!(bufs[1..].iter().all(|p| (p.pkt_len(), p.nb_segs()) == (60, 1)));
        assert_eq!(rx.rx_burst(&mut bufs, 32), 0, "descriptor 31 was never the device's");
    }
    let s = port.stats();
    assert_eq!((s.ipackets, s.ierrors), (12, 3), "{s:?}");
    let chain_errors = port.xstats().into_iter().find(|x| x.name == "rx_chain_errors").map(|x| x.value);
    assert_eq!(chain_errors, Some(3));
    port.close().unwrap();
    assert!(pool.mempool().is_full(), "{} buffers missing", pool.mempool().in_use());
}

/// What the device says of a frame reaches the application through the port: checksum verdicts
/// (good, bad, unknown under IXSM) as flags, a bad one delivered and counted in the xstats
/// under DPDK's e1000 names, and a stripped tag in `vlan_tci`.
#[test]
fn checksum_verdicts_and_stripped_tags_reach_the_application() {
    use burst_ethdev::RxOffloads;
    use burst_mem::{CksumStatus, OlFlags};
    const DONE: u8 = RXD_STAT_DD | RXD_STAT_EOP;
    const CSUM: u8 = RXD_STAT_IPCS | RXD_STAT_TCPCS;
    let (device, pci) = fake_e1000();
    let mem = memory();
    let pool = packet_pool(&mem, 128);
    let mut port = port(pci, mem);
    let conf = PortConf { rx_offloads: RxOffloads::CHECKSUM | RxOffloads::VLAN_STRIP, ..PortConf::queues(1, 1) };
    port.configure(&conf).unwrap();
    port.rx_queue_setup(0, 32, &pool).unwrap();
    port.tx_queue_setup(0, 32).unwrap();
    port.start().unwrap();
    device.rx_write_back_full(0, 60, DONE | CSUM, 0, 0);
    device.rx_write_back_full(1, 60, DONE | CSUM, RXD_ERR_IPE, 0);
    device.rx_write_back_full(2, 60, DONE | CSUM | RXD_STAT_VP, RXD_ERR_TCPE, 0xa064);
    device.rx_write_back_full(3, 60, DONE | RXD_STAT_IXSM | CSUM, RXD_ERR_IPE | RXD_ERR_TCPE, 0);
    {
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs = Vec::new();
        assert_eq!(rx.rx_burst(&mut bufs, 32), 4, "bad checksums are delivered");
        let got: Vec<_> = bufs
            .iter()
            .map(|p| {
                let f = p.ol_flags();
                (f.rx_ip_cksum(), f.rx_l4_cksum(), f.contains(OlFlags::RX_VLAN_STRIPPED), p.vlan_tci())
            })
            .collect();
        use CksumStatus::*;
        assert_eq!(
            got,
            [(Good, Good, false, 0), (Bad, Good, false, 0), (Good, Bad, true, 0xa064), (Unknown, Unknown, false, 0)]
        );
    }
    let xs = port.xstats();
    let x = |name: &str| xs.iter().find(|x| x.name == name).map(|x| x.value);
    assert_eq!((x("rx_ip_checksum_errors"), x("rx_l4_checksum_errors")), (Some(1), Some(1)));
    let s = port.stats();
    assert_eq!((s.ipackets, s.ierrors), (4, 0), "delivered, not errors: {s:?}");
    port.close().unwrap();
    assert!(pool.mempool().is_full());
}
