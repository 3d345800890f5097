//! [`Runtime`]: DPDK's `rte_eal_init` and `rte_eal_cleanup` in one value.
//!
//! Init order: check the options; logging; signal handlers; PCI scan and device selection
//! (unless `--no-pci`); open the devices (one VFIO container for all); the IOVA-mode vote; DMA
//! memory; the container as the memory's DMA mapper; probe PCI devices (by address), then
//! vdevs (in order), as ports 0, 1, ... Teardown (`close` or drop) closes every port, then
//! drops the memory (hugepage files go when the last handle, pools included, is gone). An error
//! half-way releases what was set up so far the same way.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burst_ethdev::{Port, PortId, Registry};
use burst_mem::hugepage::SysRoot;
use burst_mem::{IovaMode, MemConfig, Memory, PacketPool, PacketPoolConfig};
use burst_pci::sysfs::SysfsRoot;
use burst_pci::{choose_iova_mode, Container, DeviceVote, HostIova};

use crate::error::EalError;
use crate::lcores::LcoreInfo;
use crate::options::EalOptions;
use crate::signals::{self, SignalGuard};
use crate::{drivers, log, probe};

/// The running environment: ports, DMA memory, lcores. `Send + Sync`.
///
/// Fields drop in order: ports, then memory, then the VFIO container, then the signal handlers.
pub struct Runtime {
    ports: Vec<Port>,
    memory: Memory,
    _container: Option<Arc<Container>>,
    iova_mode: IovaMode,
    lcores: Vec<LcoreInfo>,
    main_lcore: u32,
    stop: AtomicBool,
    options: EalOptions,
    _signals: Option<SignalGuard>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
};

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("ports", &self.ports)
            .field("iova_mode", &self.iova_mode)
            .field("lcores", &self.lcores)
            .field("main_lcore", &self.main_lcore)
            .finish()
    }
}

impl Runtime {
    /// Starts the runtime with every driver linked in ([`drivers::registry`]).
    pub fn init(opts: EalOptions) -> Result<Runtime, EalError> {
        Runtime::init_with(opts, drivers::registry())
    }

    /// Parses `args` ([`EalOptions::parse`]) and starts the runtime; returns it and the
    /// application's arguments (`[args[0], after "--"...]`).
    pub fn from_args<I, S>(args: I) -> Result<(Runtime, Vec<String>), EalError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (opts, app) = EalOptions::parse(args)?;
        Ok((Runtime::init(opts)?, app))
    }

    /// Starts the runtime with the drivers of `registry`.
    pub fn init_with(opts: EalOptions, registry: Registry) -> Result<Runtime, EalError> {
        let checked = opts.check()?;
        log::init(checked.log_level);
        // Unknown vdevs are usage errors: say so before touching anything.
        let vdev_drivers = probe::vdev_drivers(&registry, &checked.vdevs)?;
        let signals = if opts.handle_signals {
            Some(
                signals::install()
                    .map_err(|source| EalError::Os { what: "installing SIGINT/SIGTERM handlers", source })?,
            )
        } else {
            None
        };

        let root = SysfsRoot::at(opts.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/")));
        let (pci, container) = if opts.no_pci {
            (Vec::new(), None)
        } else {
            let chosen = probe::select_pci(&root, &registry, &checked.allow, &checked.block)?;
            probe::open_pci(&root, chosen)?
        };

        let votes: Vec<DeviceVote> = pci.iter().map(|p| p.device.vote()).collect();
        let iova_mode = choose_iova_mode(&votes, opts.iova_mode, HostIova::probe(&root, !opts.no_huge))?;
        if opts.no_huge && iova_mode == IovaMode::Pa {
            let pa_only: Vec<String> =
                votes.iter().filter(|v| !v.allowed().va).map(|v| format!("{} ({})", v.addr, v.binding)).collect();
            return Err(EalError::Pci(format!(
                "--no-huge works with IOVA as VA only, but {} can only do PA: bind them to vfio-pci (with an IOMMU), or drop --no-huge",
                pa_only.join(", ")
            )));
        }
        tracing::info!("IOVA mode {iova_mode}, {} PCI device(s), {} vdev(s)", pci.len(), checked.vdevs.len());

        let memory = Memory::new(MemConfig {
            iova_mode,
            no_huge: opts.no_huge,
            huge_dir: opts.huge_dir.clone(),
            file_prefix: checked.file_prefix.clone(),
            single_file_segments: opts.single_file_segments,
            anonymous: opts.in_memory && !opts.no_huge,
            socket_mem: checked.socket_mem.clone(),
            sys: SysRoot::host(),
            ..MemConfig::default()
        })?;
        if let Some(c) = &container {
            memory.add_dma_mapper(c.clone())?;
        }
        let ports = probe::probe_all(&memory, pci, &checked.vdevs, &vdev_drivers)?;

        Ok(Runtime {
            ports,
            memory,
            _container: container,
            iova_mode,
            lcores: checked.lcores,
            main_lcore: checked.main_lcore,
            stop: AtomicBool::new(false),
            options: opts,
            _signals: signals,
        })
    }

    /// Every port; the index is the [`PortId`]. PCI devices (by address) first, then vdevs in
    /// command-line order.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// Port `id`.
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id as usize)
    }

    /// Every port, to configure.
    pub fn ports_mut(&mut self) -> &mut [Port] {
        &mut self.ports
    }

    /// Port `id`, to configure.
    pub fn port_mut(&mut self, id: PortId) -> Option<&mut Port> {
        self.ports.get_mut(id as usize)
    }

    /// The DMA memory.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The IOVA mode the vote chose.
    pub fn iova_mode(&self) -> IovaMode {
        self.iova_mode
    }

    /// The options the runtime was started with.
    pub fn options(&self) -> &EalOptions {
        &self.options
    }

    /// A packet pool of `count` buffers with DPDK's defaults (2048 B data room, 128 B headroom,
    /// a per-lcore cache of 256): `rte_pktmbuf_pool_create`.
    pub fn pktmbuf_pool(&self, name: &str, count: usize) -> Result<PacketPool, EalError> {
        Ok(PacketPool::new(&self.memory, &PacketPoolConfig::new(name, count))?)
    }

    /// The lcores, sorted by id.
    pub fn lcores(&self) -> &[LcoreInfo] {
        &self.lcores
    }

    /// The main lcore: what the thread calling [`Runtime::scope`] runs as.
    pub fn main_lcore(&self) -> u32 {
        self.main_lcore
    }

    /// Every lcore but the main one, in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        self.lcores.iter().map(|l| l.id).filter(|&id| id != self.main_lcore).collect()
    }

    /// True after SIGINT/SIGTERM (when the runtime handles signals) or [`Runtime::request_stop`].
    #[inline]
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || (self._signals.is_some() && signals::signalled())
    }

    /// Asks every loop that polls [`Runtime::stop_requested`] to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Closes every port (stopping those started) and releases the runtime. Memory goes when
    /// the last handle on it does: pools the application still holds keep it. Returns the first
    /// port error; the others are logged.
    pub fn close(mut self) -> Result<(), EalError> {
        self.close_ports()
    }

    fn close_ports(&mut self) -> Result<(), EalError> {
        let mut first = None;
        for port in &mut self.ports {
            if let Err(e) = port.close() {
                tracing::warn!(port = port.id(), "closing port {} failed: {e}", port.id());
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e.into()),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Errors were logged by close_ports; nothing more to do with them here.
        let _ = self.close_ports();
    }
}
