//! Lcores: `scope` makes the calling thread the main lcore, `launch` runs closures on worker
//! lcores pinned to their CPUs. Lcore ids are process-wide, so these tests take turns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};

use burst::lcores::{allowed_cpus, current_cpu};
use burst::mem::lcore;
use burst::{EalOptions, PacketBuf, PortConf, Runtime};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lcores 0 and 1 on the first two CPUs this process may use (the same one twice on a one-CPU
/// machine); returns the runtime and the two CPUs.
fn runtime(vdevs: &[&str]) -> (Runtime, usize, usize) {
    let cpus: Vec<usize> = allowed_cpus().unwrap().into_iter().collect();
    let (c0, c1) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    let mut opts = EalOptions::new().no_huge().no_pci().lcores(&format!("0@{c0},1@{c1}"));
    for v in vdevs {
        opts = opts.vdev(v);
    }
    (Runtime::init(opts).unwrap(), c0, c1)
}

#[test]
fn closures_run_on_their_lcore_and_cpu_and_join_returns_their_values() {
    let _s = serial();
    let (rt, c0, c1) = runtime(&[]);
    let mask_before = allowed_cpus().unwrap();
    let outside: Vec<u32> = (1..=3).collect();
    let (main_seen, worker_seen) = rt.scope(|s| {
        assert_eq!(s.main_lcore(), 0);
        let main_seen = (lcore::current(), current_cpu());
        let job = s
            .launch(1, || {
                let name = std::thread::current().name().map(str::to_string);
                (lcore::current(), current_cpu(), name, outside.iter().sum::<u32>())
            })
            .unwrap();
        assert_eq!(job.lcore(), 1);
        (main_seen, job.join())
    });
    assert_eq!(main_seen, (Some(0), Some(c0)));
    assert_eq!(worker_seen, (Some(1), Some(c1), Some("lcore-1".to_string()), 6));
    assert_eq!(lcore::current(), None, "the main lcore is given back after the scope");
    assert_eq!(allowed_cpus().unwrap(), mask_before, "the thread's CPU mask is restored");
}

#[test]
fn the_main_lcore_an_unknown_lcore_and_a_busy_lcore_cannot_be_launched_on() {
    let _s = serial();
    let (rt, _, _) = runtime(&[]);
    rt.scope(|s| {
        let err = s.launch(0, || ()).unwrap_err().to_string();
        assert!(err.contains("lcore 0 is the main lcore") && err.contains("worker lcore (1)"), "{err}");
        let err = s.launch(7, || ()).unwrap_err().to_string();
        assert!(err.contains("there is no lcore 7: the runtime has lcores 0,1"), "{err}");

        let (release, wait) = mpsc::channel::<()>();
        let busy = s.launch(1, move || wait.recv().unwrap()).unwrap();
        let err = s.launch(1, || ()).unwrap_err();
        assert!(err.to_string().contains("cannot launch on lcore 1: lcore 1 is already claimed"), "{err}");
        assert_eq!(err.exit_code(), 1);
        release.send(()).unwrap();
        busy.join();
        // Joined: the lcore is free again.
        assert_eq!(s.launch(1, || 5).unwrap().join(), 5);
    });
}

#[test]
fn lcores_not_joined_are_waited_for_when_the_scope_ends() {
    let _s = serial();
    let (rt, _, _) = runtime(&[]);
    let done = AtomicBool::new(false);
    let (release, wait) = mpsc::channel::<()>();
    let done_ref = &done;
    rt.scope(|s| {
        s.launch(1, move || {
            wait.recv().unwrap();
            done_ref.store(true, Ordering::SeqCst);
        })
        .unwrap();
        release.send(()).unwrap();
    });
    assert!(done.load(Ordering::SeqCst));
    // And lcore 1 was given back.
    assert_eq!(rt.scope(|s| s.launch(1, lcore::current).unwrap().join()), Some(1));
}

#[test]
fn a_panic_on_an_lcore_comes_back_through_join() {
    let _s = serial();
    let (rt, _, _) = runtime(&[]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.scope(|s| s.launch(1, || panic!("lcore boom")).unwrap().join())
    }));
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"lcore boom"));
    assert_eq!(lcore::current(), None);
    assert_eq!(rt.scope(|s| s.launch(1, lcore::current).unwrap().join()), Some(1), "lcore 1 was released");
}

