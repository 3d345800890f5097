//! net_null's device arguments (DPDK's `size`, `copy` and `no-rx` kvargs, plus `mac`).

use burst_ethdev::{DevArgs, EthError, MacAddr};

/// What `--vdev net_null0,key=value...` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NullArgs {
    /// Bytes per received packet (`size=N`, 1..=65535, default 64 as in DPDK).
    pub size: u16,
    /// `copy=1`: RX writes a template into each buffer, TX reads each packet.
    pub copy: bool,
    /// `no-rx=1`: RX returns nothing.
    pub no_rx: bool,
    /// `mac=MAC`: the port's address instead of the default one.
    pub mac: Option<MacAddr>,
}

impl NullArgs {
    /// The keys net_null takes.
    pub const KEYS: &'static [&'static str] = &["size", "copy", "no-rx", "mac"];

    /// DPDK's default packet size (`default_packet_size`).
    pub const DEFAULT_SIZE: u16 = 64;

    /// Reads the arguments; unknown keys and bad values are errors naming the key.
    pub fn parse(args: &DevArgs) -> Result<NullArgs, EthError> {
        args.only(Self::KEYS)?;
        let size = args.u64_in("size", 1..=u64::from(u16::MAX), u64::from(Self::DEFAULT_SIZE))? as u16;
        let copy = args.bool("copy", false)?;
        let no_rx = args.bool("no-rx", false)?;
        let mac = args.parsed::<MacAddr>("mac")?;
        if let Some(mac) = mac {
            if !mac.is_valid_unicast() {
                return Err(args.error(format!(
                    "mac={mac} cannot be a port's address: use a unicast address other than 00:00:00:00:00:00"
                )));
            }
        }
        Ok(NullArgs { size, copy, no_rx, mac })
    }
}

impl Default for NullArgs {
    fn default() -> Self {
        NullArgs { size: Self::DEFAULT_SIZE, copy: false, no_rx: false, mac: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<NullArgs, EthError> {
        let (_, args) = DevArgs::parse(spec)?;
        NullArgs::parse(&args)
    }

    #[test]
    fn defaults_are_dpdks() {
        assert_eq!(parse("net_null0").unwrap(), NullArgs::default());
        assert_eq!(NullArgs::default().size, 64);
    }

    #[test]
    fn every_key_is_read() {
        let a = parse("net_null0,size=1500,copy=1,no-rx=yes,mac=02:00:00:00:00:07").unwrap();
        assert_eq!(
            a,
            NullArgs { size: 1500, copy: true, no_rx: true, mac: Some("02:00:00:00:00:07".parse().unwrap()) }
        );
        assert_eq!(parse("net_null0,size=65535").unwrap().size, 65535);
        assert_eq!(parse("net_null0,size=1").unwrap().size, 1);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (spec, key) in [
            ("net_null0,size=0", "size=0"),
            ("net_null0,size=65536", "size=65536"),
            ("net_null0,size=big", "size=big"),
            ("net_null0,copy=2", "copy=2"),
            ("net_null0,no-rx=maybe", "no-rx=maybe"),
            ("net_null0,mac=02:00", "mac=02:00"),
            ("net_null0,mac=01:00:5e:00:00:01", "mac=01:00:5e:00:00:01"),
            ("net_null0,mac=00:00:00:00:00:00", "mac=00:00:00:00:00:00"),
            ("net_null0,sizes=64", "\"sizes\""),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.starts_with("net_null0: ") && err.contains(key), "{spec}: {err}");
        }
    }
}
