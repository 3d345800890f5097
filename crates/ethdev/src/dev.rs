//! The driver side of the contract: [`EthDev`] is a device's ops table (DPDK's `eth_dev_ops`),
//! [`RxBurst`]/[`TxBurst`] are its queues' burst functions.
//!
//! The port's settings (MAC address, promiscuous and all-multicast modes, MTU) and its
//! software counters live once, in [`crate::Port`], as DPDK keeps them in `rte_eth_dev_data`.
//! A driver does not keep a copy: the `apply_*` hooks hand it the port's new settings to program
//! into the device, and `start` hands it all of them.
//!
//! [`crate::Port`] calls these only in states where they make sense and with arguments already
//! checked against [`crate::DevInfo`]: queue indices are in range, descriptor counts within the
//! limits, offloads among the capabilities, the MTU within its range and its frames within the
//! RX buffers. A driver still validates everything its device writes.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use burst_mem::{PacketBuf, PacketPool};

use crate::{
    DevInfo, EthError, LinkStatus, MacAddr, PortConf, PortSettings, RxQueueConf, Stats, TxPrepareError, TxQueueConf,
    XStat,
};

/// A device's control path. `Send + Sync`: the port lives on the main lcore and its queue
/// handles borrow it from the lcores that poll them.
///
/// `&mut self` operations (configure, setup, start, stop, close, reset, MTU) run only while no
/// queue handle exists; `&self` operations may run while the queues are polled. The port
/// serialises its `&self` calls: no two `apply_*` hooks run at once.
pub trait EthDev: Send + Sync {
    /// What the device is and can do.
    fn info(&self) -> DevInfo;

    /// The address the device comes with: read from the device (or given by its arguments) at
    /// probe, and again after [`EthDev::reset`]. The port takes it as its address.
    fn default_mac(&self) -> MacAddr;

    /// The MTU the port starts with, read at probe and again after [`EthDev::reset`]: DPDK's
    /// 1500 by default; a device whose MTU is someone else's setting (a kernel interface) says
    /// its own, so that a port started with no MTU asked for leaves it as it is.
    fn default_mtu(&self) -> u16 {
        crate::settings::DEFAULT_MTU
    }

    /// Applies queue counts and offloads (the port is stopped). Queue setups follow. `settings`
    /// are the port's, the MTU already changed where the configuration asked for one.
    fn configure(&mut self, conf: &PortConf, settings: &PortSettings) -> Result<(), EthError>;

    /// Sets up RX queue `queue` (below the configured count; the port is stopped).
    fn rx_queue_setup(&mut self, queue: u16, conf: &RxQueueConf) -> Result<(), EthError>;

    /// Sets up TX queue `queue`.
    fn tx_queue_setup(&mut self, queue: u16, conf: &TxQueueConf) -> Result<(), EthError>;

    /// Starts the device with the port's `settings` applied: every configured queue has been set
    /// up. The default, for a software port with nothing to start, does nothing.
    fn start(&mut self, settings: &PortSettings) -> Result<(), EthError> {
        let _ = settings;
        Ok(())
    }

    /// Stops the device: no queue handle exists. Afterwards the device moves no packet and every
    /// buffer the driver held for the device is back in its pool (or kept for the next start).
    /// The default, for a software port that holds no buffer between bursts, does nothing.
    fn stop(&mut self) -> Result<(), EthError> {
        Ok(())
    }

    /// Releases queues and buffers; the device stays quiet. The port is stopped first.
    fn close(&mut self) -> Result<(), EthError>;

    /// Resets the device to its just-probed state; it must be configured again.
    fn reset(&mut self) -> Result<(), EthError> {
        Err(EthError::NotSupported { driver: self.info().driver, what: "reset" })
    }

    /// The link now. `started`: the port is started (a software port's link follows it:
    /// [`crate::soft::link`]).
    fn link(&self, started: bool) -> LinkStatus;

    /// Gives the device the port's new address `settings.mac` (a valid unicast one). `started`:
    /// the device is running; when it is not, the driver only checks that it can take the
    /// address, and [`EthDev::start`] applies it. An error leaves the port's address unchanged.
    /// The default, for devices with no address filter of their own, accepts every address.
    fn apply_mac(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        let _ = (settings, started);
        Ok(())
    }

    /// Gives the device the port's new promiscuous mode (`settings.promiscuous`), as
    /// [`EthDev::apply_mac`] does the address.
    fn apply_promiscuous(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        let _ = (settings, started);
        Ok(())
    }

    /// Gives the device the port's new all-multicast mode (`settings.allmulticast`).
    fn apply_allmulticast(&self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        let _ = (settings, started);
        Ok(())
    }

    /// Gives the device the port's new MTU (`settings.mtu`, within the device's range and, where
    /// [`EthDev::rx_frame_room`] says so, fitting every RX queue's buffers).
    fn apply_mtu(&mut self, settings: &PortSettings, started: bool) -> Result<(), EthError> {
        let _ = (settings, started);
        Ok(())
    }

