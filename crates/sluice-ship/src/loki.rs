//! The Loki sink: `POST /loki/api/v1/push` with the JSON body
//! `{"streams":[{"stream":{labels},"values":[["<unix ns>","<line>"],...]}]}`,
//! gzip-encoded. Streams are labelled only by the configured low-cardinality
//! fields (guide §11, §72): ids and paths stay inside the line, where
//! LogQL's `| json` finds them. The line is the event exactly as sluice
//! writes it to any other sink.

use sluice_config::LokiSinkConfig;
use sluice_core::encode::{write_event, write_json_string};
use sluice_core::{Batch, Counter, Event, Field};

use crate::driver::{Encoder, Transport};
use crate::fields::{self, OriginFields};
use crate::frame::Frame;
use crate::http;
use crate::outcome::{Blame, SendResult};
use crate::timestamp;

/// One record is `<labels object>\n<values entry>`; the transport groups
/// records with equal labels into one stream.
pub struct LokiEncoder {
    labels: Vec<String>,
    origins: OriginFields,
    line: Vec<u8>,
    invalid_ts: Counter,
}

impl LokiEncoder {
    /// An encoder for the configured labels.
    pub fn new(labels: &[String]) -> LokiEncoder {
        LokiEncoder {
            labels: labels.to_vec(),
            origins: OriginFields::default(),
            line: Vec::new(),
            invalid_ts: Counter::default(),
        }
    }

    /// Count entries whose `ts` could not be read in `counter`.
    pub fn counting_invalid_ts(mut self, counter: Counter) -> LokiEncoder {
        self.invalid_ts = counter;
        self
    }

    /// Write `"label":"value"` (after a comma unless `first`); `false` when
    /// the event has no value for it.
    fn write_label(&mut self, batch: &Batch, event: &Event, label: &str, first: bool, out: &mut Vec<u8>) -> bool {
        let value: &[u8] = match label {
            "service" => batch.service(event).unwrap_or(b""),
            "env" => batch.str_field(event, Field::Env).unwrap_or(b""),
            "level" => batch.str_field(event, Field::Level).unwrap_or(b""),
            "namespace" => match batch.namespace(event) {
                Some(ns) => ns,
                None => self.origins.get(batch, event, "namespace").unwrap_or("").as_bytes(),
            },
            other => self.origins.get(batch, event, other).unwrap_or("").as_bytes(),
        };
        if value.is_empty() {
            return false;
        }
        if !first {
            out.push(b',');
        }
        write_json_string(label.as_bytes(), out);
        out.push(b':');
        let at = out.len();
        write_json_string(value, out);
        if label == "level" {
            // Levels are case-insensitive in practice: one stream per level.
            out[at..].make_ascii_lowercase();
        }
        true
    }
}

impl Encoder for LokiEncoder {
    fn encode(&mut self, batch: &Batch, frame: &mut Frame) {
        let now = fields::now_nanos();
        let labels = std::mem::take(&mut self.labels);
        for event in batch.events() {
            frame.bytes.push(b'{');
            let mut first = true;
            for label in &labels {
                if self.write_label(batch, event, label, first, &mut frame.bytes) {
                    first = false;
                }
            }
            let out = &mut frame.bytes;
            out.extend_from_slice(b"}\n[\"");
            let ns = timestamp::event_time(batch, event, now, timestamp::ANY_TIME, &self.invalid_ts);
            out.extend_from_slice(itoa::Buffer::new().format(ns).as_bytes());
            out.extend_from_slice(b"\",");
            self.line.clear();
            write_event(batch, event, &mut self.line);
            self.line.pop();
            write_json_string(&self.line, out);
            out.push(b']');
            frame.finish_record();
        }
        self.labels = labels;
    }
}

/// Pushes streams. See the module docs.
pub struct LokiTransport {
    client: reqwest::Client,
    url: String,
    tenant: Option<String>,
    gzip_level: u32,
    body: Vec<u8>,
    gz: Vec<u8>,
}

