//! Private keys printed line by line. `cat key.pem` in a container, or a
//! program printing a key it loaded, puts the key on standard output as
//! lines, and each line becomes its own text event: a detector that reads
//! one value at a time sees a BEGIN line, then base64 that matches
//! nothing. So the stage remembers, per stream, that a key was opened and
//! not closed, and masks the stream's following lines while they can be
//! part of a PEM body (base64, RFC 1421 headers such as `Proc-Type:`, blank
//! lines) until the END line; any other line means the key is over.

use std::collections::HashSet;

use memchr::memmem;

/// The most streams tracked at once; past it the oldest knowledge is
/// dropped (a node has far fewer streams than this printing keys at once).
const MAX_OPEN: usize = 10_000;

/// Streams inside a private key. See the module docs.
#[derive(Default)]
pub(crate) struct OpenKeys {
    streams: HashSet<u64, foldhash::fast::FixedState>,
}

impl OpenKeys {
    /// Whether no stream is inside a key: the common case, one branch.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Remember that `stream` printed the start of a key.
    pub(crate) fn open(&mut self, stream: u64) {
        if self.streams.len() >= MAX_OPEN {
            self.streams.clear();
        }
        self.streams.insert(stream);
    }

    /// The masked form of `line` when `stream` is inside a key and the line
    /// belongs to it (the END line closes the key and is kept as written);
    /// `None` when the line is not part of a key, which also closes it.
    pub(crate) fn mask_line(&mut self, stream: u64, line: &[u8]) -> Option<Vec<u8>> {
        if !self.streams.contains(&stream) {
            return None;
        }
        if closes_key(line) {
            self.streams.remove(&stream);
            return Some(line.to_vec());
        }
        if body_line(line) {
            return Some(b"****".to_vec());
        }
        self.streams.remove(&stream);
        None
    }
}

/// Whether `value` opens a private key it does not close.
pub(crate) fn opens_key(value: &[u8]) -> bool {
    let Some(begin) = memmem::rfind(value, b"-----BEGIN ") else {
        return false;
    };
    let rest = &value[begin..];
    let header_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    memmem::find(&rest[..header_end], b"PRIVATE KEY").is_some() && !closes_key(rest)
}

fn closes_key(line: &[u8]) -> bool {
    memmem::find(line, b"-----END ").is_some_and(|at| memmem::find(&line[at..], b"PRIVATE KEY").is_some())
}

/// Whether a line can be inside a PEM body: base64 (with the padding and
/// the whitespace around it), empty, or an RFC 1421 header line.
fn body_line(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    if line.starts_with(b"Proc-Type:") || line.starts_with(b"DEK-Info:") || line.starts_with(b"Comment:") {
        return true;
    }
    line.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_masked_line_by_line_until_its_end() {
        let mut keys = OpenKeys::default();
        assert!(opens_key(b"-----BEGIN RSA PRIVATE KEY-----"));
        assert!(opens_key(
            b"loaded key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk"
        ));
        assert!(!opens_key(b"-----BEGIN PRIVATE KEY-----MIIE-----END PRIVATE KEY-----"));
        assert!(!opens_key(b"-----BEGIN CERTIFICATE-----"));
        keys.open(1);
        assert_eq!(
            keys.mask_line(2, b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
            None,
            "another stream"
        );
        assert_eq!(
            keys.mask_line(1, b"Proc-Type: 4,ENCRYPTED").as_deref(),
            Some(&b"****"[..])
        );
        assert_eq!(keys.mask_line(1, b"").as_deref(), Some(&b"****"[..]));
        assert_eq!(
            keys.mask_line(1, b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC").as_deref(),
            Some(&b"****"[..])
        );
        assert_eq!(keys.mask_line(1, b"  Nw0=\r").as_deref(), Some(&b"****"[..]));
        assert_eq!(
            keys.mask_line(1, b"-----END RSA PRIVATE KEY-----").as_deref(),
            Some(&b"-----END RSA PRIVATE KEY-----"[..])
        );
        assert!(keys.is_empty());
        assert_eq!(keys.mask_line(1, b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), None, "closed");
    }

    #[test]
    fn a_line_that_cannot_be_in_a_key_closes_it() {
        let mut keys = OpenKeys::default();
        keys.open(1);
        assert_eq!(keys.mask_line(1, b"INFO server started on :8080"), None);
        assert!(keys.is_empty());
    }
}
