//! Value detectors: secrets and PII inside string values and text lines.
//!
//! A clean value must cost almost nothing, so detection runs in three
//! steps: an Aho-Corasick scan (ASCII case-insensitive) for the literals every
//! secret carries (`@`, `eyJ`, `bearer`, `AKIA`, `://`, `password`, ...) plus a
//! scan for a long run of digits (cards, phones, resident numbers); then one
//! multi-pattern regex over all detectors; only a value that matches is run
//! through each detector, whose match is validated (Luhn for cards, a real
//! date for resident registration numbers) and masked.

use aho_corasick::AhoCorasick;
use regex_automata::meta::Regex;

/// A detector name, as in counters and `redacted` marks.
pub type Rule = &'static str;

struct Detector {
    name: Rule,
    regex: Regex,
    /// Validate and mask one match; `None` leaves it alone.
    mask: Masker,
}

struct Custom {
    name: String,
    regex: Regex,
    mask: Vec<u8>,
}

/// All value detectors. See the module docs.
pub struct ValueDetectors {
    literals: AhoCorasick,
    any: Regex,
    detectors: Vec<Detector>,
    custom: Vec<Custom>,
}

/// Built-in detectors: (name, regex, masker). Order matters only for ties.
/// Validates and masks one match; `None` leaves it alone.
type Masker = fn(&[u8]) -> Option<Vec<u8>>;

fn builtins() -> Vec<(Rule, &'static str, Masker)> {
    vec![
        (
            "private_key",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)-----END [A-Z ]*PRIVATE KEY-----",
            mask_private_key,
        ),
        ("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", keep4),
        ("auth_header", r"(?i:bearer|basic)[ ]+[A-Za-z0-9._~+/=-]{8,}", mask_auth),
        ("aws_access_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", keep4),
        (
            "aws_secret_key",
            r"(?i:aws_secret_access_key|aws_secret_key|aws_secret)[\x22']?\s*[=:]\s*[\x22']?[A-Za-z0-9/+=]{40}",
            mask_after_sep,
        ),
        (
            "url_credentials",
            r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@",
            mask_url,
        ),
        (
            "kv_secret",
            r"(?i:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|client[_-]?secret)[\x22']?\s*[=:]\s*[\x22']?[^\s&,;\x22']+",
            mask_kv,
        ),
        (
            "email",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            mask_email,
        ),
        ("rrn", r"\b\d{6}-?[1-8]\d{6}\b", mask_rrn),
        ("card", r"\b\d(?:[ -]?\d){12,18}\b", mask_card),
        (
            "phone",
            r"(?:\+\d{1,3}[ -]?\d{1,2}|\b0\d{1,2})[ -]?\d{3,4}[ -]?\d{4}\b",
            mask_phone,
        ),
    ]
}

/// The names of the built-in detectors (`redact.disable` accepts them).
pub fn builtin_names() -> Vec<Rule> {
    builtins().into_iter().map(|(n, _, _)| n).collect()
}

impl ValueDetectors {
    /// Compile the enabled built-ins and the custom patterns.
    pub fn new(disable: &[String], custom: &[(String, String, String)]) -> Result<ValueDetectors, String> {
        let mut detectors = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        for (name, pattern, mask) in builtins() {
            if disable.iter().any(|d| d == name) {
                continue;
            }
            let regex = Regex::new(pattern).map_err(|e| format!("{name}: {e}"))?;
            patterns.push(pattern.to_string());
            detectors.push(Detector { name, regex, mask });
        }
        let mut customs = Vec::new();
        for (name, pattern, mask) in custom {
            let regex = Regex::new(pattern).map_err(|e| format!("{name}: {e}"))?;
            patterns.push(pattern.clone());
            customs.push(Custom {
                name: name.clone(),
                regex,
                mask: mask.as_bytes().to_vec(),
            });
        }
        let any = if patterns.is_empty() {
            Regex::new(r"[^\s\S]").map_err(|e| e.to_string())?
        } else {
            Regex::new_many(&patterns).map_err(|e| e.to_string())?
        };
        // A DFA without a prefilter: the values are short, and with this
        // many case-insensitive literals no prefilter applies; asking for
        // one per value only costs its setup.
        let literals = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .prefilter(false)
            .build([
                "@",
                "eyj",
                "bearer",
                "basic",
                "akia",
                "asia",
                "aws_secret",
                "://",
                "-----begin",
                "passw",
                "pwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "api-key",
                "access_key",
                "access-key",
                "private_key",
                "private-key",
            ])
            .map_err(|e| e.to_string())?;
        Ok(ValueDetectors {
            literals,
            any,
            detectors,
            custom: customs,
        })
    }

