//! The burst lab: a QEMU guest with emulated NICs that a Rust test can boot, put a program
//! in, talk to over the NICs' wires, and read back. Every driver is tested here.
//!
//! ```no_run
//! use burst_lab::{Lab, LabConfig, NicModel};
//! let lab = Lab::boot(LabConfig::with_nics(&[NicModel::E1000]))?;
//! let out = lab.sh_ok("cat /sys/bus/pci/devices/0000:00:02.0/vendor")?;
//! assert_eq!(out.trim(), "0x8086");
//! # Ok::<(), burst_lab::LabError>(())
//! ```
//!
//! How it fits together (details in `docs/lab.md`):
//! - `cargo xtask setup` installs QEMU and busybox and unpacks a Debian kernel into
//!   `target/lab/kernel` ([`paths`]).
//! - [`Lab::boot`] builds the workspace's binaries statically ([`guest_build`]), packs them
//!   with busybox and the kernel modules into an initramfs ([`initramfs`]), and starts QEMU
//!   ([`qemu`]) with one emulated NIC per [`NicModel`].
//! - In the guest, `/init` starts `burst-lab-agent`, which runs the host's commands and
//!   streams their output over a virtio-serial port ([`proto`], [`agent`]).
//! - Each NIC's wire is a UDP socket pair on 127.0.0.1 ([`Wire`]); test frames ([`frames`])
//!   carry a sequence number and a checksum.

pub mod agent;
pub mod config;
pub mod cpio;
pub mod elf;
mod error;
pub mod frames;
pub mod guest_build;
pub mod initramfs;
mod lab;
pub mod paths;
pub mod pmd;
mod process;
pub mod proto;
pub mod qemu;
mod wire;

pub use config::{format_mac, nic_mac, nic_pci_address, parse_mac, parse_mem_mib, Accel, Iommu, LabConfig, NicModel};
pub use error::LabError;
pub use lab::{qemu_binary, Lab, Nic, DEFAULT_COMMAND_TIMEOUT};
pub use process::{Output, Process, ProcessEvent};
pub use proto::ExitStatus;
pub use qemu::Accelerator;
pub use wire::{Received, Wire};
