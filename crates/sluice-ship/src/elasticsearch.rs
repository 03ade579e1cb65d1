//! The Elasticsearch / OpenSearch sink: `POST /_bulk` with NDJSON bodies of
//! `{"create":{"_index":"<index>"}}` + the event, the index named per
//! service and UTC day from a pattern. `create` (not `index`) works for
//! plain indices and data streams alike. The bulk response is read item by
//! item: a 429 or 5xx item is retried alone; an item the cluster fails for
//! reasons of its own (an index that does not exist and may not be
//! created, a read-only block, credentials) is retried as a target
//! failure; any other failed item is a rejection of that record and goes
//! to the dead-letter file.

use serde::Deserialize;
use sluice_config::ElasticsearchSinkConfig;
use sluice_core::encode::write_event;
use sluice_core::{Batch, Event};

use crate::driver::{Encoder, Transport};

use crate::frame::Frame;
use crate::http;
use crate::outcome::{Failure, FailureKind, SendResult};
use crate::timestamp;

/// Builds bulk actions. See the module docs.
pub struct ElasticsearchEncoder {
    pattern: String,
    index: String,
    /// The last UTC day seen (days since the epoch) and its `YYYY.MM.DD`,
    /// so a day is formatted once, not per event.
    day: Option<(i64, String)>,
}

impl ElasticsearchEncoder {
    /// An encoder for index pattern `pattern` (`{service}`, `{date}`).
    pub fn new(pattern: &str) -> ElasticsearchEncoder {
        ElasticsearchEncoder {
            pattern: pattern.to_string(),
            index: String::new(),
            day: None,
        }
    }

    fn index_name(&mut self, batch: &Batch, event: &Event, today: &str) {
        let service = batch.service(event).map(String::from_utf8_lossy);
        let days = timestamp::event_nanos(batch, event).map(|ns| ns.div_euclid(86_400_000_000_000) as i64);
        if let Some(d) = days.filter(|d| self.day.as_ref().is_none_or(|(cached, _)| cached != d)) {
            let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(d);
            self.day = Some((d, day(t)));
        }
        let date = days.and(self.day.as_ref().map(|(_, s)| s.as_str()));
        self.index.clear();
        let mut rest = self.pattern.as_str();
        while let Some(open) = rest.find('{') {
            self.index.push_str(&rest[..open]);
            let after = &rest[open..];
            if let Some(tail) = after.strip_prefix("{service}") {
                push_sanitized(&mut self.index, service.as_deref().unwrap_or("unknown"));
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("{date}") {
                self.index.push_str(date.unwrap_or(today));
                rest = tail;
            } else {
                self.index.push('{');
                rest = &after[1..];
            }
        }
        self.index.push_str(rest);
    }
}

fn day(t: time::OffsetDateTime) -> String {
    format!("{:04}.{:02}.{:02}", t.year(), t.month() as u8, t.day())
}

/// Index names are lowercase and exclude `\ / * ? " < > | , # :` and spaces.
fn push_sanitized(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' ' => out.push('_'),
            c => out.extend(c.to_lowercase()),
        }
    }
}

impl Encoder for ElasticsearchEncoder {
    fn encode(&mut self, batch: &Batch, frame: &mut Frame) {
        let today = day(time::OffsetDateTime::now_utc());
        for event in batch.events() {
            self.index_name(batch, event, &today);
            let out = &mut frame.bytes;
            out.extend_from_slice(b"{\"create\":{\"_index\":");
            sluice_core::encode::write_json_string(self.index.as_bytes(), out);
            out.extend_from_slice(b"}}\n");
            write_event(batch, event, out);
            frame.finish_record();
        }
    }
}

/// Sends bulk requests. See the module docs.
pub struct ElasticsearchTransport {
    client: reqwest::Client,
    url: String,
    auth: Option<(String, Option<String>)>,
    gzip_level: u32,
    gz: Vec<u8>,
}

