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

/// The index of the `"` that closes the string whose opening quote is at
/// `open`, in text already validated; `None` when the text ends first.
#[inline]
fn string_end(text: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    loop {
        i += first_stop(text.get(i..)?, Stops::QUOTE_OR_BACKSLASH)?;
        if text[i] == b'"' {
            return Some(i);
        }
        // A backslash: the byte after it is escaped, whatever it is.
        i += 2;
    }
}

/// Where the value of the top-level member `key` lies in `object`, the
/// text of one JSON object already validated (a parse stage accepted it):
/// the last such member, as a parser that keeps the last duplicate reads
/// it. Keys are compared as their raw bytes. Nested members and string
/// contents that look like the key are not it.
pub fn top_level_value(object: &[u8], key: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut found = None;
    let mut depth = 0usize;
    let mut expect_key = false;
    // The start of the wanted member's value, until its end is seen.
    let mut value_start = None;
    let mut i = 0;
    while i < object.len() {
        match object[i] {
            b'"' => {
                let end = string_end(object, i)?;
                if depth == 1 && expect_key {
                    expect_key = false;
                    let colon = skip_ws(object, end + 1);
                    if &object[i + 1..end] == key {
                        value_start = Some(skip_ws(object, colon + 1));
                    }
                    i = colon + 1;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b',' | b'}' | b']' if depth == 1 => {
                if let Some(start) = value_start.take() {
                    let mut end = i;
                    while end > start && matches!(object[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
                        end -= 1;
                    }
                    found = Some(start..end);
                }
                if object[i] == b',' {
                    expect_key = true;
                } else {
                    depth -= 1;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_top_level_value_and_nothing_that_only_looks_like_it() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"sample_rate":4}"#, Some("4")),
            (r#"{"a":1,"sample_rate":2.5,"b":"x"}"#, Some("2.5")),
            (r#" { "a" : 1 , "sample_rate" : 20 } "#, Some("20")),
            (r#"{"sample_rate":"7","b":[1,{"sample_rate":9}]}"#, Some(r#""7""#)),
            (r#"{"a":{"sample_rate":9}}"#, None),
            (r#"{"a":[{"sample_rate":9}],"c":{"d":{"sample_rate":1}}}"#, None),
            (r#"{"msg":"\"sample_rate\":9","sample_rate":3}"#, Some("3")),
            (r#"{"msg":"ends in backslash\\","sample_rate":3}"#, Some("3")),
            (r#"{"sample_rate":1,"sample_rate":2}"#, Some("2")),
            (r#"{"sample_rate":{"x":[1,2]},"z":0}"#, Some(r#"{"x":[1,2]}"#)),
            (r#"{"sample_rates":1,"xsample_rate":2}"#, None),
            (r#"{"a":"sample_rate","b":1}"#, None),
            (r#"{}"#, None),
        ];
        for &(object, want) in cases {
            let got = top_level_value(object.as_bytes(), b"sample_rate").map(|r| &object[r]);
            assert_eq!(got, want, "{object}");
            // The reference: what a real parser reads there.
            let parsed: serde_json::Value = serde_json::from_str(object).unwrap();
            let reference = parsed.get("sample_rate").map(|v| v.to_string());
            let got_parsed = got.map(|v| serde_json::from_str::<serde_json::Value>(v).unwrap().to_string());
            assert_eq!(got_parsed, reference, "{object}");
        }
    }

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
