//! Which port forwards to which, and which lcore polls which port: DPDK l2fwd's `main()` from
//! the port mask checks to the `lcore_queue_conf` loop, as a pure function of the options, the
//! number of ports and the lcore ids (so it is tested without a runtime).

use burst::PortId;

use crate::options::{MAX_PORTS, MAX_RX_QUEUE_PER_LCORE};
use crate::{Error, L2fwdConfig};

/// The forwarding plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Enabled ports, ascending, each with the port it forwards to.
    pub pairs: Vec<(PortId, PortId)>,
    /// Each lcore that polls ports, in lcore id order, with its RX ports.
    pub lcores: Vec<(u32, Vec<PortId>)>,
}

impl Plan {
    /// Works out the plan for `nb_ports` ports and the lcores `lcore_ids` (ascending).
    pub fn new(cfg: &L2fwdConfig, nb_ports: usize, lcore_ids: &[u32]) -> Result<Plan, Error> {
        let usage = |m: String| Err(Error::Usage(m));
        if nb_ports == 0 {
            return usage("no Ethernet ports: add some with --vdev (net_null0, net_ring0) or -a PCI_ADDRESS".into());
        }
        // What the option parser guarantees, checked again for configs built in code.
        if !(1..=MAX_RX_QUEUE_PER_LCORE).contains(&cfg.rx_ports_per_lcore) {
            return usage(format!(
                "{} ports per lcore asked: give 1 to {MAX_RX_QUEUE_PER_LCORE}",
                cfg.rx_ports_per_lcore
            ));
        }
        let mut mask = cfg.portmask;
        // With --portmap, every port of a pair must be enabled and exist, and be in one pair
        // only; enabled ports in no pair are left out (check_port_pair_config).
        if let Some(pairs) = &cfg.portmap {
            let mut paired = 0u32;
            for &(a, b) in pairs {
                let mut this = 0u32;
                for p in [a, b] {
                    if p >= MAX_PORTS || mask & (1 << p) == 0 {
                        return usage(format!(
                            "--portmap: port {p} is not enabled in the port mask {mask:#x}: add it to -p"
                        ));
                    }
                    if usize::from(p) >= nb_ports {
                        return usage(format!("--portmap: port {p} does not exist: there are {nb_ports} ports"));
                    }
                    this |= 1 << p;
                }
                if paired & this != 0 {
                    return usage(format!("--portmap: port {a} or {b} is in another pair too"));
                }
                paired |= this;
            }
            mask &= paired;
        }
        // Every enabled port must exist ("Invalid portmask; possible (0x%x)").
        let possible = if nb_ports >= 32 { u32::MAX } else { (1u32 << nb_ports) - 1 };
        if mask & !possible != 0 {
            let missing: Vec<String> =
                (0..32).filter(|p| mask & !possible & (1 << p) != 0).map(|p| p.to_string()).collect();
            return usage(format!(
                "invalid portmask {mask:#x}: no port {} here ({nb_ports} ports: the possible mask is {possible:#x})",
                missing.join(", ")
            ));
        }
        let enabled: Vec<PortId> = (0..MAX_PORTS).filter(|p| mask & (1 << p) != 0).collect();
        if enabled.is_empty() {
            return usage("all ports are disabled: enable some with -p, like -p 0x3".into());
        }
        let pairs: Vec<(PortId, PortId)> = match &cfg.portmap {
            Some(map) => {
                let dst = |p: PortId| map.iter().find_map(|&(a, b)| (a == p).then_some(b).or((b == p).then_some(a)));
                enabled.iter().map(|&p| (p, dst(p).unwrap_or(p))).collect()
            }
            // Consecutive enabled ports: the 1st with the 2nd, the 3rd with the 4th... DPDK 22.11
            // lets an odd last port forward to itself; we refuse, so that a typo in the mask
            // does not silently loop a port back.
            None if enabled.len() % 2 == 1 => {
                return usage(format!(
                    "odd number of ports in portmask {mask:#x}: l2fwd forwards between pairs of ports; \
                     enable an even number, or pair them with --portmap"
                ))
            }
            None => enabled.chunks(2).flat_map(|c| [(c[0], c[1]), (c[1], c[0])]).collect(),
        };
        // Each lcore in id order, the main one included, takes up to -q RX ports.
        let mut lcores: Vec<(u32, Vec<PortId>)> = Vec::new();
        let mut next = lcore_ids.iter();
        for &port in &enabled {
            match lcores.last_mut() {
                Some((_, ports)) if ports.len() < cfg.rx_ports_per_lcore => ports.push(port),
                _ => match next.next() {
                    Some(&lcore) => lcores.push((lcore, vec![port])),
                    None => {
                        return usage(format!(
                            "not enough cores: {} ports at {} per lcore need {} lcores, {} given: \
                             add lcores with -l or raise -q",
                            enabled.len(),
                            cfg.rx_ports_per_lcore,
                            enabled.len().div_ceil(cfg.rx_ports_per_lcore),
                            lcore_ids.len()
                        ))
                    }
                },
            }
        }
        Ok(Plan { pairs, lcores })
    }

