//! Byte scanning for the fast paths that walk JSON text without a parser:
//! the parse stage's flat records, redaction's clean check, the output
//! escaper. The eight-bytes-at-a-time (SWAR) tricks live here once, with
//! their tests; log strings are short, and a vector search's setup costs
//! more than it saves on them. This module only finds bytes: it decides
//! nothing about validity.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Which bytes end a run, besides `"` and `\\` (which always do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stops {
    /// Control bytes (below 0x20), which JSON strings may not hold raw.
    pub control: bool,
    /// Bytes past ASCII (a caller that checks UTF-8 only when it must).
    pub past_ascii: bool,
}

impl Stops {
    /// Only `"` and `\\`: the end of a string in text already validated.
    pub const QUOTE_OR_BACKSLASH: Stops = Stops {
        control: false,
        past_ascii: false,
    };
    /// Everything a JSON string must escape.
    pub const NEEDS_ESCAPE: Stops = Stops {
        control: true,
        past_ascii: false,
    };
    /// Everything a JSON string must escape, and bytes past ASCII.
    pub const NEEDS_ESCAPE_OR_PAST_ASCII: Stops = Stops {
        control: true,
        past_ascii: true,
    };

    fn hit(self, b: u8) -> bool {
        b == b'"' || b == b'\\' || (self.control && b < 0x20) || (self.past_ascii && b >= 0x80)
    }
}

/// The high bit of each byte of `w` (eight bytes, little-endian) that
/// `stops` names. A borrow can flag a byte above a flagged one, never below:
/// the lowest flag is exact, and only the lowest may be used. Inlined with a
/// constant `stops`, the terms it does not name cost nothing.
#[inline]
pub fn stop_bytes(w: u64, stops: Stops) -> u64 {
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut hits = zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
    if stops.control {
        hits |= w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    }
    if stops.past_ascii {
        hits |= w & HIGHS;
    }
    hits
}

/// The index of the first byte of `s` that `stops` names.
#[inline]
pub fn first_stop(s: &[u8], stops: Stops) -> Option<usize> {
    let mut chunks = s.chunks_exact(8);
    for (n, chunk) in chunks.by_ref().enumerate() {
        let hits = stop_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes")), stops);
        if hits != 0 {
            return Some(n * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    let rest = chunks.remainder();
    let tail = s.len() - rest.len();
    rest.iter().position(|&b| stops.hit(b)).map(|i| tail + i)
}

/// The index of the first byte at or after `i` that is not JSON whitespace
/// (space, tab, CR, LF), or `line.len()`.
#[inline]
pub fn skip_ws(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_stop() {
        const ALL: Stops = Stops::NEEDS_ESCAPE_OR_PAST_ASCII;
        const ESC: Stops = Stops::NEEDS_ESCAPE;
        const QB: Stops = Stops::QUOTE_OR_BACKSLASH;
        let cases: &[(&[u8], Stops, Option<usize>)] = &[
            (b"", ALL, None),
            (b"abc", ALL, None),
            (b"abcdefghij\"", ALL, Some(10)),
            (b"abcdefgh\\ij\"", ALL, Some(8)),
            (b"ab\x1fcdefgh", ALL, Some(2)),
            (b"abcdefghijklm\x00", ALL, Some(13)),
            (b"ab\xc3\xa9\"", ALL, Some(2)),
            (b"ab\xc3\xa9\"", ESC, Some(4)),
            (b"\x7f\x20 ~\"", ALL, Some(4)),
            // A borrow from a flagged byte may flag the byte above it; the
            // lowest flag is the answer.
            (b"ab\x1f\x20cdefgh", ALL, Some(2)),
            (b"ab\x1f\x20cdefgh\"", QB, Some(10)),
            ("é\"日本\\".as_bytes(), ESC, Some(2)),
        ];
        for &(s, stops, want) in cases {
            assert_eq!(first_stop(s, stops), want, "{s:?} {stops:?}");
        }
    }

    #[test]
    fn every_position_and_every_byte_agree_with_a_plain_loop() {
        for n in 0..24 {
            for b in 0..=255u8 {
                let mut v = vec![b'x'; n];
                v.push(b);
                v.extend_from_slice(b"yz\"");
                for stops in [
                    Stops::QUOTE_OR_BACKSLASH,
                    Stops::NEEDS_ESCAPE,
                    Stops::NEEDS_ESCAPE_OR_PAST_ASCII,
                ] {
                    let want = v.iter().position(|&c| {
                        c == b'"' || c == b'\\' || (stops.control && c < 0x20) || (stops.past_ascii && c >= 0x80)
                    });
                    assert_eq!(first_stop(&v, stops), want, "n={n} byte={b:#x} {stops:?}");
                }
            }
        }
    }

    #[test]
    fn whitespace_is_the_four_json_bytes() {
        assert_eq!(skip_ws(b" \t\r\n{", 0), 4);
        assert_eq!(skip_ws(b"\x0c{", 0), 0);
        assert_eq!(skip_ws(b"  ", 1), 2);
        assert_eq!(skip_ws(b"", 0), 0);
    }
}
