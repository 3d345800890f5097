//! Which devices become ports, and probing them: PCI devices bound to a user-space driver that a
//! burst driver's ID table matches (all of them, or those `-a` names, minus those `-b` names),
//! sorted by address; then the `--vdev`s in command-line order (DPDK's `rte_bus_probe`: PCI bus
//! first, then the vdev bus). Port ids follow that order from 0.

use std::sync::Arc;

use burst_ethdev::{
    DevArgs, EthDev, PciDriver, PciId, PciProbe, PciSpec, PortId, Registry, VdevDriver, VdevProbe, VdevShared,
};
use burst_mem::Memory;
use burst_pci::sysfs::{PciDeviceInfo, SysfsError, SysfsRoot};
use burst_pci::{Container, PciAddress, PciDevice};

use crate::error::EalError;

/// A PCI device the runtime will probe, and the driver that will take it.
#[derive(Debug, Clone)]
pub struct PciChoice {
    /// What sysfs says about it.
    pub info: PciDeviceInfo,
    /// The burst driver whose ID table matched.
    pub driver: &'static PciDriver,
    /// Arguments from `-a ADDR,key=value`.
    pub args: DevArgs,
}

/// The kernel drivers burst can open a device through (`burst_pci::PciDevice::open`).
const OPENABLE: [&str; 2] = ["vfio-pci", "uio_pci_generic"];

