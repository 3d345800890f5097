//! hugetlbfs mounts: finding them in `/proc/mounts`, making and removing them.
//!
//! A process gets hugepages by mapping files it creates on a hugetlbfs mount; each mount serves one
//! page size, named by its `pagesize=` option (Documentation/filesystems/hugetlbfs.rst). The kernel
//! shows that option in `/proc/mounts` as `pagesize=2M` or `pagesize=1024M`; a mount without it
//! serves the default page size.

use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::sysfs::read_text;
use super::{parse_size, HugepageError, PageSize, SysRoot};

/// `HUGETLBFS_MAGIC` from include/uapi/linux/magic.h: `statfs(2)`'s `f_type` on a hugetlbfs.
const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;

/// A mounted hugetlbfs and the page size it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugetlbMount {
    pub path: PathBuf,
    pub page_size: PageSize,
}

impl SysRoot {
    /// The hugetlbfs mounts in `/proc/mounts`, in mount order.
    pub fn mounts(&self) -> Result<Vec<HugetlbMount>, HugepageError> {
        let path = self.proc_path().join("mounts");
        let text = read_text(&path)?;
        let mut default_size = None;
        let mut mounts = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [_, mount_point, fs_type, options, ..] = fields[..] else {
                return Err(HugepageError::parse(&path, format!("line {} has fewer than 4 fields", n + 1)));
            };
            if fs_type != "hugetlbfs" {
                continue;
            }
            let page_size = match options.split(',').find_map(|o| o.strip_prefix("pagesize=")) {
                Some(value) => parse_size(value).ok().and_then(PageSize::from_bytes).ok_or_else(|| {
                    HugepageError::parse(&path, format!("line {}: `pagesize={value}` is not a page size", n + 1))
                })?,
                None => match default_size {
                    Some(size) => size,
                    None => *default_size.insert(self.default_page_size()?),
                },
            };
            mounts.push(HugetlbMount { path: unescape_mount_path(mount_point), page_size });
        }
        Ok(mounts)
    }

    /// The first hugetlbfs mount serving `size` pages.
    pub fn mount_for(&self, size: PageSize) -> Result<HugetlbMount, HugepageError> {
        if let Some(mount) = self.mounts()?.into_iter().find(|m| m.page_size == size) {
            return Ok(mount);
        }
        let is_default = self.default_page_size().map(|d| d == size).unwrap_or(false);
        Err(HugepageError::NoMount { size, is_default })
    }
}

/// Undoes the octal escapes `/proc/mounts` writes for space, tab, newline and backslash (`\040`).
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                // Three octal digits reach 511; only 0..=255 is a byte, anything else stays as written.
                match u8::try_from(value) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 4;
                    }
                    Err(_) => {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

fn c_path(path: &Path) -> Result<CString, HugepageError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        HugepageError::io(path, io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))
    })
}

/// Mounts a hugetlbfs for `size` pages at `path` (created if missing), like
/// `mount -t hugetlbfs -o pagesize=2M nodev PATH`. Needs root (CAP_SYS_ADMIN).
pub fn mount(path: impl AsRef<Path>, size: PageSize) -> Result<(), HugepageError> {
    mount_with(path.as_ref(), size, None)
}

/// [`mount`], with the mount limited to `limit` bytes (`-o size=`): files there can never hold
/// more, whatever the kernel's pool has, so a test or a tenant sees its pages alone.
pub fn mount_limited(path: impl AsRef<Path>, size: PageSize, limit: u64) -> Result<(), HugepageError> {
    mount_with(path.as_ref(), size, Some(limit))
}

fn mount_with(path: &Path, size: PageSize, limit: Option<u64>) -> Result<(), HugepageError> {
    fs::create_dir_all(path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => not_root_to_mount(path, size),
        _ => HugepageError::Mount { path: path.to_owned(), size, source: e },
    })?;
    let target = c_path(path)?;
    let limit = limit.map(|bytes| format!(",size={bytes}")).unwrap_or_default();
    let options = CString::new(format!("pagesize={size}{limit}")).expect("a page size prints without NUL");
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; `data` is read by
    // the kernel as a string of comma-separated options, which is what hugetlbfs expects.
    let rc =
        unsafe { libc::mount(c"nodev".as_ptr(), target.as_ptr(), c"hugetlbfs".as_ptr(), 0, options.as_ptr().cast()) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EPERM) => not_root_to_mount(path, size),
            _ => HugepageError::Mount { path: path.to_owned(), size, source: err },
        });
    }
    tracing::info!(path = %path.display(), %size, "mounted hugetlbfs");
    Ok(())
}

fn not_root_to_mount(path: &Path, size: PageSize) -> HugepageError {
    HugepageError::NotRoot {
        what: "mounting hugetlbfs",
        command: format!("hugepages --mount --pagesize {size} --directory {}", path.display()),
    }
}

