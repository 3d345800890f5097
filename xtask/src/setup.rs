//! `cargo xtask setup`: what the lab needs, from Debian packages. Idempotent: a second run
//! changes nothing and says so.
//!
//! 1. QEMU 8.0 or newer (the `igb` model appeared in 8.0). Debian 12 ships 7.2, so its
//!    backports suite is added to the machine's existing Debian source entry.
//! 2. `busybox-static` (the guest's userland) and `cpio`.
//! 3. DPDK (Debian's `dpdk` and `dpdk-dev`, 22.11 on Debian 12) when `dpdk-testpmd` is missing:
//!    the host tests against DPDK's vhost-user backend (`net_vhost`) and the benches run it.
//! 4. What the kernel-interface ports (`drivers/af_xdp`, `drivers/af_packet`) and their tests
//!    need: `libbpf-dev` to link against, `libxdp1` for its default AF_XDP program
//!    (`xsk_def_xdp_prog.o`), `iproute2` for the tests' namespaces and veth pairs, and
//!    `linux-perf` for `cargo xtask bench xdp`'s profile.
//! 5. The kernel that `linux-image-amd64` depends on, fetched with `apt-get download`; its
//!    vmlinuz and the modules the guest needs are unpacked into `target/lab/kernel`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use burst_lab::paths::{lab_dir, KernelCache, BOOT_MODULES, ON_DEMAND_MODULES};
use burst_lab::{elf, qemu_binary};
use clap::Args;

/// Oldest QEMU with the `igb` NIC model.
const MIN_QEMU: (u32, u32) = (8, 0);
/// DPDK's tools (`dpdk-testpmd`, `dpdk-test`) and runtime, for the host tests and benches.
pub(crate) const DPDK_PACKAGES: [&str; 2] = ["dpdk", "dpdk-dev"];

/// Each package the kernel-interface ports need, with a file that shows it is installed.
const KERNEL_PORT_PACKAGES: [(&str, &str); 4] = [
    ("libbpf-dev", "/usr/include/bpf/libbpf.h"),
    ("libxdp1", "/usr/lib/x86_64-linux-gnu/bpf/xsk_def_xdp_prog.o"),
    ("iproute2", "/sbin/ip"),
    ("linux-perf", "/usr/bin/perf"),
];

#[derive(Args)]
pub struct SetupArgs {
    /// Fetch and unpack the guest kernel again even if one is cached.
    #[arg(long)]
    refresh_kernel: bool,
}

pub fn run(args: &SetupArgs) -> Result<(), String> {
    let codename = debian_codename()?;
    let mut done = Vec::new();

    let qemu = qemu_version();
    let qemu_ok = qemu.is_some_and(|v| v >= MIN_QEMU);
    let busybox_ok = static_busybox();
    let cpio_ok = on_path("cpio");
    let dpdk_ok = on_path("dpdk-testpmd");
    let kernel_ports: Vec<&str> =
        KERNEL_PORT_PACKAGES.iter().filter(|(_, file)| !Path::new(file).exists()).map(|(pkg, _)| *pkg).collect();
    if !(qemu_ok && busybox_ok && cpio_ok && dpdk_ok && kernel_ports.is_empty()) {
        require_root()?;
        let backports = format!("{codename}-backports");
        if !qemu_ok {
            if let Some(file) = ensure_backports(&codename)? {
                done.push(format!("added the {backports} suite to {}", file.display()));
            }
        }
        apt(&["update"])?;
        if !qemu_ok {
            apt(&["install", "-y", "--no-install-recommends", "-t", &backports, "qemu-system-x86"])?;
            match qemu_version() {
                Some(v) if v >= MIN_QEMU => done.push(format!("installed QEMU {}.{}", v.0, v.1)),
                other => {
                    return Err(format!(
                        "QEMU {}.{} or newer is needed for the igb NIC; after installing from {backports} \
                         the version is {other:?}",
                        MIN_QEMU.0, MIN_QEMU.1
                    ))
                }
            }
        }
        let mut pkgs = Vec::new();
        if !busybox_ok {
            pkgs.push("busybox-static");
        }
        if !cpio_ok {
            pkgs.push("cpio");
        }
        if !dpdk_ok {
            pkgs.extend(DPDK_PACKAGES);
        }
        pkgs.extend(&kernel_ports);
        if !pkgs.is_empty() {
            let mut a = vec!["install", "-y", "--no-install-recommends"];
            a.extend(&pkgs);
            apt(&a)?;
            done.push(format!("installed {}", pkgs.join(", ")));
            if !dpdk_ok && !on_path("dpdk-testpmd") {
                return Err(format!(
                    "installed {} but there is still no dpdk-testpmd on PATH",
                    DPDK_PACKAGES.join(" and ")
                ));
            }
        }
    }

    let kernel = match KernelCache::load() {
        Ok(k) if !args.refresh_kernel => k,
        _ => {
            let k = fetch_kernel()?;
            done.push(format!("unpacked kernel {} ({}) into {}", k.release, k.package, k.dir.display()));
            k
        }
    };

    let qemu = qemu_version().map(|v| format!("{}.{}", v.0, v.1)).unwrap_or_default();
    if done.is_empty() {
        println!(
            "setup: nothing to do: QEMU {qemu}, busybox-static, cpio, DPDK's dpdk-testpmd, libbpf-dev, libxdp1, \
             iproute2 and linux-perf are installed; kernel {} is in {}",
            kernel.release,
            kernel.dir.display()
        );
    } else {
        for d in done {
            println!("setup: {d}");
        }
        println!("setup: ready: QEMU {qemu}, kernel {}", kernel.release);
    }
    Ok(())
}

