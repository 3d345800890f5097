//! [`EalOptions`]: DPDK's EAL options, as fields an application can set in code or parse from a
//! command line ([`EalOptions::parse`]), and the checks that
//! turn them into what the runtime needs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use burst_ethdev::{DevArgs, PciSpec};
use burst_mem::{IovaMode, SocketMem};
use burst_pci::PciAddress;
use tracing::level_filters::LevelFilter;

use crate::error::EalError;
use crate::lcores::{self, LcoreInfo};

/// The EAL options (DPDK's names). Build them in code (`EalOptions::new().no_huge().vdev(...)`)
/// or parse a command line ([`EalOptions::parse`]); either way [`crate::Runtime::init`] checks
/// them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalOptions {
    /// `-l`/`--lcores`: `0-3,5` (lcore N on CPU N) or `0@0,1@1` (lcore@CPU). Default: one lcore
    /// per CPU this process may run on.
    pub lcores: Option<String>,
    /// `--main-lcore`: the lcore the calling thread becomes in [`crate::Runtime::scope`].
    /// Default: the first lcore.
    pub main_lcore: Option<u32>,
    /// `-a`/`--allow ADDR[,key=value...]`: probe only these PCI devices.
    pub allow: Vec<String>,
    /// `-b`/`--block ADDR`: never probe these PCI devices.
    pub block: Vec<String>,
    /// `--vdev NAME[,key=value...]`: virtual devices, probed in this order after the PCI ones.
    pub vdevs: Vec<String>,
    /// `--iova-mode pa|va`: override the IOVA-mode vote.
    pub iova_mode: Option<IovaMode>,
    /// `-m MB`: memory to reserve at start, in all.
    pub memory_mb: Option<String>,
    /// `--socket-mem MB,MB,...`: memory to reserve at start, per socket.
    pub socket_mem: Option<String>,
    /// `--huge-dir DIR`: the hugetlbfs mount for hugepage files.
    pub huge_dir: Option<PathBuf>,
    /// `--file-prefix NAME`: starts every hugepage file's name (default `burst`).
    pub file_prefix: Option<String>,
    /// `--no-huge`: 4 KiB pages, no hugepages; IOVA as VA only.
    pub no_huge: bool,
    /// `--single-file-segments`: one hugepage file per segment list.
    pub single_file_segments: bool,
    /// `--in-memory` (or `--huge-unlink`): hugepages mapped anonymously, with no file in any
    /// hugetlbfs mount, so nothing can be left behind. DPDK's `--huge-unlink` keeps files until
    /// they are mapped, then unlinks them; the effect users rely on, no file left, is the same.
    pub in_memory: bool,
    /// `--no-pci`: no PCI scan, no PCI device.
    pub no_pci: bool,
    /// `--log-level`: `error`, `warning`, `info`, `debug`, `trace`, DPDK's `1`..`8`, or DPDK's
    /// `TYPE:LEVEL` (the level then applies to everything). Default: warning.
    pub log_level: Option<String>,
    /// `--sysfs-root DIR` (hidden, for tests): where `sys/` and `proc/` are for the PCI scan.
    pub sysfs_root: Option<PathBuf>,
    /// Install SIGINT/SIGTERM handlers that turn a signal into a stop request (default true).
    pub handle_signals: bool,
}

impl Default for EalOptions {
    fn default() -> Self {
        EalOptions {
            lcores: None,
            main_lcore: None,
            allow: Vec::new(),
            block: Vec::new(),
            vdevs: Vec::new(),
            iova_mode: None,
            memory_mb: None,
            socket_mem: None,
            huge_dir: None,
            file_prefix: None,
            no_huge: false,
            single_file_segments: false,
            in_memory: false,
            no_pci: false,
            log_level: None,
            sysfs_root: None,
            handle_signals: true,
        }
    }
}

/// The hugepage file prefix when `--file-prefix` is not given.
pub const DEFAULT_FILE_PREFIX: &str = "burst";

impl EalOptions {
    /// The defaults: every CPU an lcore, PCI scanned, hugepages, signals handled.
    pub fn new() -> EalOptions {
        EalOptions::default()
    }

