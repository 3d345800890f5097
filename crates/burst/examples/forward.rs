//! The forwarder of `docs/embedding.md`: everything port 0 receives goes out of port 1, on one
//! worker lcore, until Ctrl-C or until `LIMIT` packets (the only app argument) were forwarded.
//!
//! ```sh
//! cargo run --release -p burst --example forward -- -l 0,1 --no-huge --vdev net_null0 --vdev net_null1 -- 1000000
//! ```

use std::process::ExitCode;

use burst::{PortConf, Runtime};

fn main() -> ExitCode {
    // `forward [EAL options] -- [LIMIT]`, exactly like a DPDK application.
    let (mut rt, app_args) = match Runtime::from_args(std::env::args()) {
        Ok(v) => v,
        Err(e) if e.is_help() => {
            let _ = std::io::Write::write_fmt(&mut std::io::stdout(), format_args!("{e}"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("forward: {e}");
            return ExitCode::from(e.exit_code()); // 2 for a bad option, 1 otherwise
        }
    };
    let limit = match app_args.get(1).map(|s| s.parse::<u64>()) {
        None => u64::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("forward: LIMIT must be a number of packets");
            return ExitCode::from(2);
        }
    };
    match run(&mut rt, limit) {
        Ok(forwarded) => {
            println!("forwarded {forwarded} packets");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("forward: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(rt: &mut Runtime, limit: u64) -> Result<u64, Box<dyn std::error::Error>> {
    if rt.ports().len() < 2 {
        return Err("two ports are needed: add --vdev net_null0 --vdev net_null1, or bind two NICs".into());
    }
    let Some(&worker) = rt.worker_lcores().first() else {
        return Err("one worker lcore is needed: run with -l 0,1".into());
    };
    // Configure the ports: one RX and one TX queue each, buffers from one pool.
    let pool = rt.pktmbuf_pool("mbufs", 8192)?;
    for port in rt.ports_mut() {
        port.configure(&PortConf::queues(1, 1))?;
        port.rx_queue_setup(0, 1024, &pool)?;
        port.tx_queue_setup(0, 1024)?;
        port.set_promiscuous(true)?;
        port.start()?;
        println!("port {}: {} {} link {}", port.id(), port.name(), port.mac(), port.link());
    }
    // Poll on a pinned worker lcore; the calling thread is the main lcore meanwhile.
    let shared: &Runtime = rt;
    let forwarded = shared.try_scope(|s| -> Result<u64, burst::EthError> {
        let rt = s.runtime();
        let mut rx = rt.ports()[0].rx_queue(0)?;
        let mut tx = rt.ports()[1].tx_queue(0)?;
        let job = s
            .launch(worker, move || {
                let mut bufs = Vec::with_capacity(64); // allocated once, reused forever
                let mut forwarded = 0u64;
                while forwarded < limit && !rt.stop_requested() {
                    if rx.rx_burst(&mut bufs, 32) == 0 {
                        continue;
                    }
                    forwarded += tx.tx_burst(&mut bufs) as u64;
                    bufs.clear(); // what TX did not take is freed here
                }
                forwarded
            })
            .expect("the worker lcore exists and is free");
        Ok(job.join())
    })??;
    // The queue handles are gone with the scope, so the ports may be closed; closing gives back
    // every buffer their rings held.
    for port in rt.ports_mut() {
        port.close()?;
    }
    if !pool.mempool().is_full() {
        return Err(format!("{} buffers leaked", pool.mempool().in_use()).into());
    }
    Ok(forwarded)
}
