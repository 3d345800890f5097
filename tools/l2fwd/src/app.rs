//! l2fwd's life on a [`Runtime`], in three steps an embedding application also takes:
//! [`L2fwd::setup`] (the plan, the pool, the ports configured and started), [`L2fwd::forward`]
//! (one loop per lcore until SIGINT/SIGTERM), [`L2fwd::finish`] (ports closed, final table, every
//! buffer back).

use std::io::Write;
use std::time::Duration;

use burst::ethdev::settings::frame_overhead;
use burst::ethdev::{DescLimits, DevInfo, RxOffloads, TxOffloads};
use burst::{LcoreScope, LinkStatus, PacketPool, PortConf, PortId, Runtime};

use crate::fwd::{self, Forward, TxBuffer, MAX_PKT_BURST};
use crate::stats::{write_stats, PortCounters, PortStats};
use crate::{Error, L2fwdConfig, Plan};

/// Descriptors per RX and TX queue (DPDK's `RX_DESC_DEFAULT`/`TX_DESC_DEFAULT`).
pub const NB_DESC: u16 = 1024;
/// Buffers each lcore keeps in its mempool cache (DPDK's `MEMPOOL_CACHE_SIZE`).
pub const MEMPOOL_CACHE_SIZE: usize = 256;

/// l2fwd set up on a runtime: its plan, its pool and its counters.
pub struct L2fwd {
    cfg: L2fwdConfig,
    plan: Plan,
    pool: PacketPool,
    /// Indexed by port id, for every port of the runtime.
    counters: Vec<PortCounters>,
}

/// What l2fwd did: the final counters of the enabled ports, and the pool once the ports closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Enabled ports, ascending.
    pub ports: Vec<PortStats>,
    /// Buffers free in l2fwd's pool at the end.
    pub pool_free: usize,
    /// Buffers in l2fwd's pool.
    pub pool_size: usize,
}

impl L2fwd {
    /// Plans the forwarding, makes the pool, configures and starts the enabled ports, and waits
    /// for their links (DPDK l2fwd's `main()` up to the launch).
    pub fn setup(rt: &mut Runtime, cfg: &L2fwdConfig, out: &mut dyn Write) -> Result<L2fwd, Error> {
        writeln!(out, "MAC updating {}", if cfg.mac_updating { "enabled" } else { "disabled" })?;
        let lcore_ids: Vec<u32> = rt.lcores().iter().map(|l| l.id).collect();
        let plan = Plan::new(cfg, rt.ports().len(), &lcore_ids)?;
        for (lcore, ports) in &plan.lcores {
            for &p in ports {
                writeln!(out, "Lcore {lcore}: RX port {p} TX port {}", plan.dst(p))?;
            }
        }

        // One pool for every port, sized as DPDK sizes it: room for every RX and TX ring, a burst
        // in flight and every lcore's cache, per port (all ports, as DPDK counts them).
        let nb_ports = rt.ports().len();
        let nb_lcores = plan.lcores.len();
        let nb_mbufs =
            (nb_ports * (usize::from(NB_DESC) * 2 + MAX_PKT_BURST + nb_lcores * MEMPOOL_CACHE_SIZE)).max(8192);
        let pool = rt.pktmbuf_pool("mbuf_pool", nb_mbufs)?;

        let mask = plan.mask();
        for id in 0..nb_ports as PortId {
            // (A mask names ports 0 to 31; ports past those are never enabled.)
            if 1u32.checked_shl(u32::from(id)).is_none_or(|bit| mask & bit == 0) {
                writeln!(out, "Skipping disabled port {id}")?;
                continue;
            }
            write!(out, "Initializing port {id}... ")?;
            out.flush()?;
            let port = rt.port_mut(id).expect("the plan only holds ports that exist");
            let info = port.info().clone();
            // Free TX buffers the fast way when the device can (DPDK l2fwd asks for it too).
            let tx_offloads = info.tx_offload_capa.contains(TxOffloads::MBUF_FAST_FREE);
            let mut conf = PortConf::queues(1, 1);
            if tx_offloads {
                conf.tx_offloads = TxOffloads::MBUF_FAST_FREE;
            }
            let jumbo = cfg.max_pkt_len.map(|len| jumbo_conf(&mut conf, &info, len, pool.data_room()));
            port.configure(&conf)?;
            // rte_eth_dev_adjust_nb_rx_tx_desc: fit 1024 into the device's limits.
            port.rx_queue_setup(0, adjust(NB_DESC, info.rx_desc_lim), &pool)?;
            port.tx_queue_setup(0, adjust(NB_DESC, info.tx_desc_lim))?;
            port.start()?;
            writeln!(out, "done: ")?;
            if cfg.promiscuous {
                port.set_promiscuous(true)?;
            }
            if let Some(jumbo) = jumbo {
                writeln!(out, "Port {id}: {jumbo}")?;
            }
            let mac = port.mac().to_string().to_uppercase();
            writeln!(out, "Port {id}, MAC address: {mac}\n")?;
        }
        check_all_ports_link_status(rt, &plan, out)?;
        let counters = (0..nb_ports).map(|_| PortCounters::default()).collect();
        Ok(L2fwd { cfg: cfg.clone(), plan, pool, counters })
    }

