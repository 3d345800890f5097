//! What can go wrong on a net_af_xdp port, each saying what to do.

use std::path::PathBuf;

use burst_netif::NetifError;

/// A net_af_xdp driver error, wrapped in [`burst_ethdev::EthError::Driver`].
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The interface could not be found or read.
    #[error("{0}")]
    Iface(#[source] NetifError),
    /// The interface is administratively down.
    #[error("interface {iface} is down: bring it up with `ip link set dev {iface} up`")]
    Down {
        /// The interface.
        iface: String,
    },
    /// Queues the interface does not have.
    #[error("interface {iface} has {have} RX queue(s) and start_queue={start},queue_count={count} asks for queue {last}: ask for fewer, or give the interface more (`ethtool -L {iface} combined N`)")]
    NoSuchQueue {
        /// The interface.
        iface: String,
        /// Its RX queues.
        have: u32,
        /// `start_queue`.
        start: u32,
        /// `queue_count`.
        count: u32,
        /// The last queue asked for.
        last: u32,
    },
    /// No permission for an AF_XDP socket.
    #[error("opening an AF_XDP socket needs CAP_NET_RAW: run as root, or give the program the capability (`setcap cap_net_raw,cap_net_admin,cap_bpf+ep PROGRAM`)")]
    NoCapNetRaw,
    /// No permission to load or attach the XDP program.
    #[error("loading and attaching the XDP program needs CAP_BPF and CAP_NET_ADMIN: run as root, or give the program both (`setcap cap_net_raw,cap_net_admin,cap_bpf+ep PROGRAM`)")]
    NoCapBpf,
    /// Another XDP program is attached to the interface.
    #[error("interface {iface} already has {how} XDP program (id {id}) attached, someone else's: detach it first (`ip link set dev {iface} xdp off`) or use another interface")]
    Occupied {
        /// The interface.
        iface: String,
        /// The program's id (0 when unknown).
        id: u32,
        /// How it is attached.
        how: String,
    },
    /// Native XDP asked for on a driver without it.
    #[error("the driver of interface {iface} has no native XDP: use mode=skb (generic XDP), or no mode= to let the kernel choose")]
    NoNativeXdp {
        /// The interface.
        iface: String,
    },
    /// libxdp's default program is not installed.
    #[error("libxdp's default AF_XDP program xsk_def_xdp_prog.o is not installed: install Debian's libxdp1 (`apt-get install libxdp1`; .ci/run does), set LIBXDP_OBJECT_PATH to its folder, or give xdp_prog=PATH")]
    NoDefaultProgram,
    /// The program file could not be opened.
    #[error("opening the XDP program {path}: {source}: give xdp_prog= a BPF object file (clang -target bpf)")]
    ProgramFile {
        /// The file.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The program has no XSKMAP called `xsks_map`.
    #[error("the XDP program {path} has no XSKMAP called xsks_map: redirect with bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS) to such a map, as DPDK's af_xdp expects")]
    NoXskMap {
        /// The file.
        path: PathBuf,
    },
    /// The object has no XDP program.
    #[error("{path} holds no XDP program (SEC(\"xdp\")): give xdp_prog= the object of one")]
    NoXdpProgram {
        /// The file.
        path: PathBuf,
    },
    /// The kernel refused the program.
    #[error("loading the XDP program {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused to attach it.
    #[error("attaching the XDP program to interface {iface}: {source}")]
    Attach {
        /// The interface.
        iface: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// A socket could not be put in the XSKMAP.
    #[error("putting the socket of queue {queue} in the program's xsks_map: {source}: its max_entries must exceed the queue id")]
    XskMap {
        /// The NIC queue.
        queue: u32,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// A step of a queue's socket set-up failed.
    #[error("queue {queue}: {step}: {source}{hint}", hint = step_hint(.source))]
    Socket {
        /// The NIC queue.
        queue: u32,
        /// The step.
        step: &'static str,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The pool's objects do not lie back to back.
    #[error("pool {pool}'s buffers are not laid out back to back (IOVA as PA across segments): run with --iova-mode=va or a pool that fits one hugepage, since its memory is the UMEM")]
    PoolLayout {
        /// The pool.
        pool: String,
    },
    /// The pool's buffers are no valid UMEM chunk.
    #[error("pool {pool}'s buffers hold {chunk} bytes (headroom and data room): an AF_XDP chunk is 2048 to {page} bytes and must leave room after the kernel's 256-byte headroom; use the default pool (128 + 2048)")]
    ChunkSize {
        /// The pool.
        pool: String,
        /// Headroom plus data room.
        chunk: usize,
        /// The page size.
        page: usize,
    },
    /// The pool ran dry filling a queue.
    #[error("RX queue {queue}: the pool ran out of buffers filling the fill ring of {want}: give the pool more buffers or the queue fewer descriptors")]
    PoolTooSmall {
        /// The queue.
        queue: u16,
        /// Buffers wanted.
        want: u32,
    },
    /// TX queues outnumber RX queues.
    #[error("{tx} TX queues and {rx} RX queues: TX queue q sends through RX queue q's socket, so configure at least as many RX queues as TX queues")]
    TxWithoutRx {
        /// TX queues.
        tx: u16,
        /// RX queues.
        rx: u16,
    },
    /// The port's settings could not be applied to the interface.
    #[error("applying the port's {what} to interface {iface}: {source}")]
    Apply {
        /// What (`MTU 9000`).
        what: String,
        /// The interface.
        iface: String,
        /// Why not.
        #[source]
        source: NetifError,
    },
}

fn step_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EBUSY) => {
            ": another AF_XDP socket is bound to that queue: stop its owner or use another start_queue"
        }
        Some(libc::ENOMEM) | Some(libc::ENOBUFS) => {
            ": not enough locked memory for the UMEM: raise `ulimit -l` or run as root"
        }
        Some(libc::EOPNOTSUPP) => ": the driver cannot do zero copy: drop force_copy=0, or pass force_copy=1",
        Some(libc::EPERM) => ": run as root, or with CAP_NET_RAW",
        _ => "",
    }
}
