//! PCI configuration space: the header registers a user-space driver needs (PCI Local Bus
//! Specification 3.0, 6.1 "Configuration Space Organization" and 6.2 "Configuration Space
//! Functions"), the command register's bits, and a walk of the capability list (6.7).
//!
//! Both bindings reach config space through a file: VFIO through the device's config region
//! (`VFIO_PCI_CONFIG_REGION_INDEX`), UIO through sysfs `config`. [`ConfigFile`] is that file at
//! an offset. Values are little-endian on the bus (6.1), whatever the CPU.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use crate::address::PciAddress;

/// Vendor ID, 16 bits.
pub const VENDOR_ID: u16 = 0x00;
/// Device ID, 16 bits.
pub const DEVICE_ID: u16 = 0x02;
/// Command register, 16 bits (6.2.2).
pub const COMMAND: u16 = 0x04;
/// Status register, 16 bits (6.2.3).
pub const STATUS: u16 = 0x06;
/// Revision ID, 8 bits.
pub const REVISION_ID: u16 = 0x08;
/// Class code, 24 bits at 0x09 (programming interface, subclass, base class).
pub const CLASS_CODE: u16 = 0x09;
/// Header type, 8 bits; bit 7 = multi-function.
pub const HEADER_TYPE: u16 = 0x0e;
/// Base Address Register 0; BAR `i` is at `BAR0 + 4 * i` (6.2.5.1).
pub const BAR0: u16 = 0x10;
/// Capabilities pointer, 8 bits (6.7).
pub const CAPABILITIES_PTR: u16 = 0x34;
/// Interrupt line, 8 bits.
pub const INTERRUPT_LINE: u16 = 0x3c;
/// Interrupt pin, 8 bits: 0 = none, 1..=4 = INTA#..INTD#.
pub const INTERRUPT_PIN: u16 = 0x3d;

/// Command: respond to I/O space accesses.
pub const COMMAND_IO_SPACE: u16 = 1 << 0;
/// Command: respond to memory space accesses.
pub const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
/// Command: the device may master the bus, i.e. do DMA.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command: INTx# assertion disabled (PCI 2.3).
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Status: INTx# is being asserted (PCI 2.3).
pub const STATUS_INTERRUPT: u16 = 1 << 3;
/// Status: the capabilities pointer is valid.
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// BAR bit 0: 1 for an I/O-space BAR, 0 for a memory BAR (6.2.5.1).
pub const BAR_IO_SPACE: u32 = 1;

/// Capability ID: power management.
pub const CAP_ID_PM: u8 = 0x01;
/// Capability ID: MSI (6.8.1).
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability ID: vendor specific (virtio puts its structures' locations in these).
pub const CAP_ID_VENDOR: u8 = 0x09;
/// Capability ID: PCI Express.
pub const CAP_ID_PCIE: u8 = 0x10;
/// Capability ID: MSI-X (6.8.2).
pub const CAP_ID_MSIX: u8 = 0x11;

/// Config-space access failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The access runs past the end of config space.
    #[error(
        "config space access of {len} bytes at {offset:#x} on {addr} is past its end ({size:#x} bytes): \
         this is a driver bug"
    )]
    OutOfRange {
        /// The device.
        addr: PciAddress,
        /// Offset asked for.
        offset: u16,
        /// Bytes asked for.
        len: usize,
        /// Size of the config space.
        size: u16,
    },
    /// The read or write system call failed.
    #[error(
        "{op} {len} bytes of config space at {offset:#x} on {addr} failed: {source} \
         (is the device still bound, and are we root?)"
    )]
    Io {
        /// `reading` or `writing`.
        op: &'static str,
        /// The device.
        addr: PciAddress,
        /// Offset.
        offset: u16,
        /// Bytes.
        len: usize,
        /// What the kernel said.
        source: io::Error,
    },
    /// The capability list loops or points outside the header.
    #[error("the capability list of {addr} is malformed at {offset:#x}: {problem}")]
    BadCapabilityList {
        /// The device.
        addr: PciAddress,
        /// Where the walk stopped.
        offset: u16,
        /// What was wrong.
        problem: &'static str,
    },
}

/// One entry of the capability list (PCI 3.0, 6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID ([`CAP_ID_MSI`], [`CAP_ID_VENDOR`], ...).
    pub id: u8,
    /// Its offset in config space; the ID byte is here, the next pointer at `offset + 1`.
    pub offset: u16,
}

/// A file descriptor that something else owns and keeps open: the VFIO device, or a sysfs file.
pub(crate) type SharedFd = Arc<dyn AsRawFd + Send + Sync>;

/// `pread` of exactly `buf.len()` bytes.
pub(crate) fn pread_exact(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes; pread writes at most that.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize == buf.len() => Ok(()),
        n => Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("short read: {n} of {} bytes", buf.len()))),
    }
}