    /// Forwards until SIGINT, SIGTERM or [`Runtime::request_stop`]: each planned lcore polls
    /// its ports; the main lcore (this thread) also prints the statistics every `-T` seconds.
    pub fn forward(&self, rt: &Runtime, out: &mut dyn Write) -> Result<(), Error> {
        rt.try_scope(|s| {
            let result = self.run_lcores(rt, s, out);
            if result.is_err() {
                // Lcores already launched must end before the scope can.
                rt.request_stop();
            }
            result
        })?
    }

    /// Launches the worker lcores, runs the main lcore's loop, and waits for the workers.
    fn run_lcores<'scope, 'env>(
        &'env self,
        rt: &'env Runtime,
        s: &LcoreScope<'scope, 'env>,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let main = s.main_lcore();
        let mut workers = Vec::new();
        for (lcore, ports) in &self.plan.lcores {
            writeln!(out, "L2FWD: entering main loop on lcore {lcore}")?;
            for p in ports {
                writeln!(out, "L2FWD:  -- lcoreid={lcore} portid={p}")?;
            }
            if *lcore != main {
                // Queue handles are taken here and moved to the lcore that polls them.
                let mut fwds = self.queues(rt, ports)?;
                let mac_updating = self.cfg.mac_updating;
                workers.push(s.launch(*lcore, move || fwd::main_loop(rt, &mut fwds, mac_updating, None))?);
            }
        }
        for lcore in rt.lcores().iter().filter(|l| !self.plan.lcores.iter().any(|(id, _)| *id == l.id)) {
            writeln!(out, "L2FWD: lcore {} has nothing to do", lcore.id)?;
        }
        out.flush()?;

        // The main lcore forwards too if the plan gave it ports, and prints the statistics.
        let mine = self.plan.lcores.iter().find(|(l, _)| *l == main).map_or(&[][..], |(_, p)| &p[..]);
        let mut fwds = self.queues(rt, mine)?;
        let mut print = || {
            // Like DPDK's printf, a failed write does not stop the forwarding.
            let _ = write_stats(out, &self.stats(), true);
        };
        let timer: Option<(Duration, &mut dyn FnMut())> = match self.cfg.stats_period {
            0 => None,
            secs => Some((Duration::from_secs(secs), &mut print)),
        };
        fwd::main_loop(rt, &mut fwds, self.cfg.mac_updating, timer);
        drop(fwds);
        if burst::signals::signalled() {
            writeln!(out, "\n\nSignal received, preparing to exit...")?;
        }
        // rte_eal_wait_lcore: each worker returns once it sees the stop request.
        for worker in workers {
            worker.join();
        }
        Ok(())
    }