    /// DPDK's `rte_eal_init` argument split: `args[0]` is the program; EAL options come up to
    /// `--`; returns the options and the application's arguments, `[args[0], everything after
    /// "--"]`. Without `--`, every argument is an EAL option. `-h`/`--help` gives
    /// [`EalError::Help`] with the usage text.
    pub fn parse<I, S>(args: I) -> Result<(EalOptions, Vec<String>), EalError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (opts, app) = crate::cli::parse(args.into_iter().map(Into::into).collect())?;
        opts.check()?;
        Ok((opts, app))
    }

    /// The EAL usage text (`-h`), for `program`.
    pub fn usage(program: &str) -> String {
        crate::cli::usage(program)
    }

    /// `-l`/`--lcores`.
    pub fn lcores(mut self, list: &str) -> Self {
        self.lcores = Some(list.to_string());
        self
    }

    /// `--main-lcore`.
    pub fn main_lcore(mut self, id: u32) -> Self {
        self.main_lcore = Some(id);
        self
    }

    /// One `-a`/`--allow ADDR[,key=value...]`.
    pub fn allow(mut self, a: &str) -> Self {
        self.allow.push(a.to_string());
        self
    }

    /// One `-b`/`--block ADDR`.
    pub fn block(mut self, b: &str) -> Self {
        self.block.push(b.to_string());
        self
    }

    /// One `--vdev NAME[,key=value...]`.
    pub fn vdev(mut self, spec: &str) -> Self {
        self.vdevs.push(spec.to_string());
        self
    }

    /// `--iova-mode`.
    pub fn iova_mode(mut self, mode: IovaMode) -> Self {
        self.iova_mode = Some(mode);
        self
    }

    /// `-m MB`.
    pub fn memory_mb(mut self, mb: u64) -> Self {
        self.memory_mb = Some(mb.to_string());
        self
    }

    /// `--socket-mem MB,MB,...`.
    pub fn socket_mem(mut self, list: &str) -> Self {
        self.socket_mem = Some(list.to_string());
        self
    }

    /// `--huge-dir`.
    pub fn huge_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.huge_dir = Some(dir.into());
        self
    }

    /// `--file-prefix`.
    pub fn file_prefix(mut self, prefix: &str) -> Self {
        self.file_prefix = Some(prefix.to_string());
        self
    }

    /// `--no-huge`.
    pub fn no_huge(mut self) -> Self {
        self.no_huge = true;
        self
    }

    /// `--single-file-segments`.
    pub fn single_file_segments(mut self) -> Self {
        self.single_file_segments = true;
        self
    }

    /// `--in-memory`.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// `--no-pci`.
    pub fn no_pci(mut self) -> Self {
        self.no_pci = true;
        self
    }

    /// `--log-level`.
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = Some(level.to_string());
        self
    }

    /// `--sysfs-root` (tests).
    pub fn sysfs_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sysfs_root = Some(dir.into());
        self
    }

    /// Whether to turn SIGINT/SIGTERM into a stop request.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Checks every option against the others and the machine; what [`crate::Runtime::init`]
    /// works from. Usage errors only (exit status 2), except a failing `sched_getaffinity`.
    pub(crate) fn check(&self) -> Result<Checked, EalError> {
        let allowed = lcores::allowed_cpus()
            .map_err(|source| EalError::Os { what: "reading this process's CPU mask", source })?;
        let lcores = match &self.lcores {
            Some(list) => lcores::parse_lcores(list, &allowed)?,
            None => lcores::default_lcores(&allowed),
        };
        let first = lcores.first().ok_or_else(|| {
            EalError::usage(format!(
                "no lcore: this process may run on CPUs {} and none has an lcore id below {}",
                lcores::format_cpus(&allowed),
                burst_mem::lcore::MAX_LCORES
            ))
        })?;
        let main_lcore = match self.main_lcore {
            None => first.id,
            Some(m) if lcores.iter().any(|l| l.id == m) => m,
            Some(m) => {
                return Err(EalError::usage(format!(
                    "--main-lcore {m} is not in the lcore list ({}): give one of them, or add it to -l",
                    lcore_ids(&lcores)
                )))
            }
        };

        if !self.allow.is_empty() && !self.block.is_empty() {
            // DPDK's eal_parse_args: "Options allow (-a) and block (-b) can't be used at the same time".
            return Err(EalError::usage("-a/--allow and -b/--block cannot be used together: list the devices to use with -a, or those to leave with -b"));
        }
        if self.no_pci && !self.allow.is_empty() {
            return Err(EalError::usage("-a/--allow names PCI devices but --no-pci turns PCI off: drop one of them"));
        }
        let mut allow: Vec<PciSpec> = Vec::new();
        for spec in &self.allow {
            let (name, args) = DevArgs::parse(spec).map_err(|e| EalError::usage(format!("-a {spec}: {e}")))?;
            let addr = parse_addr("-a", &name)?;
            if allow.iter().any(|s| s.addr == addr) {
                return Err(EalError::usage(format!("-a {addr} is given twice: give each device once")));
            }
            allow.push(PciSpec { addr, args });
        }
        let mut block = Vec::new();
        for spec in &self.block {
            block.push(parse_addr("-b", spec.trim())?);
        }

        let mut vdevs: Vec<(String, DevArgs)> = Vec::new();
        for spec in &self.vdevs {
            let (name, args) = DevArgs::parse(spec).map_err(|e| EalError::usage(format!("--vdev {spec}: {e}")))?;
            if vdevs.iter().any(|(n, _)| *n == name) {
                return Err(EalError::usage(format!(
                    "--vdev {name} is given twice: each virtual device needs its own name (e.g. net_null0, net_null1)"
                )));
            }
            vdevs.push((name, args));
        }

        let socket_mem = match (&self.memory_mb, &self.socket_mem) {
            (Some(_), Some(_)) => {
                // DPDK's eal_check_common_options: "Options -m and --socket-mem cannot be specified at the same time".
                return Err(EalError::usage("-m and --socket-mem cannot be used together: give the total with -m, or per socket with --socket-mem"));
            }
            (Some(m), None) => SocketMem::parse_total(m).map_err(|e| EalError::usage(format!("-m: {e}")))?,
            (None, Some(s)) => {
                SocketMem::parse_per_socket(s).map_err(|e| EalError::usage(format!("--socket-mem: {e}")))?
            }
            (None, None) => SocketMem::None,
        };
        if self.no_huge && self.iova_mode == Some(IovaMode::Pa) {
            return Err(EalError::usage(
                "--no-huge memory works with IOVA as VA only (its 4 KiB pages may move in physical memory): drop --iova-mode pa or --no-huge",
            ));
        }
        let file_prefix = match &self.file_prefix {
            None => DEFAULT_FILE_PREFIX.to_string(),
            Some(p) if p.is_empty() || p.contains('/') || p.contains('\0') => {
                return Err(EalError::usage(format!(
                    "--file-prefix {p:?}: a prefix is a non-empty file name start without '/', e.g. --file-prefix app1"
                )))
            }
            Some(p) => p.clone(),
        };
        let log_level = match &self.log_level {
            None => LevelFilter::WARN,
            Some(l) => parse_log_level(l)?,
        };
        Ok(Checked { lcores, main_lcore, allow, block, vdevs, socket_mem, file_prefix, log_level })
    }
}