/// Unmounts the hugetlbfs at `path`. Refuses anything that is not a hugetlbfs. Needs root.
///
/// The directory stays; files on the mount go away with it, and their pages return to the pool.
pub fn unmount(path: impl AsRef<Path>) -> Result<(), HugepageError> {
    let path = path.as_ref();
    let target = c_path(path)?;
    if !is_hugetlbfs(&target).map_err(|source| HugepageError::Unmount { path: path.to_owned(), source })? {
        return Err(HugepageError::NotHugetlbfs { path: path.to_owned() });
    }
    // SAFETY: `target` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::umount2(target.as_ptr(), 0) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EPERM) => HugepageError::NotRoot {
                what: "unmounting hugetlbfs",
                command: format!("hugepages --unmount --directory {}", path.display()),
            },
            _ => HugepageError::Unmount { path: path.to_owned(), source: err },
        });
    }
    tracing::info!(path = %path.display(), "unmounted hugetlbfs");
    Ok(())
}

/// Whether the filesystem at `path` is a hugetlbfs (`statfs(2)`).
fn is_hugetlbfs(path: &CString) -> io::Result<bool> {
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `buf` is a writable `statfs` the kernel fills in.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // `f_type` is signed on some ABIs; the magic is compared as the kernel's 32-bit value.
    Ok(buf.f_type as u64 & 0xffff_ffff == HUGETLBFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepage::fake::FakeSysTree;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/vda / ext4 rw,relatime 0 0
hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0
nodev /mnt/huge1G hugetlbfs rw,relatime,pagesize=1024M 0 0
nodev /mnt/huge\\040default hugetlbfs rw,relatime 0 0
";

    #[test]
    fn mounts_with_and_without_pagesize_option() {
        let tree = FakeSysTree::new().unwrap();
        tree.set_mounts(MOUNTS).unwrap();
        let root = tree.sys_root();
        assert_eq!(
            root.mounts().unwrap(),
            vec![
                HugetlbMount { path: "/dev/hugepages".into(), page_size: PageSize::SIZE_2M },
                HugetlbMount { path: "/mnt/huge1G".into(), page_size: PageSize::SIZE_1G },
                HugetlbMount { path: "/mnt/huge default".into(), page_size: PageSize::SIZE_2M },
            ]
        );
        // No option means the default size, whatever it is.
        tree.set_meminfo(PageSize::SIZE_1G, 24 << 30).unwrap();
        assert_eq!(root.mounts().unwrap()[2].page_size, PageSize::SIZE_1G);
    }

    #[test]
    fn pagesize_option_forms() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        for (option, size) in [("2M", PageSize::SIZE_2M), ("1024M", PageSize::SIZE_1G), ("1G", PageSize::SIZE_1G)] {
            tree.set_mounts(&format!("nodev /h hugetlbfs rw,pagesize={option} 0 0\n")).unwrap();
            assert_eq!(root.mounts().unwrap()[0].page_size, size, "{option}");
        }
        tree.set_mounts("nodev /h hugetlbfs rw,pagesize=3M 0 0\n").unwrap();
        assert!(matches!(root.mounts(), Err(HugepageError::Parse { .. })));
        tree.set_mounts("nodev /h\n").unwrap();
        assert!(matches!(root.mounts(), Err(HugepageError::Parse { .. })));
    }

    #[test]
    fn mount_for_finds_a_mount_or_says_how_to_make_one() {
        let tree = FakeSysTree::new().unwrap();
        let root = tree.sys_root();
        tree.set_mounts("proc /proc proc rw 0 0\n").unwrap();
        let err = root.mount_for(PageSize::SIZE_2M).unwrap_err();
        assert!(matches!(err, HugepageError::NoMount { size: PageSize::SIZE_2M, is_default: true }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no hugetlbfs mount for 2M pages: run `hugepages --mount` \
             (or mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages)"
        );
        let err = root.mount_for(PageSize::SIZE_1G).unwrap_err();
        assert!(err.to_string().contains("hugepages --mount --pagesize 1G"), "{err}");

        tree.set_mounts(MOUNTS).unwrap();
        assert_eq!(root.mount_for(PageSize::SIZE_1G).unwrap().path, PathBuf::from("/mnt/huge1G"));
        assert_eq!(root.mount_for(PageSize::SIZE_2M).unwrap().path, PathBuf::from("/dev/hugepages"));
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b\\011c\\012d\\134e"), PathBuf::from("/a b\tc\nd\\e"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape_mount_path("/odd\\04"), PathBuf::from("/odd\\04"));
        assert_eq!(unescape_mount_path("/big\\777x"), PathBuf::from("/big\\777x"));
        assert_eq!(unescape_mount_path("\\"), PathBuf::from("\\"));
    }

    #[test]
    fn unmount_refuses_what_is_not_hugetlbfs() {
        let tree = FakeSysTree::new().unwrap();
        let err = unmount(tree.path()).unwrap_err();
        assert!(matches!(err, HugepageError::NotHugetlbfs { .. }), "{err:?}");
        let err = unmount(tree.path().join("missing")).unwrap_err();
        assert!(matches!(err, HugepageError::Unmount { .. }), "{err:?}");
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
