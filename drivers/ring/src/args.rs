//! net_ring's device arguments.

use burst_ethdev::{DevArgs, EthError, MacAddr};

/// What `--vdev net_ring0,key=value...` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingArgs {
    /// `pair=NAME`: the pair this port is one side of; `None` for a loopback port.
    pub pair: Option<String>,
    /// `queues=N`: RX and TX queues (1..=64, default 1).
    pub queues: u16,
    /// `size=N`: each ring's capacity (1..=1048576, default 1024).
    pub size: usize,
    /// `mac=MAC`: the port's address instead of the default one.
    pub mac: Option<MacAddr>,
}

impl RingArgs {
    /// The keys net_ring takes.
    pub const KEYS: &'static [&'static str] = &["pair", "queues", "size", "mac"];
    /// Most queues a ring port has.
    pub const MAX_QUEUES: u16 = 64;
    /// DPDK's ring size for net_ring (`rte_ring_create(..., 1024, ...)` in `eth_dev_ring_create`).
    pub const DEFAULT_SIZE: usize = 1024;
    /// Largest ring: 1 Mi slots (8 MiB of pointers per ring, two rings per queue).
    pub const MAX_SIZE: usize = 1 << 20;

    /// Reads the arguments; unknown keys and bad values are errors naming the key.
    pub fn parse(args: &DevArgs) -> Result<RingArgs, EthError> {
        args.only(Self::KEYS)?;
        let pair = match args.get("pair") {
            None => None,
            Some("") => return Err(args.error("pair= needs a name: pair=NAME, the same on both ports".into())),
            Some(name) => Some(name.to_string()),
        };
        let queues = args.u64_in("queues", 1..=u64::from(Self::MAX_QUEUES), 1)? as u16;
        let size = args.u64_in("size", 1..=Self::MAX_SIZE as u64, Self::DEFAULT_SIZE as u64)? as usize;
        let mac = args.parsed::<MacAddr>("mac")?;
        if let Some(mac) = mac {
            if !mac.is_valid_unicast() {
                return Err(args.error(format!(
                    "mac={mac} cannot be a port's address: use a unicast address other than 00:00:00:00:00:00"
                )));
            }
        }
        Ok(RingArgs { pair, queues, size, mac })
    }
}

impl Default for RingArgs {
    fn default() -> Self {
        RingArgs { pair: None, queues: 1, size: Self::DEFAULT_SIZE, mac: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<RingArgs, EthError> {
        let (_, args) = DevArgs::parse(spec)?;
        RingArgs::parse(&args)
    }

    #[test]
    fn defaults_and_every_key() {
        assert_eq!(parse("net_ring0").unwrap(), RingArgs::default());
        let a = parse("net_ring0,pair=p0,queues=64,size=8,mac=02:00:00:00:00:01").unwrap();
        assert_eq!(
            a,
            RingArgs { pair: Some("p0".into()), queues: 64, size: 8, mac: Some("02:00:00:00:00:01".parse().unwrap()) }
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (spec, key) in [
            ("net_ring0,queues=0", "queues=0"),
            ("net_ring0,queues=65", "queues=65"),
            ("net_ring0,size=0", "size=0"),
            ("net_ring0,size=1048577", "size=1048577"),
            ("net_ring0,size=lots", "size=lots"),
            ("net_ring0,pair=", "pair="),
            ("net_ring0,mac=ff:ff:ff:ff:ff:ff", "mac=ff:ff:ff:ff:ff:ff"),
            ("net_ring0,mac=1:2:3", "mac=1:2:3"),
            ("net_ring0,copy=1", "\"copy\""),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.starts_with("net_ring0: ") && err.contains(key), "{spec}: {err}");
        }
    }
}