    /// The enabled ports, ascending.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.pairs.iter().map(|&(p, _)| p)
    }

    /// Where `port`'s packets go.
    pub fn dst(&self, port: PortId) -> PortId {
        self.pairs.iter().find(|&&(p, _)| p == port).map_or(port, |&(_, d)| d)
    }

    /// The port mask after `--portmap` took out unpaired ports.
    pub fn mask(&self) -> u32 {
        self.ports().fold(0, |m, p| m | 1 << p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mask: u32, q: usize, portmap: Option<Vec<(u16, u16)>>) -> L2fwdConfig {
        L2fwdConfig { rx_ports_per_lcore: q, portmap, ..L2fwdConfig::new(mask) }
    }

    fn usage(r: Result<Plan, Error>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn consecutive_enabled_ports_pair_up_and_lcores_fill_in_order() {
        let plan = Plan::new(&cfg(0b0101_0110, 1, None), 8, &[0, 1, 2, 3, 5]).unwrap();
        assert_eq!(plan.pairs, vec![(1, 2), (2, 1), (4, 6), (6, 4)]);
        assert_eq!(plan.lcores, vec![(0, vec![1]), (1, vec![2]), (2, vec![4]), (3, vec![6])]);
        let plan = Plan::new(&cfg(0xf, 3, None), 4, &[2, 7]).unwrap();
        assert_eq!(plan.lcores, vec![(2, vec![0, 1, 2]), (7, vec![3])]);
        assert_eq!(plan.dst(3), 2);
        assert_eq!(plan.mask(), 0xf);
    }

    #[test]
    fn portmap_pairs_and_drops_unpaired_ports() {
        let plan = Plan::new(&cfg(0x1f, 16, Some(vec![(3, 0), (1, 4)])), 5, &[0]).unwrap();
        assert_eq!(plan.pairs, vec![(0, 3), (1, 4), (3, 0), (4, 1)]);
        assert_eq!(plan.mask(), 0x1b);
        assert_eq!(plan.lcores, vec![(0, vec![0, 1, 3, 4])]);
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(usage(Plan::new(&cfg(0x3, 1, None), 0, &[0, 1])).contains("no Ethernet ports"));
        assert!(usage(Plan::new(&cfg(0, 1, None), 2, &[0, 1])).contains("all ports are disabled"));
        assert!(usage(Plan::new(&cfg(0x3, 0, None), 2, &[0, 1])).contains("0 ports per lcore"));
        assert!(usage(Plan::new(&cfg(0x3, 1, Some(vec![(0, 40)])), 2, &[0, 1])).contains("port 40 is not enabled"));
        let m = usage(Plan::new(&cfg(0x4, 1, None), 2, &[0, 1]));
        assert!(m.contains("invalid portmask 0x4: no port 2 here") && m.contains("0x3"), "{m}");
        assert!(usage(Plan::new(&cfg(0x1, 1, None), 2, &[0, 1])).contains("odd number of ports"));
        assert!(usage(Plan::new(&cfg(0x7, 1, None), 3, &[0, 1])).contains("odd number of ports"));
        assert!(usage(Plan::new(&cfg(0x3, 1, None), 2, &[0])).contains("not enough cores: 2 ports at 1 per lcore"));
        assert!(usage(Plan::new(&cfg(0x3, 1, Some(vec![(0, 2)])), 4, &[0, 1])).contains("port 2 is not enabled"));
        assert!(usage(Plan::new(&cfg(0x7, 1, Some(vec![(0, 2)])), 2, &[0, 1])).contains("port 2 does not exist"));
        assert!(usage(Plan::new(&cfg(0x7, 1, Some(vec![(0, 1), (1, 2)])), 3, &[0, 1])).contains("another pair"));
    }
}
