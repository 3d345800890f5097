//! The driver conformance suite as part of `cargo test --workspace`: `cargo xtask conformance`
//! with its defaults (every e1000 model QEMU has, and virtio-net legacy and modern, each on
//! vfio-pci and on uio_pci_generic) must pass every case. Boots ten labs, three at a time (two
//! to three minutes under TCG); `cargo xtask setup` must have run (the README's test command
//! does).

use std::process::Command;

#[test]
fn every_default_model_passes_the_conformance_suite_on_both_bindings() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).arg("conformance").output().expect("xtask runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "conformance failed ({}):\n{stdout}\n{stderr}", out.status);
    // The table has a row per case, NIC and binding, and none failed.
    for nic in ["e1000", "e1000-82545em", "e1000-82544gc", "virtio-legacy", "virtio-modern"] {
        for binding in ["vfio", "uio"] {
            for case in ["probe", "rx", "tx", "l2fwd", "leaks"] {
                let row = stdout
                    .lines()
                    .find(|l| l.split_whitespace().take(3).eq([case, nic, binding]))
                    .unwrap_or_else(|| panic!("no row for {case} {nic} {binding} in:\n{stdout}"));
                assert_eq!(row.split_whitespace().nth(3), Some("pass"), "{row}");
            }
        }
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
