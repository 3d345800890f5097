//! Which processes have a file open: the links in `/proc/PID/fd/`, as `fuser` finds them.
//!
//! Unbinding a device that a process holds open through VFIO (`/dev/vfio/GROUP`) or UIO
//! (`/dev/uioN`) waits in the kernel until that process lets go (vfio-pci's remove waits for
//! the device's users), so devbind looks first and names the process instead.
//!
//! Limits: only descriptors are seen. A process that closed the group file but kept a VFIO
//! device descriptor (`anon_inode:[vfio-device]`, which does not say which device, at least up
//! to Linux 6.1) or only a mapping of a BAR is not found; nor are other users' processes when
//! not root.

use std::fmt;
use std::fs;

use super::{names_in, SysfsRoot};

/// A process with a file open.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holder {
    /// Its process ID.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`), `?` if unreadable.
    pub name: String,
}

impl fmt::Display for Holder {
    /// `pci-check (pid 1234)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {})", self.name, self.pid)
    }
}

impl SysfsRoot {
    /// The processes that have `file` (an absolute path, as `/proc/PID/fd/N` links show it:
    /// `/dev/vfio/7`) open, sorted by PID. Processes that go away or cannot be read meanwhile
    /// are left out.
    pub fn holders(&self, file: &str) -> Vec<Holder> {
        let proc = self.path().join("proc");
        let mut found: Vec<Holder> = names_in(&proc)
            .into_iter()
            .filter_map(|name| name.parse::<u32>().ok())
            .filter(|pid| {
                let fds = proc.join(pid.to_string()).join("fd");
                fs::read_dir(fds).is_ok_and(|entries| {
                    entries.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|target| target.as_os_str() == file))
                })
            })
            .map(|pid| {
                let comm = fs::read_to_string(proc.join(pid.to_string()).join("comm")).unwrap_or_default();
                let name = if comm.trim().is_empty() { "?".to_string() } else { comm.trim().to_string() };
                Holder { pid, name }
            })
            .collect();
        found.sort();
        found
    }
}
