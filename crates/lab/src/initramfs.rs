//! The guest's root file system: busybox, the `init` script, the kernel modules from the
//! setup cache and the workspace's binaries on `PATH` (`/opt/burst/bin`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::CpioWriter;
use crate::paths::{KernelCache, BOOT_MODULES};
use crate::{elf, LabError};

/// Where the workspace's binaries go in the guest.
pub const GUEST_BIN_DIR: &str = "/opt/burst/bin";

const BUSYBOX: &str = "/bin/busybox";
const INIT: &str = include_str!("../guest/init");

/// Builds the initramfs holding `bins`.
pub fn build(kernel: &KernelCache, bins: &[PathBuf]) -> Result<Vec<u8>, LabError> {
    let mut w = CpioWriter::new();
    for d in ["proc", "sys", "dev", "tmp", "run", "mnt", "root", "etc", "var/run"] {
        w.dir(d);
    }
    w.char_dev("/dev/console", 0o600, 5, 1);
    w.file("/init", 0o755, INIT.as_bytes());
    w.file("/etc/burst-lab/boot-modules", 0o644, format!("{}\n", BOOT_MODULES.join("\n")).as_bytes());
    w.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    w.file("/etc/group", 0o644, b"root:x:0:\n");
    add_busybox(&mut w)?;
    add_tree(&mut w, &kernel.dir.join("lib"), "lib")?;
    for bin in bins {
        let name = bin
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LabError::Build(format!("binary path {} has no usable name", bin.display())))?;
        let data = fs::read(bin).map_err(LabError::io(format!("reading {}", bin.display())))?;
        w.file(&format!("{GUEST_BIN_DIR}/{name}"), 0o755, &data);
    }
    Ok(w.finish())
}

fn add_busybox(w: &mut CpioWriter) -> Result<(), LabError> {
    let missing = || LabError::NotSetUp { what: format!("a static busybox at {BUSYBOX} (package busybox-static)") };
    let data = fs::read(BUSYBOX).map_err(|_| missing())?;
    if elf::needs_interpreter(&data) != Some(false) {
        return Err(missing());
    }
    w.file("/bin/busybox", 0o755, &data);
    let out = Command::new(BUSYBOX).arg("--list-full").output().map_err(LabError::io("running busybox --list-full"))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        w.symlink(&format!("/{applet}"), "/bin/busybox");
    }
    Ok(())
}

/// Adds every file under `src` as `dst/...`.
fn add_tree(w: &mut CpioWriter, src: &Path, dst: &str) -> Result<(), LabError> {
    let entries = fs::read_dir(src).map_err(LabError::io(format!("reading {}", src.display())))?;
    let mut entries: Vec<_> =
        entries.collect::<Result<_, _>>().map_err(LabError::io(format!("reading {}", src.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let target = format!("{dst}/{name}");
        if path.is_dir() {
            w.dir(&target);
            add_tree(w, &path, &target)?;
        } else {
            let data = fs::read(&path).map_err(LabError::io(format!("reading {}", path.display())))?;
            w.file(&target, 0o644, &data);
        }
    }
    Ok(())
}
