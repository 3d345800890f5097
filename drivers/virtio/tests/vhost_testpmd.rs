//! virtio-user against DPDK's vhost-user back-end: `dpdk-testpmd --vdev net_vhost0,iface=SOCK`
//! (Debian's `dpdk` 22.11; `cargo xtask setup` installs it). Frames our port sends are counted by
//! testpmd (its port statistics), frames testpmd sends (txonly) are counted by our port, and the
//! back-end is killed and started again in the middle: traffic resumes.
//!
//! **Needs root and hugepages** (CI runs as root): the test reserves the 2 MiB pages it uses on
//! top of whatever is reserved (a `Reservation` guard), mounts its own size-limited hugetlbfs,
//! and gives both back when it ends, even when it fails; testpmd runs with `--no-huge` (the
//! back-end maps our memory from the files we pass it) and is killed by a drop guard.

mod common;

use std::time::{Duration, Instant};

use burst::{EalOptions, PacketBuf, PacketPool, PortConf, Runtime};
use common::{setup, wait_link, Testpmd, SERIAL};

/// What only these tests ask of testpmd.
impl Testpmd {
    /// `show port stats 0`: (RX-packets, TX-packets).
    fn port_stats(&mut self) -> (u64, u64) {
        let mark = self.out.lock().unwrap().len();
        self.command("show port stats 0");
        let t0 = Instant::now();
        loop {
            {
                let out = self.out.lock().unwrap();
                let new = &out[mark..];
                if let Some(end) = new.find("TX-bytes") {
                    let block = &new[..end];
                    let num = |key: &str| -> u64 {
                        let at = block.rfind(key).unwrap_or_else(|| panic!("no {key} in {block}")) + key.len();
                        block[at..].split_whitespace().next().unwrap().parse().unwrap()
                    };
                    return (num("RX-packets:"), num("TX-packets:"));
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "testpmd did not show its stats:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until testpmd has received at least `n` frames; returns its count.
    fn wait_rx(&mut self, n: u64) -> u64 {
        let t0 = Instant::now();
        loop {
            let (rx, _) = self.port_stats();
            if rx >= n || t0.elapsed() > Duration::from_secs(10) {
                return rx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it hard, as a crash would.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 64-byte broadcast frame carrying `seq`.
fn frame(pool: &PacketPool, seq: u32) -> PacketBuf {
    let mut b = pool.alloc().expect("a free buffer");
    let data = b.append(60).expect("room for a frame");
    data.fill(0);
    data[..6].copy_from_slice(&[0xff; 6]);
    data[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    data[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
    data[14..18].copy_from_slice(&seq.to_be_bytes());
    b
}

/// Sends `n` frames from `pool` through TX queue 0, retrying what the ring does not take.
fn send(rt: &Runtime, pool: &PacketPool, n: u32, first: u32) {
    send_on(rt, 0, pool, n, first)
}

/// Sends `n` frames from `pool` through TX queue `q`, retrying what the ring does not take.
fn send_on(rt: &Runtime, q: u16, pool: &PacketPool, n: u32, first: u32) {
    let port = rt.port(0).unwrap();
    let mut tx = port.tx_queue(q).unwrap();
    let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
    let (mut seq, end) = (first, first + n);
    let t0 = Instant::now();
    while seq < end || !bufs.is_empty() {
        while bufs.len() < 32 && seq < end {
            bufs.push(frame(pool, seq));
            seq += 1;
        }
        if tx.tx_burst(&mut bufs) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "TX stalled with {} frames left",
                end - seq + bufs.len() as u32
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Needs root and hugepages, and dpdk-testpmd.
#[test]
fn root_two_queue_pairs_carry_frames_both_ways() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("mq");
    let mut backend = Testpmd::start_queues(&s.sock, "rxonly", "mq", 2);
    let opts = EalOptions::new()
        .no_pci()
        .lcores("0")
        .huge_dir(&s.mount.0)
        .file_prefix("vhostmq")
        .single_file_segments()
        .vdev(&format!("virtio_user0,path={},queues=2", s.sock.display()));
    let mut rt = Runtime::init(opts).expect("runtime with virtio_user0");
    assert_eq!(rt.port(0).unwrap().info().max_rx_queues, 2, "queues=2 gives two pairs");
    let pool = rt.pktmbuf_pool("mbufs", 2047).unwrap();
    {
        let port = rt.port_mut(0).unwrap();
        port.configure(&PortConf::queues(2, 2)).unwrap();
        for q in 0..2 {
            port.rx_queue_setup(q, 256, &pool).unwrap();
            port.tx_queue_setup(q, 256).unwrap();
        }
        port.start().unwrap();
    }
    wait_link(&rt, true);
    // Each of our TX queues reaches testpmd (its RX queue of the same number).
    send_on(&rt, 0, &pool, 700, 0);
    send_on(&rt, 1, &pool, 300, 700);
    assert_eq!(backend.wait_rx(1000), 1000, "testpmd counts the frames of both queues");
    let st = rt.port(0).unwrap().stats();
    assert_eq!((st.q_opackets[0], st.q_opackets[1]), (700, 300), "{st:?}");
    // testpmd sends on both of its TX queues: both our RX queues receive.
    backend.command("stop");
    backend.command("set fwd txonly");
    backend.command("start");
    let mut got = [0u64; 2];
    {
        let port = rt.port(0).unwrap();
        let mut rxs = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
        let t0 = Instant::now();
        while got.iter().any(|&g| g < 1000) {
            for (q, rx) in rxs.iter_mut().enumerate() {
                got[q] += rx.rx_burst(&mut bufs, 32) as u64;
                bufs.clear();
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "received {got:?} in 10 s");
        }
    }
    backend.command("stop");
    let st = rt.port(0).unwrap().stats();
    assert!(st.q_ipackets[0] >= got[0] && st.q_ipackets[1] >= got[1], "{st:?} vs {got:?}");
    rt.port_mut(0).unwrap().stop().unwrap();
    assert!(pool.mempool().is_full(), "every buffer came back");
    drop(pool);
    rt.close().unwrap();
    drop(backend);
}

/// Needs root and hugepages, and dpdk-testpmd.
#[test]
fn root_frames_cross_both_ways_and_survive_a_backend_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("restart");
    let (sock, mount) = (&s.sock, &s.mount);

    let mut backend = Testpmd::start(sock, "rxonly", "a");
    let opts = EalOptions::new()
        .no_pci()
        .lcores("0")
        .huge_dir(&mount.0)
        .file_prefix("vhosttest")
        .single_file_segments()
        .vdev(&format!("virtio_user0,path={},queue_size=256", sock.display()));
    let mut rt = Runtime::init(opts).expect("runtime with virtio_user0");
    assert_eq!(rt.port(0).unwrap().driver(), burst_virtio::USER_DRIVER_NAME);
    let pool = rt.pktmbuf_pool("mbufs", 2047).unwrap();
    {
        let port = rt.port_mut(0).unwrap();
        port.configure(&PortConf::queues(1, 1)).unwrap();
        port.rx_queue_setup(0, 256, &pool).unwrap();
        port.tx_queue_setup(0, 256).unwrap();
        port.start().unwrap();
    }
    wait_link(&rt, true);

    // 1. Our frames reach testpmd, also from a pool made after start (its memory reaches the
    //    back-end's memory table before its first buffer is used).
    send(&rt, &pool, 1000, 0);
    let later = rt.pktmbuf_pool("later", 4095).unwrap();
    send(&rt, &later, 1000, 1000);
    assert_eq!(backend.wait_rx(2000), 2000, "testpmd counts every frame we sent");
    let ours = rt.port(0).unwrap().stats();
    assert_eq!(ours.opackets, 2000);

    // 2. The back-end dies mid-run: the link goes down, our TX ring fills and sending stops.
    backend.kill();
    wait_link(&rt, false);

    // 3. It comes back, sending (txonly): the link comes up and its frames arrive.
    let mut backend = Testpmd::start(sock, "txonly", "b");
    wait_link(&rt, true);
    let mut got = 0u64;
    {
        let port = rt.port(0).unwrap();
        let mut rx = port.rx_queue(0).unwrap();
        let mut bufs: Vec<PacketBuf> = Vec::with_capacity(32);
        let t0 = Instant::now();
        while got < 5000 {
            let n = rx.rx_burst(&mut bufs, 32);
            assert!(bufs.iter().all(|b| b.len() == 64), "testpmd's txonly frames are 64 bytes");
            got += n as u64;
            bufs.clear();
            assert!(t0.elapsed() < Duration::from_secs(10), "only {got} frames from testpmd in 10 s");
        }
    }
    backend.command("stop");
    let (_, sent) = backend.port_stats();
    eprintln!("after the first restart testpmd sent {sent} frames, we received {got}");
    assert!(sent >= got, "testpmd sent {sent}, we got {got}");
    assert!(rt.port(0).unwrap().stats().ipackets >= got);

    // 4. And again, receiving: our frames flow after the second restart too.
    backend.kill();
    wait_link(&rt, false);
    let mut backend = Testpmd::start(sock, "rxonly", "c");
    wait_link(&rt, true);
    send(&rt, &pool, 500, 2000);
    let rx = backend.wait_rx(500);
    eprintln!("after the second restart testpmd received {rx} frames (500 sent since)");
    assert!(rx >= 500, "testpmd got {rx} of our 500 frames after its restart");

    rt.port_mut(0).unwrap().stop().unwrap();
    assert!(pool.mempool().is_full(), "every buffer of the first pool came back");
    assert!(later.mempool().is_full(), "every buffer of the later pool came back");
    drop((pool, later));
    rt.close().unwrap();
    drop(backend);
}
