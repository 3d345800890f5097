//! The command lines of `bench vhost`: the backend's and the frontends' (which differ only in
//! the device's name and pktgen's fallback `--run-seconds`), the CPUs they get, and the socket.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Mode, Side, VhostArgs};

/// `A,B` -> (`A`, `B`): the backend's main lcore and the frontend's.
pub(super) fn lcore_pair(list: &str) -> Option<(String, String)> {
    let (a, b) = list.split_once(',')?;
    (!a.is_empty() && !b.is_empty() && !b.contains(',')).then(|| (a.to_string(), b.to_string()))
}

/// The vhost-user socket: under target/bench unless that path is too long for a unix socket
/// (108 bytes with the NUL), then in the temporary directory.
pub(super) fn socket_path(out_dir: &Path, name: &str) -> PathBuf {
    let p = out_dir.join(name);
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(name)
    }
}

/// Removes the socket file when dropped (the backend removes it on a clean exit, not when killed).
pub(super) struct SocketFile(pub(super) PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The backend's arguments.
pub(super) fn backend_args(
    lcores: &str,
    main: &str,
    sock: &str,
    huge_dir: &str,
    prefix: &str,
    a: &VhostArgs,
) -> Vec<String> {
    strings(&[
        "-l",
        lcores,
        "--main-lcore",
        main,
        "--no-pci",
        "--vdev",
        &format!("net_vhost0,iface={sock},queues=1"),
        "--huge-dir",
        huge_dir,
        "--huge-unlink",
        "--file-prefix",
        prefix,
        "-v",
        "--",
        "-i",
        "--nb-cores=1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
        "--forward-mode=rxonly",
    ])
}

/// A frontend's arguments: testpmd's or pktgen's, which differ only in the device's name and
/// pktgen's `--run-seconds` (a fallback: both are stopped with SIGINT once measured).
#[allow(clippy::too_many_arguments)]
pub(super) fn frontend_args(
    side: Side,
    mode: Mode,
    lcores: &str,
    main: &str,
    sock: &str,
    huge_dir: &str,
    prefix: &str,
    a: &VhostArgs,
    samples: usize,
) -> Vec<String> {
    let vdev = match side {
        Side::Dpdk => format!("net_virtio_user0,path={sock}"),
        Side::Burst => format!("virtio_user0,path={sock}"),
    };
    let mut v = strings(&[
        "-l",
        lcores,
        "--main-lcore",
        main,
        "--no-pci",
        "--vdev",
        &vdev,
        "--single-file-segments",
        "--huge-dir",
        huge_dir,
        "--file-prefix",
        prefix,
        "--",
        &format!("--forward-mode={}", mode.name()),
        "--nb-cores=1",
        "--stats-period",
        "1",
        &format!("--burst={}", a.burst),
        &format!("--txpkts={}", a.size),
    ]);
    if side == Side::Burst {
        v.push("--run-seconds".into());
        v.push((samples + 10).to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcores_and_arguments() {
        assert_eq!(lcore_pair("0,1"), Some(("0".into(), "1".into())));
        assert_eq!(lcore_pair("2,5"), Some(("2".into(), "5".into())));
        assert_eq!(lcore_pair("0"), None);
        let a = VhostArgs { seconds: 10, size: 64, burst: 32, rounds: 1 };
        let back = backend_args("0,1", "0", "/s.sock", "/huge", "p-backend", &a).join(" ");
        assert!(back.starts_with("-l 0,1 --main-lcore 0 --no-pci --vdev net_vhost0,iface=/s.sock,queues=1"), "{back}");
        assert!(back.contains("-- -i --nb-cores=1 --burst=32 --txpkts=64"), "{back}");
        let d = frontend_args(Side::Dpdk, Mode::TxOnly, "0,1", "1", "/s.sock", "/huge", "p", &a, 12).join(" ");
        assert!(
            d.starts_with("-l 0,1 --main-lcore 1 --no-pci --vdev net_virtio_user0,path=/s.sock --single-file-segments")
        );
        assert!(d.ends_with("--forward-mode=txonly --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64"), "{d}");
        let b = frontend_args(Side::Burst, Mode::RxOnly, "0,1", "1", "/s.sock", "/huge", "p", &a, 12).join(" ");
        assert!(b.contains("--vdev virtio_user0,path=/s.sock --single-file-segments"), "{b}");
        assert!(
            b.ends_with("--forward-mode=rxonly --nb-cores=1 --stats-period 1 --burst=32 --txpkts=64 --run-seconds 22")
        );
        assert_eq!(Mode::TxOnly.backend(), "rxonly");
        assert_eq!(Mode::RxOnly.backend(), "txonly");
    }

    #[test]
    fn long_socket_paths_go_to_the_temporary_directory() {
        assert_eq!(socket_path(Path::new("/work/target/bench"), "x.sock"), Path::new("/work/target/bench/x.sock"));
        let long = PathBuf::from("/").join("d".repeat(120));
        assert_eq!(socket_path(&long, "x.sock"), std::env::temp_dir().join("x.sock"));
    }
}
