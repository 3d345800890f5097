//! pci-check: pokes a device bound to vfio-pci or uio_pci_generic through `burst_pci`, for the
//! lab's tests and for a person at a guest shell. Prints `key=value` lines; on error prints one
//! line, `pci-check: ...`, and exits with 1.
//!
//! Run it only on devices you mean to drive: it writes registers and programs DMA.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burst_mem::{IovaMode, MemConfig, Memory, Memzone, MemzoneFlags};
use burst_pci::config::{CAP_ID_MSIX, CAP_ID_VENDOR};
use burst_pci::sysfs::SysfsRoot;
use burst_pci::{choose_iova_mode, Bar, Container, HostIova, IrqKind, PciAddress, PciDevice};

const USAGE: &str = "usage: pci-check COMMAND ADDR ...
  info ADDR                          binding, IDs, BARs, interrupts, IOMMU
  read ADDR BAR OFFSET [8|16|32]     read a register
  write-read ADDR BAR OFFSET VALUE [8|16|32]
                                     write a register, read it back
  config ADDR OFFSET [8|16|32]       read config space
  caps ADDR                          list capabilities and virtio structures
  mac ADDR e1000|virtio-legacy|virtio-modern
                                     read the MAC address from the device
  irq ADDR [intx|msi|msix]           e1000: raise TXDW through ICS, wait for it
  irq-enable ADDR intx|msi|msix N    route N vectors to file descriptors, then stop
  dma ADDR [--hugepages] [--iova-mode pa|va]
                                     map, check and unmap a DMA segment (vfio-pci)
  map-at ADDR IOVA [LEN]             map an anonymous buffer at IOVA, then unmap (vfio-pci)
  e1000-tx ADDR [--hugepages] [--iova-mode pa|va] [--no-map]
                                     e1000: send one frame by DMA from a memzone
  reopen ADDR [--hugepages] [--iova-mode pa|va]
                                     e1000 on vfio-pci: map memory, close the device (an INTx
                                     interrupt keeping it open a while), open it again in the
                                     same container, send a frame by DMA from that memory
  group ADDR                         open through VFIO: is the IOMMU group viable?
  vote [--hugepages] [--iova-mode pa|va] [--own-containers] [ADDR...]
                                     the IOVA mode these devices (and this machine) allow;
                                     --own-containers opens each in a new VFIO container
  hold ADDR [SECONDS]                open the device and keep it open (600 s, or until killed)
  reset ADDR                         function-level reset";

fn main() -> ExitCode {
    // Output piped into `head` ends like any Unix tool's: by SIGPIPE, not a panic in println!.
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pci-check: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn number(s: &str) -> Res<u64> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number (decimal or 0x hex)"))
}

fn addr(s: Option<&String>) -> Res<PciAddress> {
    s.ok_or_else(|| format!("missing device address\n{USAGE}"))?.parse().map_err(err)
}

fn open(a: PciAddress) -> Res<PciDevice> {
    PciDevice::open(Path::new("/"), a, None).map_err(err)
}

/// Splits `--flag [value]` options from positional arguments.
struct Opts {
    pos: Vec<String>,
    hugepages: bool,
    no_map: bool,
    own_containers: bool,
    iova_mode: Option<IovaMode>,
}

fn opts(args: &[String]) -> Res<Opts> {
    let mut o = Opts { pos: Vec::new(), hugepages: false, no_map: false, own_containers: false, iova_mode: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--hugepages" => o.hugepages = true,
            "--no-map" => o.no_map = true,
            "--own-containers" => o.own_containers = true,
            "--iova-mode" => {
                let v = it.next().ok_or("--iova-mode needs pa or va")?;
                o.iova_mode = Some(v.parse().map_err(err)?);
            }
            s if s.starts_with("--iova-mode=") => o.iova_mode = Some(s["--iova-mode=".len()..].parse().map_err(err)?),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => o.pos.push(a.clone()),
        }
    }
    Ok(o)
}

