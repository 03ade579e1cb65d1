//! Value detectors: secrets and PII inside string values and text lines.
//!
//! A clean value must cost almost nothing, so detection runs in three
//! steps: an Aho-Corasick scan (ASCII case-insensitive) for the literals every
//! secret carries (`@`, `eyJ`, `bearer`, `AKIA`, `://`, `password`, ...) plus a
//! scan for a long run of digits (cards, phones, resident numbers); then one
//! multi-pattern regex over all detectors; only a value that matches is run
//! through each detector, whose match is validated (`validate`: a card
//! network's prefix and length and Luhn for cards, a real date for resident
//! registration numbers, a number standing alone, ...) and masked.

mod validate;

use std::ops::Range;

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

/// Validates and masks one match, given the whole value (the context
/// decides too) and the match's range; `None` leaves it alone.
type Masker = fn(&[u8], Range<usize>) -> Option<Vec<u8>>;

/// A secret key name in `key=value` text: the names of
/// `sluice_config::secret_names` that are written as words, with `_` or
/// `-` (or `%5F`, URL-encoded) inside.
const KV_NAMES: &str = r"(?i:password|passwd|passphrase|pwd|secret|token|api(?:[_-]|%5[fF])?key|access(?:[_-]|%5[fF])?key|private(?:[_-]|%5[fF])?key|client(?:[_-]|%5[fF])?secret)";

/// Built-in detectors: (name, regex, masker). Order matters only for ties.
fn builtins() -> Vec<(Rule, String, Masker)> {
    let kv = format!(r"{KV_NAMES}[\x22']?\s*(?:[=:]|%3[dDaA])\s*[\x22']?[^\s&,;\x22']+");
    [
        // To its END line, or to the end of the value when the key goes on
        // in the next lines (see `pem`).
        (
            "private_key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            mask_private_key as Masker,
        ),
        ("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", keep4),
        ("auth_header", r"(?i:bearer|basic)[ ]+[A-Za-z0-9._~+/=-]{8,}", mask_auth),
        ("aws_access_key", r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)", keep4),
        (
            "aws_secret_key",
            r"(?i:aws_secret_access_key|aws_secret_key|aws_secret)[\x22']?\s*[=:]\s*[\x22']?[A-Za-z0-9/+=]{40}",
            mask_after_sep,
        ),
        ("url_credentials", r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:[^\s@/]+@", mask_url),
        ("kv_secret", kv.as_str(), mask_kv),
        (
            "email",
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            validate::email,
        ),
        ("rrn", r"(?-u:\b)[0-9]{6}-?[1-8][0-9]{6}(?-u:\b)", validate::rrn),
        // Unseparated, or grouped as cards are printed: 4-4-4-4(-1..3),
        // Amex's 4-6-5, Diners' 4-6-4.
        (
            "card",
            r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}[ -][0-9]{4}(?:[ -][0-9]{1,3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?-u:\b)",
            validate::card,
        ),
        // Korean numbers (mobile 01x, Seoul 02, regional 031-064, 070
        // internet, 050x personal, 080 toll-free), separated or, for
        // mobiles, not; and international numbers written with `+`.
        (
            "phone",
            r"\+[0-9]{1,3}[ -]?(?:[0-9]{1,4}[ -]?){1,3}[0-9]{4}(?-u:\b)|(?-u:\b)(?:(?:01[016789]|02|0[3-6][1-5]|070|050[2-8]|080)[ -][0-9]{3,4}[ -][0-9]{4}|01[016789][0-9]{7,8})(?-u:\b)",
            validate::phone,
        ),
    ]
    .into_iter()
    .map(|(name, pattern, mask)| (name, pattern.to_string(), mask))
    .collect()
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
            let regex = Regex::new(&pattern).map_err(|e| format!("{name}: {e}"))?;
            patterns.push(pattern);
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
                "passphrase",
                "pwd",
                "%5f",
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
                if let Some(masked) = (d.mask)(value, m.range()) {
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

/// Tokens keep their first 4 characters (guide §85.2, docs/domain-rules.md).
fn keep4(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    Some(keep4_of(&value[m]))
}

fn keep4_of(m: &[u8]) -> Vec<u8> {
    let mut out = m[..4.min(m.len())].to_vec();
    out.extend_from_slice(STARS);
    out
}

/// The key's body masked, its BEGIN and END lines kept as written (they
/// say what was there); a key that goes on past the value keeps only its
/// BEGIN line.
fn mask_private_key(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let text = &value[m];
    let begin_end = memchr::memmem::find(&text[5..], b"-----")? + 10;
    let mut out = text[..begin_end].to_vec();
    out.extend_from_slice(STARS);
    if let Some(end) = memchr::memmem::rfind(text, b"-----END ") {
        out.extend_from_slice(&text[end..]);
    }
    Some(out)
}

/// `Bearer abcd****`.
fn mask_auth(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let m = &value[m];
    let sp = m.iter().position(|&b| b == b' ')?;
    let token = m[sp..].iter().position(|&b| b != b' ').map(|i| sp + i)?;
    let mut out = m[..token].to_vec();
    out.extend_from_slice(&keep4_of(&m[token..]));
    Some(out)
}

/// `key=****` for passwords, `key=abcd****` for tokens and keys; the
/// separator may be URL-encoded (`password%3D...`).
fn mask_kv(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let m = &value[m];
    let (sep, sep_len) = match m.iter().position(|&b| b == b'=' || b == b':') {
        Some(at) => (at, 1),
        None => (memchr::memmem::find(&m.to_ascii_lowercase(), b"%3")?, 3),
    };
    let value_at = m[sep + sep_len..]
        .iter()
        .position(|&b| !b" \t\"'".contains(&b))
        .map(|i| sep + sep_len + i)?;
    let key = m[..sep].to_ascii_lowercase();
    // `PWD=/srv/app` is the shell's working directory, not a password.
    if key.trim_ascii_end() == b"pwd" && matches!(m[value_at], b'/' | b'~') {
        return None;
    }
    let mut out = m[..value_at].to_vec();
    let is_password = key.starts_with(b"pass") || key.starts_with(b"pwd");
    if is_password {
        out.extend_from_slice(STARS);
    } else {
        out.extend_from_slice(&keep4_of(&m[value_at..]));
    }
    Some(out)
}

fn mask_after_sep(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let m = &value[m];
    let sep = m.iter().position(|&b| b == b'=' || b == b':')?;
    let mut out = m[..=sep].to_vec();
    out.extend_from_slice(STARS);
    Some(out)
}

/// `scheme://user:****@`.
fn mask_url(value: &[u8], m: Range<usize>) -> Option<Vec<u8>> {
    let m = &value[m];
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
