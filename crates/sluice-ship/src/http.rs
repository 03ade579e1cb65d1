//! What the HTTP sinks share: one client with the sink's timeouts, gzip
//! request bodies, and the mapping of HTTP outcomes onto [`SendResult`].

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::driver::CONNECT_TIMEOUT;
use crate::outcome::{Blame, FailureKind, SendResult};

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

/// A target's answer to a request.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The start of the body as text, for a reason.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(512)])
            .trim()
            .to_string()
    }
}

/// Send a prepared request and map transport errors; `Ok` carries any
/// answer the server gave.
pub async fn execute(request: reqwest::RequestBuilder) -> Result<Answer, SendResult> {
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(transport_failure)?;
    Ok(Answer {
        status,
        headers,
        body: body.to_vec(),
    })
}

fn transport_failure(e: reqwest::Error) -> SendResult {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Connection
    };
    // The URL reqwest would print carries the endpoint's query string,
    // credentials included: the sink's name says which target it was.
    let e = e.without_url();
    SendResult::failed(
        kind,
        format!(
            "{e}: {}",
            std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
        ),
    )
}

/// The usual reading of a whole-request status: 2xx stored; 401 and 403
/// credentials; 404 a missing endpoint, table or index; 408 a timeout; 429
/// throttling; 413 a body too large (split until it fits); any other 4xx a
/// refusal of the data that does not say why; 5xx a server error.
pub fn classify(status: u16, body: &[u8]) -> SendResult {
    let text = || {
        format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)]).trim()
        )
    };
    match status {
        200..=299 => SendResult::Accepted,
        401 | 403 => SendResult::failed(FailureKind::Auth, text()),
        404 => SendResult::failed(FailureKind::Missing, text()),
        408 => SendResult::failed(FailureKind::Timeout, text()),
        429 => SendResult::failed(FailureKind::Throttled, text()),
        413 => SendResult::rejected(Blame::Record, text()),
        400..=499 => SendResult::rejected(Blame::Unclear, text()),
        _ => SendResult::failed(FailureKind::Server, text()),
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
            SendResult::rejected(Blame::Unclear, "HTTP 400: bad row")
        );
        assert_eq!(
            classify(413, b"too large"),
            SendResult::rejected(Blame::Record, "HTTP 413: too large")
        );
        assert_eq!(
            classify(429, b"slow down"),
            SendResult::failed(FailureKind::Throttled, "HTTP 429: slow down")
        );
        assert_eq!(
            classify(401, b"no"),
            SendResult::failed(FailureKind::Auth, "HTTP 401: no")
        );
        assert_eq!(
            classify(403, b"no"),
            SendResult::failed(FailureKind::Auth, "HTTP 403: no")
        );
        assert_eq!(
            classify(404, b"gone"),
            SendResult::failed(FailureKind::Missing, "HTTP 404: gone")
        );
        assert_eq!(
            classify(503, b""),
            SendResult::failed(FailureKind::Server, "HTTP 503: ")
        );
        assert_eq!(
            classify(408, b""),
            SendResult::failed(FailureKind::Timeout, "HTTP 408: ")
        );
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

    #[test]
    fn a_transport_failure_never_prints_the_url() {
        // A port nothing listens on: the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint =
            sluice_config::Endpoint::parse(&format!("http://admin:S3cret-1@127.0.0.1:{port}/?password=S3cret-2"))
                .unwrap();
        let url = endpoint.request_url("", &[("query", "INSERT")]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(async {
            let c = client(Duration::from_secs(2)).unwrap();
            match execute(c.post(&url)).await {
                Err(failed) => failed,
                Ok(answer) => panic!("nothing listens there, yet: HTTP {}", answer.status),
            }
        });
        let SendResult::Failed(failure) = result else {
            panic!("{result:?}")
        };
        assert_eq!(failure.kind, FailureKind::Connection);
        assert!(!failure.reason.contains("S3cret"), "{}", failure.reason);
        assert!(!failure.reason.contains("127.0.0.1"), "{}", failure.reason);
    }
}
