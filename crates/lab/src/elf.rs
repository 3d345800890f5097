//! Just enough of ELF64 (little-endian) for the lab: whether an executable needs a dynamic
//! loader (guest binaries must be static), and a section's bytes by name (a kernel module's
//! `.modinfo`, to find what it depends on). Bad input is `None`, never a panic.

const PT_INTERP: u32 = 3;

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(off..off.checked_add(8)?)?.try_into().ok()?)).ok()
}

fn check_header(b: &[u8]) -> Option<()> {
    // ELF magic, ELFCLASS64, ELFDATA2LSB.
    (b.get(0..6)? == b"\x7fELF\x02\x01").then_some(())
}

/// `Some(true)` if the ELF file has a `PT_INTERP` program header (is dynamically linked),
/// `None` if it is not a 64-bit little-endian ELF file.
pub fn needs_interpreter(b: &[u8]) -> Option<bool> {
    check_header(b)?;
    let phoff = u64_at(b, 0x20)?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    for i in 0..phnum {
        let p_type = u32_at(b, phoff.checked_add(i.checked_mul(phentsize)?)?)?;
        if p_type == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// The bytes of the section called `name`.
pub fn section<'a>(b: &'a [u8], name: &str) -> Option<&'a [u8]> {
    check_header(b)?;
    let shoff = u64_at(b, 0x28)?;
    let shentsize = usize::from(u16_at(b, 0x3a)?);
    let shnum = usize::from(u16_at(b, 0x3c)?);
    let shstrndx = usize::from(u16_at(b, 0x3e)?);
    let header = |i: usize| shoff.checked_add(i.checked_mul(shentsize)?);
    let strtab = u64_at(b, header(shstrndx)?.checked_add(0x18)?)?;
    for i in 0..shnum {
        let h = header(i)?;
        let name_off = strtab.checked_add(u32_at(b, h)? as usize)?;
        let rest = b.get(name_off..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        if &rest[..end] == name.as_bytes() {
            let off = u64_at(b, h.checked_add(0x18)?)?;
            let size = u64_at(b, h.checked_add(0x20)?)?;
            return b.get(off..off.checked_add(size)?);
        }
    }
    None
}

/// The modules a kernel module depends on, from its `.modinfo` `depends=` entry.
pub fn module_depends(ko: &[u8]) -> Option<Vec<String>> {
    let info = section(ko, ".modinfo")?;
    let deps = info.split(|&c| c == 0).find_map(|kv| kv.strip_prefix(b"depends=")).unwrap_or_default();
    Some(String::from_utf8_lossy(deps).split(',').filter(|d| !d.is_empty()).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_an_elf_file() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(needs_interpreter(&me).is_some());
        assert!(section(&me, ".text").is_some_and(|t| !t.is_empty()));
        assert!(section(&me, ".no-such-section").is_none());
        // Not a module: no .modinfo.
        assert!(module_depends(&me).is_none());
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert_eq!(needs_interpreter(b""), None);
        assert_eq!(needs_interpreter(b"#!/bin/sh\n"), None);
        let mut fake = b"\x7fELF\x02\x01".to_vec();
        fake.resize(64, 0xff);
        assert_eq!(needs_interpreter(&fake), None);
        assert_eq!(section(&fake, ".text"), None);
    }
}