    /// Stops and closes the enabled ports, then every other port, prints the final table, and
    /// checks that every buffer of the pool came back.
    pub fn finish(self, rt: &mut Runtime, out: &mut dyn Write) -> Result<Summary, Error> {
        let mut failed = None;
        for id in self.plan.ports() {
            write!(out, "Closing port {id}...")?;
            let Some(port) = rt.port_mut(id) else { continue };
            match port.stop().and_then(|()| port.close()) {
                Ok(()) => writeln!(out, " Done")?,
                Err(e) => {
                    writeln!(out, " failed: {e}")?;
                    failed.get_or_insert(e);
                }
            }
        }
        // Ports outside the mask may hold our buffers too: a net_ring port whose peer is
        // enabled has them queued in its RX ring. Close them (silently, as DPDK does not
        // touch them) so the pool count below means what it says.
        for port in rt.ports_mut() {
            if let Err(e) = port.close() {
                failed.get_or_insert(e);
            }
        }
        let ports = self.stats();
        write_stats(out, &ports, false)?;
        let (free, total) = (self.pool.mempool().available(), self.pool.mempool().capacity());
        writeln!(out, "mbuf pool: {free} of {total} buffers free")?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if free != total {
            return Err(Error::Leak { in_use: total - free, total });
        }
        Ok(Summary { ports, pool_free: free, pool_size: total })
    }

    /// The counters of the enabled ports now.
    pub fn stats(&self) -> Vec<PortStats> {
        self.plan.ports().map(|p| self.counters[usize::from(p)].snapshot(p)).collect()
    }

    /// The forwarding plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// l2fwd's packet pool.
    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// The queue handles one lcore needs: queue 0 of each of its RX ports, and queue 0 of the
    /// port each forwards to. Pairs are one to one, so no two lcores share a TX queue.
    fn queues<'p>(&'p self, rt: &'p Runtime, rx_ports: &[PortId]) -> Result<Vec<Forward<'p>>, Error> {
        let port = |id: PortId| rt.port(id).expect("the plan only holds ports that exist");
        rx_ports
            .iter()
            .map(|&p| {
                let dst = self.plan.dst(p);
                Ok(Forward {
                    rx: port(p).rx_queue(0)?,
                    rx_stats: &self.counters[usize::from(p)],
                    tx: TxBuffer::new(port(dst).tx_queue(0)?, &self.counters[usize::from(dst)]),
                    dst,
                    dst_mac: port(dst).mac(),
                })
            })
            .collect()
    }
}

/// What `--max-pkt-len` made of a port's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jumbo {
    /// The MTU: the frame less what the device adds around it.
    pub mtu: u16,
    /// The largest frame, CRC included.
    pub frame: u32,
    /// Frames larger than one buffer are received as chains (and chains sent).
    pub scatter: bool,
}

impl std::fmt::Display for Jumbo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scatter = if self.scatter { "on" } else { "off" };
        write!(f, "MTU {} (frames up to {} bytes), scatter {scatter}", self.mtu, self.frame)
    }
}

/// `--max-pkt-len len` for a port described by `info` whose RX buffers hold `room` bytes, as
/// DPDK's l3fwd applies it (`config_port_max_pkt_len`): the MTU is the frame less the device's
/// overhead; a frame larger than one buffer needs scatter, and the chains it makes need
/// multi-segment TX on the port they leave by, each asked for where the device offers it (a
/// device that needs a frame to fit one buffer and cannot scatter refuses the MTU itself, naming
/// both numbers).
pub fn jumbo_conf(conf: &mut PortConf, info: &DevInfo, len: u32, room: u16) -> Jumbo {
    let mtu = len.saturating_sub(frame_overhead(info)).min(u32::from(u16::MAX)) as u16;
    conf.mtu = Some(mtu);
    let mut scatter = false;
    if len > u32::from(room) {
        if info.rx_offload_capa.contains(RxOffloads::SCATTER) {
            conf.rx_offloads |= RxOffloads::SCATTER;
            scatter = true;
        }
        if info.tx_offload_capa.contains(TxOffloads::MULTI_SEGS) {
            conf.tx_offloads |= TxOffloads::MULTI_SEGS;
        }
    }
    Jumbo { mtu, frame: len, scatter }
}

/// Fits `n` descriptors into a device's limits, in `rte_eth_dev_adjust_nb_rx_tx_desc`'s order:
/// align up, cap at the maximum, raise to the minimum.
fn adjust(n: u16, lim: DescLimits) -> u16 {
    let align = lim.align.max(1);
    n.div_ceil(align).saturating_mul(align).min(lim.max).max(lim.min)
}

