//! Init without PCI: vdev probe order, vdev errors, pools, stop requests, teardown. `--no-huge`
//! memory: no root needed.

use burst::ethdev::{DevArgs, EthDev, EthError, PortState, Registry, VdevDriver, VdevProbe};
use burst::{EalOptions, IovaMode, PortConf, Runtime};

fn base() -> EalOptions {
    EalOptions::new().no_huge().no_pci()
}

#[test]
fn vdevs_become_ports_in_command_line_order() {
    let rt = Runtime::init(base().vdev("net_ring0").vdev("net_null0").vdev("net_null1,size=128")).unwrap();
    let got: Vec<(u16, String, &str)> = rt.ports().iter().map(|p| (p.id(), p.name(), p.driver())).collect();
    assert_eq!(
        got,
        [
            (0, "net_ring0".to_string(), "net_ring"),
            (1, "net_null0".into(), "net_null"),
            (2, "net_null1".into(), "net_null")
        ]
    );
    assert_eq!(rt.port(2).unwrap().name(), "net_null1");
    assert!(rt.port(3).is_none());
    assert_eq!(rt.iova_mode(), IovaMode::Va, "--no-huge memory is IOVA as VA");
    assert_eq!(rt.memory().iova_mode(), IovaMode::Va);
    assert!(rt.ports().iter().all(|p| p.state() == PortState::Probed));
    rt.close().unwrap();
}

#[test]
fn from_args_parses_then_inits_and_hands_back_the_app_args() {
    let (rt, app) =
        Runtime::from_args(["app", "--no-huge", "--no-pci", "--vdev", "net_null0", "--", "-p", "1"]).unwrap();
    assert_eq!(app, ["app", "-p", "1"]);
    assert_eq!(rt.ports().len(), 1);
    assert_eq!(rt.options().vdevs, ["net_null0"]);
}

