//! What can go wrong on an e1000 port beyond what the port checks itself: each failure the
//! driver reports, wrapped in [`burst_ethdev::EthError::Driver`] (get it back with
//! `err.driver_error::<E1000Error>()`). Every message says what to do.

/// An e1000 driver error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E1000Error {
    /// BAR 0 is not an 8254x's register BAR (SDM 13: 128 KiB of memory-mapped registers).
    #[error(
        "BAR0 is {} and {len:#x} bytes long: an 8254x has its registers in a memory BAR of 128 KiB; is this the \
         right device?",
        if *mmio { "mapped" } else { "not mappable" }
    )]
    NotAn8254xBar {
        /// Whether BAR 0 is mapped into memory.
        mmio: bool,
        /// Its length in bytes.
        len: usize,
    },
    /// CTRL.RST did not clear after a global reset (SDM 13.4.1, 14.3).
    #[error(
        "the device did not finish its reset (CTRL.RST still set after {ms} ms): is it an 8254x, and is it alive? \
         Check `lspci -vv` and the kernel log"
    )]
    ResetTimeout {
        /// How long the driver waited.
        ms: u64,
    },
    /// Neither RAL0/RAH0 nor the EEPROM holds a unicast address (SDM 13.5.2, 13.4.4).
    #[error("no valid MAC address in RAL0/RAH0 or the EEPROM: check the device's EEPROM")]
    NoValidMac,
    /// The RX pool has fewer free buffers than the ring has descriptors (SDM 14.4: every
    /// descriptor gets a buffer before the receiver starts).
    #[error("the RX ring needs {ring} buffers and its pool has {free} free: make the pool larger or the ring smaller")]
    RxPoolTooShort {
        /// Descriptors in the ring.
        ring: u16,
        /// Free buffers in the pool.
        free: usize,
    },
    /// VLAN insertion asked for without VLAN stripping: the 8254x turns both on with one switch
    /// (CTRL.VME, SDM 13.4.1 and chapter 9), which would strip the tag of every frame received.
    #[error(
        "VLAN_INSERT needs VLAN_STRIP on this device: the 8254x inserts and strips VLAN tags under one switch \
         (CTRL.VME); ask for both, or insert the tag in software"
    )]
    VlanInsertWithoutStrip,
    /// The pool's buffers are smaller than the smallest receive buffer RCTL.BSIZE can express
    /// (SDM 13.4.22).
    #[error("RX buffers of {room} bytes are too small: the e1000 needs at least {min}")]
    RxBufTooSmall {
        /// The pool's data room.
        room: usize,
        /// The smallest receive buffer, 256 bytes.
        min: usize,
    },
}

#[cfg(test)]
mod tests {
    use burst_ethdev::EthError;

    use super::*;

    #[test]
    fn the_port_error_carries_the_driver_error_and_its_advice() {
        let e = EthError::driver("net_e1000_em", "0000:00:02.0", E1000Error::RxPoolTooShort { ring: 512, free: 100 });
        assert_eq!(e.driver_error::<E1000Error>(), Some(&E1000Error::RxPoolTooShort { ring: 512, free: 100 }));
        assert_eq!(
            e.to_string(),
            "net_e1000_em 0000:00:02.0: the RX ring needs 512 buffers and its pool has 100 free: make the pool \
             larger or the ring smaller"
        );
        let bar = E1000Error::NotAn8254xBar { mmio: false, len: 0x40 };
        assert!(bar.to_string().starts_with("BAR0 is not mappable and 0x40 bytes long"), "{bar}");
    }
}
