//! The delivery loop against scripted targets: what is stored, what is
//! dead-lettered, what is counted and how each batch is acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_config::DeliveryConfig;
use sluice_core::ack::{self, AckStatus};
use sluice_core::{Batch, Event, Registry, SinkBatch, Span};
use tokio::sync::mpsc;

use super::*;

/// One record per event: its line.
struct Lines;

impl Encoder for Lines {
    fn encode(&mut self, batch: &Batch, frame: &mut Frame) {
        for event in batch.events() {
            frame.bytes.extend_from_slice(batch.line(event));
            frame.finish_record();
        }
    }
}

/// A target that answers the n-th request (from 0) as `answer` says and
/// keeps what it accepted.
struct Scripted<F> {
    answer: F,
    requests: usize,
    stored: Arc<Mutex<Vec<String>>>,
}

impl<F: FnMut(usize, &[&[u8]]) -> SendResult + Send + 'static> Transport for Scripted<F> {
    async fn send(&mut self, records: &[&[u8]]) -> SendResult {
        let n = self.requests;
        self.requests += 1;
        let result = (self.answer)(n, records);
        let mut stored = self.stored.lock().unwrap();
        match &result {
            SendResult::Accepted => {
                stored.extend(records.iter().map(|r| String::from_utf8_lossy(r).into_owned()));
            }
            SendResult::Partial { retry, rejected, .. } => stored.extend(
                (0..records.len())
                    .filter(|i| !retry.contains(i) && !rejected.iter().any(|(r, _)| r == i))
                    .map(|i| String::from_utf8_lossy(records[i]).into_owned()),
            ),
            _ => {}
        }
        result
    }
}

fn fast_delivery() -> DeliveryConfig {
    DeliveryConfig {
        batch_timeout: Duration::from_millis(5),
        retry_initial_backoff: Duration::from_millis(1),
        retry_max_backoff: Duration::from_millis(4),
        breaker_open_for: Duration::from_millis(4),
        shutdown_timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    }
}

struct Run {
    summary: SinkSummary,
    stored: Vec<String>,
    acks: Vec<AckStatus>,
    registry: Registry,
    dead_letters: Vec<String>,
}

/// Push `lines` (one batch of `per_batch` lines each) through a sink on
/// `transport`'s answers and return what happened.
async fn run(
    cfg: DeliveryConfig,
    lines: &[String],
    per_batch: usize,
    answer: impl FnMut(usize, &[&[u8]]) -> SendResult + Send + 'static,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let (tx, rx) = mpsc::channel(1024);
    let (ack_tx, mut ack_rx) = ack::channel();
    for (seq, chunk) in lines.chunks(per_batch).enumerate() {
        let mut data = Vec::new();
        let mut events = Vec::new();
        for l in chunk {
            events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
            data.extend_from_slice(l.as_bytes());
        }
        let mut b = Batch::new(data, events);
        b.add_ack(ack_tx.token(seq as u64));
        tx.send(SinkBatch::sole(b)).await.unwrap();
    }
    drop(tx);
    let stored = Arc::new(Mutex::new(Vec::new()));
    let transport = Scripted {
        answer,
        requests: 0,
        stored: Arc::clone(&stored),
    };
    let parts = SinkParts {
        ctx: SinkContext {
            id: "t".into(),
            input: rx,
            registry: registry.clone(),
            shutdown: sluice_core::Shutdown::new(),
        },
        cfg,
        data_dir: dir.path().to_path_buf(),
    };
    let summary = run_sink(parts, Lines, transport).await.unwrap();
    drop(ack_tx);
    let mut acks = Vec::new();
    while let Some(a) = ack_rx.try_recv() {
        acks.push(a.status);
    }
    let dead_letters = std::fs::read_to_string(dir.path().join("dead_letter/t.ndjson"))
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default();
    let stored = stored.lock().unwrap().clone();
    Run {
        summary,
        stored,
        acks,
        registry,
        dead_letters,
    }
}

