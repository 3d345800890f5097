//! The EAL command line: DPDK's `rte_eal_init` argument handling with clap. EAL options come
//! first, up to `--`; what follows belongs to the application. Errors are one line with a hint,
//! never clap's multi-line usage dump.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::error::EalError;
use crate::options::EalOptions;

/// Splits `args` at the first `--` and parses the EAL part. Returns the options (not yet checked)
/// and the application's arguments, `[args[0], after "--"...]`.
pub(crate) fn parse(args: Vec<String>) -> Result<(EalOptions, Vec<String>), EalError> {
    let mut args = args.into_iter();
    let program = args.next().unwrap_or_else(|| "burst".to_string());
    let rest: Vec<String> = args.collect();
    let (eal, app) = match rest.iter().position(|a| a == "--") {
        Some(i) => (rest[..i].to_vec(), rest[i + 1..].to_vec()),
        None => (rest, Vec::new()),
    };
    let matches = command(&program)
        .try_get_matches_from(std::iter::once(program.clone()).chain(eal))
        .map_err(|e| EalError::usage(one_line(&e)))?;
    if matches.get_flag("help") {
        return Err(EalError::Help(usage(&program)));
    }
    let mut app_args = vec![program];
    app_args.extend(app);
    Ok((options_from(&matches)?, app_args))
}

/// The usage text for `-h`.
pub(crate) fn usage(program: &str) -> String {
    command(program).render_help().to_string().trim_end().to_string()
}

fn command(program: &str) -> Command {
    let value = |name: &'static str, long: &'static str, meta: &'static str, help: &'static str| {
        Arg::new(name).long(long).value_name(meta).action(ArgAction::Set).help(help)
    };
    let flag = |name: &'static str, help: &'static str| Arg::new(name).long(name).action(ArgAction::SetTrue).help(help);
    Command::new("eal")
        .bin_name(program.to_string())
        .override_usage(format!("{program} [EAL options] -- [application options]"))
        .before_help("EAL options (DPDK's names) come first; the application's own options follow `--`.")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(
            value(
                "lcores",
                "lcores",
                "LIST",
                "lcores to use: 0-3,5 (lcore N on CPU N) or 0@2,1@3 (lcore@CPU); default: every CPU",
            )
            .short('l'),
        )
        .arg(
            value("coremask", "coremask", "MASK", "lcores as a hex CPU mask (0x3 = lcores 0 and 1); -l is preferred")
                .short('c'),
        )
        .arg(value("main-lcore", "main-lcore", "ID", "the lcore the main thread runs as; default: the first"))
        .arg(
            value("allow", "allow", "ADDR[,k=v...]", "probe only this PCI device (repeatable)")
                .short('a')
                .action(ArgAction::Append),
        )
        .arg(
            value("block", "block", "ADDR", "never probe this PCI device (repeatable)")
                .short('b')
                .action(ArgAction::Append),
        )
        .arg(
            value("vdev", "vdev", "NAME[,k=v...]", "a virtual device, e.g. net_null0 or net_ring0,pair=a (repeatable)")
                .action(ArgAction::Append),
        )
        .arg(value(
            "iova-mode",
            "iova-mode",
            "pa|va",
            "IO addresses as physical or virtual addresses; default: voted from the devices' bindings",
        ))
        .arg(value("memory", "memory", "MB", "memory to reserve at start, in all").short('m'))
        .arg(value("socket-mem", "socket-mem", "MB,MB,...", "memory to reserve at start, per NUMA socket"))
        .arg(value("huge-dir", "huge-dir", "DIR", "the hugetlbfs mount for hugepage files"))
        .arg(value("file-prefix", "file-prefix", "NAME", "prefix of hugepage file names (default burst)"))
        .arg(flag("no-huge", "4 KiB pages instead of hugepages (IOVA as VA only)"))
        .arg(flag("single-file-segments", "one hugepage file per segment list, not one per page"))
        .arg(flag("in-memory", "hugepages without files in hugetlbfs (anonymous mappings)"))
        .arg(flag("huge-unlink", "the same as --in-memory: no hugepage file is left behind"))
        .arg(flag("no-telemetry", "accepted for DPDK compatibility (burst has no telemetry socket)"))
        .arg(value(
            "proc-type",
            "proc-type",
            "primary|auto",
            "accepted for DPDK compatibility: burst runs as a primary",
        ))
        .arg(flag("no-pci", "no PCI scan: virtual devices only"))
        .arg(
            value("log-level", "log-level", "LEVEL", "error, warning, info, debug, trace, or DPDK's 1-8 / TYPE:LEVEL")
                .action(ArgAction::Append),
        )
        .arg(value("sysfs-root", "sysfs-root", "DIR", "read sys/ and proc/ under DIR (tests)").hide(true))
        .arg(value("channels", "channels", "N", "memory channels: accepted for DPDK compatibility, ignored").short('n'))
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::SetTrue).help("print this help"))
}

