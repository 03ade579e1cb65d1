//! The fast path for the common log record: one flat JSON object whose
//! values are strings without escapes, numbers, booleans or nulls. Such a
//! line is validated and its routing fields located in a single walk over
//! its own bytes: no scratch copy, no tape, no per-string indirect call.
//!
//! It must accept only lines simd-json accepts and locate exactly what the
//! tape walk would. Anything it does not fully understand (an escape, a
//! control byte, a nested value, an integer past 18 digits, an unusual
//! float) makes it give up and simd-json decide; the unit tests compare the
//! two paths on generated and hand-picked records.

use sluice_core::json_scan::{first_stop, skip_ws, Stops};
use sluice_core::{Event, Field, FieldValue, Span};

/// Validate `line` (the bytes of `event.line`, which starts at `line_start`
/// in the batch's data) as a flat JSON object and fill the event's routing
/// fields. Returns the number of members, or `None` (the event's fields
/// left absent) when simd-json has to decide.
pub(crate) fn extract_flat(line: &[u8], line_start: usize, event: &mut Event) -> Option<u32> {
    let found = walk(line, line_start, event);
    if found.is_none() {
        event.fields = Default::default();
    }
    found
}

fn walk(line: &[u8], line_start: usize, event: &mut Event) -> Option<u32> {
    let mut high_bytes = false;
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(line, i + 1);
    let mut members = 0u32;
    if line.get(i) == Some(&b'}') {
        return finish(line, i, members, high_bytes);
    }
    loop {
        let (key_end, after) = plain_string(line, i, &mut high_bytes)?;
        let field = Field::from_key(&line[i + 1..key_end]);
        i = skip_ws(line, after);
        if line.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(line, i + 1);
        let (value, after) = match *line.get(i)? {
            b'"' => {
                let (end, after) = plain_string(line, i, &mut high_bytes)?;
                (FieldValue::Str(Span::new(line_start + i + 1, end - i - 1)), after)
            }
            b't' if line[i..].starts_with(b"true") => (FieldValue::Bool(true), i + 4),
            b'f' if line[i..].starts_with(b"false") => (FieldValue::Bool(false), i + 5),
            b'n' if line[i..].starts_with(b"null") => (FieldValue::Null, i + 4),
            b'-' | b'0'..=b'9' => number(line, i, field.is_some())?,
            _ => return None,
        };
        if let Some(field) = field {
            event.fields[field as usize] = value;
        }
        members += 1;
        i = skip_ws(line, after);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return finish(line, i, members, high_bytes),
            _ => return None,
        }
    }
}

/// The object closed at `line[close]`: only whitespace may follow, and a
/// line with bytes past ASCII must be UTF-8 (simd-json checks the whole
/// input; so does this, but only when it has to).
fn finish(line: &[u8], close: usize, members: u32, high_bytes: bool) -> Option<u32> {
    if skip_ws(line, close + 1) != line.len() {
        return None;
    }
    if high_bytes && std::str::from_utf8(line).is_err() {
        return None;
    }
    Some(members)
}

/// The string opening at `line[i] == '"'`, when it has no escape and no
/// control byte: the index of its closing quote and the index after it.
/// Sets `high_bytes` when it holds bytes past ASCII (validated at the end).
#[inline]
fn plain_string(line: &[u8], i: usize, high_bytes: &mut bool) -> Option<(usize, usize)> {
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let mut pos = i + 1;
    loop {
        let stops = if *high_bytes {
            Stops::NEEDS_ESCAPE
        } else {
            Stops::NEEDS_ESCAPE_OR_PAST_ASCII
        };
        let at = pos + first_stop(&line[pos..], stops)?;
        match line[at] {
            b'"' => return Some((at, at + 1)),
            // Past ASCII: from here on only quotes, escapes and control
            // bytes stop the scan.
            b if b >= 0x80 => {
                *high_bytes = true;
                pos = at + 1;
            }
            _ => return None,
        }
    }
}

/// The JSON number starting at `line[i]`, its value (computed only when
/// `wanted`) and the index after it. Gives up on integers past 18 digits
/// and on floats with long mantissas or exponents: simd-json's range rules
/// decide those.
#[inline]
fn number(line: &[u8], start: usize, wanted: bool) -> Option<(FieldValue, usize)> {
    let digits_from = |mut i: usize| {
        while line.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let negative = line[start] == b'-';
    let int_start = start + usize::from(negative);
    let int_end = match line.get(int_start) {
        Some(b'0') => int_start + 1,
        Some(b'1'..=b'9') => digits_from(int_start + 1),
        _ => return None,
    };
    let mut end = int_end;
    let mut is_float = false;
    let mut mantissa_digits = int_end - int_start;
    if line.get(end) == Some(&b'.') {
        let frac_end = digits_from(end + 1);
        if frac_end == end + 1 {
            return None;
        }
        mantissa_digits += frac_end - end - 1;
        end = frac_end;
        is_float = true;
    }
    if matches!(line.get(end), Some(b'e' | b'E')) {
        let exp_start = end + 1 + usize::from(matches!(line.get(end + 1), Some(b'+' | b'-')));
        let exp_end = digits_from(exp_start);
        if exp_end == exp_start || exp_end - exp_start > 2 {
            return None;
        }
        end = exp_end;
        is_float = true;
    }
    if !is_float {
        if int_end - int_start > 18 {
            return None;
        }
        if !wanted {
            return Some((FieldValue::Null, end));
        }
        let magnitude = line[int_start..int_end]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        return Some((FieldValue::Int(if negative { -magnitude } else { magnitude }), end));
    }
    if mantissa_digits > 30 {
        return None;
    }
    if !wanted {
        return Some((FieldValue::Null, end));
    }
    // ASCII digits, sign, dot and exponent only: valid UTF-8.
    let text = std::str::from_utf8(&line[start..end]).ok()?;
    let value: f64 = text.parse().ok()?;
    value.is_finite().then_some((FieldValue::Float(value), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_json_grammar() {
        let cases: &[(&str, Option<FieldValue>)] = &[
            ("0", Some(FieldValue::Int(0))),
            ("-0", Some(FieldValue::Int(0))),
            ("503", Some(FieldValue::Int(503))),
            ("-42", Some(FieldValue::Int(-42))),
            ("999999999999999999", Some(FieldValue::Int(999_999_999_999_999_999))),
            ("12.5", Some(FieldValue::Float(12.5))),
            ("-0.25e2", Some(FieldValue::Float(-25.0))),
            ("1E+2", Some(FieldValue::Float(100.0))),
            ("01", None),
            ("1.", None),
            ("-", None),
            ("1e", None),
            ("1e999", None),
            ("1000000000000000000", None),
        ];
        for (text, want) in cases {
            let line = format!("{text},");
            let got = number(line.as_bytes(), 0, true);
            match want {
                // "01" stops after the 0: the caller then finds a digit
                // where a comma must be.
                None => assert!(
                    got.is_none_or(|(_, end)| line.as_bytes()[end] != b','),
                    "{text}: {got:?}"
                ),
                Some(v) => assert_eq!(got, Some((*v, text.len())), "{text}"),
            }
        }
    }
}
