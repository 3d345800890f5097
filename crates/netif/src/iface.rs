//! [`Iface`]: the interface a kernel-interface port sends and receives on, and the port's
//! settings applied to it. What the port changes (MTU, address, promiscuous and all-multicast
//! modes) is put back as it was found when the port closes, so the host's interface outlives the
//! port unchanged.

use std::sync::{Mutex, MutexGuard};

use burst_net::MacAddr;
use netlink_packet_route::link::LinkFlags;

use crate::{Link, NetifError, Netlink};

/// An interface, as a port holds it.
#[derive(Debug)]
pub struct Iface {
    nl: Mutex<Netlink>,
    found: Link,
    changed: Mutex<Changed>,
}

/// What the port changed, to put back.
#[derive(Debug, Default)]
struct Changed {
    mtu: bool,
    mac: bool,
    promisc: bool,
    allmulti: bool,
}

impl Iface {
    /// The interface called `name` in the calling thread's network namespace.
    pub fn open(name: &str) -> Result<Iface, NetifError> {
        let mut nl = Netlink::open()?;
        let found = nl.link_by_name(name)?;
        Ok(Iface { nl: Mutex::new(nl), found, changed: Mutex::default() })
    }

    fn nl(&self) -> MutexGuard<'_, Netlink> {
        self.nl.lock().unwrap_or_else(|e| e.into_inner())
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
            self.changed.lock().unwrap_or_else(|e| e.into_inner()).mtu = true;
        }
        Ok(())
    }

    /// Gives the interface address `mac`, if it has another.
    pub fn set_mac(&self, mac: MacAddr) -> Result<(), NetifError> {
        let mut nl = self.nl();
        if nl.link(self.found.index)?.mac != Some(mac) {
            nl.set_mac(self.found.index, mac)?;
            self.changed.lock().unwrap_or_else(|e| e.into_inner()).mac = true;
        }
        Ok(())
    }

    /// Promiscuous mode on or off.
    pub fn set_promisc(&self, on: bool) -> Result<(), NetifError> {
        self.set_flag(LinkFlags::Promisc, on, |c| &mut c.promisc)
    }

    /// All-multicast mode on or off.
    pub fn set_allmulti(&self, on: bool) -> Result<(), NetifError> {
        self.set_flag(LinkFlags::Allmulti, on, |c| &mut c.allmulti)
    }

    fn set_flag(
        &self,
        flag: LinkFlags,
        on: bool,
        mark: impl FnOnce(&mut Changed) -> &mut bool,
    ) -> Result<(), NetifError> {
        let mut nl = self.nl();
        let now = nl.link(self.found.index)?;
        let is = if flag == LinkFlags::Promisc { now.promisc } else { now.allmulti };
        if is != on {
            nl.set_flags(self.found.index, if on { flag } else { LinkFlags::empty() }, flag)?;
            *mark(&mut self.changed.lock().unwrap_or_else(|e| e.into_inner())) = true;
        }
        Ok(())
    }

    /// Puts back what the port changed, as the interface was when opened. Every setting is
    /// tried; the first error is returned.
    pub fn restore(&self) -> Result<(), NetifError> {
        let mut changed = std::mem::take(&mut *self.changed.lock().unwrap_or_else(|e| e.into_inner()));
        let (f, index) = (&self.found, self.found.index);
        let mut nl = self.nl();
        let mut first = Ok(());
        let mut keep = |r: Result<(), NetifError>| {
            if first.is_ok() {
                first = r;
            }
        };
        if std::mem::take(&mut changed.mtu) {
            keep(nl.set_mtu(index, f.mtu));
        }
        if let (true, Some(mac)) = (std::mem::take(&mut changed.mac), f.mac) {
            keep(nl.set_mac(index, mac));
        }
        for (was_changed, flag, was) in
            [(changed.promisc, LinkFlags::Promisc, f.promisc), (changed.allmulti, LinkFlags::Allmulti, f.allmulti)]
        {
            if was_changed {
                keep(nl.set_flags(index, if was { flag } else { LinkFlags::empty() }, flag));
            }
        }
        first
    }
}

impl Drop for Iface {
    fn drop(&mut self) {
        // The interface may be gone already (its namespace deleted): nothing to put back then.
        let _ = self.restore();
    }
}