fn lines(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"seq\":{i}}}")).collect()
}

fn target_errors(r: &Registry, kind: &str) -> i64 {
    r.value("sink_target_errors_total", &[("sink", "t"), ("kind", kind)])
        .unwrap()
}

#[tokio::test]
async fn a_missing_table_holds_the_data_until_it_exists_and_dead_letters_nothing() {
    let input = lines(500);
    let r = run(fast_delivery(), &input, 100, |n, _| {
        if n < 6 {
            SendResult::failed(
                FailureKind::Missing,
                "HTTP 404: Code: 60. Table default.logs doesn't exist",
            )
        } else {
            SendResult::Accepted
        }
    })
    .await;
    let mut stored = r.stored.clone();
    stored.sort();
    let mut expected = input.clone();
    expected.sort();
    assert_eq!(stored, expected, "every record once");
    assert_eq!(r.summary.dead_lettered, 0);
    assert!(r.dead_letters.is_empty());
    assert_eq!(target_errors(&r.registry, "missing"), 6);
    assert_eq!(target_errors(&r.registry, "auth"), 0);
    assert_eq!(r.registry.value("sink_target_failing", &[("sink", "t")]), Some(0));
    assert_eq!(r.acks, vec![AckStatus::Delivered; 5]);
}

#[tokio::test]
async fn every_record_refused_for_one_unexplained_reason_is_an_unavailable_target() {
    // A 4xx the sink cannot read: the first requests are split down to
    // single records, all refused alike, so the target refuses everyone.
    let input = lines(8);
    let r = run(fast_delivery(), &input, 8, |n, _| {
        if n < 40 {
            SendResult::rejected(Blame::Unclear, "HTTP 400: the gateway says no")
        } else {
            SendResult::Accepted
        }
    })
    .await;
    assert_eq!(r.summary.dead_lettered, 0);
    assert!(r.dead_letters.is_empty());
    assert_eq!(r.stored.len(), 8);
    assert!(target_errors(&r.registry, "refusing") >= 2, "counted as the target's");
    // The first search took 15 requests (8 records); after it, each retry
    // is one whole request, never split again: 15 + 25 refused = 40.
    assert_eq!(
        target_errors(&r.registry, "refusing"),
        1 + 25,
        "one for the search, then one per whole-request retry"
    );
}

#[tokio::test]
async fn a_record_the_target_blames_is_found_and_dead_lettered_alone() {
    let input = lines(64);
    let r = run(fast_delivery(), &input, 64, |_, records| {
        if records.iter().any(|r| r == b"{\"seq\":37}") {
            SendResult::rejected(Blame::Record, "HTTP 400: Code: 41. Cannot parse DateTime")
        } else {
            SendResult::Accepted
        }
    })
    .await;
    assert_eq!(r.stored.len(), 63);
    assert!(!r.stored.contains(&"{\"seq\":37}".to_string()));
    assert_eq!(r.summary.dead_lettered, 1);
    assert_eq!(
        r.dead_letters,
        vec![r#"{"sink":"t","reason":"HTTP 400: Code: 41. Cannot parse DateTime","record":"{\"seq\":37}"}"#]
    );
    assert_eq!(r.registry.total("sink_target_errors_total"), 0);
}

#[tokio::test]
async fn unexplained_refusals_of_some_records_still_dead_letter_them() {
    // Two of eight refused alike, the rest stored: bad records, not a
    // target refusing everyone.
    let input = lines(8);
    let r = run(fast_delivery(), &input, 8, |_, records| {
        if records.iter().any(|r| r == b"{\"seq\":2}" || r == b"{\"seq\":5}") {
            SendResult::rejected(Blame::Unclear, "HTTP 400: no")
        } else {
            SendResult::Accepted
        }
    })
    .await;
    assert_eq!(r.stored.len(), 6);
    assert_eq!(r.summary.dead_lettered, 2);
    assert_eq!(r.registry.total("sink_target_errors_total"), 0);
}

#[tokio::test]
async fn a_target_that_never_takes_the_data_fails_every_acknowledgement_at_the_deadline() {
    let input = lines(300);
    let cfg = DeliveryConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..fast_delivery()
    };
    let r = run(cfg, &input, 100, |_, _| {
        SendResult::failed(
            FailureKind::Auth,
            "HTTP 401: Code: 193. Wrong password for user default",
        )
    })
    .await;
    assert!(r.stored.is_empty());
    assert_eq!(r.summary.dead_lettered, 0);
    assert_eq!(r.summary.abandoned_events, 300);
    assert_eq!(r.acks, vec![AckStatus::Failed; 3]);
    assert!(target_errors(&r.registry, "auth") >= 2);
    assert_eq!(r.registry.value("sink_target_failing", &[("sink", "t")]), Some(1));
}