impl ElasticsearchTransport {
    /// A transport for the configured cluster.
    pub fn new(cfg: &ElasticsearchSinkConfig) -> Result<ElasticsearchTransport, String> {
        Ok(ElasticsearchTransport {
            client: http::client(cfg.delivery.request_timeout)?,
            url: cfg.endpoint.request_url("_bulk", &[]),
            auth: cfg.user.clone().map(|u| (u, cfg.password.clone())),
            gzip_level: cfg.gzip_level,
            gz: Vec::new(),
        })
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Read a `_bulk` response into per-record outcomes.
pub fn read_bulk_response(body: &[u8], sent: usize) -> SendResult {
    let parsed: BulkResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return SendResult::failed(FailureKind::Server, format!("unreadable _bulk response: {e}")),
    };
    if !parsed.errors {
        return SendResult::Accepted;
    }
    if parsed.items.len() != sent {
        return SendResult::failed(
            FailureKind::Server,
            format!("_bulk answered {} items for {sent} records", parsed.items.len()),
        );
    }
    let mut retry = Vec::new();
    let mut rejected = Vec::new();
    let mut failure = None;
    for (i, item) in parsed.items.iter().enumerate() {
        let Some(item) = item.values().next() else { continue };
        let reason = || {
            let why = item.error.as_ref().map_or_else(String::new, |e| {
                let kind = e.get("type").and_then(|t| t.as_str()).unwrap_or("error");
                let why = e.get("reason").and_then(|t| t.as_str()).unwrap_or("");
                format!("{kind}: {why}")
            });
            format!("HTTP {}: {why}", item.status)
        };
        let error_type = item.error.as_ref().and_then(|e| e.get("type")).and_then(|t| t.as_str());
        match item.status {
            200..=299 => {}
            429 | 500..=599 => retry.push(i),
            status => {
                let by_status = match status {
                    401 | 403 => Some(FailureKind::Auth),
                    404 => Some(FailureKind::Missing),
                    _ => None,
                };
                match error_type.and_then(target_error).or(by_status) {
                    Some(kind) => {
                        retry.push(i);
                        failure.get_or_insert_with(|| Failure { kind, reason: reason() });
                    }
                    None => rejected.push((i, reason())),
                }
            }
        }
    }
    if rejected.is_empty() && retry.len() == sent {
        if let Some(failure) = failure {
            // Nothing was stored: the whole request failed.
            return SendResult::Failed(failure);
        }
    }
    SendResult::Partial {
        retry,
        rejected,
        failure,
    }
}

/// Item errors that are the cluster's, not the document's.
fn target_error(error_type: &str) -> Option<FailureKind> {
    match error_type {
        "index_not_found_exception" => Some(FailureKind::Missing),
        "security_exception" => Some(FailureKind::Auth),
        "cluster_block_exception" | "index_closed_exception" => Some(FailureKind::Refusing),
        _ => None,
    }
}

impl Transport for ElasticsearchTransport {
    async fn send(&mut self, records: &[&[u8]]) -> SendResult {
        let mut req = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/x-ndjson");
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, password.as_ref());
        }
        let (body, gzipped) = http::records_body(records, self.gzip_level, &mut self.gz);
        if gzipped {
            req = req.header("Content-Encoding", "gzip");
        }
        let req = req.body(body);
        match http::execute(req).await {
            Ok(answer) if (200..300).contains(&answer.status) => read_bulk_response(&answer.body, records.len()),
            Ok(answer) => http::classify(answer.status, &answer.body),
            Err(failed) => failed,
        }
    }

    fn describe<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        // The document, without its action line.
        match memchr::memchr(b'\n', record) {
            Some(i) => &record[i + 1..],
            None => record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_items_split_into_stored_retried_and_rejected() {
        let body = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"a","status":201}},
            {"create":{"_index":"a","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"_index":"a","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [status]"}}}]}"#;
        assert_eq!(
            read_bulk_response(body, 3),
            SendResult::Partial {
                retry: vec![1],
                rejected: vec![(
                    2,
                    "HTTP 400: mapper_parsing_exception: failed to parse field [status]".into()
                )],
                failure: None,
            }
        );
        assert_eq!(
            read_bulk_response(br#"{"took":1,"errors":false,"items":[]}"#, 5),
            SendResult::Accepted
        );
        assert!(matches!(read_bulk_response(b"<html>", 1), SendResult::Failed(_)));
    }

    #[test]
    fn items_the_cluster_fails_for_itself_are_retried_not_dead_lettered() {
        let missing = r#"{"create":{"_index":"logs-pay","status":404,"error":{"type":"index_not_found_exception","reason":"no such index [logs-pay]"}}}"#;
        let blocked = r#"{"create":{"_index":"logs-api","status":403,"error":{"type":"cluster_block_exception","reason":"index [logs-api] blocked by: [FORBIDDEN/8/index write (api)];"}}}"#;
        let stored = r#"{"create":{"_index":"logs-web","status":201}}"#;
        let body = format!(r#"{{"took":1,"errors":true,"items":[{missing},{stored},{blocked}]}}"#);
        assert_eq!(
            read_bulk_response(body.as_bytes(), 3),
            SendResult::Partial {
                retry: vec![0, 2],
                rejected: vec![],
                failure: Some(Failure {
                    kind: FailureKind::Missing,
                    reason: "HTTP 404: index_not_found_exception: no such index [logs-pay]".into()
                }),
            }
        );
        // Every item failed for the cluster's reasons: the request failed.
        let body = format!(r#"{{"took":1,"errors":true,"items":[{blocked},{blocked}]}}"#);
        assert_eq!(
            read_bulk_response(body.as_bytes(), 2),
            SendResult::failed(
                FailureKind::Refusing,
                "HTTP 403: cluster_block_exception: index [logs-api] blocked by: [FORBIDDEN/8/index write (api)];"
            )
        );
    }

    #[test]
    fn index_names_follow_the_pattern_per_service_and_day() {
        let line = br#"{"ts":"2026-11-24T23:59:59+09:00","service":"Pay API"}"#;
        let b = Batch::new(
            line.to_vec(),
            vec![Event::unparsed(
                sluice_core::Span::new(0, line.len()),
                0,
                Event::NO_ORIGIN,
            )],
        );
        let mut out = Vec::new();
        sluice_core::Stage::process(
            &mut sluice_parse::ParseStage::new(&sluice_core::Registry::new()),
            b,
            &mut out,
        );
        let b = out.pop().unwrap();
        let mut enc = ElasticsearchEncoder::new("logs-{service}-{date}{x}");
        enc.index_name(&b, &b.events()[0], "2026.11.25");
        // 23:59:59 in Seoul is 14:59:59 UTC the same day.
        assert_eq!(enc.index, "logs-pay_api-2026.11.24{x}");
    }
}
