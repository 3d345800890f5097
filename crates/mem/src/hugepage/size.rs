//! Page sizes and the size strings users type (`512M`, `2G`, `2048kB`).

use std::fmt;
use std::str::FromStr;

use super::{HugepageError, SysRoot};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A page size in bytes: a power of two, at least 4 KiB.
///
/// Parses from `2M`, `2MB`, `2048kB`, `1G`, `1GB`, `1048576kB` (any case); prints as `2M`, `1G`, `4K`.
/// Parsing checks the form only; [`SysRoot::page_size`] also checks that the machine has the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageSize(u64);

impl PageSize {
    /// The base page size on x86-64 (what `--no-huge` runs on).
    pub const SIZE_4K: PageSize = PageSize(4 * KIB);
    /// The x86-64 default hugepage size.
    pub const SIZE_2M: PageSize = PageSize(2 * MIB);
    /// The x86-64 gigantic page size.
    pub const SIZE_1G: PageSize = PageSize(GIB);

    /// `bytes` as a page size, if it is a power of two of at least 4 KiB.
    pub fn from_bytes(bytes: u64) -> Option<PageSize> {
        (bytes.is_power_of_two() && bytes >= 4 * KIB).then_some(PageSize(bytes))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size in KiB, as the kernel names it in sysfs and `/proc/meminfo`.
    pub fn kib(self) -> u64 {
        self.0 / KIB
    }

    /// The sysfs directory name for this size: `hugepages-2048kB`.
    pub fn kib_dir_name(self) -> String {
        format!("hugepages-{}kB", self.kib())
    }

    /// The size named by a sysfs directory such as `hugepages-2048kB`.
    pub(crate) fn from_kib_dir_name(name: &str) -> Option<PageSize> {
        let kib = name.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse::<u64>().ok()?;
        PageSize::from_bytes(kib.checked_mul(KIB)?)
    }

    /// How many pages of this size hold `bytes` (rounded up).
    pub fn pages_for(self, bytes: u64) -> u64 {
        bytes.div_ceil(self.0)
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A power of two >= 4K is always a whole number of K, and of M or G when large enough.
        match self.0 {
            b if b % GIB == 0 => write!(f, "{}G", b / GIB),
            b if b % MIB == 0 => write!(f, "{}M", b / MIB),
            b => write!(f, "{}K", b / KIB),
        }
    }
}

impl FromStr for PageSize {
    type Err = HugepageError;

    /// Accepts a number with a unit (`2M`, `2MB`, `2MiB`, `2048kB`, `1G`, `1GB`, ...), any case.
    /// A bare number is refused: `2048` could mean bytes or kB.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = split_number_unit(s)
            .filter(|(_, unit)| *unit != 1)
            .and_then(|(n, unit)| n.checked_mul(unit))
            .and_then(PageSize::from_bytes);
        // The host's sizes are only for the message: an unreadable sysfs gives the generic hint.
        parsed.ok_or_else(|| HugepageError::unknown_page_size(s, &SysRoot::host().page_sizes().unwrap_or_default()))
    }
}

/// Parses a size in bytes: `4096`, `1024K`, `512M`, `2G` (also `KB`/`MB`/`GB`, `KiB`/`MiB`/`GiB`, any case).
pub fn parse_size(s: &str) -> Result<u64, HugepageError> {
    split_number_unit(s)
        .and_then(|(n, unit)| n.checked_mul(unit))
        .ok_or_else(|| HugepageError::BadSize { input: s.to_owned() })
}

/// Writes `bytes` in the largest unit that divides it exactly: `0`, `4096`... `8M`, `1536M`, `3G`.
/// [`parse_size`] reads it back.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0".to_owned(),
        b if b % GIB == 0 => format!("{}G", b / GIB),
        b if b % MIB == 0 => format!("{}M", b / MIB),
        b if b % KIB == 0 => format!("{}K", b / KIB),
        b => b.to_string(),
    }
}

