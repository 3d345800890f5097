//! A criterion [`Measurement`] that counts CPU timestamp-counter cycles, the unit DPDK's perf
//! autotests (`ring_perf_autotest`, `mempool_perf_autotest`) report in.
//!
//! On x86_64 it reads the TSC with `rdtsc`, fenced with `lfence` on both sides so that the
//! measured code cannot move across the reads. The TSC ticks at a constant reference rate
//! (invariant TSC), which equals the core clock only when the core runs at its base frequency:
//! compare numbers taken on the same machine. On other architectures it counts nanoseconds
//! instead, and says so in its unit.
//!
//! Include it from a bench with `#[path = "common/cycles.rs"] mod cycles;`.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// Counts TSC cycles per iteration; with `Throughput::Elements(n)` criterion also shows
/// cycles per element.
pub struct Cycles;

/// Reads the timestamp counter, ordered against the code around it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn read_counter() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` (SSE2) and `rdtsc` are part of the x86_64 baseline; they have no memory
    // operands and only order instructions / read the counter. (Newer compilers consider these
    // intrinsics safe, hence the `allow`.)
    #[allow(unused_unsafe)]
    unsafe {
        _mm_lfence();
        let tsc = _rdtsc();
        _mm_lfence();
        tsc
    }
}

/// Nanoseconds since the first read: there is no portable cycle counter.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn read_counter() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(target_arch = "x86_64")]
const UNIT: &str = "cycles";
#[cfg(target_arch = "x86_64")]
const PER_ELEM: &str = "cycles/elem";
#[cfg(target_arch = "x86_64")]
const PER_BYTE: &str = "cycles/byte";
#[cfg(not(target_arch = "x86_64"))]
const UNIT: &str = "ns";
#[cfg(not(target_arch = "x86_64"))]
const PER_ELEM: &str = "ns/elem";
#[cfg(not(target_arch = "x86_64"))]
const PER_BYTE: &str = "ns/byte";

impl Measurement for Cycles {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        read_counter()
    }

    fn end(&self, start: u64) -> u64 {
        read_counter().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CyclesFormatter
    }
}

/// Prints values as cycles, and throughput as cycles per element (or byte): lower is better.
pub struct CyclesFormatter;

impl ValueFormatter for CyclesFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        UNIT
    }

    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let (per, unit) = match *throughput {
            Throughput::Elements(n) => (n, PER_ELEM),
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n, PER_BYTE),
        };
        let per = per.max(1) as f64;
        for value in values {
            *value /= per;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        UNIT
    }
}
