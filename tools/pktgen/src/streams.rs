//! The forwarding configuration: which port each port sends to, the streams, and which
//! forwarding lcore polls which streams. testpmd's defaults (DPDK 22.11 app/test-pmd/config.c:
//! `fwd_topology_tx_port_get` for the paired topology, `rss_fwd_config_setup`,
//! `setup_fwd_config_of_each_lcore`).

use std::fmt::Write as _;
use std::ops::Range;

use burst::MacAddr;

/// One stream: packets received on `rx_port`/`rx_queue` leave on `tx_port`/`tx_queue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub rx_port: u16,
    pub rx_queue: u16,
    pub tx_port: u16,
    pub tx_queue: u16,
}

/// The port `port` sends to in the paired topology: 0<->1, 2<->3, ...; with an odd number of
/// ports the last one sends to itself (a single port is its own peer).
pub fn peer_port(port: u16, nb_ports: u16) -> u16 {
    if port % 2 == 1 {
        port - 1
    } else if port + 1 < nb_ports {
        port + 1
    } else {
        port
    }
}

/// testpmd's default peer address for frames leaving port `port`: 02:00:00:00:00:PORT.
pub fn default_peer_mac(port: u16) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, port as u8])
}

/// One stream per (port, RX queue), queue-major as testpmd orders them: (p0,q0), (p1,q0), ...,
/// (p0,q1), ... Stream q of port p sends on queue q of p's peer, so every TX queue has exactly
/// one stream, and one lcore.
pub fn streams(nb_ports: u16, queues: u16) -> Vec<StreamSpec> {
    (0..queues)
        .flat_map(|q| {
            (0..nb_ports).map(move |p| StreamSpec {
                rx_port: p,
                rx_queue: q,
                tx_port: peer_port(p, nb_ports),
                tx_queue: q,
            })
        })
        .collect()
}

/// Splits `nb_streams` streams over at most `nb_lcores` lcores, in order: each lcore gets
/// `nb_streams / n`, and the last `nb_streams % n` one more (testpmd's split). No lcore is left
/// without a stream: fewer streams than lcores use fewer lcores.
pub fn split(nb_streams: usize, nb_lcores: usize) -> Vec<Range<usize>> {
    let n = nb_lcores.min(nb_streams);
    if n == 0 {
        return Vec::new();
    }
    let (per, extra) = (nb_streams / n, nb_streams % n);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let len = if i < n - extra { per } else { per + 1 };
        out.push(start..start + len);
        start += len;
    }
    out
}

/// testpmd's description of the configuration, printed before forwarding starts.
pub fn describe(
    mode: &str,
    nb_ports: u16,
    specs: &[StreamSpec],
    lcores: &[(u32, Range<usize>)],
    peer_of: impl Fn(u16) -> MacAddr,
) -> String {
    let mut out =
        format!("{mode} packet forwarding - ports={nb_ports} - cores={} - streams={}\n", lcores.len(), specs.len());
    for (lcore, range) in lcores {
        let _ = writeln!(out, "Logical Core {lcore} forwards packets on {} streams:", range.len());
        for s in &specs[range.clone()] {
            let _ = writeln!(
                out,
                "  RX P={}/Q={} -> TX P={}/Q={} peer={}",
                s.rx_port,
                s.rx_queue,
                s.tx_port,
                s.tx_queue,
                peer_of(s.tx_port)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_pair_up_and_an_odd_last_one_loops() {
        assert_eq!(peer_port(0, 1), 0);
        assert_eq!([0, 1].map(|p| peer_port(p, 2)), [1, 0]);
        assert_eq!([0, 1, 2].map(|p| peer_port(p, 3)), [1, 0, 2]);
        assert_eq!([0, 1, 2, 3].map(|p| peer_port(p, 4)), [1, 0, 3, 2]);
        assert_eq!(default_peer_mac(10).to_string(), "02:00:00:00:00:0a");
    }

    #[test]
    fn streams_are_queue_major_and_each_tx_queue_has_one() {
        let s = streams(2, 2);
        let rx: Vec<(u16, u16)> = s.iter().map(|s| (s.rx_port, s.rx_queue)).collect();
        assert_eq!(rx, [(0, 0), (1, 0), (0, 1), (1, 1)]);
        let mut tx: Vec<(u16, u16)> = s.iter().map(|s| (s.tx_port, s.tx_queue)).collect();
        assert_eq!(tx, [(1, 0), (0, 0), (1, 1), (0, 1)]);
        tx.sort();
        tx.dedup();
        assert_eq!(tx.len(), 4);
    }

    #[test]
    fn streams_split_like_testpmd() {
        let one = split(2, 1);
        assert_eq!((one.len(), one[0].clone()), (1, 0..2));
        assert_eq!(split(2, 2), [0..1, 1..2]);
        assert_eq!(split(2, 4), [0..1, 1..2], "no lcore without a stream");
        assert_eq!(split(5, 2), [0..2, 2..5], "the last lcores take the extra streams");
        assert!(split(0, 2).is_empty());
    }

    #[test]
    fn the_description_names_every_stream() {
        let specs = streams(2, 1);
        let text = describe("io", 2, &specs, &[(1, 0..2)], default_peer_mac);
        assert!(text.starts_with("io packet forwarding - ports=2 - cores=1 - streams=2\n"), "{text}");
        assert!(text.contains("Logical Core 1 forwards packets on 2 streams:"), "{text}");
        assert!(text.contains("RX P=0/Q=0 -> TX P=1/Q=0 peer=02:00:00:00:00:01"), "{text}");
        assert!(text.contains("RX P=1/Q=0 -> TX P=0/Q=0 peer=02:00:00:00:00:00"), "{text}");
    }
}