    /// Whether `value` may hold anything (cheap; no false negatives for the
    /// built-ins; custom patterns always take the regex path).
    #[inline]
    fn suspicious(&self, value: &[u8]) -> bool {
        !self.custom.is_empty() || long_digit_run(value, 9) || self.literals.is_match(value)
    }

    /// Mask every detected secret in `value`. Returns the masked value and
    /// the rules that fired, or `None` when nothing was found.
    pub fn redact(&self, value: &[u8]) -> Option<(Vec<u8>, Vec<String>)> {
        if !self.suspicious(value) || !self.any.is_match(value) {
            return None;
        }
        // (start, end, replacement, rule)
        let mut hits: Vec<(usize, usize, Vec<u8>, String)> = Vec::new();
        for d in &self.detectors {
            for m in d.regex.find_iter(value) {
                if let Some(masked) = (d.mask)(&value[m.range()]) {
                    hits.push((m.start(), m.end(), masked, d.name.to_string()));
                }
            }
        }
        for c in &self.custom {
            for m in c.regex.find_iter(value) {
                hits.push((m.start(), m.end(), c.mask.clone(), c.name.clone()));
            }
        }
        if hits.is_empty() {
            return None;
        }
        // Earliest first, longest on ties; overlapping later hits are covered.
        hits.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = Vec::with_capacity(value.len());
        let mut rules = Vec::new();
        let mut at = 0;
        for (start, end, masked, rule) in hits {
            if start < at {
                continue;
            }
            out.extend_from_slice(&value[at..start]);
            out.extend_from_slice(&masked);
            at = end;
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
        out.extend_from_slice(&value[at..]);
        Some((out, rules))
    }
}

fn long_digit_run(v: &[u8], n: usize) -> bool {
    let mut run = 0;
    for &b in v {
        if b.is_ascii_digit() {
            run += 1;
            if run >= n {
                return true;
            }
        } else if b != b'-' && b != b' ' {
            run = 0;
        }
    }
    false
}

const STARS: &[u8] = b"****";

/// Tokens keep their first 4 characters (guide §85.2).
fn keep4(m: &[u8]) -> Option<Vec<u8>> {
    let mut out = m[..4.min(m.len())].to_vec();
    out.extend_from_slice(STARS);
    Some(out)
}

fn mask_private_key(_: &[u8]) -> Option<Vec<u8>> {
    Some(b"-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----".to_vec())
}

/// `Bearer abcd****`.
fn mask_auth(m: &[u8]) -> Option<Vec<u8>> {
    let sp = m.iter().position(|&b| b == b' ')?;
    let token = m[sp..].iter().position(|&b| b != b' ').map(|i| sp + i)?;
    let mut out = m[..token].to_vec();
    out.extend_from_slice(&keep4(&m[token..])?);
    Some(out)
}

/// `key=****` for passwords, `key=abcd****` for tokens and keys.
fn mask_kv(m: &[u8]) -> Option<Vec<u8>> {
    let sep = m.iter().position(|&b| b == b'=' || b == b':')?;
    let value_at = m[sep + 1..]
        .iter()
        .position(|&b| !b" \t\"'".contains(&b))
        .map(|i| sep + 1 + i)?;
    let key = m[..sep].to_ascii_lowercase();
    let mut out = m[..value_at].to_vec();
    let is_password = key.starts_with(b"pass") || key.starts_with(b"pwd");
    if is_password {
        out.extend_from_slice(STARS);
    } else {
        out.extend_from_slice(&keep4(&m[value_at..])?);
    }
    Some(out)
}

fn mask_after_sep(m: &[u8]) -> Option<Vec<u8>> {
    let sep = m.iter().position(|&b| b == b'=' || b == b':')?;
    let mut out = m[..=sep].to_vec();
    out.extend_from_slice(STARS);
    Some(out)
}

/// `scheme://user:****@`.
fn mask_url(m: &[u8]) -> Option<Vec<u8>> {
    let scheme_end = memchr::memmem::find(m, b"://")? + 3;
    let colon = m[scheme_end..]
        .iter()
        .position(|&b| b == b':')
        .map(|i| scheme_end + i)?;
    let mut out = m[..=colon].to_vec();
    out.extend_from_slice(STARS);
    out.push(b'@');
    Some(out)
}

/// `a***@domain.com`.
fn mask_email(m: &[u8]) -> Option<Vec<u8>> {
    let at = m.iter().position(|&b| b == b'@')?;
    let mut out = vec![m[0]];
    out.extend_from_slice(b"***");
    out.extend_from_slice(&m[at..]);
    Some(out)
}

/// A Korean resident registration number with a real birth date:
/// `900101-1******` (the gender/century digit stays).
fn mask_rrn(m: &[u8]) -> Option<Vec<u8>> {
    let digits: Vec<u8> = m.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0').collect();
    let month = digits[2] * 10 + digits[3];
    let day = digits[4] * 10 + digits[5];
    let year2 = digits[0] as u32 * 10 + digits[1] as u32;
    let century = match digits[6] {
        1 | 2 | 5 | 6 => 1900,
        3 | 4 | 7 | 8 => 2000,
        _ => return None,
    };
    let year = century + year2;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let mut out = m[..6].to_vec();
    let rest = &m[6..];
    let (dash, gender_at) = if rest.first() == Some(&b'-') {
        (true, 1)
    } else {
        (false, 0)
    };
    if dash {
        out.push(b'-');
    }
    out.push(rest[gender_at]);
    out.extend_from_slice(b"******");
    Some(out)
}

/// A card number that passes Luhn: every digit but the last 4 masked,
/// separators kept.
fn mask_card(m: &[u8]) -> Option<Vec<u8>> {
    let digits: Vec<u32> = m
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| (b - b'0') as u32)
        .collect();
    if !(13..=19).contains(&digits.len()) || !luhn(&digits) {
        return None;
    }
    let mut left = digits.len() - 4;
    Some(
        m.iter()
            .map(|&b| {
                if b.is_ascii_digit() && left > 0 {
                    left -= 1;
                    b'*'
                } else {
                    b
                }
            })
            .collect(),
    )
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `010-****-1234`: the middle group masked.
fn mask_phone(m: &[u8]) -> Option<Vec<u8>> {
    let digits = m.iter().filter(|b| b.is_ascii_digit()).count();
    if !(9..=13).contains(&digits) {
        return None;
    }
    let groups: Vec<&[u8]> = m.split(|&b| b == b'-' || b == b' ').collect();
    if groups.len() >= 3 {
        let mut out = Vec::with_capacity(m.len());
        let n = groups.len();
        let mut pos = 0;
        for (i, g) in groups.iter().enumerate() {
            if i == n - 2 {
                out.extend(std::iter::repeat_n(b'*', g.len()));
            } else {
                out.extend_from_slice(g);
            }
            pos += g.len();
            if i + 1 < n {
                out.push(m[pos]);
                pos += 1;
            }
        }
        return Some(out);
    }
    // Unseparated: keep the prefix and the last 4.
    let keep_head = if m.starts_with(b"+") { 4 } else { 3 };
    let mut out = m[..keep_head].to_vec();
    out.extend(std::iter::repeat_n(b'*', m.len() - keep_head - 4));
    out.extend_from_slice(&m[m.len() - 4..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(v: &str) -> Option<(String, Vec<String>)> {
        let d = ValueDetectors::new(&[], &[]).unwrap();
        d.redact(v.as_bytes()).map(|(o, r)| (String::from_utf8(o).unwrap(), r))
    }

    #[test]
    fn masks_follow_the_guide() {
        assert_eq!(
            red("mail minsu.kim@example.co.kr now").unwrap().0,
            "mail m***@example.co.kr now"
        );
        assert_eq!(red("call 010-1234-5678").unwrap().0, "call 010-****-5678");
        assert_eq!(
            red("card 4111 1111 1111 1111 ok").unwrap().0,
            "card **** **** **** 1111 ok"
        );
        assert_eq!(red("rrn 900101-1234567").unwrap().0, "rrn 900101-1******");
        assert_eq!(
            red("Authorization: Bearer abcdefghijklmnop").unwrap().0,
            "Authorization: Bearer abcd****"
        );
        assert_eq!(
            red("retry api_key=sk_live_123456789").unwrap().0,
            "retry api_key=sk_l****"
        );
        assert_eq!(red("login password=hunter2!").unwrap().0, "login password=****");
        assert_eq!(
            red("https://svc:S3cr3t@hooks.example.com/x").unwrap().0,
            "https://svc:****@hooks.example.com/x"
        );
        assert_eq!(red("key AKIAIOSFODNN7EXAMPLE").unwrap().0, "key AKIA****");
        let (jwt, rules) = red("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc").unwrap();
        assert!(jwt.starts_with("t=eyJh****") || jwt.starts_with("t=eyJ"), "{jwt}");
        assert!(!rules.is_empty());
    }

    #[test]
    fn validation_keeps_look_alikes() {
        assert_eq!(red("order 4111111111111112"), None, "fails Luhn");
        assert_eq!(red("id 901301-1234567"), None, "month 13 is no date");
        assert_eq!(red("trace 4bf92f3577b34da6a3ce929d0e0e4736"), None);
        assert_eq!(red("at 2026-11-25T01:02:03.123Z took 1234 ms"), None);
        assert_eq!(red("GET /v1/users/{id}/orders"), None);
    }
}
