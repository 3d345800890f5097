//! [`Iface`]: the interface a kernel-interface port sends and receives on, and the port's
//! settings applied to it. The MTU and address are changed over netlink and put back as they
//! were found when the port closes. The promiscuous and all-multicast modes are not flags the
//! port flips but memberships it holds (packet(7), `PACKET_MR_PROMISC`/`PACKET_MR_ALLMULTI` on a
//! packet socket that receives nothing): the kernel counts them with everyone else's and drops
//! them when the socket closes, so a port that is killed leaves no mode behind.
//!
//! A port changes the interface's MTU and address only once its program asked for them
//! ([`Iface::apply`] remembers that), so a port that never asks leaves the interface's own.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use burst_net::MacAddr;

use crate::{Link, NetifError, Netlink};

/// packet(7)'s membership option and kinds (include/uapi/linux/if_packet.h).
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_MR_ALLMULTI: u16 = 2;

/// An interface, as a port holds it.
#[derive(Debug)]
pub struct Iface {
    nl: Mutex<Netlink>,
    found: Link,
    changed: Mutex<Changed>,
    /// The sockets holding the promiscuous and all-multicast memberships.
    promisc: Mutex<Option<OwnedFd>>,
    allmulti: Mutex<Option<OwnedFd>>,
    /// The program asked for an MTU, an address: only then does the port set them.
    mtu_asked: AtomicBool,
    mac_asked: AtomicBool,
}

/// One of a port's settings, as the interface takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// The MTU.
    Mtu(u32),
    /// The address.
    Mac(MacAddr),
    /// Promiscuous mode on or off.
    Promisc(bool),
    /// All-multicast mode on or off.
    Allmulti(bool),
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Mtu(mtu) => write!(f, "MTU {mtu}"),
            Setting::Mac(mac) => write!(f, "address {mac}"),
            Setting::Promisc(_) => f.write_str("promiscuous mode"),
            Setting::Allmulti(_) => f.write_str("all-multicast mode"),
        }
    }
}

/// What the port changed over netlink, to put back.
#[derive(Debug, Default)]
struct Changed {
    mtu: bool,
    mac: bool,
}

