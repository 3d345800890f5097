//! A writer for the `newc` cpio format, the one the Linux kernel unpacks as an initramfs
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`). Only what an initramfs
//! needs: directories, regular files, symlinks and device nodes, all owned by root.

use std::collections::BTreeSet;

const MAGIC: &str = "070701";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An archive being built in memory. Parent directories are added automatically.
#[derive(Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter { out: Vec::new(), next_ino: 1, dirs: BTreeSet::new() }
    }

    /// Adds a directory (and its parents) unless already present.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, 0, &[]);
    }

    /// Adds a regular file with the given permission bits.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parent(path);
        self.entry(path.trim_start_matches('/'), S_IFREG | (perm & 0o7777), 0, data);
    }

    /// Adds a symbolic link `path -> target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parent(path);
        self.entry(path.trim_start_matches('/'), S_IFLNK | 0o777, 0, target.as_bytes());
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.parent(path);
        let rdev = (major << 8) | minor;
        self.entry(path.trim_start_matches('/'), S_IFCHR | (perm & 0o7777), rdev, &[]);
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.trim_matches('/').rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so archives are reproducible
            u32::try_from(data.len()).expect("initramfs member over 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev >> 8,
            rdev & 0xff,
            u32::try_from(name.len() + 1).expect("name fits"),
            0, // check
        ];
        self.out.extend_from_slice(MAGIC.as_bytes());
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// The system's `cpio` (installed by `cargo xtask setup`) must read back what we wrote.
    #[test]
    fn system_cpio_lists_what_was_written() {
        let mut w = CpioWriter::new();
        w.file("/bin/tool", 0o755, b"#!/bin/sh\necho hi\n");
        w.symlink("/bin/sh", "busybox");
        w.char_dev("/dev/console", 0o600, 5, 1);
        w.file("/etc/odd", 0o644, b"abc"); // not a multiple of 4
        let archive = w.finish();
        assert_eq!(archive.len() % 4, 0);

        let mut child = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cpio is installed by `cargo xtask setup`");
        child.stdin.take().unwrap().write_all(&archive).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listing = String::from_utf8(out.stdout).unwrap();
        for (name, perm) in [
            ("bin", "drwxr-xr-x"),
            ("bin/tool", "-rwxr-xr-x"),
            ("bin/sh -> busybox", "lrwxrwxrwx"),
            ("dev/console", "crw-------"),
            ("etc/odd", "-rw-r--r--"),
        ] {
            let line =
                listing.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("{name} missing from\n{listing}"));
            assert!(line.starts_with(perm), "{line}");
        }
        // The three entries above plus the directories bin, dev and etc.
        assert_eq!(listing.lines().count(), 7, "{listing}");
    }
}
