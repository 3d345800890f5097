//! PCI addresses: `DDDD:BB:DD.F`, or the short `BB:DD.F` with domain 0.

use std::fmt;
use std::str::FromStr;

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI segment (domain), 16 bits in practice.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

/// A string that is not a PCI address; says which part is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad PCI address {input:?}: {problem}; write it as 0000:00:02.0 (domain:bus:device.function) or 00:02.0")]
pub struct BadAddress {
    /// What was given.
    pub input: String,
    /// Which part is wrong and why.
    pub problem: String,
}

impl PciAddress {
    /// A new address; `device` must be < 32 and `function` < 8.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<PciAddress> {
        (device < 32 && function < 8).then_some(PciAddress { domain, bus, device, function })
    }
}

fn hex(input: &str, part: &str, what: &str, digits: usize, max: u32) -> Result<u32, BadAddress> {
    let bad = |problem: String| BadAddress { input: input.to_string(), problem };
    if part.is_empty() || part.len() > digits || !part.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad(format!("{what} {part:?} is not 1 to {digits} hex digits")));
    }
    let v = u32::from_str_radix(part, 16).map_err(|e| bad(format!("{what} {part:?}: {e}")))?;
    if v > max {
        return Err(bad(format!("{what} {part} is over the maximum {max:x}")));
    }
    Ok(v)
}

impl FromStr for PciAddress {
    type Err = BadAddress;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |problem: &str| BadAddress { input: input.to_string(), problem: problem.to_string() };
        let s = input.trim();
        let (rest, function) = s.rsplit_once('.').ok_or_else(|| bad("no '.' before the function number"))?;
        let function = hex(input, function, "function", 1, 7)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [bus, device] => (0, *bus, *device),
            [domain, bus, device] => (hex(input, domain, "domain", 4, 0xffff)?, *bus, *device),
            _ => return Err(bad("expected domain:bus:device.function or bus:device.function")),
        };
        let bus = hex(input, bus, "bus", 2, 0xff)?;
        let device = hex(input, device, "device", 2, 0x1f)?;
        Ok(PciAddress { domain, bus: bus as u8, device: device as u8, function: function as u8 })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}:{:02x}.{:x}", self.domain, self.bus, self.device, self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn long_and_short_forms_parse() {
        let a: PciAddress = "0000:00:02.0".parse().unwrap();
        assert_eq!(a, PciAddress::new(0, 0, 2, 0).unwrap());
        assert_eq!("00:1f.7".parse::<PciAddress>().unwrap(), PciAddress::new(0, 0, 0x1f, 7).unwrap());
        assert_eq!(
            "10000:00:00.0".parse::<PciAddress>().unwrap_err().problem,
            "domain \"10000\" is not 1 to 4 hex digits"
        );
        assert_eq!("abcd:ff:1F.3".parse::<PciAddress>().unwrap().to_string(), "abcd:ff:1f.3");
    }

    #[test]
    fn errors_name_the_bad_part() {
        for (input, part) in [
            ("0000:00:02", "no '.'"),
            ("0000:00:20.0", "device 20 is over"),
            ("0000:00:02.8", "function 8 is over"),
            ("0000:0g:02.0", "bus \"0g\""),
            ("00:02:03:04.0", "expected domain"),
            ("", "no '.'"),
            ("0000:00:.0", "device \"\""),
        ] {
            let err = input.parse::<PciAddress>().unwrap_err();
            assert!(err.problem.contains(part), "{input:?}: {}", err.problem);
            assert!(err.to_string().contains("0000:00:02.0"), "says how to write one");
        }
    }

    proptest! {
        #[test]
        fn display_and_parse_round_trip(domain in 0u32..=0xffff, bus: u8, device in 0u8..32, function in 0u8..8) {
            let a = PciAddress::new(domain, bus, device, function).unwrap();
            prop_assert_eq!(a.to_string().parse::<PciAddress>().unwrap(), a);
        }

        #[test]
        fn any_string_parses_or_errs_without_panicking(s in ".{0,20}") {
            let _ = s.parse::<PciAddress>();
        }
    }
}
