//! The ClickHouse sink: rows as `JSONEachRow`, sent as
//! `INSERT INTO db.table FORMAT JSONEachRow` over the HTTP interface, the
//! body in ClickHouse's native LZ4 blocks (`decompress=1`, see
//! [`crate::native_lz4`]), gzip, or plain. Only settings and types ClickHouse 18.16 (Debian's package)
//! already has are used: `date_time_input_format=best_effort` for ISO
//! timestamps, `input_format_skip_unknown_fields=1`, plain `DateTime`,
//! `String` and numbers; the schema is `deploy/clickhouse/schema.sql`.
//!
//! Every row carries every mapped column, so the table's defaults never
//! depend on server settings (18.16 has no `input_format_defaults_for_omitted_fields`):
//! a missing string is `""`, a missing number `0`, a missing `ts` the time
//! the row was encoded.

use std::collections::BTreeMap;

use sluice_config::{ClickhouseCompression, ClickhouseSinkConfig};
use sluice_core::added_fields;
use sluice_core::encode::{write_event, write_json_string};
use sluice_core::{Batch, Counter, Event, EventKind, Field};

use crate::driver::{Encoder, Transport};
use crate::fields::{self, OriginFields};
use crate::frame::Frame;
use crate::http;
use crate::native_lz4;
use crate::outcome::{Blame, FailureKind, SendResult};
use crate::timestamp;

/// Where a column's value comes from.
#[derive(Debug, Clone)]
enum Source {
    Field(Field, Kind),
    /// The record's `msg`, else the text line.
    Message,
    /// The event's `ts`, else now.
    Ts,
    Origin(String),
    SampleRate,
    Raw,
}

/// How a missing value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Number,
}

/// Builds `JSONEachRow` rows. See the module docs.
pub struct ClickhouseEncoder {
    columns: Vec<(Vec<u8>, Source)>,
    origins: OriginFields,
    scratch: Vec<u8>,
    /// The time a row without a usable `ts` gets (Unix nanoseconds), read
    /// once per batch.
    now: i128,
    invalid_ts: Counter,
    /// Row bytes per event of the last batch: the next frame is sized from
    /// it, so it is allocated once rather than grown and copied (rows are
    /// about three times their input lines: typed columns beside `raw`).
    row_bytes: usize,
}

impl ClickhouseEncoder {
    /// An encoder for the configured column mapping.
    pub fn new(columns: &BTreeMap<String, String>) -> ClickhouseEncoder {
        let columns = columns
            .iter()
            .map(|(column, source)| {
                let mut key = Vec::new();
                write_json_string(column.as_bytes(), &mut key);
                key.push(b':');
                let source = match source.as_str() {
                    "ts" => Source::Ts,
                    added_fields::MESSAGE => Source::Message,
                    added_fields::SAMPLE_RATE => Source::SampleRate,
                    sluice_config::CLICKHOUSE_RAW => Source::Raw,
                    "status" | "duration_ms" => Source::Field(
                        Field::from_key(source.as_bytes()).expect("a routing field"),
                        Kind::Number,
                    ),
                    other => match Field::from_key(other.as_bytes()) {
                        Some(f) => Source::Field(f, Kind::Text),
                        None => Source::Origin(other.to_string()),
                    },
                };
                (key, source)
            })
            .collect();
        ClickhouseEncoder {
            columns,
            origins: OriginFields::default(),
            scratch: Vec::new(),
            now: fields::now_nanos(),
            invalid_ts: Counter::default(),
            row_bytes: 1024,
        }
    }

    /// Count rows whose `ts` could not be stored in `counter`.
    pub fn counting_invalid_ts(mut self, counter: Counter) -> ClickhouseEncoder {
        self.invalid_ts = counter;
        self
    }

