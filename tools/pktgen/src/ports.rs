//! The packet pool and the ports as the options want them: `--mbuf-size` buffers, and for each
//! port the offloads, MTU and scatter that `--rx-offloads`, `--tx-offloads`, `--txpkts` and
//! `--max-pkt-len` ask for, checked against what the port can do before it is configured
//! (testpmd's `init_config_port_offloads` and `start_port`, DPDK 26.07 app/test-pmd/testpmd.c).
//!
//! Where testpmd only warns, pktgen turns on what a request needs if the port has it (MULTI_SEGS
//! for `--txpkts A,B`, SCATTER for frames larger than a buffer) and otherwise refuses the command
//! line, naming the port, its driver and what it lacks.

use burst::ethdev::settings::frame_overhead;
use burst::mem::mbuf::DEFAULT_HEADROOM;
use burst::{PacketPool, PacketPoolConfig, Port, PortConf, Runtime, RxOffloads, TxOffloads};

use crate::error::PktgenError;
use crate::options::{Config, MAX_BURST};

/// A mempool cache's flush threshold is 1.5 times its size (DPDK's CACHE_FLUSHTHRESH_MULTIPLIER).
const CACHE_HIGH_WATER: usize = 256 * 3 / 2;

/// The pool every port receives into and txonly builds from: `--total-num-mbufs` buffers of
/// `--mbuf-size` bytes.
pub fn packet_pool(rt: &Runtime, cfg: &Config) -> Result<PacketPool, PktgenError> {
    let conf = PacketPoolConfig {
        data_room: cfg.data_room(),
        headroom: DEFAULT_HEADROOM,
        ..PacketPoolConfig::new("pktgen_mbuf_pool", pool_size(rt, cfg))
    };
    PacketPool::new(rt.memory(), &conf).map_err(|e| PktgenError::Eal(e.into()))
}

/// testpmd sizes its pool for every descriptor, burst and cache; so does this (per queue: its
/// RX descriptors, and its TX descriptors and a burst of packets of as many buffers as one
/// takes; per lcore: a full cache and a burst).
fn pool_size(rt: &Runtime, cfg: &Config) -> usize {
    if let Some(n) = cfg.total_num_mbufs {
        return n;
    }
    let per_queue: usize = rt
        .ports()
        .iter()
        .map(|p| {
            let info = p.info();
            let rxd = info.rx_desc_lim.resolve(cfg.rxd).unwrap_or(info.rx_desc_lim.default);
            let txd = info.tx_desc_lim.resolve(cfg.txd).unwrap_or(info.tx_desc_lim.default);
            usize::from(rxd) + (usize::from(txd) + MAX_BURST) * cfg.bufs_per_packet()
        })
        .sum();
    per_queue * usize::from(cfg.queues) + rt.lcores().len() * (CACHE_HIGH_WATER + MAX_BURST)
}

/// What the options ask of `port`: its queues, the offloads asked for and those the other
/// options need, and the MTU of `--max-pkt-len`. A request the port cannot meet is a usage
/// error that names it.
pub fn port_conf(port: &Port, cfg: &Config) -> Result<PortConf, PktgenError> {
    let info = port.info();
    let who = format!("port {} ({})", port.id(), info.driver);
    let usage = |m: String| Err(PktgenError::Usage(m));
    let rx_missing = cfg.rx_offloads - info.rx_offload_capa;
    if !rx_missing.is_empty() {
        return usage(format!(
            "--rx-offloads {:#x}: {who} cannot do the RX offloads {rx_missing}: it offers {}",
            cfg.rx_offloads.bits(),
            info.rx_offload_capa
        ));
    }
    let tx_missing = cfg.tx_offloads - info.tx_offload_capa;
    if !tx_missing.is_empty() {
        return usage(format!(
            "--tx-offloads {:#x}: {who} cannot do the TX offloads {tx_missing}: it offers {}",
            cfg.tx_offloads.bits(),
            info.tx_offload_capa
        ));
    }
    let (mut rx_offloads, mut tx_offloads) = (cfg.rx_offloads, cfg.tx_offloads);
    let txpkts = || cfg.txpkts.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
    if cfg.sends_chains() {
        let segs = cfg.txpkts.len();
        if !info.tx_offload_capa.contains(TxOffloads::MULTI_SEGS) {
            return usage(format!(
                "--txpkts {}: packets of {segs} segments need the TX offload multi_segs, which {who} does not offer: \
                 give one length",
                txpkts()
            ));
        }
        if segs > usize::from(info.tx_desc_lim.nb_seg_max) {
            return usage(format!(
                "--txpkts {}: {segs} segments per packet, and {who} sends at most {} per packet: give fewer",
                txpkts(),
                info.tx_desc_lim.nb_seg_max
            ));
        }
        tx_offloads |= TxOffloads::MULTI_SEGS;
    }
    let mut mtu = None;
    if let Some(len) = cfg.max_pkt_len {
        // testpmd: `rxmode.mtu = max_rx_pkt_len - get_eth_overhead(&dev_info)`.
        let overhead = frame_overhead(info);
        let (min, max) = (u32::from(info.min_mtu) + overhead, u32::from(info.max_mtu) + overhead);
        if len < min || len > max {
            return usage(format!(
                "--max-pkt-len {len}: {who} takes frames of {min}..={max} bytes (MTU {}..={} and {overhead} bytes of \
                 Ethernet header and CRC)",
                info.min_mtu, info.max_mtu
            ));
        }
        mtu = Some((len - overhead) as u16);
        let room = u32::from(cfg.data_room());
        if len > room {
            if !info.rx_offload_capa.contains(RxOffloads::SCATTER) {
                return usage(format!(
                    "--max-pkt-len {len}: frames of {len} bytes do not fit one buffer of {room} bytes (--mbuf-size {} \
                     less {DEFAULT_HEADROOM} of headroom), and {who} cannot scatter a frame over several: give \
                     --mbuf-size {} or more, or a smaller --max-pkt-len",
                    cfg.mbuf_size,
                    len + u32::from(DEFAULT_HEADROOM)
                ));
            }
            rx_offloads |= RxOffloads::SCATTER;
            // The frames received as chains are sent on as chains where the port can.
            tx_offloads |= info.tx_offload_capa & TxOffloads::MULTI_SEGS;
        }
    }
    Ok(PortConf { rx_offloads, tx_offloads, mtu, ..PortConf::queues(cfg.queues, cfg.queues) })
}

/// Configures `port` as [`port_conf`] says, sets up its queues with RX buffers from `pool`,
/// starts it, turns promiscuous mode on (if its driver can, as testpmd does) and zeroes its
/// counters.
pub fn start_port(port: &mut Port, cfg: &Config, pool: &PacketPool) -> Result<(), PktgenError> {
    let conf = port_conf(port, cfg)?;
    port.configure(&conf)?;
    for q in 0..cfg.queues {
        port.rx_queue_setup(q, cfg.rxd, pool)?;
        port.tx_queue_setup(q, cfg.txd)?;
    }
    port.start()?;
    let _ = port.set_promiscuous(true);
    port.stats_reset();
    Ok(())
}