fn debian_codename() -> Result<String, String> {
    let text = fs::read_to_string("/etc/os-release").map_err(|e| format!("reading /etc/os-release: {e}"))?;
    let field =
        |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).map(|v| v.trim_matches('"').to_string());
    match (field("ID").as_deref(), field("VERSION_CODENAME")) {
        (Some("debian"), Some(c)) if !c.is_empty() => Ok(c),
        (id, _) => Err(format!(
            "setup installs Debian packages and this is not Debian (ID={}); install QEMU >= 8.0, a static \
             busybox, cpio, DPDK 22.11's dpdk-testpmd and a kernel by hand (see docs/lab.md)",
            id.unwrap_or("unknown")
        )),
    }
}

fn require_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("packages are missing and installing them needs root: run `sudo cargo xtask setup`".into());
    }
    Ok(())
}

fn qemu_version() -> Option<(u32, u32)> {
    let out = Command::new(qemu_binary().ok()?).arg("--version").output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// `QEMU emulator version 10.0.2 (Debian ...)` -> (10, 0).
fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split("version ").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn static_busybox() -> bool {
    fs::read("/bin/busybox").is_ok_and(|b| elf::needs_interpreter(&b) == Some(false))
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

fn apt(args: &[&str]) -> Result<(), String> {
    apt_as("setup", args)
}

/// Runs `apt-get ARGS` non-interactively, announcing it as `TASK: apt-get ...`.
pub(crate) fn apt_as(task: &str, args: &[&str]) -> Result<(), String> {
    println!("{task}: apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("running apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("`apt-get {}` failed ({status})", args.join(" ")));
    }
    Ok(())
}

/// Adds `CODENAME-backports` to the Debian entry of the apt sources, if no entry has it.
/// Returns the file changed, if any.
fn ensure_backports(codename: &str) -> Result<Option<PathBuf>, String> {
    let mut files: Vec<PathBuf> = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let read: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
        .filter_map(|p| fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect();
    if read.iter().any(|(_, t)| has_suite(t, &format!("{codename}-backports"))) {
        return Ok(None);
    }
    for (path, text) in &read {
        let changed = if path.extension().is_some_and(|e| e == "sources") {
            add_backports_deb822(text, codename)
        } else {
            add_backports_one_line(text, codename)
        };
        if let Some(new) = changed {
            fs::write(path, new).map_err(|e| format!("writing {}: {e}", path.display()))?;
            return Ok(Some(path.clone()));
        }
    }
    Err(format!("no Debian source entry for `{codename}` found under /etc/apt to add {codename}-backports to"))
}

fn has_suite(text: &str, suite: &str) -> bool {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).any(|l| {
        let l = l.trim();
        (l.starts_with("Suites:") || l.starts_with("deb ")) && l.split_whitespace().any(|w| w == suite)
    })
}

/// In a deb822 `.sources` file: the stanza whose `Suites:` has `codename` gets the backports
/// suite too (same URIs, components and keys).
fn add_backports_deb822(text: &str, codename: &str) -> Option<String> {
    let mut done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.starts_with("Suites:") && l.split_whitespace().skip(1).any(|w| w == codename) {
                done = true;
                format!("{} {codename}-backports", l.trim_end())
            } else {
                l.to_string()
            }
        })
        .collect();
    done.then(|| lines.join("\n") + "\n")
}