    fn row(&mut self, batch: &Batch, event: &Event, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, source)) in self.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            match source {
                Source::Ts => {
                    // Unix seconds: a `DateTime` reads a JSON number as
                    // such, whatever the server's time zone.
                    let ns = timestamp::event_time(batch, event, self.now, DATETIME_RANGE, &self.invalid_ts);
                    let secs = ns.div_euclid(1_000_000_000) as i64;
                    out.extend_from_slice(itoa::Buffer::new().format(secs).as_bytes());
                }
                Source::Field(f, kind) => {
                    let written = match kind {
                        // A number column takes only numbers: a quoted or
                        // odd value would fail the whole insert.
                        Kind::Number => match batch.num_field(event, *f) {
                            // Integers as integers: `UInt16` does not read `503.0`.
                            Some(x) if x.fract() == 0.0 && (0.0..9.0e15).contains(&x) => {
                                out.extend_from_slice(itoa::Buffer::new().format(x as i64).as_bytes());
                                true
                            }
                            Some(x) if x.is_finite() && x >= 0.0 => {
                                out.extend_from_slice(ryu::Buffer::new().format(x).as_bytes());
                                true
                            }
                            _ => false,
                        },
                        Kind::Text => match event.field(*f) {
                            sluice_core::FieldValue::Str(_) | sluice_core::FieldValue::Decoded(_) => {
                                fields::write_field(batch, event, *f, out)
                            }
                            _ => false,
                        },
                    };
                    if !written {
                        // Service and namespace fall back to what the source
                        // knows (the container's mapping, the log file's
                        // namespace) when the record has none.
                        let fallback = match *f {
                            Field::Service => batch.service(event),
                            Field::Namespace => batch
                                .namespace(event)
                                .or_else(|| self.origins.get(batch, event, "namespace").map(str::as_bytes)),
                            _ => None,
                        };
                        match (fallback, kind) {
                            (Some(s), _) => write_json_string(s, out),
                            (None, Kind::Number) => out.push(b'0'),
                            (None, Kind::Text) => out.extend_from_slice(b"\"\""),
                        }
                    }
                }
                Source::Message => match batch.str_field(event, Field::Msg) {
                    Some(_) => {
                        fields::write_field(batch, event, Field::Msg, out);
                    }
                    None if event.kind != EventKind::Json => write_json_string(batch.line(event), out),
                    None => out.extend_from_slice(b"\"\""),
                },
                Source::Origin(key) => {
                    let v = self.origins.get(batch, event, key).unwrap_or("");
                    write_json_string(v.as_bytes(), out);
                }
                Source::SampleRate => {
                    // Unsampled (or an odd value): the event stands for itself.
                    let rate = batch
                        .num_field(event, Field::SampleRate)
                        .filter(|r| r.is_finite() && *r >= 1.0)
                        .unwrap_or(1.0);
                    out.extend_from_slice(ryu::Buffer::new().format(rate).as_bytes());
                }
                Source::Raw => {
                    self.scratch.clear();
                    write_event(batch, event, &mut self.scratch);
                    self.scratch.pop();
                    write_json_string(&self.scratch, out);
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

/// What a `DateTime` holds: Unix seconds in a `UInt32`.
const DATETIME_RANGE: (i128, i128) = (0, (u32::MAX as i128 + 1) * 1_000_000_000 - 1);

impl Encoder for ClickhouseEncoder {
    fn encode(&mut self, batch: &Batch, frame: &mut Frame) {
        self.now = fields::now_nanos();
        let start = frame.bytes.len();
        // An eighth more than the last batch's rows took, for the spread.
        frame.bytes.reserve(batch.len() * (self.row_bytes + self.row_bytes / 8));
        frame.ends.reserve(batch.len());
        for event in batch.events() {
            self.row(batch, event, &mut frame.bytes);
            frame.finish_record();
        }
        if !batch.is_empty() {
            self.row_bytes = (frame.bytes.len() - start) / batch.len();
        }
    }
}

/// Sends `INSERT`s. See the module docs.
pub struct ClickhouseTransport {
    client: reqwest::Client,
    url: String,
    user: Option<String>,
    password: Option<String>,
    compression: ClickhouseCompression,
    gzip_level: u32,
    /// Scratch for a compressed body (gzip) or one block's input (LZ4).
    scratch: Vec<u8>,
}

impl ClickhouseTransport {
    /// A transport for the configured server and table.
    pub fn new(cfg: &ClickhouseSinkConfig) -> Result<ClickhouseTransport, String> {
        let query = format!(
            "INSERT INTO {}.{} FORMAT JSONEachRow",
            quote_ident(&cfg.database),
            quote_ident(&cfg.table)
        );
        let mut params = vec![
            ("query", query.as_str()),
            ("date_time_input_format", "best_effort"),
            ("input_format_skip_unknown_fields", "1"),
        ];
        if cfg.compression == ClickhouseCompression::Lz4 {
            params.push(("decompress", "1"));
        }
        let url = cfg.endpoint.request_url("", &params);
        Ok(ClickhouseTransport {
            client: http::client(cfg.delivery.request_timeout)?,
            url,
            user: cfg.user.clone(),
            password: cfg.password.clone(),
            compression: cfg.compression,
            gzip_level: cfg.gzip_level,
            scratch: Vec::new(),
        })
    }
}

impl Transport for ClickhouseTransport {
    async fn send(&mut self, records: &[&[u8]]) -> SendResult {
        let mut req = self.client.post(&self.url);
        if let Some(u) = &self.user {
            req = req.header("X-ClickHouse-User", u);
        }
        if let Some(p) = &self.password {
            req = req.header("X-ClickHouse-Key", p);
        }
        let body = match self.compression {
            ClickhouseCompression::Lz4 => {
                let mut body = Vec::new();
                native_lz4::compress_records(records, &mut self.scratch, &mut body);
                body
            }
            ClickhouseCompression::Gzip | ClickhouseCompression::None => {
                let level = if self.compression == ClickhouseCompression::Gzip {
                    self.gzip_level
                } else {
                    0
                };
                let (body, gzipped) = http::records_body(records, level, &mut self.scratch);
                if gzipped {
                    req = req.header("Content-Encoding", "gzip");
                }
                body
            }
        };
        let req = req.body(body);
        match http::execute(req).await {
            Ok(answer) => classify(&answer),
            Err(failed) => failed,
        }
    }
}

/// Read an answer by ClickHouse's exception code (the
/// `X-ClickHouse-Exception-Code` header, else the `Code: N` the body starts
/// with) before its HTTP status: a row it cannot parse is a 400 in current
/// releases but a 500 in older ones, and a 200 whose body carries an
/// exception (the error came after the headers were sent) is no success.
fn classify(answer: &http::Answer) -> SendResult {
    let code = answer
        .headers
        .get("x-clickhouse-exception-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| exception_code(&answer.body));
    let reason = || format!("HTTP {}: {}", answer.status, answer.text());
    match code.map(code_says) {
        Some(Says::Data) => SendResult::rejected(Blame::Record, reason()),
        Some(Says::Target(kind)) => SendResult::failed(kind, reason()),
        // An exception in a 200: whatever it was, the rows may not be stored.
        Some(Says::Nothing) if (200..300).contains(&answer.status) => SendResult::failed(FailureKind::Server, reason()),
        _ => http::classify(answer.status, &answer.body),
    }
}

/// What an exception code tells about an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    /// A row is at fault: dead-letter it once found.
    Data,
    /// The server refuses everyone, for this reason.
    Target(FailureKind),
    /// Nothing certain: read the HTTP status.
    Nothing,
}

/// The codes, from ClickHouse's `ErrorCodes.cpp` (README, "When a target
/// refuses", has the table).
fn code_says(code: u32) -> Says {
    match code {
        // CANNOT_PARSE_TEXT, CANNOT_PARSE_ESCAPE_SEQUENCE,
        // CANNOT_PARSE_QUOTED_STRING, CANNOT_PARSE_INPUT_ASSERTION_FAILED,
        // ATTEMPT_TO_READ_AFTER_EOF, CANNOT_READ_ALL_DATA, CANNOT_PARSE_DATE,
        // CANNOT_PARSE_DATETIME, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND,
        // CANNOT_CONVERT_TYPE, CANNOT_PARSE_NUMBER, INCORRECT_DATA,
        // TOO_LARGE_STRING_SIZE, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
        // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN.
        6 | 25 | 26 | 27 | 32 | 33 | 38 | 41 | 53 | 69 | 70 | 72 | 117 | 131 | 321 | 349 => Says::Data,
        // UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD,
        // IP_ADDRESS_NOT_ALLOWED, DATABASE_ACCESS_DENIED, ACCESS_DENIED,
        // AUTHENTICATION_FAILED.
        192 | 193 | 194 | 195 | 291 | 497 | 516 => Says::Target(FailureKind::Auth),
        // UNKNOWN_TABLE, UNKNOWN_DATABASE.
        60 | 81 => Says::Target(FailureKind::Missing),
        // NO_SUCH_COLUMN_IN_TABLE, SYNTAX_ERROR, UNKNOWN_FORMAT,
        // UNKNOWN_SETTING, READONLY, QUOTA_EXPIRED, TABLE_IS_READ_ONLY,
        // NOT_ENOUGH_SPACE, TOO_MANY_PARTS.
        16 | 62 | 73 | 115 | 164 | 201 | 242 | 243 | 252 => Says::Target(FailureKind::Refusing),
        // TOO_MANY_SIMULTANEOUS_QUERIES.
        202 => Says::Target(FailureKind::Throttled),
        _ => Says::Nothing,
    }
}

/// The code of a `Code: N, ...` (18.16) or `Code: N. DB::Exception`
/// (later releases) body.
fn exception_code(body: &[u8]) -> Option<u32> {
    let head = &body[..body.len().min(256)];
    let at = memchr::memmem::find(head, b"Code: ")? + 6;
    let digits = head[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&head[at..at + digits]).ok()?.parse().ok()
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Origin, Span};
    use std::sync::Arc;

    fn parsed(lines: &[&str]) -> Batch {
        let mut data = Vec::new();
        let mut events = Vec::new();
        for l in lines {
            events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
            data.extend_from_slice(l.as_bytes());
        }
        let mut b = Batch::new(data, events);
        let mut out = Vec::new();
        sluice_core::Stage::process(
            &mut sluice_parse::ParseStage::new(&sluice_core::Registry::new()),
            b,
            &mut out,
        );
        b = out.pop().expect("one batch");
        b
    }

    #[test]
    fn a_frame_is_sized_from_the_rows_before_it_not_grown_to_twice_its_need() {
        // A memory buffer counts a frame's bytes; grown by doubling, the
        // frames held up to twice that (the node path with a 64 MiB memory
        // buffer peaked at 246-277 MB, sized from the last batch 200-209).
        let line = r#"{"ts":"2026-11-25T10:00:00Z","level":"INFO","service":"web","msg":"request done","trace_id":"0123456789abcdef"}"#;
        let batch = parsed(&[line; 500]);
        let mut encoder = ClickhouseEncoder::new(&sluice_config::default_ch_columns());
        let mut first = Frame::default();
        encoder.encode(&batch, &mut first);
        let mut second = Frame::default();
        encoder.encode(&batch, &mut second);
        assert_eq!(second.bytes, first.bytes);
        let (len, capacity) = (second.bytes.len(), second.bytes.capacity());
        assert!(
            capacity >= len && capacity <= len + len / 8 + 64,
            "{capacity} for {len}"
        );
        assert_eq!(second.ends.capacity(), 500);
    }

    #[test]
    fn rows_carry_every_column_with_typed_defaults() {
        let mut b = parsed(&[
            r#"{"ts":"2026-11-25T10:00:00.5Z","level":"ERROR","service":"pay","status":503,"duration_ms":12.5,"msg":"a \"q\"","trace_id":"t1","route":"/v1/x/{id}"}"#,
            "plain text line",
            r#"{"service":"relay","namespace":"edge"}"#,
            // Sampled by an upstream sluice (the aggregator's case).
            r#"{"service":"relay","sample_rate":20}"#,
        ]);
        let o = b.add_origin(Arc::new(Origin {
            stream_key: 1,
            fields_json: r#""namespace":"shop","pod":"api-1","container":"api""#.into(),
            default_service: Some("api".into()),
            namespace: None,
        }));
        b.events_mut()[1].origin = o;
        // The record's own namespace wins over its origin's.
        b.events_mut()[2].origin = o;
        // As the budget stage keeps an event: the pair, and the slot.
        b.append_field(1, "sample_rate", b"4");
        b.events_mut()[1].fields[Field::SampleRate as usize] = sluice_core::FieldValue::Float(4.0);
        let mut enc = ClickhouseEncoder::new(&sluice_config::default_ch_columns());
        enc.now = 1_795_604_400_000_000_000; // 2026-11-25T11:00:00Z
        let mut frame = Frame::default();
        for e in b.events() {
            enc.row(&b, e, &mut frame.bytes);
            frame.finish_record();
        }
        let rows: Vec<serde_json::Value> = frame.records().map(|r| serde_json::from_slice(r).unwrap()).collect();
        assert_eq!(
            rows[0],
            serde_json::json!({"container":"","duration_ms":12.5,"env":"","error_type":"","level":"ERROR",
                "message":"a \"q\"","namespace":"","pod":"","raw":r#"{"ts":"2026-11-25T10:00:00.5Z","level":"ERROR","service":"pay","status":503,"duration_ms":12.5,"msg":"a \"q\"","trace_id":"t1","route":"/v1/x/{id}"}"#,
                "request_id":"","route":"/v1/x/{id}","sample_rate":1.0,"service":"pay","status":503,
                "trace_id":"t1","ts":1_795_600_800})
        );
        assert_eq!(
            rows[1],
            serde_json::json!({"container":"api","duration_ms":0,"env":"","error_type":"","level":"",
                "message":"plain text line","namespace":"shop","pod":"api-1",
                "raw":r#"{"message":"plain text line","service":"api","namespace":"shop","pod":"api-1","container":"api","sample_rate":4}"#,
                "request_id":"","route":"","sample_rate":4.0,"service":"api","status":0,
                "trace_id":"","ts":1_795_604_400})
        );
        assert_eq!(
            (rows[2]["namespace"].as_str(), rows[2]["pod"].as_str()),
            (Some("edge"), Some("api-1"))
        );
        assert_eq!(rows[3]["sample_rate"].as_f64(), Some(20.0));
    }

    fn answer(status: u16, code_header: Option<&str>, body: &str) -> http::Answer {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(code) = code_header {
            headers.insert("x-clickhouse-exception-code", code.parse().unwrap());
        }
        http::Answer {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn exception_codes_decide_before_statuses() {
        let parse = "Code: 41, e.displayText() = DB::Exception: Cannot read DateTime";
        // 18.16 answers a bad row with a 500, later releases with a 400.
        for status in [400, 500] {
            assert_eq!(
                classify(&answer(status, None, parse)),
                SendResult::rejected(Blame::Record, format!("HTTP {status}: {parse}"))
            );
        }
        let cases = [
            (
                404,
                "Code: 60, e.displayText() = DB::Exception: Table default.logs doesn't exist.",
                FailureKind::Missing,
            ),
            (
                404,
                "Code: 81. DB::Exception: Database nope doesn't exist. (UNKNOWN_DATABASE)",
                FailureKind::Missing,
            ),
            (
                401,
                "Code: 193, e.displayText() = DB::Exception: Wrong password for user default",
                FailureKind::Auth,
            ),
            (
                500,
                "Code: 193, e.displayText() = DB::Exception: Wrong password for user default",
                FailureKind::Auth,
            ),
            (
                403,
                "Code: 497. DB::Exception: sluice: Not enough privileges. (ACCESS_DENIED)",
                FailureKind::Auth,
            ),
            (
                500,
                "Code: 164, e.displayText() = DB::Exception: Cannot insert: readonly mode",
                FailureKind::Refusing,
            ),
            (
                500,
                "Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)",
                FailureKind::Refusing,
            ),
            (
                500,
                "Code: 202. DB::Exception: Too many simultaneous queries",
                FailureKind::Throttled,
            ),
            (
                500,
                "Code: 241, e.displayText() = DB::Exception: Memory limit exceeded",
                FailureKind::Server,
            ),
            // An exception after the headers went out: a 200 that stored nothing.
            (
                200,
                "Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)",
                FailureKind::Server,
            ),
        ];
        for (status, body, kind) in cases {
            assert_eq!(
                classify(&answer(status, None, body)),
                SendResult::failed(kind, format!("HTTP {status}: {body}")),
                "{body}"
            );
        }
        // The header wins over the body, and an empty 200 is a success.
        assert_eq!(
            classify(&answer(200, Some("60"), "")),
            SendResult::failed(FailureKind::Missing, "HTTP 200: ")
        );
        assert_eq!(classify(&answer(200, None, "")), SendResult::Accepted);
        // No code: the status decides.
        assert_eq!(
            classify(&answer(401, None, "Unauthorized")),
            SendResult::failed(FailureKind::Auth, "HTTP 401: Unauthorized")
        );
        assert_eq!(
            classify(&answer(502, None, "bad gateway")),
            SendResult::failed(FailureKind::Server, "HTTP 502: bad gateway")
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we`ird"), "`we\\`ird`");
    }
}