/// A packet socket that receives nothing (protocol 0) holding membership `kind` of `ifindex`.
fn membership(ifindex: u32, kind: u16, op: &str) -> Result<OwnedFd, NetifError> {
    let refused = |source| NetifError::Refused { op: op.to_string(), ifindex, source };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(refused(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: packet_mreq is plain data; all zeroes is a valid start.
    let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mr.mr_ifindex = ifindex as i32;
    mr.mr_type = kind;
    // SAFETY: setsockopt reads a packet_mreq of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            (&mr as *const libc::packet_mreq).cast(),
            std::mem::size_of::<libc::packet_mreq>() as u32,
        )
    };
    if r != 0 {
        return Err(refused(std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Holds (`on`) or lets go of a membership socket.
fn hold(
    slot: &Mutex<Option<OwnedFd>>,
    on: bool,
    make: impl FnOnce() -> Result<OwnedFd, NetifError>,
) -> Result<(), NetifError> {
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    match (on, slot.is_some()) {
        (true, false) => *slot = Some(make()?),
        (false, true) => *slot = None,
        _ => {}
    }
    Ok(())
}

impl Iface {
    /// The interface called `name` in the calling thread's network namespace.
    pub fn open(name: &str) -> Result<Iface, NetifError> {
        let mut nl = Netlink::open()?;
        let found = nl.link_by_name(name)?;
        Ok(Iface {
            nl: Mutex::new(nl),
            found,
            changed: Mutex::default(),
            promisc: Mutex::default(),
            allmulti: Mutex::default(),
            mtu_asked: AtomicBool::new(false),
            mac_asked: AtomicBool::new(false),
        })
    }

    fn nl(&self) -> MutexGuard<'_, Netlink> {
        self.nl.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) -> MutexGuard<'_, Changed> {
        self.changed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The interface as it was when opened.
    pub fn found(&self) -> &Link {
        &self.found
    }

    /// Its index.
    pub fn index(&self) -> u32 {
        self.found.index
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.found.name
    }

    /// The interface now.
    pub fn now(&self) -> Result<Link, NetifError> {
        self.nl().link(self.found.index)
    }

    /// Gives the interface MTU `mtu`, if it has another.
    pub fn set_mtu(&self, mtu: u32) -> Result<(), NetifError> {
        let mut nl = self.nl();
        if nl.link(self.found.index)?.mtu != mtu {
            nl.set_mtu(self.found.index, mtu)?;
            self.changed().mtu = true;
        }
        Ok(())
    }

    /// Gives the interface address `mac`, if it has another.
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), NetifError> {
        let mut nl = self.nl();
        if nl.link(self.found.index)?.mac != Some(mac) {
            nl.set_mac(self.found.index, mac)?;
            self.changed().mac = true;
        }
        Ok(())
    }

    /// Promiscuous mode on (a membership held) or off (let go: the interface stays promiscuous
    /// if someone else holds one).
    pub fn set_promisc(&self, on: bool) -> Result<(), NetifError> {
        hold(&self.promisc, on, || membership(self.found.index, PACKET_MR_PROMISC, "promiscuous mode"))
    }

    /// All-multicast mode on or off, the same way.
    pub fn set_allmulti(&self, on: bool) -> Result<(), NetifError> {
        hold(&self.allmulti, on, || membership(self.found.index, PACKET_MR_ALLMULTI, "all-multicast mode"))
    }

    /// The port's program asked for `setting`: it goes to the interface now if the port is
    /// `started`, else at start ([`Iface::apply_asked`]). The error says which setting failed.
    pub fn apply(&self, setting: Setting, started: bool) -> Result<(), (Setting, NetifError)> {
        match setting {
            Setting::Mtu(_) => self.mtu_asked.store(true, Ordering::Relaxed),
            Setting::Mac(_) => self.mac_asked.store(true, Ordering::Relaxed),
            Setting::Promisc(_) | Setting::Allmulti(_) => {}
        }
        if started {
            self.set(setting)?;
        }
        Ok(())
    }

    /// At start: `settings` to the interface, in order, but the MTU and address only if the
    /// program asked for them.
    pub fn apply_asked(&self, settings: &[Setting]) -> Result<(), (Setting, NetifError)> {
        for &setting in settings {
            let asked = match setting {
                Setting::Mtu(_) => self.mtu_asked.load(Ordering::Relaxed),
                Setting::Mac(_) => self.mac_asked.load(Ordering::Relaxed),
                Setting::Promisc(_) | Setting::Allmulti(_) => true,
            };
            if asked {
                self.set(setting)?;
            }
        }
        Ok(())
    }

    fn set(&self, setting: Setting) -> Result<(), (Setting, NetifError)> {
        match setting {
            Setting::Mtu(mtu) => self.set_mtu(mtu),
            Setting::Mac(mac) => self.set_mac(mac),
            Setting::Promisc(on) => self.set_promisc(on),
            Setting::Allmulti(on) => self.set_allmulti(on),
        }
        .map_err(|e| (setting, e))
    }

    /// Puts back what the port changed, as the interface was when opened, and lets go of the
    /// memberships. Every setting is tried; the first error is returned.
    pub fn restore(&self) -> Result<(), NetifError> {
        *self.promisc.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.allmulti.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let changed = std::mem::take(&mut *self.changed());
        let (f, index) = (&self.found, self.found.index);
        let mut nl = self.nl();
        let mtu = if changed.mtu { nl.set_mtu(index, f.mtu) } else { Ok(()) };
        let mac = match (changed.mac, f.mac) {
            (true, Some(mac)) => nl.set_mac(index, mac),
            _ => Ok(()),
        };
        mtu.and(mac)
    }
}

impl Drop for Iface {
    fn drop(&mut self) {
        // The interface may be gone already (its namespace deleted): nothing to put back then.
        let _ = self.restore();
    }
}
