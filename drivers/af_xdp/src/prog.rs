//! The XDP program that redirects the interface's frames to our sockets, loaded and attached
//! with libbpf (libbpf-sys, linked against the system's libbpf).
//!
//! The program is libxdp's own default AF_XDP program, `xsk_def_xdp_prog.o` as Debian's libxdp1
//! ships it (`bpf_redirect_map(&xsks_map, rx_queue_index, XDP_PASS)`: a frame of a queue with
//! no socket goes on to the kernel's stack), or the user's (`xdp_prog=PATH`, with a map called
//! `xsks_map`, DPDK's convention). It is attached through a BPF link (`BPF_LINK_CREATE`, Linux
//! 5.9): the link lives as long as its file descriptor, so the kernel detaches the program when
//! the process exits, SIGKILL included. Nothing is pinned: nothing outlives us to clean up on the
//! next start. An interface that already has an XDP program is refused before anything is
//! loaded, so someone else's program is never replaced.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libbpf_sys as bpf;

use crate::XdpError;

/// `XDP_FLAGS_SKB_MODE` (include/uapi/linux/if_link.h): generic XDP, on the socket buffer.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP, in the driver.
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// libxdp's default program and where distributions put it (libxdp's own search path:
/// `LIBXDP_OBJECT_PATH`, then its `BPF_OBJECT_DIR`).
const DEFAULT_PROG: &str = "xsk_def_xdp_prog.o";
const OBJECT_DIRS: [&str; 4] =
    ["/usr/lib/x86_64-linux-gnu/bpf", "/usr/lib64/bpf", "/usr/lib/bpf", "/usr/local/lib/bpf"];

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native if the driver has it, else generic: the kernel chooses.
    Auto,
    /// Native (`mode=drv`).
    Native,
    /// Generic (`mode=skb`).
    Generic,
}