/// The options, checked and decoded.
#[derive(Debug)]
pub(crate) struct Checked {
    pub lcores: Vec<LcoreInfo>,
    pub main_lcore: u32,
    pub allow: Vec<PciSpec>,
    pub block: Vec<PciAddress>,
    pub vdevs: Vec<(String, DevArgs)>,
    pub socket_mem: SocketMem,
    pub file_prefix: String,
    pub log_level: LevelFilter,
}

fn lcore_ids(lcores: &[LcoreInfo]) -> String {
    lcores::format_cpus(&lcores.iter().map(|l| l.id as usize).collect::<BTreeSet<_>>())
}

fn parse_addr(option: &str, text: &str) -> Result<PciAddress, EalError> {
    text.parse::<PciAddress>().map_err(|e| EalError::usage(format!("{option} {text}: {e}")))
}

/// `--log-level`: a name, DPDK's number (1 emergency .. 8 debug), or DPDK's `TYPE:LEVEL` /
/// `TYPE,LEVEL` (burst has no log types: the level applies to everything).
pub(crate) fn parse_log_level(text: &str) -> Result<LevelFilter, EalError> {
    let level = text.rsplit([':', ',']).next().unwrap_or(text).trim().to_ascii_lowercase();
    Ok(match level.as_str() {
        "1" | "2" | "3" | "4" | "emerg" | "alert" | "crit" | "critical" | "err" | "error" => LevelFilter::ERROR,
        "5" | "warn" | "warning" => LevelFilter::WARN,
        "6" | "7" | "notice" | "info" => LevelFilter::INFO,
        "8" | "debug" => LevelFilter::DEBUG,
        "trace" => LevelFilter::TRACE,
        "off" | "0" => LevelFilter::OFF,
        _ => {
            return Err(EalError::usage(format!(
                "--log-level {text}: unknown level {level:?}: use error, warning, info, debug, trace or DPDK's 1-8"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_take_names_numbers_and_dpdk_types() {
        assert_eq!(parse_log_level("debug").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_log_level("8").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_log_level("lib.eal:debug").unwrap(), LevelFilter::DEBUG);
        assert_eq!(parse_log_level("pmd.net.*,5").unwrap(), LevelFilter::WARN);
        assert_eq!(parse_log_level("NOTICE").unwrap(), LevelFilter::INFO);
        assert_eq!(parse_log_level("3").unwrap(), LevelFilter::ERROR);
        let err = parse_log_level("loud").unwrap_err();
        assert!(err.to_string().contains("use error, warning, info, debug, trace"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