/// In a one-line `.list` file: after the `deb URI CODENAME COMPONENTS` line, the same line
/// for the backports suite.
fn add_backports_one_line(text: &str, codename: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut done = false;
    for l in text.lines() {
        out.push(l.to_string());
        let words: Vec<&str> = l.split_whitespace().collect();
        if done || words.first() != Some(&"deb") {
            continue;
        }
        // deb [options] URI SUITE COMPONENT...
        let mut i = 1;
        if words.get(1).is_some_and(|w| w.starts_with('[')) {
            while i < words.len() && !words[i].ends_with(']') {
                i += 1;
            }
            i += 1;
        }
        if words.get(i + 1) == Some(&codename) {
            let mut new = words.clone();
            let suite = format!("{codename}-backports");
            new[i + 1] = &suite;
            out.push(new.join(" "));
            done = true;
        }
    }
    done.then(|| out.join("\n") + "\n")
}

/// Downloads the kernel package `linux-image-amd64` depends on and unpacks the guest's part.
fn fetch_kernel() -> Result<KernelCache, String> {
    let package = match kernel_package() {
        Ok(p) => p,
        Err(_) => {
            // No package lists yet on this machine.
            apt(&["update"])?;
            kernel_package()?
        }
    };
    let version = package_version(&package)?;
    let work = lab_dir().join("kernel-work");
    let _ = fs::remove_dir_all(&work);
    let unpacked = work.join("unpacked");
    fs::create_dir_all(&unpacked).map_err(|e| format!("creating {}: {e}", unpacked.display()))?;

    println!("setup: downloading {package} {version}");
    let st = Command::new("apt-get")
        .current_dir(&work)
        .args(["-q", "-o", "APT::Sandbox::User=root", "download", &format!("{package}={version}")])
        .status()
        .map_err(|e| format!("running apt-get download: {e}"))?;
    if !st.success() {
        return Err(format!("`apt-get download {package}` failed ({st})"));
    }
    let deb = fs::read_dir(&work)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no .deb in {}", work.display()))?;
    let st = Command::new("sh")
        .arg("-c")
        .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\"")
        .args(["sh", &deb.to_string_lossy(), &unpacked.to_string_lossy()])
        .status()
        .map_err(|e| format!("unpacking {}: {e}", deb.display()))?;
    if !st.success() {
        return Err(format!("unpacking {} failed ({st})", deb.display()));
    }

    let staged = work.join("kernel");
    let release = stage_kernel(&unpacked, &staged)?;
    fs::write(staged.join("release"), format!("{release}\n")).map_err(|e| e.to_string())?;
    // Written last: a cache with this file is complete.
    fs::write(staged.join("package"), format!("{package} {version}\n")).map_err(|e| e.to_string())?;
    let dest = KernelCache::dir();
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&staged, &dest).map_err(|e| format!("moving the kernel into {}: {e}", dest.display()))?;
    let _ = fs::remove_dir_all(&work);
    KernelCache::load().map_err(|e| e.to_string())
}