impl LokiTransport {
    /// A transport for the configured Loki.
    pub fn new(cfg: &LokiSinkConfig) -> Result<LokiTransport, String> {
        Ok(LokiTransport {
            client: http::client(cfg.delivery.request_timeout)?,
            url: cfg.endpoint.request_url("loki/api/v1/push", &[]),
            tenant: cfg.tenant.clone(),
            gzip_level: cfg.gzip_level,
            body: Vec::new(),
            gz: Vec::new(),
        })
    }
}

/// Group records by their labels, in first-seen order, into a push body.
pub fn push_body(records: &[&[u8]], out: &mut Vec<u8>) {
    let mut streams: Vec<(&[u8], Vec<&[u8]>)> = Vec::new();
    for r in records {
        let split = memchr::memchr(b'\n', r).unwrap_or(r.len());
        let (labels, entry) = (&r[..split], r.get(split + 1..).unwrap_or(b""));
        match streams.iter_mut().find(|(l, _)| *l == labels) {
            Some((_, entries)) => entries.push(entry),
            None => streams.push((labels, vec![entry])),
        }
    }
    out.clear();
    out.extend_from_slice(b"{\"streams\":[");
    for (i, (labels, entries)) in streams.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":");
        out.extend_from_slice(labels);
        out.extend_from_slice(b",\"values\":[");
        for (j, e) in entries.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

impl Transport for LokiTransport {
    async fn send(&mut self, records: &[&[u8]]) -> SendResult {
        push_body(records, &mut self.body);
        let mut req = self.client.post(&self.url).header("Content-Type", "application/json");
        if let Some(t) = &self.tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let (body, gzipped) = http::records_body(&[&self.body], self.gzip_level, &mut self.gz);
        if gzipped {
            req = req.header("Content-Encoding", "gzip");
        }
        let req = req.body(body);
        match http::execute(req).await {
            Ok(answer) => classify(answer.status, &answer.body),
            Err(failed) => failed,
        }
    }
}

/// Loki refuses entries for themselves with a 400 whose text names the
/// cause (out of order, too old or too new, a line too long, bad labels);
/// the rest is read as any HTTP target's answer.
fn classify(status: u16, body: &[u8]) -> SendResult {
    const ENTRY_ERRORS: [&str; 7] = [
        "out of order",
        "too old",
        "too new",
        "too far behind",
        "line too long",
        "max line size",
        "label",
    ];
    match http::classify(status, body) {
        SendResult::Rejected(r) if status == 400 && ENTRY_ERRORS.iter().any(|e| r.reason.contains(e)) => {
            SendResult::rejected(Blame::Record, r.reason)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::FailureKind;

    #[test]
    fn entry_errors_blame_the_entry_and_the_rest_the_target() {
        let old = "entry for stream '{service=\"pay\"}' has timestamp too old: 2020-01-01T00:00:00Z";
        assert_eq!(
            classify(400, old.as_bytes()),
            SendResult::rejected(Blame::Record, format!("HTTP 400: {old}"))
        );
        assert_eq!(
            classify(400, b"something else"),
            SendResult::rejected(Blame::Unclear, "HTTP 400: something else")
        );
        assert_eq!(
            classify(401, b"no org id"),
            SendResult::failed(FailureKind::Auth, "HTTP 401: no org id")
        );
        assert_eq!(
            classify(429, b"Ingestion rate limit exceeded"),
            SendResult::failed(FailureKind::Throttled, "HTTP 429: Ingestion rate limit exceeded")
        );
        assert_eq!(classify(204, b""), SendResult::Accepted);
    }

    #[test]
    fn records_with_equal_labels_share_a_stream() {
        let records: Vec<&[u8]> = vec![
            b"{\"service\":\"a\"}\n[\"1\",\"x\"]",
            b"{\"service\":\"b\"}\n[\"2\",\"y\"]",
            b"{\"service\":\"a\"}\n[\"3\",\"z\"]",
        ];
        let mut out = Vec::new();
        push_body(&records, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"streams":[{"stream":{"service":"a"},"values":[["1","x"],["3","z"]]},{"stream":{"service":"b"},"values":[["2","y"]]}]}"#
        );
    }
}
