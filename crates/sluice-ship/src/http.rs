//! What the HTTP sinks share: one client with the sink's timeouts, gzip
//! request bodies, and the mapping of HTTP outcomes onto [`SendResult`].

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::driver::{SendResult, CONNECT_TIMEOUT};

/// A client for one sink.
pub fn client(request_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(request_timeout))
        .pool_idle_timeout(Duration::from_secs(2))
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// gzip `body` at `level` (1-9) into `out`.
pub fn gzip(body: &[u8], level: u32, out: &mut Vec<u8>) {
    out.clear();
    let mut enc = GzEncoder::new(out, Compression::new(level));
    enc.write_all(body).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail");
}

/// A request body made of `records` back to back: gzip-compressed record
/// by record into the reused `scratch` when `level` > 0 (no concatenated
/// copy of the plain body is ever made), else concatenated. Returns the
/// body to hand to the client and whether it is gzip.
pub fn records_body(records: &[&[u8]], level: u32, scratch: &mut Vec<u8>) -> (Vec<u8>, bool) {
    if level == 0 {
        return (records.concat(), false);
    }
    scratch.clear();
    let mut enc = GzEncoder::new(std::mem::take(scratch), Compression::new(level));
    for r in records {
        enc.write_all(r).expect("writing to a Vec cannot fail");
    }
    *scratch = enc.finish().expect("writing to a Vec cannot fail");
    // The compressed body is a fraction of the plain one: copying it out
    // keeps the large scratch buffer for the next request.
    (scratch.clone(), true)
}

/// Send a prepared request and map transport errors; `Ok` carries the
/// status and body of any response.
pub async fn execute(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), SendResult> {
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(transport_failure)?;
    Ok((status, body.to_vec()))
}

fn transport_failure(e: reqwest::Error) -> SendResult {
    SendResult::Failed {
        timeout: e.is_timeout(),
        reason: format!(
            "{e}: {}",
            std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
        ),
    }
}

/// The usual reading of a whole-request status: 2xx stored; 408, 429 and
/// 5xx transient; any other 4xx a refusal of the data.
pub fn classify(status: u16, body: &[u8]) -> SendResult {
    let text = || String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string();
    match status {
        200..=299 => SendResult::Accepted,
        408 | 429 => SendResult::Failed {
            reason: format!("HTTP {status}: {}", text()),
            timeout: status == 408,
        },
        400..=499 => SendResult::Rejected(format!("HTTP {status}: {}", text())),
        _ => SendResult::Failed {
            reason: format!("HTTP {status}: {}", text()),
            timeout: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(classify(204, b""), SendResult::Accepted);
        assert_eq!(
            classify(400, b"bad row\n"),
            SendResult::Rejected("HTTP 400: bad row".into())
        );
        assert_eq!(
            classify(429, b"slow down"),
            SendResult::Failed {
                reason: "HTTP 429: slow down".into(),
                timeout: false
            }
        );
        assert!(matches!(classify(503, b""), SendResult::Failed { timeout: false, .. }));
        assert!(matches!(classify(408, b""), SendResult::Failed { timeout: true, .. }));
    }

    #[test]
    fn record_bodies_are_the_records_back_to_back() {
        let records: Vec<&[u8]> = vec![b"{\"a\":1}\n", b"{\"b\":2}\n"];
        let mut scratch = Vec::new();
        assert_eq!(
            records_body(&records, 0, &mut scratch),
            (b"{\"a\":1}\n{\"b\":2}\n".to_vec(), false)
        );
        let (gz, is_gzip) = records_body(&records, 1, &mut scratch);
        assert!(is_gzip);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert_eq!(back, "{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn gzip_round_trips() {
        let mut out = Vec::new();
        gzip(b"hello hello hello", 1, &mut out);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&out[..]), &mut back).unwrap();
        assert_eq!(back, "hello hello hello");
    }
}
