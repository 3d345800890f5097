//! net_af_packet's device arguments, DPDK's (`drivers/net/af_packet`'s kvargs): `iface`,
//! `qpairs`, `blocksz`, `framesz`, `framecnt`, `qdisc_bypass`, `fanout_mode`.

use burst_ethdev::{DevArgs, EthError};

use crate::tpacket::{
    PACKET_FANOUT_CPU, PACKET_FANOUT_HASH, PACKET_FANOUT_LB, PACKET_FANOUT_QM, PACKET_FANOUT_RND,
    PACKET_FANOUT_ROLLOVER, RX_DATA_OFFSET, TPACKET_ALIGNMENT,
};

/// What `--vdev net_af_packet0,iface=NAME,...` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketArgs {
    /// `iface=NAME`: the interface (required).
    pub iface: String,
    /// `qpairs=N`: queue pairs, one socket each, sharing the interface's frames through
    /// `PACKET_FANOUT` (1..=16, default 1, DPDK's `RTE_PMD_AF_PACKET_MAX_RINGS`).
    pub qpairs: u16,
    /// `blocksz=N`: bytes per ring block, a multiple of the page size (default: the page size).
    pub blocksz: u32,
    /// `framesz=N`: bytes per ring frame, header included (default 2048): the largest frame
    /// received is `framesz - 66`, sent `framesz - 32`.
    pub framesz: u32,
    /// `framecnt=N`: frames per ring (default 512), a multiple of the frames a block holds.
    pub framecnt: u32,
    /// `qdisc_bypass=0|1`: TX skips the interface's queueing discipline.
    pub qdisc_bypass: bool,
    /// `fanout_mode=hash|lb|cpu|rollover|rnd|qm`: how `qpairs > 1` share the frames (default
    /// hash: one flow stays on one queue).
    pub fanout_mode: u32,
}

impl PacketArgs {
    /// The keys net_af_packet takes.
    pub const KEYS: &'static [&'static str] =
        &["iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass", "fanout_mode"];
    /// Most queue pairs.
    pub const MAX_QPAIRS: u16 = 16;
    /// DPDK's default frame size.
    pub const DEFAULT_FRAMESZ: u32 = 2048;
    /// The smallest frame: the header, an Ethernet header and a VLAN tag, and the smallest
    /// MTU (68, IPv4's), aligned.
    pub const MIN_FRAMESZ: usize = (RX_DATA_OFFSET + 18 + 68).next_multiple_of(TPACKET_ALIGNMENT);
    /// DPDK's default frame count.
    pub const DEFAULT_FRAMECNT: u32 = 512;

    /// Reads the arguments; every error names the key and what it takes.
    pub fn parse(args: &DevArgs) -> Result<PacketArgs, EthError> {
        args.only(Self::KEYS)?;
        let iface = match args.get("iface") {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => return Err(args.error("iface=NAME is required: the interface to attach to (see `ip link`)".into())),
        };
        let page = page_size();
        let qpairs = args.u64_in("qpairs", 1..=u64::from(Self::MAX_QPAIRS), 1)? as u16;
        let blocksz = args.u64_in("blocksz", 1..=1 << 30, u64::from(page))? as u32;
        let framesz = args.u64_in("framesz", 1..=1 << 30, u64::from(Self::DEFAULT_FRAMESZ))? as u32;
        let framecnt = args.u64_in("framecnt", 1..=1 << 24, u64::from(Self::DEFAULT_FRAMECNT))? as u32;
        let qdisc_bypass = args.bool("qdisc_bypass", false)?;
        let fanout_mode = match args.get("fanout_mode").unwrap_or("hash") {
            "hash" => PACKET_FANOUT_HASH,
            "lb" => PACKET_FANOUT_LB,
            "cpu" => PACKET_FANOUT_CPU,
            "rollover" => PACKET_FANOUT_ROLLOVER,
            "rnd" => PACKET_FANOUT_RND,
            "qm" => PACKET_FANOUT_QM,
            other => {
                return Err(args.error(format!("fanout_mode={other}: give hash, lb, cpu, rollover, rnd or qm")));
            }
        };
        if blocksz % page != 0 {
            return Err(args.error(format!("blocksz={blocksz} is not a multiple of the page size, {page}")));
        }
        if framesz as usize % TPACKET_ALIGNMENT != 0 || (framesz as usize) < Self::MIN_FRAMESZ {
            return Err(args.error(format!(
                "framesz={framesz} must be a multiple of {TPACKET_ALIGNMENT} and at least {}",
                Self::MIN_FRAMESZ
            )));
        }
        if framesz > blocksz {
            return Err(
                args.error(format!("framesz={framesz} is larger than blocksz={blocksz}: a block holds whole frames"))
            );
        }
        let per_block = blocksz / framesz;
        if framecnt % per_block != 0 {
            return Err(args.error(format!(
                "framecnt={framecnt} is not a multiple of the {per_block} frames a block of {blocksz} bytes holds"
            )));
        }
        Ok(PacketArgs { iface, qpairs, blocksz, framesz, framecnt, qdisc_bypass, fanout_mode })
    }

    /// The blocks a ring has.
    pub fn blocks(&self) -> u32 {
        self.framecnt / (self.blocksz / self.framesz)
    }
}

/// The page size.
pub(crate) fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u32
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<PacketArgs, EthError> {
        let (_, args) = DevArgs::parse(spec)?;
        PacketArgs::parse(&args)
    }

    #[test]
    fn defaults_are_dpdks() {
        let a = parse("net_af_packet0,iface=veth0").unwrap();
        assert_eq!(
            a,
            PacketArgs {
                iface: "veth0".into(),
                qpairs: 1,
                blocksz: page_size(),
                framesz: 2048,
                framecnt: 512,
                qdisc_bypass: false,
                fanout_mode: PACKET_FANOUT_HASH
            }
        );
        assert_eq!(a.blocks(), 512 / (page_size() / 2048));
    }

    #[test]
    fn every_key_is_read() {
        let a = parse(
            "net_af_packet0,iface=v1,qpairs=4,blocksz=65536,framesz=16384,framecnt=64,qdisc_bypass=1,fanout_mode=lb",
        )
        .unwrap();
        assert_eq!((a.qpairs, a.blocksz, a.framesz, a.framecnt, a.qdisc_bypass), (4, 65536, 16384, 64, true));
        assert_eq!((a.fanout_mode, a.blocks()), (PACKET_FANOUT_LB, 16));
    }

    #[test]
    fn bad_values_say_what_is_accepted() {
        for (spec, want) in [
            ("net_af_packet0", "iface=NAME is required"),
            ("net_af_packet0,iface=", "iface=NAME is required"),
            ("net_af_packet0,iface=v,qpairs=17", "qpairs=17"),
            ("net_af_packet0,iface=v,blocksz=1000", "not a multiple of the page size"),
            ("net_af_packet0,iface=v,framesz=100", "multiple of 16"),
            ("net_af_packet0,iface=v,framesz=8192", "larger than blocksz"),
            ("net_af_packet0,iface=v,framecnt=3", "not a multiple of the 2 frames"),
            ("net_af_packet0,iface=v,fanout_mode=x", "give hash, lb"),
            ("net_af_packet0,iface=v,qdisc_bypass=2", "qdisc_bypass=2"),
            ("net_af_packet0,iface=v,frames=2", "unknown argument"),
        ] {
            let err = parse(spec).unwrap_err().to_string();
            assert!(err.starts_with("net_af_packet0: ") && err.contains(want), "{spec}: {err}");
        }
    }
}