/// Waits up to 9 s for every enabled port's link, then prints them (DPDK's
/// `check_all_ports_link_status`). A stop request cuts the wait short.
fn check_all_ports_link_status(rt: &Runtime, plan: &Plan, out: &mut dyn Write) -> Result<(), Error> {
    const CHECK_INTERVAL: Duration = Duration::from_millis(100);
    const MAX_CHECK_TIME: u32 = 90;
    write!(out, "\nChecking link status")?;
    out.flush()?;
    for count in 0..=MAX_CHECK_TIME {
        if rt.stop_requested() {
            return Ok(());
        }
        let all_up = plan.ports().all(|p| rt.port(p).is_some_and(|port| port.link().up));
        if all_up || count == MAX_CHECK_TIME {
            break;
        }
        write!(out, ".")?;
        out.flush()?;
        std::thread::sleep(CHECK_INTERVAL);
    }
    writeln!(out, "done")?;
    for p in plan.ports() {
        let link = rt.port(p).map_or(LinkStatus::DOWN, |port| port.link());
        writeln!(out, "Port {p} {}", link_text(link))?;
    }
    Ok(())
}

/// `rte_eth_link_to_str`: "Link up at 10 Gbps FDX Autoneg", "Link down".
fn link_text(link: LinkStatus) -> String {
    if !link.up {
        return "Link down".into();
    }
    let speed = match link.speed_mbps {
        0 => "Unknown".to_string(),
        s if s % 1000 == 0 => format!("{} Gbps", s / 1000),
        s => format!("{s} Mbps"),
    };
    let duplex = if link.duplex == burst::ethdev::Duplex::Full { "FDX" } else { "HDX" };
    format!("Link up at {speed} {duplex} {}", if link.autoneg { "Autoneg" } else { "Fixed" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_counts_fit_the_device() {
        assert_eq!(adjust(1024, DescLimits::ANY), 1024);
        assert_eq!(adjust(1024, DescLimits { min: 32, max: 512, align: 8, default: 256, nb_seg_max: 1 }), 512);
        assert_eq!(adjust(1024, DescLimits { min: 2048, max: 4096, align: 128, default: 2048, nb_seg_max: 1 }), 2048);
        assert_eq!(adjust(1000, DescLimits { min: 32, max: 4096, align: 128, default: 256, nb_seg_max: 1 }), 1024);
    }

    #[test]
    fn max_pkt_len_sets_the_mtu_and_scatter_where_the_buffers_are_too_small() {
        use burst::ethdev::DeviceName;
        // A device like the e1000: 18 bytes around the MTU, scatter and multi-segment TX.
        let mut e1000 = DevInfo::software("net_e1000_em", DeviceName::Vdev("x".into()), 1);
        (e1000.max_mtu, e1000.max_rx_pktlen) = (16110, 16128);
        e1000.rx_offload_capa = RxOffloads::SCATTER;
        e1000.tx_offload_capa = TxOffloads::MULTI_SEGS;
        let mut conf = PortConf::queues(1, 1);
        let j = jumbo_conf(&mut conf, &e1000, 9018, 2048);
        assert_eq!((j, conf.mtu), (Jumbo { mtu: 9000, frame: 9018, scatter: true }, Some(9000)));
        assert_eq!((conf.rx_offloads, conf.tx_offloads), (RxOffloads::SCATTER, TxOffloads::MULTI_SEGS));
        assert_eq!(j.to_string(), "MTU 9000 (frames up to 9018 bytes), scatter on");
        // Frames that fit a buffer need nothing more.
        let mut conf = PortConf::queues(1, 1);
        let j = jumbo_conf(&mut conf, &e1000, 1518, 2048);
        assert_eq!((j.mtu, j.scatter, conf.rx_offloads), (1500, false, RxOffloads::NONE));
        // A device without scatter is not asked for it: the port decides whether the MTU fits.
        let soft = DevInfo::software("net_ring", DeviceName::Vdev("y".into()), 1);
        let mut conf = PortConf::queues(1, 1);
        let j = jumbo_conf(&mut conf, &soft, 9018, 2048);
        assert_eq!(
            (j.mtu, j.scatter, conf.rx_offloads, conf.tx_offloads),
            (9000, false, RxOffloads::NONE, TxOffloads::NONE)
        );
    }

    #[test]
    fn links_print_like_dpdk() {
        assert_eq!(link_text(LinkStatus::up(10_000)), "Link up at 10 Gbps FDX Autoneg");
        assert_eq!(link_text(LinkStatus::DOWN), "Link down");
    }
}
