//! Big-endian fields at fixed offsets, read and written without a path that can panic.
//!
//! Every view checks its buffer's length once (`new_checked`); its accessors then go through
//! these functions, whose bounds test the compiler folds into that one check when it sees both
//! (the whole view is `#[inline]`). Should the test ever fail anyway (a view built with
//! `new_unchecked` over a short buffer, a length field changed after the check, or an
//! `AsRef` that returns a shorter slice on the second call), a read gives zeros and a write is
//! dropped: wrong values for a buffer that was never valid, and never a panic. Network byte
//! order is big-endian (RFC 791 appendix B, "Data Transmission Order").

use std::ops::Range;

/// The `N` bytes at `at`, or zeros past the end of `buf`.
#[inline(always)]
pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    match buf.get(at..).and_then(<[u8]>::first_chunk::<N>) {
        Some(bytes) => *bytes,
        None => [0; N],
    }
}

/// The byte at `at`, or 0 past the end of `buf`.
#[inline(always)]
pub(crate) fn u8_at(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

/// The big-endian `u16` at `at`.
#[inline(always)]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(buf, at))
}

/// The big-endian `u32` at `at`.
#[inline(always)]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(buf, at))
}

/// Writes `bytes` at `at`; nothing if they do not fit.
#[inline(always)]
pub(crate) fn put<const N: usize>(buf: &mut [u8], at: usize, bytes: [u8; N]) {
    if let Some(dst) = chunk_mut(buf, at) {
        *dst = bytes;
    }
}

/// The `N` bytes at `at` as one array, to work on in place; `None` past the end of `buf`.
#[inline(always)]
pub(crate) fn chunk_mut<const N: usize>(buf: &mut [u8], at: usize) -> Option<&mut [u8; N]> {
    buf.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<N>)
}

/// Writes the byte `v` at `at`; nothing past the end.
#[inline(always)]
pub(crate) fn put_u8(buf: &mut [u8], at: usize, v: u8) {
    if let Some(b) = buf.get_mut(at) {
        *b = v;
    }
}

/// Writes `v` big-endian at `at`.
#[inline(always)]
pub(crate) fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    put(buf, at, v.to_be_bytes());
}

/// Writes `v` big-endian at `at`.
#[inline(always)]
pub(crate) fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    put(buf, at, v.to_be_bytes());
}

/// Replaces the bits of `mask` in the byte at `at` with those of `v`.
#[inline(always)]
pub(crate) fn put_bits(buf: &mut [u8], at: usize, mask: u8, v: u8) {
    if let Some(b) = buf.get_mut(at) {
        *b = (*b & !mask) | (v & mask);
    }
}

/// `buf[range]`, or empty when the range is not inside `buf` (or is backwards).
#[inline(always)]
pub(crate) fn slice(buf: &[u8], range: Range<usize>) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

/// `buf[range]`, writable; empty when the range is not inside `buf`.
#[inline(always)]
pub(crate) fn slice_mut(buf: &mut [u8], range: Range<usize>) -> &mut [u8] {
    buf.get_mut(range).unwrap_or(&mut [])
}

/// Fails with [`crate::Error::Truncated`] unless `buf` holds `need` bytes.
#[inline(always)]
pub(crate) fn need(buf: &[u8], header: crate::Header, need: usize) -> Result<(), crate::Error> {
    if buf.len() < need {
        return Err(crate::Error::Truncated { header, need, have: buf.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_big_endian_and_zero_past_the_end() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(u16_at(&b, 0), 0x1234);
        assert_eq!(u32_at(&b, 1), 0x3456_789a);
        assert_eq!(u8_at(&b, 4), 0x9a);
        assert_eq!((u16_at(&b, 4), u32_at(&b, 2), u8_at(&b, 5)), (0, 0, 0));
        assert_eq!(u16_at(&b, usize::MAX), 0);
        assert_eq!(slice(&b, 3..9), &[] as &[u8]);
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = slice(&b, 4..2);
        assert_eq!(backwards, &[] as &[u8]);
        assert_eq!(slice(&b, 1..3), &[0x34, 0x56]);
    }

    #[test]
    fn writes_past_the_end_are_dropped_whole() {
        let mut b = [0u8; 5];
        put_u32(&mut b, 2, 0xdead_beef);
        assert_eq!(b, [0; 5], "a write that does not fit is not cut short");
        put_u16(&mut b, 3, 0xabcd);
        put_u8(&mut b, 0, 7);
        put_u8(&mut b, 5, 7);
        put_bits(&mut b, 1, 0xf0, 0x5a);
        assert_eq!(b, [7, 0x50, 0, 0xab, 0xcd]);
        put_bits(&mut b, 1, 0x0f, 0xff);
        assert_eq!(b[1], 0x5f);
        assert!(slice_mut(&mut b, 4..6).is_empty());
    }
}