#[tokio::test]
async fn items_failed_for_the_target_are_retried_while_the_others_are_stored() {
    // An Elasticsearch-like target whose index for odd records is missing
    // for the first three requests.
    let input = lines(10);
    let r = run(fast_delivery(), &input, 10, |n, records| {
        if n >= 3 {
            return SendResult::Accepted;
        }
        let retry: Vec<usize> = (0..records.len())
            .filter(|&i| {
                let s = String::from_utf8_lossy(records[i]);
                s.trim_end_matches('}')
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u32>()
                    .unwrap()
                    % 2
                    == 1
            })
            .collect();
        SendResult::Partial {
            retry,
            rejected: vec![],
            failure: Some(Failure {
                kind: FailureKind::Missing,
                reason: "index_not_found_exception".into(),
            }),
        }
    })
    .await;
    let mut stored = r.stored.clone();
    stored.sort();
    let mut expected = input.clone();
    expected.sort();
    assert_eq!(stored, expected, "each record stored once");
    assert_eq!(r.summary.dead_lettered, 0);
    assert_eq!(target_errors(&r.registry, "missing"), 3);
}

fn batch_of(lines: &[String], acks: &ack::AckSender, seq: u64) -> SinkBatch {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for l in lines {
        events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(l.as_bytes());
    }
    let mut b = Batch::new(data, events);
    b.add_ack(acks.token(seq));
    SinkBatch::sole(b)
}