/// `pwrite` of exactly `buf.len()` bytes.
pub(crate) fn pwrite_all(fd: RawFd, buf: &[u8], offset: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `buf` is a live buffer of `buf.len()` bytes; pwrite only reads it.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), offset) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize == buf.len() => Ok(()),
        n => Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write: {n} of {} bytes", buf.len()))),
    }
}

/// A device's config space, reached with pread/pwrite on a file at a base offset.
pub struct ConfigFile {
    addr: PciAddress,
    fd: SharedFd,
    base: u64,
    size: u16,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("addr", &self.addr)
            .field("base", &self.base)
            .field("size", &self.size)
            .finish()
    }
}

impl ConfigFile {
    /// Config space of `addr` at `base` in `fd`, `size` bytes long (256, or 4096 for PCIe).
    pub(crate) fn new(addr: PciAddress, fd: SharedFd, base: u64, size: u16) -> ConfigFile {
        ConfigFile { addr, fd, base, size }
    }

    /// The size of config space in bytes.
    pub fn size(&self) -> u16 {
        self.size
    }

    fn check(&self, offset: u16, len: usize) -> Result<(), ConfigError> {
        if usize::from(offset) + len > usize::from(self.size) {
            return Err(ConfigError::OutOfRange { addr: self.addr, offset, len, size: self.size });
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read(&self, offset: u16, buf: &mut [u8]) -> Result<(), ConfigError> {
        self.check(offset, buf.len())?;
        pread_exact(self.fd.as_raw_fd(), buf, self.base + u64::from(offset)).map_err(|source| ConfigError::Io {
            op: "reading",
            addr: self.addr,
            offset,
            len: buf.len(),
            source,
        })
    }

    /// Writes `buf` at `offset`.
    pub fn write(&self, offset: u16, buf: &[u8]) -> Result<(), ConfigError> {
        self.check(offset, buf.len())?;
        pwrite_all(self.fd.as_raw_fd(), buf, self.base + u64::from(offset)).map_err(|source| ConfigError::Io {
            op: "writing",
            addr: self.addr,
            offset,
            len: buf.len(),
            source,
        })
    }

    /// Reads a byte.
    pub fn read8(&self, offset: u16) -> Result<u8, ConfigError> {
        let mut b = [0u8; 1];
        self.read(offset, &mut b)?;
        Ok(b[0])
    }

    /// Reads a little-endian 16-bit value.
    pub fn read16(&self, offset: u16) -> Result<u16, ConfigError> {
        let mut b = [0u8; 2];
        self.read(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian 32-bit value.
    pub fn read32(&self, offset: u16) -> Result<u32, ConfigError> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a byte.
    pub fn write8(&self, offset: u16, value: u8) -> Result<(), ConfigError> {
        self.write(offset, &[value])
    }

    /// Writes a little-endian 16-bit value.
    pub fn write16(&self, offset: u16, value: u16) -> Result<(), ConfigError> {
        self.write(offset, &value.to_le_bytes())
    }

    /// Writes a little-endian 32-bit value.
    pub fn write32(&self, offset: u16, value: u32) -> Result<(), ConfigError> {
        self.write(offset, &value.to_le_bytes())
    }

    /// Sets the command register's bus-master bit, so the device may do DMA. Reads, sets, writes
    /// back, so the other command bits stay as they are.
    pub fn enable_bus_master(&self) -> Result<(), ConfigError> {
        let cmd = self.read16(COMMAND)?;
        if cmd & COMMAND_BUS_MASTER == 0 {
            self.write16(COMMAND, cmd | COMMAND_BUS_MASTER)?;
        }
        Ok(())
    }

    /// The capability list, in list order (empty when the status register says there is none).
    pub fn capabilities(&self) -> Result<Vec<Capability>, ConfigError> {
        if self.read16(STATUS)? & STATUS_CAP_LIST == 0 {
            return Ok(Vec::new());
        }
        walk_capabilities(self.addr, self.read8(CAPABILITIES_PTR)?, |off| Ok((self.read8(off)?, self.read8(off + 1)?)))
    }

    /// The first capability with ID `id`.
    pub fn find_capability(&self, id: u8) -> Result<Option<Capability>, ConfigError> {
        Ok(self.capabilities()?.into_iter().find(|c| c.id == id))
    }
}

/// Follows the list from `first`; `read` gives the (ID, next) bytes at an offset. The bottom two
/// bits of every pointer are reserved and masked off (6.7); a pointer into the standard header
/// (< 0x40) or a list longer than the space could hold is an error, not a hang.
fn walk_capabilities(
    addr: PciAddress,
    first: u8,
    mut read: impl FnMut(u16) -> Result<(u8, u8), ConfigError>,
) -> Result<Vec<Capability>, ConfigError> {
    const MAX_CAPS: usize = (256 - 0x40) / 4;
    let mut caps = Vec::new();
    let mut ptr = u16::from(first & !3);
    while ptr != 0 {
        if ptr < 0x40 {
            return Err(ConfigError::BadCapabilityList { addr, offset: ptr, problem: "pointer into the header" });
        }
        if caps.len() == MAX_CAPS {
            return Err(ConfigError::BadCapabilityList { addr, offset: ptr, problem: "the list loops" });
        }
        let (id, next) = read(ptr)?;
        caps.push(Capability { id, offset: ptr });
        ptr = u16::from(next & !3);
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn addr() -> PciAddress {
        "0000:00:02.0".parse().unwrap()
    }

    /// A 256-byte config space in a temporary file.
    fn config_file(bytes: &[u8; 256]) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("burst-pci-config-{}-{:p}", std::process::id(), bytes));
        let mut f = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all(bytes).unwrap();
        std::fs::remove_file(&path).unwrap();
        ConfigFile::new(addr(), Arc::new(f), 0, 256)
    }

    #[test]
    fn reads_and_writes_are_little_endian_and_bounded() {
        let mut space = [0u8; 256];
        space[0..4].copy_from_slice(&[0x86, 0x80, 0x0e, 0x10]);
        let cfg = config_file(&space);
        assert_eq!(cfg.read16(VENDOR_ID).unwrap(), 0x8086);
        assert_eq!(cfg.read16(DEVICE_ID).unwrap(), 0x100e);
        assert_eq!(cfg.read32(0).unwrap(), 0x100e_8086);
        cfg.write32(0x40, 0x1234_5678).unwrap();
        assert_eq!(cfg.read8(0x40).unwrap(), 0x78);
        assert_eq!(cfg.read16(0x42).unwrap(), 0x1234);
        assert!(cfg.read32(0xfc).is_ok());
        let err = cfg.read32(0xfd).unwrap_err();
        assert!(matches!(err, ConfigError::OutOfRange { offset: 0xfd, len: 4, size: 256, .. }), "{err}");
        assert!(err.to_string().contains("driver bug"));
        assert!(cfg.write8(0xff, 1).is_ok() && cfg.write16(0xff, 1).is_err());
    }

    #[test]
    fn bus_master_keeps_the_other_command_bits() {
        let mut space = [0u8; 256];
        space[COMMAND as usize] = (COMMAND_MEMORY_SPACE | COMMAND_IO_SPACE) as u8;
        space[COMMAND as usize + 1] = (COMMAND_INTX_DISABLE >> 8) as u8;
        let cfg = config_file(&space);
        cfg.enable_bus_master().unwrap();
        assert_eq!(
            cfg.read16(COMMAND).unwrap(),
            COMMAND_MEMORY_SPACE | COMMAND_IO_SPACE | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE
        );
    }

    #[test]
    fn capability_walk_follows_the_list_and_masks_reserved_bits() {
        let mut space = [0u8; 256];
        space[STATUS as usize] = STATUS_CAP_LIST as u8;
        space[CAPABILITIES_PTR as usize] = 0x98 | 2; // reserved bits set: ignored
        space[0x98..0x9a].copy_from_slice(&[CAP_ID_MSIX, 0x84]);
        space[0x84..0x86].copy_from_slice(&[CAP_ID_VENDOR, 0x70]);
        space[0x70..0x72].copy_from_slice(&[CAP_ID_VENDOR, 0x00]);
        let cfg = config_file(&space);
        let caps = cfg.capabilities().unwrap();
        let want = [(CAP_ID_MSIX, 0x98), (CAP_ID_VENDOR, 0x84), (CAP_ID_VENDOR, 0x70)];
        assert_eq!(caps, want.map(|(id, offset)| Capability { id, offset }).to_vec());
        assert_eq!(cfg.find_capability(CAP_ID_VENDOR).unwrap().unwrap().offset, 0x84);
        assert_eq!(cfg.find_capability(CAP_ID_MSI).unwrap(), None);
    }

    #[test]
    fn no_cap_list_bit_means_no_capabilities() {
        let mut space = [0u8; 256];
        space[CAPABILITIES_PTR as usize] = 0x40;
        assert!(config_file(&space).capabilities().unwrap().is_empty());
    }

    #[test]
    fn a_looping_or_stray_list_is_an_error() {
        let mut space = [0u8; 256];
        space[STATUS as usize] = STATUS_CAP_LIST as u8;
        space[CAPABILITIES_PTR as usize] = 0x40;
        space[0x40..0x42].copy_from_slice(&[CAP_ID_PM, 0x40]);
        let err = config_file(&space).capabilities().unwrap_err();
        assert!(err.to_string().contains("loops"), "{err}");
        space[0x41] = 0x10;
        let err = config_file(&space).capabilities().unwrap_err();
        assert!(err.to_string().contains("into the header"), "{err}");
    }
}