/// The devices to probe, sorted by address. With `allow` non-empty, exactly those (each must be
/// present, bound to vfio-pci or uio_pci_generic, and matched by a driver, or it is an error that
/// says what to do); otherwise every device so bound that a driver matches, minus `block`.
pub fn select_pci(
    root: &SysfsRoot,
    registry: &Registry,
    allow: &[PciSpec],
    block: &[PciAddress],
) -> Result<Vec<PciChoice>, EalError> {
    let mut chosen = Vec::new();
    if !allow.is_empty() {
        for spec in allow {
            let addr = spec.addr;
            let info = root.device(addr).map_err(|e| match e {
                SysfsError::NoDevice { .. } => EalError::Pci(format!(
                    "-a {addr}: there is no PCI device {addr}: check the address with `devbind --status`"
                )),
                other => EalError::Sysfs(other),
            })?;
            match info.driver.as_deref() {
                Some(d) if OPENABLE.contains(&d) => {}
                Some(d) if burst_pci::sysfs::is_user_space_driver(d) => {
                    return Err(EalError::Pci(format!(
                        "-a {addr}: {addr} is bound to {d}, which burst does not drive: run `devbind -b vfio-pci {addr}` (or uio_pci_generic)"
                    )))
                }
                Some(d) => {
                    return Err(EalError::Pci(format!(
                        "-a {addr}: {addr} is bound to {d}, a kernel driver: run `devbind -b vfio-pci {addr}` (or uio_pci_generic)"
                    )))
                }
                None => {
                    return Err(EalError::Pci(format!(
                        "-a {addr}: {addr} is bound to no driver: run `devbind -b vfio-pci {addr}` (or uio_pci_generic)"
                    )))
                }
            }
            let id = PciId::new(info.vendor, info.device);
            let driver = registry.find_pci(id).ok_or_else(|| {
                EalError::Pci(format!(
                    "-a {addr}: no burst driver takes {:04x}:{:04x}: {}",
                    id.vendor,
                    id.device,
                    known_pci(registry)
                ))
            })?;
            chosen.push(PciChoice { info, driver, args: spec.args.clone() });
        }
        chosen.sort_by_key(|c| c.info.address);
        return Ok(chosen);
    }
    let devices = match root.scan() {
        Ok(d) => d,
        // No PCI bus at all (a container without /sys/bus/pci): nothing to probe.
        Err(SysfsError::NoSysfs { path }) => {
            tracing::debug!("no PCI scan: {} does not exist", path.display());
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    for info in devices {
        if block.contains(&info.address) || !info.driver.as_deref().is_some_and(|d| OPENABLE.contains(&d)) {
            continue;
        }
        let Some(driver) = registry.find_pci(PciId::new(info.vendor, info.device)) else {
            tracing::debug!("{} is bound to a user-space driver but no burst driver takes it", info.address);
            continue;
        };
        let args = DevArgs::none(&info.address.to_string());
        chosen.push(PciChoice { info, driver, args });
    }
    Ok(chosen)
}

fn known_pci(registry: &Registry) -> String {
    let drivers = registry.pci_drivers();
    if drivers.is_empty() {
        return "this build has no PCI driver (use --vdev for software ports)".to_string();
    }
    let list: Vec<String> = drivers
        .iter()
        .map(|d| {
            let ids: Vec<String> = d.ids.iter().map(|i| format!("{:04x}:{:04x}", i.vendor, i.device)).collect();
            format!("{} ({})", d.name, ids.join(" "))
        })
        .collect();
    format!("the drivers here take {}", list.join(", "))
}

/// An opened PCI device, ready to probe.
pub(crate) struct OpenedPci {
    pub choice: PciChoice,
    pub device: PciDevice,
}

/// Opens the chosen devices: one VFIO container for all of them, made first when any is on
/// vfio-pci.
pub(crate) fn open_pci(
    root: &SysfsRoot,
    chosen: Vec<PciChoice>,
) -> Result<(Vec<OpenedPci>, Option<Arc<Container>>), EalError> {
    let container = if chosen.iter().any(|c| c.info.driver.as_deref() == Some("vfio-pci")) {
        Some(Container::new()?)
    } else {
        None
    };
    let mut opened = Vec::new();
    for choice in chosen {
        let device = PciDevice::open(root.path(), choice.info.address, container.as_ref())?;
        opened.push(OpenedPci { choice, device });
    }
    Ok((opened, container))
}

/// The driver of each `--vdev`, checked before anything is set up: an unknown name is a usage
/// error listing the drivers there are.
pub(crate) fn vdev_drivers(
    registry: &Registry,
    vdevs: &[(String, DevArgs)],
) -> Result<Vec<&'static VdevDriver>, EalError> {
    vdevs
        .iter()
        .map(|(name, _)| {
            if registry.vdev_drivers().is_empty() {
                return Err(EalError::usage(format!(
                    "--vdev {name}: unknown virtual device {name:?}: this build has no virtual-device driver"
                )));
            }
            registry.find_vdev(name).map_err(|e| EalError::usage(format!("--vdev {name}: {e}")))
        })
        .collect()
}

/// Probes the opened PCI devices, then the vdevs, as ports 0, 1, ...
pub(crate) fn probe_all(
    memory: &Memory,
    pci: Vec<OpenedPci>,
    vdevs: &[(String, DevArgs)],
    vdev_drivers: &[&'static VdevDriver],
) -> Result<Vec<burst_ethdev::Port>, EalError> {
    let mut ports = Vec::new();
    let next_id = |ports: &Vec<burst_ethdev::Port>| -> Result<PortId, EalError> {
        PortId::try_from(ports.len()).map_err(|_| EalError::usage(format!("more than {} ports", PortId::MAX)))
    };
    for OpenedPci { choice, device } in pci {
        let port_id = next_id(&ports)?;
        let name = choice.info.address.to_string();
        let probe = PciProbe {
            device,
            socket: choice.info.numa_node,
            id: PciId::new(choice.info.vendor, choice.info.device),
            memory: memory.clone(),
            args: choice.args,
            port_id,
        };
        let dev: Box<dyn EthDev> =
            (choice.driver.probe)(probe).map_err(|source| EalError::Probe { device: name.clone(), source })?;
        tracing::info!("port {port_id}: {name} ({})", choice.driver.name);
        ports.push(burst_ethdev::Port::new(port_id, dev));
    }
    let mut shared = VdevShared::default();
    for ((name, args), driver) in vdevs.iter().zip(vdev_drivers) {
        let port_id = next_id(&ports)?;
        let probe = VdevProbe { name, args, memory, shared: &mut shared, port_id };
        let dev = (driver.probe)(probe).map_err(|source| EalError::Probe { device: name.clone(), source })?;
        tracing::info!("port {port_id}: {name} ({})", driver.name);
        ports.push(burst_ethdev::Port::new(port_id, dev));
    }
    let mut finished: Vec<&str> = Vec::new();
    for driver in vdev_drivers {
        if finished.contains(&driver.name) {
            continue;
        }
        finished.push(driver.name);
        if let Some(finish) = driver.finish {
            finish(&mut shared).map_err(|source| EalError::Probe { device: driver.name.to_string(), source })?;
        }
    }
    Ok(ports)
}