impl AttachMode {
    fn flags(self) -> u32 {
        match self {
            AttachMode::Auto => 0,
            AttachMode::Native => XDP_FLAGS_DRV_MODE,
            AttachMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

/// Where libxdp's default program is.
pub(crate) fn default_program() -> Result<PathBuf, XdpError> {
    let from_env = std::env::var_os("LIBXDP_OBJECT_PATH").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(OBJECT_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(DEFAULT_PROG))
        .find(|p| p.is_file())
        .ok_or(XdpError::NoDefaultProgram)
}

/// The loaded program, its XSKMAP, and the link that attaches it. Dropping it detaches the
/// program and unloads it.
pub(crate) struct XdpProgram {
    /// Closed first in `drop`: the program is detached before the object is closed.
    link: Option<OwnedFd>,
    obj: *mut bpf::bpf_object,
    map_fd: libc::c_int,
    id: u32,
}

// SAFETY: the object is only used through `&mut self`/drop and the map's fd, which the kernel
// lets any thread use.
unsafe impl Send for XdpProgram {}
// SAFETY: `insert` only uses the map's fd.
unsafe impl Sync for XdpProgram {}

fn errno_of(ret: libc::c_int) -> std::io::Error {
    if ret < 0 {
        std::io::Error::from_raw_os_error(-ret)
    } else {
        std::io::Error::last_os_error()
    }
}

impl XdpProgram {
    /// Loads the program at `path` with its `xsks_map` sized for `queues` queue ids and attaches
    /// it to `ifindex` in `mode`.
    pub(crate) fn attach(
        path: &Path,
        iface: &str,
        ifindex: u32,
        mode: AttachMode,
        queues: u32,
    ) -> Result<XdpProgram, XdpError> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| XdpError::ProgramFile {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        // SAFETY: libbpf_set_print(None) turns libbpf's own printing off; our errors say it all.
        unsafe { bpf::libbpf_set_print(None) };
        // SAFETY: a NUL-terminated path; no options.
        let obj = unsafe { bpf::bpf_object__open_file(cpath.as_ptr(), std::ptr::null()) };
        if obj.is_null() {
            return Err(XdpError::ProgramFile { path: path.to_path_buf(), source: std::io::Error::last_os_error() });
        }
        // From here the object is closed on every path out.
        let close = |e: XdpError| {
            // SAFETY: the object we opened, closed once.
            unsafe { bpf::bpf_object__close(obj) };
            e
        };
        let map_name = c"xsks_map";
        // SAFETY: a live object and a NUL-terminated name.
        let map = unsafe { bpf::bpf_object__find_map_by_name(obj, map_name.as_ptr()) };
        // SAFETY: a live map of the object.
        if map.is_null() || unsafe { bpf::bpf_map__type(map) } != bpf::BPF_MAP_TYPE_XSKMAP {
            return Err(close(XdpError::NoXskMap { path: path.to_path_buf() }));
        }
        // SAFETY: a live, not yet loaded map.
        let r = unsafe { bpf::bpf_map__set_max_entries(map, queues) };
        if r != 0 {
            return Err(close(XdpError::Load { path: path.to_path_buf(), source: errno_of(r) }));
        }
        // SAFETY: a live object, loaded once.
        let r = unsafe { bpf::bpf_object__load(obj) };
        if r != 0 {
            let e = errno_of(r);
            return Err(close(match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NoCapBpf,
                _ => XdpError::Load { path: path.to_path_buf(), source: e },
            }));
        }
        // SAFETY: a loaded object; NULL asks for its first program.
        let prog = unsafe { bpf::bpf_object__next_program(obj, std::ptr::null_mut()) };
        // SAFETY: a program of the loaded object.
        if prog.is_null() || unsafe { bpf::bpf_program__type(prog) } != bpf::BPF_PROG_TYPE_XDP {
            return Err(close(XdpError::NoXdpProgram { path: path.to_path_buf() }));
        }
        // SAFETY: loaded program and map: their descriptors, owned by the object.
        let (prog_fd, map_fd) = unsafe { (bpf::bpf_program__fd(prog), bpf::bpf_map__fd(map)) };
        // SAFETY: all-zero options are "none"; `sz` says how much of them this libbpf may read.
        let mut opts: bpf::bpf_link_create_opts = unsafe { std::mem::zeroed() };
        opts.sz = std::mem::size_of::<bpf::bpf_link_create_opts>() as _;
        opts.flags = mode.flags();
        // SAFETY: descriptors of a loaded XDP program and options of the right size.
        let link = unsafe { bpf::bpf_link_create(prog_fd, ifindex as i32, bpf::BPF_XDP, &opts) };
        if link < 0 {
            let e = errno_of(link);
            return Err(close(match (e.raw_os_error(), mode) {
                (Some(libc::EBUSY) | Some(libc::EEXIST), _) => {
                    XdpError::Occupied { iface: iface.to_string(), id: 0, how: "another".into() }
                }
                (Some(libc::EPERM), _) => XdpError::NoCapBpf,
                (Some(libc::EOPNOTSUPP) | Some(libc::EINVAL), AttachMode::Native) => {
                    XdpError::NoNativeXdp { iface: iface.to_string() }
                }
                _ => XdpError::Attach { iface: iface.to_string(), source: e },
            }));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let link = unsafe { OwnedFd::from_raw_fd(link) };
        // SAFETY: bpf_prog_info is plain data; the kernel fills up to `len` bytes of it.
        let mut info: bpf::bpf_prog_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<bpf::bpf_prog_info>() as u32;
        // SAFETY: as above.
        // (bpf_obj_get_info_by_fd: libbpf 1.1, Debian 12's, predates bpf_prog_get_info_by_fd.)
        let ok =
            unsafe { bpf::bpf_obj_get_info_by_fd(prog_fd, (&mut info as *mut bpf::bpf_prog_info).cast(), &mut len) }
                == 0;
        let id = if ok { info.id } else { 0 };
        Ok(XdpProgram { link: Some(link), obj, map_fd, id })
    }

    /// The program's id (as `ip link` shows it).
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Makes the program send queue `queue_id`'s frames to socket `xsk_fd`.
    pub(crate) fn insert(&self, queue_id: u32, xsk_fd: libc::c_int) -> Result<(), XdpError> {
        // SAFETY: the map's live descriptor; key and value are u32s as an XSKMAP takes them.
        let r = unsafe {
            bpf::bpf_map_update_elem(self.map_fd, (&queue_id as *const u32).cast(), (&xsk_fd as *const i32).cast(), 0)
        };
        if r != 0 {
            return Err(XdpError::XskMap { queue: queue_id, source: errno_of(r) });
        }
        Ok(())
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // The link first: the program is detached from the interface, then unloaded.
        drop(self.link.take());
        // SAFETY: the object we opened and loaded, closed once.
        unsafe { bpf::bpf_object__close(self.obj) };
    }
}