    /// How many bytes of a frame one RX buffer of `pool` takes on this device, for the port's
    /// check that a frame of the MTU fits one buffer; `None` when received frames do not land in
    /// buffers of the queue's pool (a software port handing over buffers it was sent). The
    /// default is the pool's data room.
    fn rx_frame_room(&self, pool: &PacketPool) -> Option<usize> {
        Some(usize::from(pool.data_room()))
    }

    /// The basic counters since the last reset, given `sw`: what the queues counted in the
    /// counters the port handed them ([`RxQueueConf::counters`]) since then. The default reports
    /// those; a device with counters of its own merges them.
    fn stats(&self, sw: Stats) -> Stats {
        sw
    }

    /// Zeroes the device's own counters (the port zeroes the queues').
    fn stats_reset(&self) {}

    /// The driver's own named counters, listed after the basic ones; `sw` as for
    /// [`EthDev::stats`].
    fn xstats(&self, sw: &Stats) -> Vec<XStat> {
        let _ = sw;
        Vec::new()
    }

    /// Zeroes the driver's own named counters.
    fn xstats_reset(&self) {}

    /// A handle on started RX queue `queue`. [`crate::Port`] asks for at most one per queue at
    /// a time.
    fn rx_queue(&self, queue: u16) -> Result<Box<dyn RxBurst + '_>, EthError>;

    /// A handle on started TX queue `queue`.
    fn tx_queue(&self, queue: u16) -> Result<Box<dyn TxBurst + '_>, EthError>;
}

/// An RX queue's burst function.
pub trait RxBurst: Send {
    /// Appends up to `max` received packets to `bufs` and returns how many. Never blocks.
    fn rx_burst(&mut self, bufs: &mut Vec<PacketBuf>, max: usize) -> usize;
}

/// A TX queue's burst function.
pub trait TxBurst: Send {
    /// Takes packets from the front of `bufs` for sending, as many as the queue has room for, and
    /// returns how many it took. The rest stay in `bufs`, in order. Never blocks.
    fn tx_burst(&mut self, bufs: &mut Vec<PacketBuf>) -> usize;

    /// Fixes up packets for this device's TX offloads ([`crate::prepare`]); every packet has
    /// passed [`crate::prepare::check`] against the queue already. The default is
    /// [`crate::prepare::fix_up`], what Intel's and virtio's devices want.
    fn tx_prepare(&mut self, bufs: &mut [PacketBuf]) -> Result<(), TxPrepareError> {
        for (index, buf) in bufs.iter_mut().enumerate() {
            crate::prepare::fix_up(buf).map_err(|fault| TxPrepareError { index, fault })?;
        }
        Ok(())
    }
}

/// Queue state a driver keeps between handles: a handle takes it out for as long as it lives
/// and its drop puts it back, so the data path runs on state it owns, with no lock per burst.
#[derive(Debug, Default)]
pub struct Slot<T> {
    state: Mutex<Option<T>>,
}

impl<T> Slot<T> {
    /// A slot holding `state`.
    pub fn new(state: T) -> Slot<T> {
        Slot { state: Mutex::new(Some(state)) }
    }

    /// An empty slot (a queue not set up).
    pub fn empty() -> Slot<T> {
        Slot { state: Mutex::new(None) }
    }

    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the state out until the guard drops; `None` if it is out already or the slot is
    /// empty.
    pub fn take(&self) -> Option<SlotGuard<'_, T>> {
        let state = self.lock().take()?;
        Some(SlotGuard { slot: self, state: Some(state) })
    }

    /// Replaces the state (control path, no guard out); returns the old one.
    pub fn replace(&mut self, state: Option<T>) -> Option<T> {
        std::mem::replace(self.state.get_mut().unwrap_or_else(|e| e.into_inner()), state)
    }

    /// The state, mutably (control path: `&mut self`, so no guard is out).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.state.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut()
    }
}

/// The state of a [`Slot`], out on loan to a queue handle.
#[derive(Debug)]
pub struct SlotGuard<'a, T> {
    slot: &'a Slot<T>,
    state: Option<T>,
}

impl<T> Deref for SlotGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // Invariant: `state` is `Some` until drop.
        self.state.as_ref().unwrap_or_else(|| unreachable!("a slot guard holds its state until drop"))
    }
}

impl<T> DerefMut for SlotGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.state.as_mut().unwrap_or_else(|| unreachable!("a slot guard holds its state until drop"))
    }
}

impl<T> Drop for SlotGuard<'_, T> {
    fn drop(&mut self) {
        *self.slot.lock() = self.state.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_lends_its_state_once_at_a_time() {
        let mut slot = Slot::new(5u32);
        {
            let mut g = slot.take().unwrap();
            *g += 1;
            assert!(slot.take().is_none(), "out on loan");
        }
        assert_eq!(*slot.take().unwrap(), 6);
        assert_eq!(slot.replace(None), Some(6));
        assert!(slot.take().is_none());
    }
}
