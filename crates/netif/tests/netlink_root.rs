//! rtnetlink on a veth pair in namespaces of the test's own (root).

use burst_net::MacAddr;
use burst_netbed::{veth, NetNs};
use burst_netif::{NetifError, Netlink};
use netlink_packet_route::link::LinkFlags;

#[test]
fn a_veth_is_read_and_changed_over_netlink() {
    let (a, b) = (NetNs::new("nl-a"), NetNs::new("nl-b"));
    let (mac_a, mac_b) = (MacAddr([2, 0x62, 0x75, 1, 0, 1]), MacAddr([2, 0x62, 0x75, 1, 0, 2]));
    veth(&a, "nl0", mac_a, &b, "nl1", mac_b, 3);
    a.enter(|| {
        let mut nl = Netlink::open().unwrap();
        let link = nl.link_by_name("nl0").unwrap();
        assert_eq!((link.name.as_str(), link.mac, link.mtu), ("nl0", Some(mac_a), 1500));
        assert_eq!((link.rx_queues, link.tx_queues), (3, 3));
        assert!(link.up && link.running(), "{link:?}");
        assert!(link.max_mtu > 9000 && link.min_mtu <= 68, "{link:?}");
        assert_eq!(link.xdp, None);
        nl.set_mtu(link.index, 9000).unwrap();
        let other = MacAddr([2, 0x62, 0x75, 1, 0, 9]);
        nl.set_mac(link.index, other).unwrap();
        nl.set_flags(link.index, LinkFlags::Promisc, LinkFlags::Promisc).unwrap();
        let now = nl.link(link.index).unwrap();
        assert_eq!((now.mtu, now.mac, now.promisc), (9000, Some(other), true));
        nl.set_flags(link.index, LinkFlags::empty(), LinkFlags::Up).unwrap();
        let down = nl.link(link.index).unwrap();
        assert!(!down.up && !down.running());
        let e = nl.set_mtu(link.index, 70_000).unwrap_err();
        assert!(matches!(e, NetifError::Refused { .. }), "{e}");
        assert!(e.to_string().contains("set MTU 70000"), "{e}");
        let e = nl.link_by_name("nosuch0").unwrap_err();
        assert!(e.to_string().contains("there is no network interface \"nosuch0\""), "{e}");
        let e = nl.link_by_name("a/b").unwrap_err();
        assert!(matches!(e, NetifError::BadName { .. }), "{e}");
    });
    // The peer in the other namespace sees its own side only.
    b.enter(|| {
        let mut nl = Netlink::open().unwrap();
        assert!(nl.link_by_name("nl0").is_err());
        assert_eq!(nl.link_by_name("nl1").unwrap().mac, Some(mac_b));
    });
}

#[test]
fn promiscuous_mode_is_a_membership_that_goes_with_the_port() {
    let (a, b) = (NetNs::new("nl-p"), NetNs::new("nl-pf"));
    veth(&a, "p0", MacAddr([2, 0x62, 0x75, 2, 0, 1]), &b, "p1", MacAddr([2, 0x62, 0x75, 2, 0, 2]), 1);
    a.enter(|| {
        let mut nl = Netlink::open().unwrap();
        let iface = burst_netif::Iface::open("p0").unwrap();
        iface.set_promisc(true).unwrap();
        iface.set_allmulti(true).unwrap();
        let now = nl.link_by_name("p0").unwrap();
        assert!(now.promisc && now.allmulti, "{now:?}");
        iface.set_mtu(4000).unwrap();
        assert_eq!(nl.link_by_name("p0").unwrap().mtu, 4000);
        iface.set_promisc(false).unwrap();
        assert!(!nl.link_by_name("p0").unwrap().promisc);
        iface.set_promisc(true).unwrap();
        drop(iface);
        let after = nl.link_by_name("p0").unwrap();
        assert!(!after.promisc && !after.allmulti && after.mtu == 1500, "all put back: {after:?}");
    });
}