fn run(args: &[String]) -> Res<()> {
    let Some((cmd, rest)) = args.split_first() else { return Err(USAGE.to_string()) };
    let o = opts(rest)?;
    let p = &o.pos;
    match cmd.as_str() {
        "info" => info(&open(addr(p.first())?)?),
        "read" => {
            let (bar, off, w) = (arg(p, 1, "BAR")?, arg(p, 2, "OFFSET")?, width(p.get(3))?);
            let dev = open(addr(p.first())?)?;
            let bar = dev.bar(bar).map_err(err)?;
            let v = read(&bar, off, w)?;
            println!("value={v:#x}");
            Ok(())
        }
        "write-read" => {
            let (bar, off, w) = (arg(p, 1, "BAR")?, arg(p, 2, "OFFSET")?, width(p.get(4))?);
            let value = arg_num(p, 3, "VALUE")?;
            if w < 64 && value >> w != 0 {
                return Err(format!("VALUE {value:#x} does not fit in {w} bits"));
            }
            let dev = open(addr(p.first())?)?;
            let bar = dev.bar(bar).map_err(err)?;
            let before = read(&bar, off, w)?;
            write(&bar, off, value, w)?;
            let after = read(&bar, off, w)?;
            println!("before={before:#x}\nwrote={value:#x}\nread={after:#x}");
            Ok(())
        }
        "config" => {
            let (off, w) = (arg::<u16>(p, 1, "OFFSET")?, width(p.get(2))?);
            let dev = open(addr(p.first())?)?;
            let v = match w {
                8 => u32::from(dev.config_read8(off).map_err(err)?),
                16 => u32::from(dev.config_read16(off).map_err(err)?),
                _ => dev.config_read32(off).map_err(err)?,
            };
            println!("value={v:#x}");
            Ok(())
        }
        "caps" => caps(&open(addr(p.first())?)?),
        "mac" => {
            let dev = open(addr(p.first())?)?;
            let model = p.get(1).ok_or("mac needs a model: e1000, virtio-legacy or virtio-modern")?;
            let mac = mac(&dev, model)?;
            let text: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            println!("mac={}", text.join(":"));
            Ok(())
        }
        "irq" => irq(&open(addr(p.first())?)?, p.get(1).map(String::as_str).unwrap_or("intx")),
        "irq-enable" => {
            let kind = irq_kind(p.get(1).map(String::as_str).unwrap_or("intx"))?;
            let n: u32 = if p.len() > 2 { arg(p, 2, "N")? } else { 1 };
            let dev = open(addr(p.first())?)?;
            let irqs = dev.enable_irqs(kind, n).map_err(err)?;
            let pending: u64 = irqs.iter().map(|i| i.take_count().unwrap_or(0)).sum();
            dev.disable_irqs(kind).map_err(err)?;
            println!("kind={kind}\nenabled={}\npending={pending}", irqs.len());
            Ok(())
        }
        "dma" => dma(&open(addr(p.first())?)?, &o),
        "map-at" => {
            let iova = arg_num(p, 1, "IOVA")?;
            let len: usize = if p.len() > 2 { arg(p, 2, "LEN")? } else { 2 << 20 };
            map_at(&open(addr(p.first())?)?, iova, len)
        }
        "e1000-tx" => e1000_tx(&open(addr(p.first())?)?, &o),
        "reopen" => reopen(addr(p.first())?, &o),
        "hold" => {
            let secs: u64 = if p.len() > 1 { arg(p, 1, "SECONDS")? } else { 600 };
            let dev = open(addr(p.first())?)?;
            // An INTx vector too, when there is one: under UIO it is what keeps /dev/uioN open.
            let irqs = if dev.irqs().intx > 0 { dev.enable_irqs(IrqKind::Intx, 1).map_err(err)? } else { Vec::new() };
            // The test that starts this waits for these lines, then looks for the PID.
            println!("pid={}\nheld={}\nbinding={}", std::process::id(), dev.address(), dev.binding());
            std::thread::sleep(Duration::from_secs(secs));
            drop((irqs, dev));
            Ok(())
        }
        "group" => {
            let dev = open(addr(p.first())?)?;
            let group = dev.iommu_group().ok_or_else(|| format!("{} is not bound to vfio-pci", dev.address()))?;
            println!("group={group}\nbinding={}", dev.binding());
            Ok(())
        }
        "vote" => vote(&o),
        "reset" => {
            open(addr(p.first())?)?.reset().map_err(err)?;
            println!("reset=ok");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn arg_num(p: &[String], i: usize, what: &str) -> Res<u64> {
    number(p.get(i).ok_or_else(|| format!("missing {what}\n{USAGE}"))?)
}

/// Argument `i` as a `T`: a number that `T` holds, or an error (never a silent truncation).
fn arg<T: TryFrom<u64>>(p: &[String], i: usize, what: &str) -> Res<T> {
    let v = arg_num(p, i, what)?;
    T::try_from(v).map_err(|_| format!("{what} {} is out of range: at most {:#x}", p[i], max_of::<T>()))
}

/// The largest u64 that converts to `T`, for messages.
fn max_of<T: TryFrom<u64>>() -> u64 {
    (0..64).map(|b| u64::MAX >> b).find(|&m| T::try_from(m).is_ok()).unwrap_or(0)
}

fn width(s: Option<&String>) -> Res<u32> {
    match s.map(String::as_str) {
        None | Some("32") => Ok(32),
        Some("16") => Ok(16),
        Some("8") => Ok(8),
        Some(o) => Err(format!("width {o:?}: use 8, 16 or 32")),
    }
}

/// Bounds-checked here so a typo is an error line, not the Bar's (deliberate) panic.
fn check_off(bar: &Bar, off: usize, w: u32) -> Res<()> {
    let size = (w / 8) as usize;
    if off % size != 0 || off.checked_add(size).is_none_or(|end| end > bar.len()) {
        return Err(format!(
            "offset {off:#x} is outside BAR{} ({:#x} bytes) or not {size}-byte aligned",
            bar.index(),
            bar.len()
        ));
    }
    Ok(())
}

fn read(bar: &Bar, off: usize, w: u32) -> Res<u64> {
    check_off(bar, off, w)?;
    Ok(match w {
        8 => u64::from(bar.read8(off)),
        16 => u64::from(bar.read16(off)),
        _ => u64::from(bar.read32(off)),
    })
}

fn write(bar: &Bar, off: usize, v: u64, w: u32) -> Res<()> {
    check_off(bar, off, w)?;
    match w {
        8 => bar.write8(off, v as u8),
        16 => bar.write16(off, v as u16),
        _ => bar.write32(off, v as u32),
    }
    Ok(())
}

fn info(dev: &PciDevice) -> Res<()> {
    println!("address={}", dev.address());
    println!("binding={}", dev.binding());
    println!("vendor={:#06x}", dev.config_read16(0).map_err(err)?);
    println!("device={:#06x}", dev.config_read16(2).map_err(err)?);
    if let Some(g) = dev.iommu_group() {
        println!("group={g}");
    }
    if let Some(u) = dev.uio_name() {
        println!("uio={u}");
    }
    if let Some(c) = dev.container() {
        println!("iommu_width={}", c.address_width().map_or("unknown".into(), |w| w.to_string()));
        if let Some(r) = c.iova_ranges() {
            println!("iova_ranges={}", r.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(","));
        }
    }
    println!("iova_modes={}", dev.allowed_iova_modes());
    let irqs = dev.irqs();
    println!("intx={}\nmsi={}\nmsix={}", irqs.intx, irqs.msi, irqs.msix);
    for i in 0..6u8 {
        if let Ok(bar) = dev.bar(i) {
            println!("bar{i}={}:{:#x}", if bar.is_mmio() { "mmio" } else { "file" }, bar.len());
        }
    }
    Ok(())
}

/// A virtio PCI capability (virtio 1.1, 4.1.4 "Virtio Structure PCI Capabilities"):
/// cfg_type at +3, bar at +4, offset (le32) at +8, length (le32) at +12.
struct VirtioCap {
    cfg_type: u8,
    bar: u8,
    offset: u32,
    length: u32,
}

/// `VIRTIO_PCI_CAP_COMMON_CFG`.
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
/// `VIRTIO_PCI_CAP_DEVICE_CFG`.
const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;

fn virtio_caps(dev: &PciDevice) -> Res<Vec<VirtioCap>> {
    let mut out = Vec::new();
    for cap in dev.capabilities().map_err(err)? {
        if cap.id != CAP_ID_VENDOR {
            continue;
        }
        let o = cap.offset;
        out.push(VirtioCap {
            cfg_type: dev.config_read8(o + 3).map_err(err)?,
            bar: dev.config_read8(o + 4).map_err(err)?,
            offset: dev.config_read32(o + 8).map_err(err)?,
            length: dev.config_read32(o + 12).map_err(err)?,
        });
    }
    Ok(out)
}

fn caps(dev: &PciDevice) -> Res<()> {
    for cap in dev.capabilities().map_err(err)? {
        println!("cap={:#04x}@{:#x}", cap.id, cap.offset);
    }
    for v in virtio_caps(dev)? {
        println!("virtio_cap type={} bar={} offset={:#x} length={:#x}", v.cfg_type, v.bar, v.offset, v.length);
    }
    Ok(())
}

/// 8254x SDM 13.4.x: Receive Address Low/High 0 (RAL0 0x05400, RAH0 0x05404); RAH bit 31 = AV.
const RAL0: usize = 0x5400;
const RAH0: usize = 0x5404;
/// Virtio 1.1, 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout": the device-specific
/// config follows the 20-byte header, or 24 bytes when MSI-X is enabled.
const VIRTIO_LEGACY_CONFIG: usize = 20;
const VIRTIO_LEGACY_CONFIG_MSIX: usize = 24;

fn mac(dev: &PciDevice, model: &str) -> Res<[u8; 6]> {
    let mut mac = [0u8; 6];
    match model {
        "e1000" => {
            let bar = dev.bar(0).map_err(err)?;
            let (lo, hi) = (bar.read32(RAL0), bar.read32(RAH0));
            mac[..4].copy_from_slice(&lo.to_le_bytes());
            mac[4..].copy_from_slice(&hi.to_le_bytes()[..2]);
            println!("rah_av={}", hi >> 31);
        }
        "virtio-legacy" => {
            let bar = dev.bar(0).map_err(err)?;
            let msix_on = match dev.config().find_capability(CAP_ID_MSIX).map_err(err)? {
                Some(c) => dev.config_read16(c.offset + 2).map_err(err)? & (1 << 15) != 0,
                None => false,
            };
            let base = if msix_on { VIRTIO_LEGACY_CONFIG_MSIX } else { VIRTIO_LEGACY_CONFIG };
            println!("bar0_mmio={}\nconfig_offset={base}", bar.is_mmio());
            for (i, b) in mac.iter_mut().enumerate() {
                *b = bar.read8(base + i);
            }
        }
        "virtio-modern" => {
            let caps = virtio_caps(dev)?;
            let cfg = caps
                .iter()
                .find(|c| c.cfg_type == VIRTIO_PCI_CAP_DEVICE_CFG)
                .ok_or("no virtio device-config capability (cfg_type 4): not a modern virtio device")?;
            let bar = dev.bar(cfg.bar).map_err(err)?;
            println!("device_cfg_bar={}\ndevice_cfg_offset={:#x}", cfg.bar, cfg.offset);
            for (i, b) in mac.iter_mut().enumerate() {
                *b = bar.read8(cfg.offset as usize + i);
            }
            if let Some(common) = caps.iter().find(|c| c.cfg_type == VIRTIO_PCI_CAP_COMMON_CFG) {
                println!("common_cfg_bar={}\ncommon_cfg_offset={:#x}", common.bar, common.offset);
            }
        }
        other => return Err(format!("unknown model {other:?}: use e1000, virtio-legacy or virtio-modern")),
    }
    Ok(mac)
}

// 8254x SDM 13.4.17-13.4.21: interrupt registers.
const ICR: usize = 0xc0;
const ICS: usize = 0xc8;
const IMS: usize = 0xd0;
const IMC: usize = 0xd8;
/// ICR.TXDW, "Transmit Descriptor Written Back".
const ICR_TXDW: u32 = 1 << 0;

fn irq_kind(s: &str) -> Res<IrqKind> {
    match s {
        "intx" => Ok(IrqKind::Intx),
        "msi" => Ok(IrqKind::Msi),
        "msix" => Ok(IrqKind::Msix),
        o => Err(format!("interrupt kind {o:?}: use intx, msi or msix")),
    }
}

fn irq(dev: &PciDevice, kind: &str) -> Res<()> {
    let kind = irq_kind(kind)?;
    let bar = dev.bar(0).map_err(err)?;
    dev.enable_bus_master().map_err(err)?; // MSI is a memory write by the device
    bar.write32(IMC, !0);
    let stale = bar.read32(ICR);
    let irqs = dev.enable_irqs(kind, 1).map_err(err)?;
    let irq = &irqs[0];
    let quiet = irq.wait(Some(Duration::from_millis(200))).map_err(err)?;
    bar.write32(IMS, ICR_TXDW);
    let start = Instant::now();
    bar.write32(ICS, ICR_TXDW);
    let count = irq.wait(Some(Duration::from_secs(5))).map_err(err)?;
    let latency = start.elapsed();
    // Clear the cause, then let the line fire again.
    let icr = bar.read32(ICR);
    bar.write32(IMC, !0);
    irq.unmask().map_err(err)?;
    let after = irq.wait(Some(Duration::from_millis(200))).map_err(err)?;
    dev.disable_irqs(kind).map_err(err)?;
    println!("kind={kind}\nstale_icr={stale:#x}\nbefore={quiet}\ncount={count}\nicr={icr:#x}\nafter={after}");
    println!("latency_us={}", latency.as_micros());
    if count == 0 {
        return Err(format!("no {kind} interrupt within 5 s of writing ICS (ICR read {icr:#x})"));
    }
    Ok(())
}

fn container(dev: &PciDevice) -> Res<Arc<Container>> {
    dev.container()
        .cloned()
        .ok_or_else(|| format!("{} is bound to {}: DMA mapping needs vfio-pci", dev.address(), dev.binding()))
}

fn memory(o: &Opts, default: IovaMode) -> Res<Memory> {
    let mode = o.iova_mode.unwrap_or(default);
    let cfg = MemConfig { iova_mode: mode, no_huge: !o.hugepages, ..MemConfig::default() };
    Memory::new(cfg).map_err(err)
}

/// Anonymous memory for `map-at`, unmapped on drop.
struct Anon(*mut libc::c_void, usize);

impl Anon {
    fn new(len: usize) -> Res<Anon> {
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap of {len} bytes: {}", std::io::Error::last_os_error()));
        }
        Ok(Anon(p, len))
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`, no longer used.
        unsafe { libc::munmap(self.0, self.1) };
    }
}

fn map_at(dev: &PciDevice, iova: u64, len: usize) -> Res<()> {
    let c = container(dev)?;
    // At least a page, so that an empty range reaches the container, which says what is wrong.
    let buf = Anon::new(len.max(4096))?;
    println!("iommu_width={}", c.address_width().map_or("unknown".into(), |w| w.to_string()));
    c.map_dma(buf.0 as usize, iova, len).map_err(err)?;
    println!("mapped={iova:#x}");
    c.unmap_dma(iova, len).map_err(err)?;
    println!("unmapped={iova:#x}");
    Ok(())
}

fn dma(dev: &PciDevice, o: &Opts) -> Res<()> {
    let c = container(dev)?;
    let mem = memory(o, IovaMode::Va)?;
    println!("iova_mode={}\npage_size={}", mem.iova_mode(), mem.page_size());
    println!("iommu_width={}", c.address_width().map_or("unknown".into(), |w| w.to_string()));
    let id = mem.add_dma_mapper(c.clone()).map_err(err)?;
    let zone = mem.reserve("pci-check-dma", 1 << 20, None, 4096, MemzoneFlags::IOVA_CONTIG).map_err(err)?;
    let va = zone.as_ptr() as usize;
    println!("va={va:#x}\niova={:#x}\nlen={:#x}", zone.iova(), zone.len());
    // The segment holding the zone, as the memory mapped it in the IOMMU.
    let seg = mem.segment_size();
    let seg_va = va & !(seg - 1);
    let seg_iova = mem.iova_of(seg_va as *const u8).ok_or("the zone's segment has no IOVA")?;
    // Mapping it again must fail (EEXIST): the IOMMU really holds it.
    match c.map_dma(seg_va, seg_iova, seg) {
        Err(e) => println!("remap_refused=1\nremap_error={e}"),
        Ok(()) => {
            c.unmap_dma(seg_iova, seg).map_err(err)?;
            return Err(format!("segment {seg_iova:#x} was not mapped in the IOMMU: mapping it again worked"));
        }
    }
    drop(zone);
    mem.remove_dma_mapper(id);
    // Unmapped now: the same IOVA range takes a new mapping, and gives it back in full.
    let buf = Anon::new(seg)?;
    c.map_dma(buf.0 as usize, seg_iova, seg).map_err(|e| format!("after unmapping, {e}"))?;
    c.unmap_dma(seg_iova, seg).map_err(err)?;
    println!("unmapped=1");
    Ok(())
}

// 8254x SDM 13.4: transmit registers, and the legacy descriptor (3.3.3).
const CTRL: usize = 0x0;
const CTRL_SLU: u32 = 1 << 6;
const TCTL: usize = 0x400;
const TCTL_EN: u32 = 1 << 1;
const TCTL_PSP: u32 = 1 << 3;
const TIPG: usize = 0x410;
const TDBAL: usize = 0x3800;
const TDBAH: usize = 0x3804;
const TDLEN: usize = 0x3808;
const TDH: usize = 0x3810;
const TDT: usize = 0x3818;
const TXD_CMD_EOP: u8 = 1 << 0;
const TXD_CMD_IFCS: u8 = 1 << 1;
const TXD_CMD_RS: u8 = 1 << 3;
const TXD_STAT_DD: u8 = 1 << 0;

/// The frame `e1000-tx` sends: broadcast, from the NIC's MAC, EtherType 0x88b6, a fixed text.
const TX_PAYLOAD: &[u8] = b"burst pci-check e1000-tx DMA";

fn e1000_tx(dev: &PciDevice, o: &Opts) -> Res<()> {
    let default = match dev.container() {
        Some(_) => IovaMode::Va,
        None => IovaMode::Pa,
    };
    let mem = memory(o, default)?;
    let mapper = match (dev.container(), o.no_map) {
        (Some(c), false) => Some(mem.add_dma_mapper(c.clone()).map_err(err)?),
        _ => None,
    };
    let (ring, buf) = tx_zones(&mem)?;
    println!("iova_mode={}", mem.iova_mode());
    let sent = e1000_send(dev, &ring, &buf);
    drop((ring, buf));
    if let Some(id) = mapper {
        mem.remove_dma_mapper(id);
    }
    sent
}

/// The e1000's transmit ring (eight 16-byte descriptors: TDLEN must be a multiple of 128) and a
/// frame buffer, in DMA memory.
fn tx_zones(mem: &Memory) -> Res<(Memzone, Memzone)> {
    let ring = mem.reserve("pci-check-txring", 128, None, 4096, MemzoneFlags::IOVA_CONTIG).map_err(err)?;
    let buf = mem.reserve("pci-check-txbuf", 2048, None, 4096, MemzoneFlags::IOVA_CONTIG).map_err(err)?;
    Ok((ring, buf))
}

/// Sends one broadcast frame from `buf` through descriptor 0 of `ring` and waits for the e1000
/// to write the descriptor back.
fn e1000_send(dev: &PciDevice, ring: &Memzone, buf: &Memzone) -> Res<()> {
    let bar = dev.bar(0).map_err(err)?;
    let mac = mac(dev, "e1000")?;
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x88, 0xb6]);
    frame.extend_from_slice(TX_PAYLOAD);
    frame.resize(60, 0);
    // SAFETY: the buffer zone is 2048 bytes of our DMA memory and the frame is 60; nothing else
    // uses the zone, and the device is not told about it until TDT moves below.
    unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), buf.as_ptr(), frame.len()) };
    // Descriptor 0 (legacy layout, 3.3.3): buffer address, length, cmd at byte 11; the other
    // seven stay zero.
    let mut image = [0u8; 128];
    image[..8].copy_from_slice(&buf.iova().to_le_bytes());
    image[8..10].copy_from_slice(&(frame.len() as u16).to_le_bytes());
    image[11] = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
    for (i, byte) in image.iter().enumerate() {
        // SAFETY: the ring zone is 128 bytes and `i` < 128; the device may read this memory
        // once TDT moves, hence volatile writes.
        unsafe { ring.as_ptr().add(i).write_volatile(*byte) };
    }
    dev.enable_bus_master().map_err(err)?;
    bar.write32(TCTL, 0);
    bar.write32(CTRL, bar.read32(CTRL) | CTRL_SLU);
    bar.write32(TDBAL, ring.iova() as u32);
    bar.write32(TDBAH, (ring.iova() >> 32) as u32);
    bar.write32(TDLEN, 128);
    bar.write32(TDH, 0);
    bar.write32(TDT, 0);
    bar.write32(TIPG, 10 | (8 << 10) | (6 << 20));
    bar.write32(TCTL, TCTL_EN | TCTL_PSP | (0x10 << 4) | (0x40 << 12));
    println!("ring_iova={:#x}\nbuf_iova={:#x}", ring.iova(), buf.iova());
    bar.write32(TDT, 1);
    let start = Instant::now();
    let mut status = 0u8;
    while start.elapsed() < Duration::from_secs(2) {
        // SAFETY: byte 12 of descriptor 0 (its status) is inside the ring zone; the device
        // writes it back by DMA, hence the volatile read.
        status = unsafe { ring.as_ptr().add(12).read_volatile() };
        if status & TXD_STAT_DD != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let tdh = bar.read32(TDH);
    bar.write32(TCTL, 0);
    bar.write32(TDLEN, 0);
    bar.write32(TDBAL, 0);
    println!("dd={}\ntdh={tdh}\nwaited_us={}", status & TXD_STAT_DD, start.elapsed().as_micros());
    if status & TXD_STAT_DD == 0 {
        return Err(format!("the e1000 did not write descriptor 0 back within 2 s (TDH {tdh})"));
    }
    Ok(())
}

/// Whether the IOMMU holds `zone`'s segment: mapping it again must fail with EEXIST.
fn segment_mapped(mem: &Memory, c: &Container, zone: &Memzone) -> Res<bool> {
    let seg = mem.segment_size();
    let seg_va = zone.as_ptr() as usize & !(seg - 1);
    let seg_iova = mem.iova_of(seg_va as *const u8).ok_or("the zone's segment has no IOVA")?;
    match c.map_dma(seg_va, seg_iova, seg) {
        Err(e) if e.to_string().contains("File exists") => Ok(true),
        Err(e) => Err(e.to_string()),
        Ok(()) => {
            c.unmap_dma(seg_iova, seg).map_err(err)?;
            Ok(false)
        }
    }
}

/// The container outlives its devices: memory mapped while the e1000 was open stays mapped
/// while an INTx interrupt keeps the device open, and is mapped again when the device is opened
/// again after closing (the kernel dropped the IOMMU with the last device). The e1000 then
/// sends a frame by DMA from that memory.
fn reopen(a: PciAddress, o: &Opts) -> Res<()> {
    let dev = open(a)?;
    let c = container(&dev)?;
    let mem = memory(o, IovaMode::Va)?;
    let id = mem.add_dma_mapper(c.clone()).map_err(err)?;
    let (ring, buf) = tx_zones(&mem)?;
    println!("iova_mode={}\nopen_devices={}", mem.iova_mode(), c.open_devices());
    // The interrupt holds the device file: the PciDevice can go, the group and IOMMU stay.
    let irqs = dev.enable_irqs(IrqKind::Intx, 1).map_err(err)?;
    drop(dev);
    println!("open_devices_with_irq={}", c.open_devices());
    println!("mapped_with_irq={}", u8::from(segment_mapped(&mem, &c, &ring)?));
    drop(irqs);
    println!("open_devices_closed={}", c.open_devices());
    let dev = PciDevice::open(Path::new("/"), a, Some(&c)).map_err(err)?;
    println!("open_devices_reopened={}", c.open_devices());
    println!("mapped_after_reopen={}", u8::from(segment_mapped(&mem, &c, &ring)?));
    let sent = e1000_send(&dev, &ring, &buf);
    drop((ring, buf));
    mem.remove_dma_mapper(id);
    sent
}

fn vote(o: &Opts) -> Res<()> {
    let mut votes = Vec::new();
    let mut shared: Option<Arc<Container>> = None;
    let mut devs = Vec::new();
    for a in &o.pos {
        let a: PciAddress = a.parse().map_err(err)?;
        let dev = PciDevice::open(Path::new("/"), a, shared.as_ref()).map_err(err)?;
        if shared.is_none() && !o.own_containers {
            shared = dev.container().cloned();
        }
        let v = dev.vote();
        let width = v.iommu_width.map_or("unknown".into(), |w| w.to_string());
        println!("device={} binding={} allowed={} iommu_width={width}", a, v.binding, v.allowed());
        votes.push(v);
        devs.push(dev);
    }
    let host = HostIova::probe(&SysfsRoot::host(), o.hugepages);
    println!("phys_addrs={}\niommu={}", u8::from(host.phys_addrs), u8::from(host.iommu));
    let mode = choose_iova_mode(&votes, o.iova_mode, host).map_err(err)?;
    println!("iova_mode={mode}");
    Ok(())
}
