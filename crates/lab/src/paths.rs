//! Where the lab keeps what `cargo xtask setup` unpacks and what it builds: all under
//! `target/lab/` of the workspace.
//!
//! ```text
//! target/lab/kernel/vmlinuz                   the guest kernel
//! target/lab/kernel/release                   its release (`uname -r`)
//! target/lab/kernel/package                   the Debian package it came from; written last
//! target/lab/kernel/lib/modules/REL/...       the modules the guest needs, and modules.dep
//! target/lab/guest/                           cargo's target dir for the static guest binaries
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::LabError;

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at `crates/lab`.
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("crates/lab has a grandparent").to_path_buf()
}

/// `target/lab` of the workspace.
pub fn lab_dir() -> PathBuf {
    workspace_root().join("target").join("lab")
}

/// Modules the guest needs, by module name; their dependencies come along.
/// Loaded at boot: the control channel's and the NICs' kernel drivers, as on a real machine.
pub const BOOT_MODULES: &[&str] = &["virtio_pci", "virtio_console", "virtio_net", "e1000", "igb"];

/// Also in the guest, loaded on demand by whoever binds a device to them.
pub const ON_DEMAND_MODULES: &[&str] =
    &["vfio", "vfio_iommu_type1", "vfio_pci", "vfio_pci_core", "vfio_virqfd", "irqbypass", "uio", "uio_pci_generic"];

/// The unpacked guest kernel.
#[derive(Debug, Clone)]
pub struct KernelCache {
    pub dir: PathBuf,
    /// Kernel release, e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// `NAME VERSION` of the Debian package.
    pub package: String,
}

impl KernelCache {
    pub fn dir() -> PathBuf {
        lab_dir().join("kernel")
    }

    /// The cache if it is complete (its `package` stamp is written last).
    pub fn load() -> Result<KernelCache, LabError> {
        let dir = Self::dir();
        let read = |name: &str| fs::read_to_string(dir.join(name)).map(|s| s.trim().to_string());
        let missing = || LabError::NotSetUp { what: format!("the guest kernel ({})", dir.display()) };
        let package = read("package").map_err(|_| missing())?;
        let release = read("release").map_err(|_| missing())?;
        let cache = KernelCache { dir: dir.clone(), release, package };
        if !cache.vmlinuz().is_file() || !cache.modules_dir().join("modules.dep").is_file() {
            return Err(missing());
        }
        Ok(cache)
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// `lib/modules/RELEASE` inside the cache.
    pub fn modules_dir(&self) -> PathBuf {
        self.dir.join("lib/modules").join(&self.release)
    }
}