fn kernel_package() -> Result<String, String> {
    let out = Command::new("apt-cache")
        .args(["depends", "linux-image-amd64"])
        .output()
        .map_err(|e| format!("running apt-cache: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .map(|p| p.trim().to_string())
        .ok_or_else(|| "apt-cache knows no linux-image-amd64 dependency".to_string())
}

fn package_version(package: &str) -> Result<String, String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", package])
        .output()
        .map_err(|e| format!("running apt-cache: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| format!("apt-cache has no version of {package}"))
}

/// Copies vmlinuz and the needed modules (with their dependencies) from the unpacked
/// package into `staged`, writes `modules.dep`, and returns the kernel release.
fn stage_kernel(unpacked: &Path, staged: &Path) -> Result<String, String> {
    let vmlinuz = fs::read_dir(unpacked.join("boot"))
        .map_err(|e| format!("the kernel package has no /boot: {e}"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .ok_or("the kernel package has no vmlinuz")?;
    let release = vmlinuz.file_name().unwrap_or_default().to_string_lossy()["vmlinuz-".len()..].to_string();
    let src = [unpacked.join("lib/modules").join(&release), unpacked.join("usr/lib/modules").join(&release)]
        .into_iter()
        .find(|p| p.is_dir())
        .ok_or_else(|| format!("the kernel package has no modules for {release}"))?;

    // Module name (with `_` for `-`) -> path relative to lib/modules/RELEASE.
    let mut index = BTreeMap::new();
    index_modules(&src, &src, &mut index)?;
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut todo: Vec<String> = BOOT_MODULES.iter().chain(ON_DEMAND_MODULES).map(|m| norm(m)).collect();
    while let Some(m) = todo.pop() {
        if deps.contains_key(&m) {
            continue;
        }
        let rel: &PathBuf = index.get(&m).ok_or_else(|| {
            format!("module {m} is not in the kernel package (built in, or a different kernel config?)")
        })?;
        let bytes = fs::read(src.join(rel)).map_err(|e| format!("reading {}: {e}", rel.display()))?;
        let d: Vec<String> = elf::module_depends(&bytes)
            .ok_or_else(|| format!("{} is not a kernel module", rel.display()))?
            .iter()
            .map(|d| norm(d))
            .collect();
        todo.extend(d.iter().cloned());
        deps.insert(m, d);
    }

    let dst = staged.join("lib/modules").join(&release);
    let mut dep_file = String::new();
    for m in deps.keys() {
        let rel = &index[m];
        let to = dst.join(rel);
        fs::create_dir_all(to.parent().expect("module path has a parent")).map_err(|e| e.to_string())?;
        fs::copy(src.join(rel), &to).map_err(|e| format!("copying {}: {e}", rel.display()))?;
        // modules.dep lists a module's whole dependency closure, dependents before their
        // dependencies: modprobe loads from the end of the line.
        let mut order = Vec::new();
        load_order(m, &deps, &mut order, &mut BTreeSet::new());
        order.pop(); // the module itself
        let line: Vec<String> = order.iter().rev().map(|d| index[d].display().to_string()).collect();
        dep_file.push_str(&format!("{}: {}\n", rel.display(), line.join(" ")));
    }
    fs::write(dst.join("modules.dep"), dep_file).map_err(|e| e.to_string())?;
    for extra in ["modules.builtin", "modules.order"] {
        if src.join(extra).is_file() {
            fs::copy(src.join(extra), dst.join(extra)).map_err(|e| e.to_string())?;
        }
    }
    fs::copy(&vmlinuz, staged.join("vmlinuz")).map_err(|e| format!("copying vmlinuz: {e}"))?;
    Ok(release)
}

fn norm(name: &str) -> String {
    name.replace('-', "_")
}

fn index_modules(root: &Path, dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<(), String> {
    for e in fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.flatten() {
        let p = e.path();
        if p.is_dir() {
            index_modules(root, &p, index)?;
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
            index.insert(norm(name), p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// Post-order walk: every dependency before the module that needs it.
fn load_order(m: &str, deps: &BTreeMap<String, Vec<String>>, out: &mut Vec<String>, seen: &mut BTreeSet<String>) {
    if !seen.insert(m.to_string()) {
        return;
    }
    for d in deps.get(m).into_iter().flatten() {
        load_order(d, deps, out, seen);
    }
    out.push(m.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n\
Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\n\
URIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n";

    #[test]
    fn deb822_entry_gains_the_backports_suite_once() {
        let new = add_backports_deb822(DEB822, "bookworm").unwrap();
        assert!(new.contains("Suites: bookworm bookworm-updates bookworm-backports\n"), "{new}");
        assert!(new.contains("Suites: bookworm-security\n"));
        assert!(has_suite(&new, "bookworm-backports"));
        assert!(!has_suite(DEB822, "bookworm-backports"));
        assert_eq!(add_backports_deb822(DEB822, "trixie"), None);
    }

    #[test]
    fn one_line_entry_gains_a_backports_line_with_the_same_mirror() {
        let text = "# comment\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main contrib\n\
deb http://mirror.invalid/debian-security bookworm-security main\n";
        let new = add_backports_one_line(text, "bookworm").unwrap();
        assert!(
            new.contains("deb [arch=amd64] http://mirror.invalid/debian bookworm-backports main contrib\n"),
            "{new}"
        );
        assert_eq!(new.lines().count(), 4);
        assert_eq!(add_backports_one_line("deb http://m/debian bookworm-security main\n", "bookworm"), None);
    }

    #[test]
    fn qemu_versions_parse() {
        assert_eq!(parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds)\n"), Some((10, 0)));
        assert_eq!(parse_qemu_version("QEMU emulator version 7.2.15\n"), Some((7, 2)));
        assert!(parse_qemu_version("QEMU emulator version 7.2.15").unwrap() < MIN_QEMU);
        assert_eq!(parse_qemu_version("garbage"), None);
    }

    #[test]
    fn modules_dep_lists_dependents_before_dependencies() {
        let deps: BTreeMap<String, Vec<String>> = [
            ("vfio_pci", vec!["vfio_pci_core", "vfio"]),
            ("vfio_pci_core", vec!["vfio", "irqbypass"]),
            ("vfio", vec![]),
            ("irqbypass", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        let mut order = Vec::new();
        load_order("vfio_pci", &deps, &mut order, &mut BTreeSet::new());
        let pos = |m: &str| order.iter().position(|x| x == m).unwrap();
        assert!(pos("vfio") < pos("vfio_pci_core") && pos("irqbypass") < pos("vfio_pci_core"));
        assert_eq!(order.last().unwrap(), "vfio_pci");
        assert_eq!(order.len(), 4);
    }
}
