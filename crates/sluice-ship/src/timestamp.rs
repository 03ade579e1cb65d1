//! Reading an event's `ts` as the loggers people use write it, for the
//! storage encoders: RFC 3339 with any fraction and offset; the same with
//! a space for the `T`, a comma before the fraction (Python's logging), an
//! offset without its colon or no offset at all (read as UTC); Go's
//! `2026/11/25 01:02:03`; the common log format's
//! `25/Nov/2026:01:02:03 +0000`; RFC 2822; and Unix epochs in seconds,
//! milliseconds, microseconds or nanoseconds, as numbers or digit strings,
//! told apart by magnitude. What none of these reads is no time: the
//! encoder stores its own clock instead and keeps the original in `raw`.

use sluice_core::{Batch, Counter, Event, Field, FieldValue};
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// The event's `ts` as Unix nanoseconds; `None` when it has none or it
/// cannot be read.
pub fn event_nanos(batch: &Batch, event: &Event) -> Option<i128> {
    match event.field(Field::Ts) {
        FieldValue::Str(_) | FieldValue::Decoded(_) => parse(batch.str_field(event, Field::Ts)?),
        FieldValue::Int(i) => epoch_nanos(i as f64),
        FieldValue::Float(x) => epoch_nanos(x),
        _ => None,
    }
}

/// Whether the event has a `ts` at all (readable or not).
pub fn has_ts(event: &Event) -> bool {
    !matches!(event.field(Field::Ts), FieldValue::Absent | FieldValue::Null)
}

/// The event's time for a target that takes instants between `min` and
/// `max` nanoseconds: its `ts`, else `now`. A `ts` that is there but
/// unreadable or out of range counts in `invalid` (`invalid_ts_total`).
pub fn event_time(batch: &Batch, event: &Event, now: i128, (min, max): (i128, i128), invalid: &Counter) -> i128 {
    match event_nanos(batch, event) {
        Some(ns) if (min..=max).contains(&ns) => ns,
        _ => {
            if has_ts(event) {
                invalid.inc();
            }
            now
        }
    }
}

/// Every instant from the Unix epoch to the year 9999.
pub const ANY_TIME: (i128, i128) = (0, MAX_NANOS);

/// Nanoseconds per unit of an epoch of magnitude `whole`: below 10^11 it
/// counts seconds (up to the year 5138), below 10^14 milliseconds, below
/// 10^17 microseconds, else nanoseconds.
fn epoch_scale(whole: u128) -> i128 {
    match whole {
        0..100_000_000_000 => 1_000_000_000,
        100_000_000_000..100_000_000_000_000 => 1_000_000,
        100_000_000_000_000..100_000_000_000_000_000 => 1_000,
        _ => 1,
    }
}

/// The latest instant any epoch may name (the year 9999).
const MAX_NANOS: i128 = 253_402_300_799_999_999_999;

/// A numeric epoch (see [`epoch_scale`]); its fraction kept apart, so a
/// large value loses no precision to the multiplication.
fn epoch_nanos(x: f64) -> Option<i128> {
    if !(0.0..1e21).contains(&x) {
        return None;
    }
    let whole = x.trunc();
    let scale = epoch_scale(whole as u128);
    let ns = whole as i128 * scale + ((x - whole) * scale as f64).round() as i128;
    (ns <= MAX_NANOS).then_some(ns)
}

/// A digit-string epoch with an optional `.fraction`, exactly.
fn epoch_text(s: &str) -> Option<i128> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() || whole.len() > 21 {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let scale = epoch_scale(whole);
    let mut ns = (whole as i128).checked_mul(scale)?;
    let mut unit = scale;
    for d in frac.bytes().take(9) {
        unit /= 10;
        ns += i128::from(d - b'0') * unit;
    }
    (ns <= MAX_NANOS).then_some(ns)
}

