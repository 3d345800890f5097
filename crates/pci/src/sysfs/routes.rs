//! Which interfaces have routes: the kernel's `/proc/net/route` and `/proc/net/ipv6_route`.
//!
//! dpdk-devbind.py marks a device `*Active*` and refuses to take it when one of its interfaces
//! appears in `ip -o route` (IPv4, main table, 169.254/16 left out): that is the interface you
//! may be logged in through. Here IPv6 counts too, without link-local (fe80::/10) and multicast
//! (ff00::/8) routes, which every interface that is up gets by itself.

use std::collections::BTreeSet;

/// Interfaces with an IPv4 route, from the text of `/proc/net/route`.
pub(crate) fn ipv4_routed(text: &str) -> BTreeSet<String> {
    let mut ifaces = BTreeSet::new();
    // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(iface), Some(dest)) = (fields.next(), fields.next()) else { continue };
        // The destination is the address's bytes in network order, printed as a native u32.
        let link_local = u32::from_str_radix(dest, 16).is_ok_and(|d| d.to_ne_bytes()[..2] == [169, 254]);
        if iface != "lo" && !link_local {
            ifaces.insert(iface.to_string());
        }
    }
    ifaces
}

/// Interfaces with an IPv6 route, from the text of `/proc/net/ipv6_route`.
pub(crate) fn ipv6_routed(text: &str) -> BTreeSet<String> {
    let mut ifaces = BTreeSet::new();
    // dest dest_len src src_len next_hop metric refcnt use flags iface
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(dest), Some(iface)) = (fields.first(), fields.get(9)) else { continue };
        let lower = dest.to_ascii_lowercase();
        let link_local = lower.starts_with("fe8")
            || lower.starts_with("fe9")
            || lower.starts_with("fea")
            || lower.starts_with("feb")
            || lower.starts_with("ff");
        if *iface != "lo" && !link_local {
            ifaces.insert(iface.to_string());
        }
    }
    ifaces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_routes_name_their_interfaces() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n\
                    eth2\t0000FEA9\t00000000\t0001\t0\t0\t1000\t0000FFFF\t0\t0\t0\n";
        assert_eq!(ipv4_routed(text).into_iter().collect::<Vec<_>>(), ["eth0"]);
        assert!(ipv4_routed("Iface\tDestination\n").is_empty());
        assert!(ipv4_routed("").is_empty());
    }

    #[test]
    fn ipv6_link_local_and_multicast_routes_do_not_count() {
        let text = "\
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth1
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
";
        assert_eq!(ipv6_routed(text).into_iter().collect::<Vec<_>>(), ["eth0"]);
    }
}
