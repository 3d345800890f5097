//! The command lines of `bench xdp`: the frontend's (testpmd's or pktgen's, which differ only in
//! the device's name) and the generator's on the peer interface, both run inside the bench's
//! namespace with `ip netns exec`.

use super::{KernelArgs, Mode, Port, Side};

/// `A,B` -> (`A`, `B`): the first two CPUs of the lcore list.
pub(super) fn lcore_pair(list: &str) -> Option<(String, String)> {
    let mut it = list.split(',').filter(|c| !c.is_empty());
    Some((it.next()?.to_string(), it.next()?.to_string()))
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `ip netns exec NS BIN`: what is started, its arguments after.
pub(super) fn in_netns(ns: &str, bin: &str, args: &[String]) -> Vec<String> {
    let mut v = strings(&["netns", "exec", ns, bin]);
    v.extend(args.iter().cloned());
    v
}

/// The EAL options both sides share: 4 KiB pages (no hugepages to reserve: the UMEM and the
/// rings live in ordinary memory on both sides), one forwarding lcore on `fwd` and the main one
/// on `main`.
fn eal(lcores: &str, main: &str, vdev: &str, prefix: &str) -> Vec<String> {
    strings(&[
        "-l",
        lcores,
        "--main-lcore",
        main,
        "--no-pci",
        "--no-huge",
        "-m",
        "512",
        "--vdev",
        vdev,
        "--file-prefix",
        prefix,
    ])
}

/// A frontend's arguments on interface `iface`.
#[allow(clippy::too_many_arguments)]
pub(super) fn frontend_args(
    side: Side,
    port: Port,
    mode: Mode,
    lcores: &str,
    main: &str,
    iface: &str,
    prefix: &str,
    a: &KernelArgs,
    samples: usize,
) -> Vec<String> {
    // The same device name on both sides: burst's drivers answer to DPDK's names.
    let mut v = eal(lcores, main, &format!("net_{}0,iface={iface}{}", port.driver(), port.extra()), prefix);
    v.extend(strings(&[
        "--",
        &format!("--forward-mode={}", mode.name()),
        "--nb-cores=1",
        "--stats-period",
        "1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
        "--total-num-mbufs=16384",
    ]));
    if side == Side::Burst {
        v.push("--run-seconds".into());
        v.push((samples + 10).to_string());
    }
    v
}

/// The generator's arguments: DPDK's testpmd in txonly on the peer interface, through the same
/// kind of port as the frontend, the same for both sides.
pub(super) fn generator_args(
    port: Port,
    lcores: &str,
    main: &str,
    iface: &str,
    prefix: &str,
    a: &KernelArgs,
) -> Vec<String> {
    let mut v = eal(lcores, main, &format!("net_{}1,iface={iface}{}", port.driver(), port.extra()), prefix);
    v.extend(strings(&[
        "--",
        "--forward-mode=txonly",
        "--nb-cores=1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
        "--total-num-mbufs=16384",
    ]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_get_the_same_options_but_pktgens_fallback_stop() {
        let a = KernelArgs { seconds: 10, size: 64, burst: 32, rounds: 1, port: None, no_perf: false };
        let d = frontend_args(Side::Dpdk, Port::Xdp, Mode::TxOnly, "0,1", "1", "x0", "p", &a, 12).join(" ");
        assert!(d.starts_with("-l 0,1 --main-lcore 1 --no-pci --no-huge -m 512 --vdev net_af_xdp0,iface=x0 "), "{d}");
        assert!(
            d.ends_with(
                "--forward-mode=txonly --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64 --total-num-mbufs=16384"
            ),
            "{d}"
        );
        let b = frontend_args(Side::Burst, Port::Packet, Mode::Io, "0,1", "1", "x0", "p", &a, 12).join(" ");
        assert!(b.contains("--vdev net_af_packet0,iface=x0,qdisc_bypass=1 "), "{b}");
        assert!(b.ends_with("--forward-mode=io --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64 --total-num-mbufs=16384 --run-seconds 22"), "{b}");
        let g = generator_args(Port::Xdp, "0,1", "0", "x1", "g", &a).join(" ");
        assert!(
            g.contains("--vdev net_af_xdp1,iface=x1 ")
                && g.ends_with("--forward-mode=txonly --nb-cores=1 --burst=32 --txpkts=64 --total-num-mbufs=16384"),
            "{g}"
        );
        assert_eq!(lcore_pair("0,1"), Some(("0".into(), "1".into())));
        assert_eq!(lcore_pair("3"), None);
        assert_eq!(in_netns("ns", "/bin/t", &["-x".into()]), ["netns", "exec", "ns", "/bin/t", "-x"]);
    }
}