/// A panic on the main lcore must not leave a worker polling forever: the scope joins workers
/// before the panic goes on, so it asks them to stop first. Without that, this test hangs.
#[test]
fn a_panic_on_the_main_lcore_stops_the_workers() {
    let _s = serial();
    let (rt, _, _) = runtime(&[]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.scope(|s| {
            let rt = s.runtime();
            s.launch(1, move || {
                while !rt.stop_requested() {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
            panic!("main lcore boom");
        })
    }));
    assert_eq!(caught.unwrap_err().downcast_ref::<&str>(), Some(&"main lcore boom"));
    assert!(rt.stop_requested());
}

#[test]
fn the_calling_thread_must_be_free_or_already_the_main_lcore() {
    let _s = serial();
    let (rt, _, _) = runtime(&[]);
    std::thread::scope(|t| {
        t.spawn(|| {
            let _other = lcore::claim(5).unwrap();
            let err = rt.try_scope(|_| ()).unwrap_err().to_string();
            assert!(err.contains("this thread runs as lcore 5"), "{err}");
        });
        t.spawn(|| {
            let _main = lcore::claim(0).unwrap();
            assert_eq!(rt.try_scope(|_| lcore::current()).unwrap(), Some(0));
            assert_eq!(lcore::current(), Some(0), "a claim made before the scope is kept");
        });
    });
    // Another thread holds lcore 0: this one cannot be the main lcore.
    let (held, hold) = mpsc::channel::<()>();
    let (release, wait) = mpsc::channel::<()>();
    std::thread::scope(|t| {
        t.spawn(move || {
            let _main = lcore::claim(0).unwrap();
            held.send(()).unwrap();
            wait.recv().unwrap();
        });
        hold.recv().unwrap();
        let err = rt.try_scope(|_| ()).unwrap_err().to_string();
        assert!(err.contains("cannot run as the main lcore: lcore 0 is already claimed"), "{err}");
        release.send(()).unwrap();
    });
}

#[test]
fn a_worker_lcore_forwards_packets_over_a_ring_pair_and_stops_on_request() {
    let _s = serial();
    let (mut rt, _, _) = runtime(&["net_ring0,pair=p", "net_ring1,pair=p"]);
    let pool = rt.pktmbuf_pool("fwd", 1023).unwrap();
    for port in rt.ports_mut() {
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 0, &pool).unwrap();
        port.tx_queue_setup(0, 0).unwrap();
        port.start().unwrap();
    }
    const N: usize = 1000;
    let rt = &rt;
    let received = rt.scope(|s| {
        let mut rx = rt.port(1).unwrap().rx_queue(0).unwrap();
        let worker = s
            .launch(1, move || {
                let mut bufs: Vec<PacketBuf> = Vec::with_capacity(64);
                let mut count = 0;
                let mut lens_ok = true;
                while !rt.stop_requested() {
                    rx.rx_burst(&mut bufs, 32);
                    count += bufs.len();
                    lens_ok &= bufs.iter().all(|b| b.len() == 60);
                    bufs.clear();
                }
                (count, lens_ok)
            })
            .unwrap();
        let mut tx = rt.port(0).unwrap().tx_queue(0).unwrap();
        let mut sent = 0;
        let mut bufs = Vec::with_capacity(32);
        while sent < N {
            if bufs.is_empty() {
                assert!(pool.alloc_bulk(&mut bufs, 32.min(N - sent)));
                for b in &mut bufs {
                    b.append(60).unwrap();
                }
            }
            sent += tx.tx_burst(&mut bufs);
        }
        // Everything sent is in port 1's RX ring or already taken: wait for the worker's count
        // to reach it through the port's counters, then stop it.
        while rt.port(1).unwrap().stats().ipackets < N as u64 {
            std::hint::spin_loop();
        }
        rt.request_stop();
        worker.join()
    });
    assert_eq!(received, (N, true));
    assert_eq!(rt.port(0).unwrap().stats().opackets, N as u64);
    assert!(pool.mempool().is_full(), "every buffer came back");
}