/// Parse a timestamp text. See the module docs.
pub fn parse(ts: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(ts).ok()?.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().filter(|&b| b == b'.').count() <= 1 {
        return epoch_text(s);
    }
    if let Some(ns) = rfc3339_fast(s.as_bytes()) {
        return Some(ns);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) && s.len() >= 19 && s.as_bytes()[4] != b'/' {
        if let Some(ns) = iso_like(s) {
            return Some(ns);
        }
    }
    if s.len() >= 19 && s.as_bytes()[4] == b'/' {
        // Go's log package: 2026/11/25 01:02:03[.000000]
        return iso_like(&s.replacen('/', "-", 2));
    }
    let clf =
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour][offset_minute]");
    if let Ok(t) = OffsetDateTime::parse(s, &clf) {
        return Some(t.unix_timestamp_nanos());
    }
    OffsetDateTime::parse(s, &Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// The common RFC 3339 shape, `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)`,
/// read digit by digit: the encoders meet it on nearly every record, and
/// the general parser below costs a tenth of a ClickHouse sink's encoding.
/// Anything else (or any field out of range) is left to `time`'s parser,
/// which this agrees with wherever it answers (tested).
fn rfc3339_fast(b: &[u8]) -> Option<i128> {
    fn digits(b: &[u8]) -> Option<i64> {
        b.iter()
            .try_fold(0i64, |n, &d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    }
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|d| d.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        nanos = digits(&frac[..n])? * 10i64.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            (h * 3600 + m * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// `YYYY-MM-DD?hh:mm:ss[.,]frac` with a `T` or a space, and an offset
/// (`Z`, `+hh:mm`, `+hhmm`, `+hh`) or none (UTC).
fn iso_like(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    // Split off the offset: the first `Z`, `+` or a `-` after the time.
    let (local, offset) = match s[19..].find(['Z', 'z', '+', '-']) {
        Some(i) => s.split_at(19 + i),
        None => (s, ""),
    };
    let local = local.trim_end().replacen(',', ".", 1);
    let mut normal = String::with_capacity(local.len() + 1);
    normal.push_str(&local[..10]);
    normal.push('T');
    normal.push_str(&local[11..]);
    let with_frac = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    let without = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(&normal, &with_frac)
        .or_else(|_| PrimitiveDateTime::parse(&normal, &without))
        .ok()?;
    let offset = match offset {
        "" | "Z" | "z" => UtcOffset::UTC,
        o => {
            let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(char::is_ascii_digit).collect();
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i8>().ok()?, 0),
                4 => (digits[..2].parse::<i8>().ok()?, digits[2..].parse::<i8>().ok()?),
                _ => return None,
            };
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    Some(t.assume_offset(offset).unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i128 = 1_795_568_523_000_000_000; // 2026-11-25T01:02:03Z

    #[test]
    fn the_loggers_formats_read_as_the_same_instant() {
        let same = [
            "2026-11-25T01:02:03Z",
            "2026-11-25T01:02:03.000Z",
            "2026-11-25T10:02:03+09:00",
            "2026-11-24T20:02:03-05:00",
            "2026-11-25T10:02:03+0900",
            "2026-11-25T10:02:03+09",
            "2026-11-25 01:02:03",
            "2026-11-25 01:02:03Z",
            "2026-11-25T01:02:03",
            "2026-11-25 01:02:03,000",
            "2026-11-25 10:02:03.000 +09:00",
            "2026/11/25 01:02:03",
            "25/Nov/2026:01:02:03 +0000",
            "Wed, 25 Nov 2026 01:02:03 +0000",
            "1795568523",
            "1795568523000",
            "1795568523000000",
            "1795568523000000000",
            "1795568523.0",
        ];
        for s in same {
            assert_eq!(parse(s.as_bytes()), Some(T), "{s}");
        }
    }

    #[test]
    fn fractions_are_kept_to_the_nanosecond() {
        assert_eq!(parse(b"2026-11-25T01:02:03.123456789Z"), Some(T + 123_456_789));
        assert_eq!(parse(b"2026-11-25 01:02:03,5"), Some(T + 500_000_000));
        assert_eq!(parse(b"1795568523.25"), Some(T + 250_000_000));
        assert_eq!(parse(b"1795568523123"), Some(T + 123_000_000));
        assert_eq!(epoch_nanos(1_795_568_523_123.0), Some(T + 123_000_000));
        // The fast path answers the common shape itself.
        assert_eq!(rfc3339_fast(b"2026-11-25T10:02:03.123456+09:00"), Some(T + 123_456_000));
        assert_eq!(rfc3339_fast(b"2026-11-25T01:02:03Z"), Some(T));
        assert_eq!(rfc3339_fast(b"2026-02-29T01:02:03Z"), None, "not a leap year");
    }

    #[test]
    fn what_is_not_a_time_is_none() {
        for s in [
            "",
            "yesterday",
            "2026-13-45T01:02:03Z",
            "2026-11-25Tnope",
            "2026-11-25",
            "1.2.3",
            "-5",
            "99999999999999999999999",
        ] {
            assert_eq!(parse(s.as_bytes()), None, "{s}");
        }
    }

    proptest::proptest! {
        /// The fast path reads every RFC 3339 instant `time` writes as
        /// `time` does, and answers nothing `time` would refuse.
        #[test]
        fn the_fast_path_agrees_with_time(
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            digits in 0usize..=9,
            offset_min in -1439i32..=1439,
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(UtcOffset::from_whole_seconds(offset_min * 60).unwrap());
            let mut text = t.format(&Rfc3339).unwrap();
            if let Some(dot) = text.find('.') {
                // Vary the fraction's length, as loggers do.
                let end = dot + 1 + text[dot + 1..].chars().take_while(char::is_ascii_digit).count();
                let keep = if digits == 0 { dot } else { (dot + 1 + digits).min(end) };
                text.replace_range(keep..end, "");
            }
            let expected = OffsetDateTime::parse(&text, &Rfc3339).unwrap().unix_timestamp_nanos();
            if let Some(fast) = rfc3339_fast(text.as_bytes()) {
                proptest::prop_assert_eq!(fast, expected, "{}", text);
            }
            proptest::prop_assert_eq!(parse(text.as_bytes()), Some(expected));
        }

        /// Bytes `time` refuses, the fast path refuses too.
        #[test]
        fn the_fast_path_refuses_what_time_refuses(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})") {
            let by_time = OffsetDateTime::parse(&text, &Rfc3339).ok().map(|t| t.unix_timestamp_nanos());
            if let Some(fast) = rfc3339_fast(text.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), by_time, "{}", text);
            }
        }
    }
}
