//! Which names say "the value is a secret": the one list the redaction
//! stage masks values under, endpoints mask query parameters by, and
//! configuration errors refuse to echo the values of.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

/// Fragments of key names whose values are secrets, compared after
/// lowercasing and dropping `_`, `-` and `.` (so `apiKey`, `api_key`,
/// `API-KEY` are one name). A key *containing* one of these is a secret.
pub const SECRET_KEY_FRAGMENTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "privatekey",
    "accesskey",
    "credential",
    "signature",
    "cardnumber",
    "cvv",
];

/// Whether a key names a secret (see [`SECRET_KEY_FRAGMENTS`]). Runs for
/// every key of every record in the redaction stage: the key is normalized
/// into a stack buffer and searched with one automaton, no allocation. A
/// key percent-encoded in a query string (`pass%77ord`) is not decoded
/// here; callers that read URLs decode first.
pub fn is_secret_key(key: &str) -> bool {
    static NAMES: OnceLock<AhoCorasick> = OnceLock::new();
    let names = NAMES.get_or_init(|| AhoCorasick::new(SECRET_KEY_FRAGMENTS).expect("static patterns compile"));
    let mut buf = [0u8; 128];
    let mut n = 0;
    for &b in key.as_bytes() {
        if matches!(b, b'_' | b'-' | b'.') {
            continue;
        }
        if n == buf.len() {
            // Longer than any sane key: check what fits, fail closed on a hit.
            break;
        }
        buf[n] = b.to_ascii_lowercase();
        n += 1;
    }
    names.is_match(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_in_any_case_style() {
        for k in [
            "password",
            "Passwd",
            "passphrase",
            "pwd",
            "api_key",
            "apiKey",
            "API-KEY",
            "set-cookie",
            "Authorization",
            "sessionId",
            "private_key",
            "x_auth_token",
            "db.password",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "status",
            "duration_ms",
            "trace_id",
            "path",
            "user_id",
            "message",
            "user",
            "endpoint",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
