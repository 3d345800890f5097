//! net_af_xdp's device arguments, DPDK's (`drivers/net/af_xdp`'s kvargs): `iface`,
//! `start_queue`, `queue_count`, `shared_umem`, `xdp_prog`, `busy_budget`, `force_copy`, and
//! DPDK 26.07's `mode`.

use std::path::PathBuf;

use burst_ethdev::{DevArgs, EthError};

use crate::prog::AttachMode;

/// What `--vdev net_af_xdp0,iface=NAME,...` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpArgs {
    /// `iface=NAME`: the interface (required).
    pub iface: String,
    /// `start_queue=N`: the first of the interface's queues the port takes (default 0).
    pub start_queue: u32,
    /// `queue_count=N`: how many, one socket each (1..=64, default 1).
    pub queue_count: u16,
    /// `shared_umem=0|1`: queues whose RX pools are the same share one UMEM (`XDP_SHARED_UMEM`)
    /// instead of registering it once each.
    pub shared_umem: bool,
    /// `xdp_prog=PATH`: an XDP program of the user's, with an XSKMAP `xsks_map`, instead of
    /// libxdp's default one.
    pub xdp_prog: Option<PathBuf>,
    /// `busy_budget=N`: packets per busy poll (`SO_BUSY_POLL_BUDGET`, default 64 as DPDK's;
    /// 0 turns busy polling off).
    pub busy_budget: u32,
    /// `force_copy=0|1`: copy mode even where the driver can do zero copy (`XDP_COPY`).
    pub force_copy: bool,
    /// `mode=drv|skb`: native or generic XDP; absent, the kernel chooses (native where the
    /// driver has it).
    pub mode: AttachMode,
}

impl XdpArgs {
    /// The keys net_af_xdp takes.
    pub const KEYS: &'static [&'static str] =
        &["iface", "start_queue", "queue_count", "shared_umem", "xdp_prog", "busy_budget", "force_copy", "mode"];
    /// Most queues.
    pub const MAX_QUEUES: u16 = 64;
    /// DPDK's default busy-poll budget (`ETH_AF_XDP_DFLT_BUSY_BUDGET`).
    pub const DEFAULT_BUSY_BUDGET: u32 = 64;

    /// Reads the arguments; every error names the key and what it takes.
    pub fn parse(args: &DevArgs) -> Result<XdpArgs, EthError> {
        args.only(Self::KEYS)?;
        let iface = match args.get("iface") {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => return Err(args.error("iface=NAME is required: the interface to attach to (see `ip link`)".into())),
        };
        let start_queue = args.u64_in("start_queue", 0..=65535, 0)? as u32;
        let queue_count = args.u64_in("queue_count", 1..=u64::from(Self::MAX_QUEUES), 1)? as u16;
        let shared_umem = args.bool("shared_umem", false)?;
        let xdp_prog = match args.get("xdp_prog") {
            None => None,
            Some("") => return Err(args.error("xdp_prog= needs a path to a BPF object file".into())),
            Some(p) => Some(PathBuf::from(p)),
        };
        let busy_budget = args.u64_in("busy_budget", 0..=65535, u64::from(Self::DEFAULT_BUSY_BUDGET))? as u32;
        let force_copy = args.bool("force_copy", false)?;
        let mode = match args.get("mode") {
            None => AttachMode::Auto,
            Some("drv") => AttachMode::Native,
            Some("skb") => AttachMode::Generic,
            Some(m) => return Err(args.error(format!("mode={m}: give drv (native XDP) or skb (generic XDP)"))),
        };
        Ok(XdpArgs { iface, start_queue, queue_count, shared_umem, xdp_prog, busy_budget, force_copy, mode })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<XdpArgs, EthError> {
        let (_, args) = DevArgs::parse(spec)?;
        XdpArgs::parse(&args)
    }

    #[test]
    fn defaults_are_dpdks_and_every_key_is_read() {
        let a = parse("net_af_xdp0,iface=veth0").unwrap();
        assert_eq!(
            a,
            XdpArgs {
                iface: "veth0".into(),
                start_queue: 0,
                queue_count: 1,
                shared_umem: false,
                xdp_prog: None,
                busy_budget: 64,
                force_copy: false,
                mode: AttachMode::Auto
            }
        );
        let a = parse("net_af_xdp0,iface=v,start_queue=2,queue_count=4,shared_umem=1,xdp_prog=/p.o,busy_budget=0,force_copy=1,mode=skb")
            .unwrap();
        assert_eq!((a.start_queue, a.queue_count, a.shared_umem, a.busy_budget, a.force_copy), (2, 4, true, 0, true));
        assert_eq!((a.xdp_prog, a.mode), (Some(PathBuf::from("/p.o")), AttachMode::Generic));
        assert_eq!(parse("net_af_xdp0,iface=v,mode=drv").unwrap().mode, AttachMode::Native);
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (spec, want) in [
            ("net_af_xdp0", "iface=NAME is required"),
            ("net_af_xdp0,iface=v,queue_count=0", "queue_count=0"),
            ("net_af_xdp0,iface=v,queue_count=65", "queue_count=65"),
            ("net_af_xdp0,iface=v,mode=hw", "give drv (native XDP) or skb"),
            ("net_af_xdp0,iface=v,xdp_prog=", "needs a path"),
            ("net_af_xdp0,iface=v,force_copy=yes please", "force_copy=yes please"),
            ("net_af_xdp0,iface=v,use_cni=1", "unknown argument"),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.starts_with("net_af_xdp0: ") && err.contains(want), "{spec}: {err}");
        }
    }
}
