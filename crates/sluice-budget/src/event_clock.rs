//! The event clock's timestamp parsing: RFC 3339 `ts` values into seconds,
//! fast for the common case of consecutive records in the same second.

/// 10^k, for a fraction of k digits.
const POWERS_OF_TEN: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Parses RFC 3339 timestamps, reusing the calendar arithmetic of the last
/// second seen (consecutive records share it).
pub struct TsCache {
    /// The cached stamp's first 19 bytes (`YYYY-MM-DDTHH:MM:SS`), as two
    /// overlapping words: compared inline, not through `memcmp`.
    prefix: (u64, u128),
    /// What a `…SS.mmmZ` stamp of the cached second reads as: its first
    /// eight bytes, and its last sixteen with the three digits masked out
    /// ([`MS_DIGITS`]). Unmatchable while nothing is cached.
    millis: (u64, u128),
    seconds: f64,
    valid: bool,
}

/// The three millisecond digits in the last sixteen bytes of a 24-byte stamp.
const MS_DIGITS: u128 = 0xff_ffff << 96;

/// `millis` while nothing is cached: the digits' bytes are masked to zero
/// before the compare, so a set bit there never matches.
const NO_MILLIS: (u64, u128) = (0, MS_DIGITS);

impl Default for TsCache {
    fn default() -> TsCache {
        TsCache {
            prefix: (0, 0),
            millis: NO_MILLIS,
            seconds: 0.0,
            valid: false,
        }
    }
}

/// Whether each of the three low bytes of `d` is an ASCII digit: high
/// nibble 3, and low nibble at most 9 (adding 6 leaves the high nibble).
#[inline]
fn three_digits(d: u32) -> bool {
    d & 0xf0_f0f0 == 0x30_3030 && (d + 0x06_0606) & 0xf0_f0f0 == 0x30_3030
}

impl TsCache {
    /// Seconds since the epoch, or `None` for a timestamp it cannot read.
    #[inline]
    pub fn parse(&mut self, ts: &[u8]) -> Option<f64> {
        // Inline, the common case: `…SS.mmmZ` in the cached second (the
        // general path below gives the same value for it).
        if let Ok(ts24) = <&[u8; 24]>::try_from(ts) {
            let head = u64::from_le_bytes(ts24[..8].try_into().expect("8 bytes"));
            let tail = u128::from_le_bytes(ts24[8..].try_into().expect("16 bytes"));
            let digits = (tail >> 96) as u32 & 0xff_ffff;
            if (head, tail & !MS_DIGITS) == self.millis && three_digits(digits) {
                let ms = (digits & 0xf) * 100 + (digits >> 8 & 0xf) * 10 + (digits >> 16 & 0xf);
                return Some(self.seconds + f64::from(ms) / 1e3);
            }
        }
        self.parse_general(ts)
    }

    #[inline(never)]
    fn parse_general(&mut self, ts: &[u8]) -> Option<f64> {
        if ts.len() < 19 {
            return None;
        }
        // Only a `Z` stamp may reuse the cached second: the same 19 bytes
        // with an offset are another instant.
        let prefix = (
            u64::from_le_bytes(ts[..8].try_into().expect("8 bytes")),
            u128::from_le_bytes(ts[3..19].try_into().expect("16 bytes")),
        );
        if self.valid && ts.len() >= 20 && ts.ends_with(b"Z") && prefix == self.prefix {
            // Between the cached second and the final `Z`: nothing, or
            // `.` and 1-9 digits. Anything else is left to the full parse,
            // which accepts or refuses it.
            let end = ts.len() - 1;
            if end == 19 {
                return Some(self.seconds);
            }
            let digits = end.saturating_sub(20);
            if ts[19] == b'.' && (1..=9).contains(&digits) {
                let (mut n, mut all) = (0u64, true);
                for &b in &ts[20..end] {
                    all &= b.is_ascii_digit();
                    n = n * 10 + u64::from(b.wrapping_sub(b'0'));
                }
                if all {
                    return Some(self.seconds + n as f64 / POWERS_OF_TEN[digits]);
                }
            }
        }
        let text = std::str::from_utf8(ts).ok()?;
        let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        self.seconds = t.unix_timestamp() as f64;
        // Only the second is cached; a non-UTC offset changes it, so cache
        // only plain `Z` stamps.
        self.valid = ts.ends_with(b"Z");
        self.prefix = prefix;
        self.millis = if self.valid {
            let mut stamp = [0u8; 24];
            stamp[..19].copy_from_slice(&ts[..19]);
            stamp[19] = b'.';
            stamp[23] = b'Z';
            (
                u64::from_le_bytes(stamp[..8].try_into().expect("8 bytes")),
                u128::from_le_bytes(stamp[8..].try_into().expect("16 bytes")),
            )
        } else {
            NO_MILLIS
        };
        Some(t.unix_timestamp_nanos() as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_cache() {
        let mut c = TsCache::default();
        let a = c.parse(b"2026-11-25T00:00:01.250Z").unwrap();
        let b = c.parse(b"2026-11-25T00:00:01.750Z").unwrap();
        assert!((b - a - 0.5).abs() < 1e-6);
        let n = c.parse(b"2026-11-25T00:00:01.000000001Z").unwrap();
        assert!((n - (a - 0.25)).abs() < 1e-6);
        let k = c.parse(b"2026-11-25T09:00:01+09:00").unwrap();
        assert!((k - (a - 0.25)).abs() < 1e-6);
        // Same first 19 bytes as a cached `Z` stamp, but nine hours earlier.
        let z = c.parse(b"2026-11-25T09:00:01.000Z").unwrap();
        let seoul = c.parse(b"2026-11-25T09:00:01.000+09:00").unwrap();
        assert!((z - seoul - 9.0 * 3600.0).abs() < 1e-6, "{z} {seoul}");
        assert_eq!(c.parse(b"yesterday"), None);
        // Same first 19 bytes as the cached stamp, but not a timestamp after
        // them: refused as the full parse refuses it, never half-read.
        c.parse(b"2026-11-25T00:00:01.250Z").unwrap();
        for bad in [
            &b"2026-11-25T00:00:01.5xZ"[..],
            b"2026-11-25T00:00:01.5x0Z",
            b"2026-11-25T00:00:01:250Z",
            b"2026-11-25T00:00:01.250z0",
            b"2026-11-25T00:00:01.Z",
            b"2026-11-25T00:00:01xZ",
            b"2026-11-25T00:00:01.2:0Z",
            b"2026-11-25T00:00:01./00Z",
            b"2026-11-25T00:00:01.00\x80Z",
        ] {
            assert_eq!(c.parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A millisecond stamp in the cached second is that second plus its
        // fraction, exactly as the general path computes it.
        let second = TsCache::default().parse(b"2026-11-25T00:00:01Z").unwrap();
        for (stamp, ms) in [
            (&b"2026-11-25T00:00:01.250Z"[..], 250.0),
            (b"2026-11-25T00:00:01.999Z", 999.0),
        ] {
            assert_eq!(c.parse(stamp), Some(second + ms / 1e3));
        }
        let whole = c.parse(b"2026-11-25T00:00:01Z").unwrap();
        assert!((whole - (a - 0.25)).abs() < 1e-6, "{whole} {a}");
    }

    #[test]
    fn three_digits_is_exactly_three_ascii_digits() {
        for d in 0..1u32 << 24 {
            let plain = d.to_le_bytes()[..3].iter().all(u8::is_ascii_digit);
            assert_eq!(three_digits(d), plain, "{d:06x}");
        }
    }
}