fn options_from(m: &ArgMatches) -> Result<EalOptions, EalError> {
    let one = |id: &str| m.get_one::<String>(id).cloned();
    let many = |id: &str| m.get_many::<String>(id).map(|v| v.cloned().collect()).unwrap_or_default();
    let lcores = match (one("lcores"), one("coremask")) {
        (Some(_), Some(_)) => return Err(EalError::usage("-l and -c both give the lcores: use one of them")),
        (Some(l), None) => Some(l),
        (None, Some(mask)) => Some(coremask_to_list(&mask)?),
        (None, None) => None,
    };
    let main_lcore = match one("main-lcore") {
        None => None,
        Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
            EalError::usage(format!(
                "--main-lcore {v:?}: not an lcore id; give a number from the -l list, e.g. --main-lcore 0"
            ))
        })?),
    };
    let iova_mode = match one("iova-mode") {
        None => None,
        Some(v) => Some(v.parse().map_err(|e| EalError::usage(format!("--iova-mode: {e}")))?),
    };
    if let Some(n) = one("channels") {
        if n.trim().parse::<u32>().is_err() {
            return Err(EalError::usage(format!("-n {n:?}: memory channels are a number (and ignored): e.g. -n 4")));
        }
    }
    if let Some(t) = one("proc-type") {
        match t.as_str() {
            "primary" | "auto" => {}
            "secondary" => {
                return Err(EalError::usage(
                    "--proc-type secondary: burst has no secondary processes; run one process per set of ports",
                ))
            }
            other => return Err(EalError::usage(format!("--proc-type {other:?}: write primary or auto"))),
        }
    }
    let levels: Vec<String> = many("log-level");
    Ok(EalOptions {
        lcores,
        main_lcore,
        allow: many("allow"),
        block: many("block"),
        vdevs: many("vdev"),
        iova_mode,
        memory_mb: one("memory"),
        socket_mem: one("socket-mem"),
        huge_dir: one("huge-dir").map(Into::into),
        file_prefix: one("file-prefix"),
        no_huge: m.get_flag("no-huge"),
        single_file_segments: m.get_flag("single-file-segments"),
        in_memory: m.get_flag("in-memory") || m.get_flag("huge-unlink"),
        no_pci: m.get_flag("no-pci"),
        log_level: levels.last().cloned(),
        sysfs_root: one("sysfs-root").map(Into::into),
        handle_signals: true,
    })
}

/// DPDK's `-c`: a hex mask of CPUs, lcore N on CPU N.
fn coremask_to_list(mask: &str) -> Result<String, EalError> {
    let digits = mask.trim().trim_start_matches("0x").trim_start_matches("0X");
    let bad = || EalError::usage(format!("-c {mask:?}: not a hex CPU mask; write e.g. -c 0x3 (or -l 0-1)"));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut ids = Vec::new();
    for (pos, c) in digits.bytes().rev().enumerate() {
        let nibble = (c as char).to_digit(16).ok_or_else(bad)?;
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                ids.push((pos * 4 + bit).to_string());
            }
        }
    }
    if ids.is_empty() {
        return Err(EalError::usage(format!("-c {mask}: the mask has no CPU in it; write e.g. -c 0x3")));
    }
    Ok(ids.join(","))
}

/// clap's error as one line with a hint.
fn one_line(e: &clap::Error) -> String {
    let ctx = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    // "--iova-mode <pa|va>" -> "--iova-mode"; "-l <LIST>" -> "-l".
    let arg = ctx(ContextKind::InvalidArg).map(|a| a.split([' ', '=']).next().unwrap_or("").to_string());
    match (e.kind(), arg) {
        (ErrorKind::UnknownArgument, Some(a)) if a.starts_with('-') => format!("unknown EAL option {a}: see --help"),
        (ErrorKind::UnknownArgument, Some(a)) => {
            format!("unexpected argument {a:?} among the EAL options: application options go after `--` (see --help)")
        }
        (ErrorKind::InvalidValue, Some(a)) if ctx(ContextKind::InvalidValue).is_none_or(|v| v.is_empty()) => {
            format!("EAL option {a} needs a value: see --help")
        }
        (ErrorKind::NoEquals | ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(a)) => {
            let value = ctx(ContextKind::InvalidValue).unwrap_or_default();
            format!("bad value {value:?} for EAL option {a}: see --help")
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad EAL options").trim_start_matches("error: ").to_string();
            format!("{first}: see --help")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn coremasks_become_lists() {
        assert_eq!(coremask_to_list("0x3").unwrap(), "0,1");
        assert_eq!(coremask_to_list("A").unwrap(), "1,3");
        assert_eq!(coremask_to_list("0x10").unwrap(), "4");
        assert!(coremask_to_list("0x0").unwrap_err().to_string().contains("no CPU"));
        assert!(coremask_to_list("zz").unwrap_err().to_string().contains("-c 0x3"));
    }

    #[test]
    fn without_dashdash_everything_is_eal() {
        let (opts, app) = parse(args(&["prog", "--no-pci"])).unwrap();
        assert!(opts.no_pci);
        assert_eq!(app, ["prog"]);
        let (_, app) = parse(Vec::new()).unwrap();
        assert_eq!(app, ["burst"]);
    }

    #[test]
    fn help_is_its_own_outcome() {
        let err = parse(args(&["prog", "-h"])).unwrap_err();
        assert!(err.is_help());
        let text = err.to_string();
        assert!(text.contains("prog [EAL options] -- [application options]"), "{text}");
        assert!(text.contains("--vdev") && text.contains("--iova-mode") && !text.contains("--sysfs-root"), "{text}");
    }
}