#[test]
fn an_unknown_vdev_is_a_usage_error_listing_the_drivers() {
    let err = Runtime::init(base().vdev("net_null0").vdev("net_foo0")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.starts_with("--vdev net_foo0: unknown virtual device \"net_foo0\""), "{text}");
    assert!(text.contains("net_null, net_ring"), "{text}");
    let err = Runtime::init_with(base().vdev("net_null0"), Registry::new()).unwrap_err();
    assert!(err.to_string().contains("this build has no virtual-device driver"), "{err}");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn a_ring_pair_with_one_port_is_a_usage_error_and_dpdk_aliases_work() {
    let err =
        Runtime::init(base().vdev("net_ring0,pair=a").vdev("net_ring1,pair=b").vdev("net_ring2,pair=a")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    let text = err.to_string();
    assert!(text.starts_with("net_ring1: pair=b has only this port"), "{text}");
    // DPDK's older names (`RTE_PMD_REGISTER_ALIAS`) reach the same drivers.
    let rt = Runtime::init(base().vdev("eth_null0").vdev("eth_ring0")).unwrap();
    let drivers: Vec<&str> = rt.ports().iter().map(|p| p.driver()).collect();
    assert_eq!(drivers, ["net_null", "net_ring"]);
}

#[test]
fn a_duplicate_vdev_name_is_a_usage_error() {
    let err = Runtime::init(base().vdev("net_null0").vdev("net_ring0").vdev("net_null0,size=60")).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--vdev net_null0 is given twice"), "{err}");
}

#[test]
fn a_driver_refusing_its_arguments_is_a_usage_error_naming_the_device() {
    let err = Runtime::init(base().vdev("net_null0").vdev("net_null1,bogus=1")).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().starts_with("net_null1: "), "{err}");
    assert!(
        matches!(err, burst::EalError::Probe { ref device, source: EthError::DevArgs { .. } } if device == "net_null1")
    );
}

/// What a probe was given: the device name, its port id, its arguments.
type Probed = (String, u16, Vec<(String, String)>);

static PROBED: std::sync::Mutex<Vec<Probed>> = std::sync::Mutex::new(Vec::new());

/// A driver that records what it was given and then lets net_null make the device.
fn recording_probe(p: VdevProbe<'_>) -> Result<Box<dyn EthDev>, EthError> {
    PROBED.lock().unwrap().push((p.name.to_string(), p.port_id, p.args.pairs().to_vec()));
    let plain = DevArgs::none(p.name);
    (burst_net_null::DRIVER.probe)(VdevProbe { args: &plain, ..p })
}

static RECORDING: VdevDriver =
    VdevDriver { name: "rec", aliases: &[], params: "any=VALUE", probe: recording_probe, finish: None };

#[test]
fn drivers_get_names_arguments_and_port_ids_in_order() {
    let reg = Registry::new().vdev(&RECORDING);
    let rt = Runtime::init_with(base().vdev("rec_b,x=1,y=2").vdev("rec_a"), reg).unwrap();
    let probed = PROBED.lock().unwrap().clone();
    let want = vec![
        ("rec_b".to_string(), 0, vec![("x".to_string(), "1".to_string()), ("y".to_string(), "2".to_string())]),
        ("rec_a".to_string(), 1, vec![]),
    ];
    assert_eq!(probed, want);
    assert_eq!(rt.ports().iter().map(|p| p.id()).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn pktmbuf_pools_have_dpdk_defaults_and_errors_say_why() {
    let rt = Runtime::init(base()).unwrap();
    let pool = rt.pktmbuf_pool("mbufs", 1023).unwrap();
    assert_eq!(pool.data_room(), 2048);
    assert_eq!(pool.headroom(), 128);
    assert!(pool.mempool().is_full());
    let err = rt.pktmbuf_pool("mbufs", 10).unwrap_err();
    assert!(matches!(err, burst::EalError::Mem(_)), "{err:?}");
    assert!(err.to_string().contains("\"mp_mbufs\" already exists"), "{err}");
    assert_eq!(err.exit_code(), 1);
    drop(pool);
    rt.close().unwrap();
}

#[test]
fn stop_is_requested_by_request_stop() {
    let rt = Runtime::init(base()).unwrap();
    assert!(!rt.stop_requested());
    rt.request_stop();
    assert!(rt.stop_requested());
    let other = Runtime::init(base().handle_signals(false)).unwrap();
    assert!(!other.stop_requested(), "a stop request is the runtime's own");
}

#[test]
fn lcores_default_to_every_cpu_and_the_main_lcore_to_the_first() {
    let cpus = burst::lcores::allowed_cpus().unwrap();
    let rt = Runtime::init(base()).unwrap();
    let ids: Vec<usize> = rt.lcores().iter().map(|l| l.id as usize).collect();
    assert_eq!(ids, cpus.iter().copied().collect::<Vec<_>>());
    assert!(rt.lcores().iter().all(|l| l.id as usize == l.cpu));
    assert_eq!(rt.main_lcore(), rt.lcores()[0].id);
    assert_eq!(rt.worker_lcores(), rt.lcores()[1..].iter().map(|l| l.id).collect::<Vec<_>>());

    let first = *cpus.iter().next().unwrap();
    let rt = Runtime::init(base().lcores(&format!("3@{first},9@{first},5@{first}")).main_lcore(5)).unwrap();
    assert_eq!(rt.lcores().iter().map(|l| (l.id, l.cpu)).collect::<Vec<_>>(), [(3, first), (5, first), (9, first)]);
    assert_eq!(rt.main_lcore(), 5);
    assert_eq!(rt.worker_lcores(), [3, 9]);
}

#[test]
fn options_are_checked_at_init_too() {
    let err = Runtime::init(EalOptions::new().no_pci().no_huge().iova_mode(IovaMode::Pa)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--no-huge memory works with IOVA as VA only"), "{err}");
    let err = Runtime::init(base().lcores("0").main_lcore(1)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--main-lcore 1 is not in the lcore list (0)"), "{err}");
}

#[test]
fn close_stops_and_closes_started_ports_and_their_buffers_come_home() {
    let mut rt = Runtime::init(base().vdev("net_ring0").vdev("net_null0")).unwrap();
    let pool = rt.pktmbuf_pool("close", 511).unwrap();
    for port in rt.ports_mut() {
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 0, &pool).unwrap();
        port.tx_queue_setup(0, 0).unwrap();
        port.start().unwrap();
    }
    // Leave packets in the loopback ring: closing must give them back.
    {
        let port = rt.port(0).unwrap();
        let mut tx = port.tx_queue(0).unwrap();
        let mut bufs = Vec::new();
        assert!(pool.alloc_bulk(&mut bufs, 32));
        assert_eq!(tx.tx_burst(&mut bufs), 32);
    }
    assert!(!pool.mempool().is_full());
    rt.close().unwrap();
    assert!(pool.mempool().is_full(), "closing the ports freed what their rings held");
}

#[test]
fn dropping_the_runtime_closes_the_ports_too() {
    let mut rt = Runtime::init(base().vdev("net_ring0")).unwrap();
    let pool = rt.pktmbuf_pool("drop", 255).unwrap();
    let port = rt.port_mut(0).unwrap();
    port.configure(&PortConf::queues(1, 1)).unwrap();
    port.rx_queue_setup(0, 0, &pool).unwrap();
    port.tx_queue_setup(0, 0).unwrap();
    port.start().unwrap();
    {
        let mut tx = rt.port(0).unwrap().tx_queue(0).unwrap();
        let mut bufs = Vec::new();
        assert!(pool.alloc_bulk(&mut bufs, 8));
        assert_eq!(tx.tx_burst(&mut bufs), 8);
    }
    drop(rt);
    assert!(pool.mempool().is_full());
}
