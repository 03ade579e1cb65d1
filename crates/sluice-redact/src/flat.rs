//! The fast path for the common record: a flat JSON object (top-level
//! strings without escapes, numbers, booleans, nulls) whose keys are all
//! allowed and none secret, and whose values hold nothing a detector wants.
//! Such a record is proven clean by walking its bytes once, without
//! simd-json: the parse stage already validated it, so this walk only has
//! to find where members begin and end.
//!
//! It must never decide "clean" where the full walk (`serialize`) would
//! change the record: anything it does not fully understand (an escape, a
//! nested object or array, a key that is not allowed, a value that looks
//! suspicious) sends the record to the full walk, which is the reference.

use crate::clean_values::CleanValues;
use crate::policy::AllowList;
use crate::serialize::KeyMemo;
use crate::values::ValueDetectors;
use sluice_core::json_scan::{first_stop, skip_ws, Stops};

/// Whether `line`, a JSON object the parse stage validated, is certainly
/// clean under `allow`. `false` means "take the full walk", not "dirty".
pub(crate) fn certainly_clean(
    line: &[u8],
    allow: &AllowList,
    detectors: &ValueDetectors,
    memo: &mut KeyMemo,
    clean_values: &mut CleanValues,
) -> bool {
    let mut i = skip_ws(line, 0);
    if line.get(i) != Some(&b'{') {
        return false;
    }
    i = skip_ws(line, i + 1);
    if line.get(i) == Some(&b'}') {
        return true;
    }
    for k in 0.. {
        let Some((key, after)) = plain_string(line, i) else {
            return false;
        };
        i = skip_ws(line, after);
        if line.get(i) != Some(&b':') {
            return false;
        }
        i = skip_ws(line, i + 1);
        let value = match line.get(i) {
            Some(b'"') => {
                let Some((v, after)) = plain_string(line, i) else {
                    return false;
                };
                i = after;
                Some(v)
            }
            Some(b'{' | b'[') | None => return false,
            Some(_) => {
                // A number, true, false or null: valid JSON ends it at a
                // delimiter.
                i += line[i..]
                    .iter()
                    .position(|&b| matches!(b, b',' | b'}' | b' ' | b'\t' | b'\r' | b'\n'))
                    .unwrap_or(line.len() - i);
                None
            }
        };
        let Some(class) = memo.class_bytes(k, key, allow) else {
            return false;
        };
        if class.secret || !class.allowed {
            return false;
        }
        // Only the values detectors look at are scanned (a whole-line scan
        // would cover the protected ids and timestamps too: 5x the bytes).
        if let (Some(v), false) = (value, class.protected) {
            if !clean_values.is_clean(v, detectors) {
                return false;
            }
        }
        i = skip_ws(line, i);
        match line.get(i) {
            Some(b',') => i = skip_ws(line, i + 1),
            Some(b'}') => return skip_ws(line, i + 1) == line.len(),
            _ => return false,
        }
    }
    false
}

/// The string starting at `line[i] == '"'` when it has no escapes, and the
/// index after its closing quote.
#[inline]
fn plain_string(line: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let body = &line[i + 1..];
    let end = first_stop(body, Stops::QUOTE_OR_BACKSLASH)?;
    (body[end] == b'"').then(|| (&body[..end], i + 1 + end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::default_allow;

    fn clean(line: &str) -> bool {
        let allow = AllowList::new(default_allow().chain(["headers.user-agent"]));
        let detectors = ValueDetectors::new(&[], &[]).unwrap();
        certainly_clean(
            line.as_bytes(),
            &allow,
            &detectors,
            &mut KeyMemo::default(),
            &mut CleanValues::default(),
        )
    }

    #[test]
    fn flat_allowed_records_are_clean() {
        assert!(clean(r#"{}"#));
        assert!(clean(
            r#" { "ts" : "2026-11-25T00:00:00Z" , "status":200,"duration_ms":1.5e1,"msg":"done","event":null} "#
        ));
        assert!(clean(
            r#"{"level":"INFO","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","path":"/v1/users/12"}"#
        ));
        // A digit run in a protected field does not matter.
        assert!(clean(r#"{"trace_id":"12345678901234567890","msg":"ok"}"#));
        // A detector literal in a protected field is not looked at.
        assert!(clean(r#"{"user_id":"kim@example.com","msg":"ok"}"#));
    }

    #[test]
    fn anything_else_takes_the_full_walk() {
        for line in [
            r#"{"msg":"mail kim@example.com"}"#,
            r#"{"msg":"card 4111 1111 1111 1111"}"#,
            r#"{"msg":"call 010-1234-5678"}"#,
            r#"{"msg":"tab\there"}"#,
            r#"{"m\u0073g":"x"}"#,
            r#"{"password":"hunter2"}"#,
            r#"{"unknown":1}"#,
            r#"{"headers":{"user-agent":"curl"}}"#,
            r#"{"stacktrace":["a","b"]}"#,
            r#"[1,2]"#,
            r#"{"msg":"x"} trailing"#,
        ] {
            assert!(!clean(line), "{line}");
        }
    }
}