#[tokio::test]
async fn a_signal_during_an_outage_ends_delivery_at_its_deadline_even_with_intake_blocked() {
    // A memory buffer with room for about one batch, a target down for
    // good, a source still sending when the signal comes: delivery gives
    // up shutdown_timeout after the signal, intake stops waiting for room,
    // and every batch fails (its source reads it again next start).
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let shutdown = sluice_core::Shutdown::new();
    let (tx, rx) = mpsc::channel(2);
    let (ack_tx, mut ack_rx) = ack::channel();
    let mut cfg = fast_delivery();
    cfg.shutdown_timeout = Duration::from_millis(300);
    cfg.buffer.max_bytes = Some(sluice_config::ByteSize(200));
    let parts = SinkParts {
        ctx: SinkContext {
            id: "t".into(),
            input: rx,
            registry: registry.clone(),
            shutdown: shutdown.clone(),
        },
        cfg,
        data_dir: dir.path().to_path_buf(),
    };
    let transport = Scripted {
        answer: |_: usize, _: &[&[u8]]| SendResult::failed(FailureKind::Connection, "connection refused"),
        requests: 0,
        stored: Arc::new(Mutex::new(Vec::new())),
    };
    let sink = tokio::spawn(run_sink(parts, Lines, transport));
    // A source: keeps sending until the signal, then sends what it framed
    // and ends.
    let source_shutdown = shutdown.clone();
    // Returns (batches made, batches the sink received); a batch whose
    // send was abandoned is dropped by the source itself.
    let source = tokio::spawn(async move {
        let (mut made, mut sent) = (0, 0);
        loop {
            let b = batch_of(&lines(10), &ack_tx, made);
            made += 1;
            tokio::select! {
                done = tx.send(b) => {
                    done.unwrap();
                    sent += 1;
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if source_shutdown.is_triggered() {
                        break;
                    }
                }
            }
        }
        tx.send(batch_of(&lines(10), &ack_tx, made)).await.unwrap();
        (made + 1, sent + 1)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let signalled = std::time::Instant::now();
    shutdown.trigger();
    let summary = tokio::time::timeout(Duration::from_secs(5), sink)
        .await
        .expect("the sink ends after its deadline, not never")
        .unwrap()
        .unwrap();
    let took = signalled.elapsed();
    assert!(took >= Duration::from_millis(300), "not before the deadline: {took:?}");
    let (made, sent) = source.await.unwrap();
    let acks: Vec<AckStatus> = std::iter::from_fn(|| ack_rx.try_recv()).map(|a| a.status).collect();
    assert!(sent >= 3, "the source sent before, during and after the wait");
    // Every batch made settled once, none delivered.
    assert_eq!(acks.len() as u64, made, "{acks:?}");
    assert!(acks.iter().all(|a| *a == AckStatus::Failed), "{acks:?}");
    // Each one the sink received is counted as not delivered.
    assert_eq!(summary.abandoned_events, sent * 10);
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_written_leaves_the_request_undelivered() {
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file: no process, root or not, can create it.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let cfg = DeliveryConfig {
        dead_letter_path: Some(dir.path().join("file/dead.ndjson")),
        ..fast_delivery()
    };
    let registry = Registry::new();
    let (tx, rx) = mpsc::channel(8);
    let (ack_tx, mut ack_rx) = ack::channel();
    tx.send(batch_of(&lines(4), &ack_tx, 0)).await.unwrap();
    drop(tx);
    drop(ack_tx);
    let parts = SinkParts {
        ctx: SinkContext {
            id: "t".into(),
            input: rx,
            registry: registry.clone(),
            shutdown: sluice_core::Shutdown::new(),
        },
        cfg,
        data_dir: dir.path().to_path_buf(),
    };
    let transport = Scripted {
        answer: |_: usize, records: &[&[u8]]| {
            if records.iter().any(|r| r == b"{\"seq\":2}") {
                SendResult::rejected(Blame::Record, "HTTP 400: Code: 27. Cannot parse input")
            } else {
                SendResult::Accepted
            }
        },
        requests: 0,
        stored: Arc::new(Mutex::new(Vec::new())),
    };
    let err = run_sink(parts, Lines, transport).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sink `t`: writing the dead-letter file failed"),
        "{err}"
    );
    assert_eq!(ack_rx.recv().await.unwrap().status, AckStatus::Failed);
    assert_eq!(registry.value("sink_rejected_events_total", &[("sink", "t")]), Some(0));
}

#[test]
fn request_latency_lands_in_cumulative_buckets_exposed_in_seconds() {
    let r = Registry::new();
    let counters = Counters {
        sent_events: Counter::default(),
        sent_bytes: Counter::default(),
        retries: Counter::default(),
        timeouts: Counter::default(),
        latency: r.histogram_ms_as_seconds(
            "sink_request_duration_seconds",
            "t",
            &[("sink", "ch")],
            &LATENCY_BOUNDS_MS,
        ),
    };
    for ms in [3, 30, 40_000] {
        counters.observe_latency(Duration::from_millis(ms));
    }
    let bucket = |le: &str| r.value("sink_request_duration_seconds_bucket", &[("sink", "ch"), ("le", le)]);
    assert_eq!(
        ["0.005", "0.025", "0.05", "30", "+Inf"].map(bucket),
        [Some(1), Some(1), Some(2), Some(2), Some(3)]
    );
    let text = r.render_prometheus();
    assert!(
        text.contains("\nsluice_sink_request_duration_seconds_sum{sink=\"ch\"} 40.033\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsluice_sink_request_duration_seconds_count{sink=\"ch\"} 3\n"),
        "{text}"
    );
}
