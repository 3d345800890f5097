//! The [`Kernel`] seam: the sysfs writes and module loads that binding needs, and the machine's
//! kernel behind it ([`HostKernel`]).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the binding code needs from the kernel: sysfs writes and module loading.
pub trait Kernel {
    /// Writes `value` to the sysfs attribute at `path` in one `write(2)`, like `echo -n`.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;

    /// Loads kernel module `module` (a module name, or a modalias as udev does), like
    /// `modprobe MODULE`. The error is what modprobe said.
    fn load_module(&self, module: &str) -> Result<(), String>;
}

/// The machine's kernel: real sysfs writes and the real `modprobe`.
#[derive(Clone, Debug)]
pub struct HostKernel {
    modprobe: PathBuf,
}

impl HostKernel {
    /// Runs `modprobe` from `PATH`.
    pub fn new() -> HostKernel {
        HostKernel { modprobe: PathBuf::from("modprobe") }
    }

    /// Runs this program instead of `modprobe`.
    pub fn with_modprobe(program: impl Into<PathBuf>) -> HostKernel {
        HostKernel { modprobe: program.into() }
    }
}

impl Default for HostKernel {
    fn default() -> Self {
        HostKernel::new()
    }
}

impl Kernel for HostKernel {
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        // No O_CREAT (a missing attribute is an error, not a new file) and no O_TRUNC (sysfs
        // attributes take the whole value in one write).
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(value.as_bytes())
    }

    fn load_module(&self, module: &str) -> Result<(), String> {
        let out = Command::new(&self.modprobe).arg(module).output().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("{} not found (install kmod)", self.modprobe.display())
            } else {
                format!("cannot run {}: {e}", self.modprobe.display())
            }
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().rfind(|l| !l.trim().is_empty()).map(str::trim).unwrap_or("failed").to_string())
    }
}