/// Splits `512M` into `(512, 1 << 20)`. `None` for anything else.
fn split_number_unit(s: &str) -> Option<(u64, u64)> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return None;
    }
    let number = s[..digits].parse::<u64>().ok()?;
    let unit = match s[digits..].trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        _ => return None,
    };
    Some((number, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_parses_every_documented_form() {
        for s in ["2M", "2MB", "2048kB", "2048KB", "2m", "2mb", "2MiB", " 2M "] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::SIZE_2M, "{s}");
        }
        for s in ["1G", "1GB", "1g", "1048576kB", "1024M"] {
            assert_eq!(s.parse::<PageSize>().unwrap(), PageSize::SIZE_1G, "{s}");
        }
        assert_eq!("4K".parse::<PageSize>().unwrap(), PageSize::SIZE_4K);
    }

    #[test]
    fn page_size_refuses_bad_forms() {
        for s in ["", "M", "3M", "2048", "2X", "2 M B", "-2M", "1K", "99999999999999999999G", "2M2"] {
            let err = s.parse::<PageSize>().unwrap_err();
            assert!(matches!(err, HugepageError::UnknownPageSize { ref asked, .. } if asked == s), "{s}: {err}");
            assert!(err.to_string().contains(&format!("`{s}`")), "{err}");
        }
    }

    #[test]
    fn page_size_display_and_dir_name() {
        assert_eq!(PageSize::SIZE_2M.to_string(), "2M");
        assert_eq!(PageSize::SIZE_1G.to_string(), "1G");
        assert_eq!(PageSize::SIZE_4K.to_string(), "4K");
        assert_eq!(PageSize::from_bytes(64 * KIB).unwrap().to_string(), "64K");
        assert_eq!(PageSize::from_bytes(16 * GIB).unwrap().to_string(), "16G");
        assert_eq!(PageSize::SIZE_2M.kib_dir_name(), "hugepages-2048kB");
        assert_eq!(PageSize::SIZE_1G.kib_dir_name(), "hugepages-1048576kB");
        assert_eq!(PageSize::from_kib_dir_name("hugepages-2048kB"), Some(PageSize::SIZE_2M));
        for bad in ["hugepages-2048", "hugepages-kB", "hugepages-3000kB", "foo", "hugepages-99999999999999999999kB"] {
            assert_eq!(PageSize::from_kib_dir_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn pages_for_rounds_up() {
        assert_eq!(PageSize::SIZE_2M.pages_for(0), 0);
        assert_eq!(PageSize::SIZE_2M.pages_for(1), 1);
        assert_eq!(PageSize::SIZE_2M.pages_for(512 * MIB), 256);
        assert_eq!(PageSize::SIZE_2M.pages_for(512 * MIB + 1), 257);
        assert_eq!(PageSize::SIZE_1G.pages_for(u64::MAX), 1 << 34);
    }

    #[test]
    fn parse_size_accepts_documented_forms() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1024K").unwrap(), 1024 * KIB);
        assert_eq!(parse_size("512M").unwrap(), 512 * MIB);
        assert_eq!(parse_size("512m").unwrap(), 512 * MIB);
        assert_eq!(parse_size("2G").unwrap(), 2 * GIB);
        assert_eq!(parse_size("2GB").unwrap(), 2 * GIB);
        assert_eq!(parse_size("2GiB").unwrap(), 2 * GIB);
        assert_eq!(parse_size("0").unwrap(), 0);
    }

    #[test]
    fn format_size_picks_the_largest_exact_unit() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(8 * MIB), "8M");
        assert_eq!(format_size(1536 * MIB), "1536M");
        assert_eq!(format_size(3 * GIB), "3G");
    }

    proptest::proptest! {
        #[test]
        fn format_size_round_trips(bytes: u64) {
            proptest::prop_assert_eq!(parse_size(&format_size(bytes)).unwrap(), bytes);
        }

        #[test]
        fn parse_size_never_panics(s in "\\PC{0,12}") {
            let _ = parse_size(&s);
            let _ = s.parse::<PageSize>();
        }
    }

    #[test]
    fn parse_size_refuses_bad_strings_and_says_what_works() {
        for s in ["", "abc", "M", "12X", "1.5G", "-1G", "1 G B", "18446744073709551616", "17179869184G"] {
            let err = parse_size(s).unwrap_err();
            assert!(matches!(err, HugepageError::BadSize { ref input } if input == s), "{s}: {err}");
            let msg = err.to_string();
            assert!(msg.contains("512M") && msg.contains("2G"), "{msg}");
        }
    }
}
