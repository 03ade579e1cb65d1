//! The delivery loop every storage sink shares: intake encodes pipeline
//! batches into frames and buffers them; delivery takes a request's worth of
//! frames, sends it through the sink's [`Transport`] with retries, backoff
//! and the circuit breaker, splits a request the target refuses as bad data
//! until the refusing record is found and dead-lettered, and commits what
//! was delivered. A target that refuses everyone (see [`crate::outcome`])
//! is retried like an outage: its data waits in the buffer, never in the
//! dead-letter file.
//!
//! At the end of the input the buffer is drained; if the target stays down,
//! delivery gives up after `shutdown_timeout`: a memory buffer reports its
//! batches undelivered (their sources re-read them next start), a disk
//! buffer keeps them for the next run.

use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::metric_names;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::DeliveryConfig;
use sluice_core::{Batch, Counter, HistogramSeries, SinkContext, SinkError, SinkSummary};

use crate::buffer::{Buffer, Pushed};
use crate::frame::Frame;
use crate::outcome::TargetHealth;
pub use crate::outcome::{Blame, Failure, FailureKind, Rejection, SendResult};
use crate::resilience::{Backoff, Breaker};

/// Sends requests to one target.
pub trait Transport: Send + 'static {
    /// Send `records` (each one encoded record) as one request.
    fn send(&mut self, records: &[&[u8]]) -> impl Future<Output = SendResult> + Send;

    /// The record as it should appear in the dead-letter file.
    fn describe<'a>(&self, record: &'a [u8]) -> &'a [u8] {
        record
    }
}

/// Turns pipeline batches into frames of records in the target's form.
pub trait Encoder: Send + 'static {
    /// Append one record per event of `batch` to `frame`.
    fn encode(&mut self, batch: &Batch, frame: &mut Frame);
}

/// The records a target refused for themselves, one JSON line each.
struct DeadLetters {
    path: PathBuf,
    file: Option<std::fs::File>,
    sink: String,
    counter: Counter,
    /// When a dead letter was last logged, and how many were written since
    /// without a line of their own: one line per record would bury the
    /// log under a burst of refusals.
    logged_at: Option<Instant>,
    unlogged: u64,
}

/// How often dead-lettering is logged at most.
const DEAD_LETTER_LOG_EVERY: Duration = Duration::from_secs(10);

impl DeadLetters {
    fn write(&mut self, record: &[u8], reason: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                sluice_state::create_dir(dir)?;
            }
            self.file = Some(
                sluice_state::open_options()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let mut line = Vec::with_capacity(record.len() + reason.len() + 64);
        line.extend_from_slice(b"{\"sink\":");
        sluice_core::encode::write_json_string(self.sink.as_bytes(), &mut line);
        line.extend_from_slice(b",\"reason\":");
        sluice_core::encode::write_json_string(reason.as_bytes(), &mut line);
        line.extend_from_slice(b",\"record\":");
        let trimmed = record.strip_suffix(b"\n").unwrap_or(record);
        sluice_core::encode::write_json_string(trimmed, &mut line);
        line.extend_from_slice(b"}\n");
        self.file.as_mut().expect("opened above").write_all(&line)?;
        self.counter.inc();
        let now = Instant::now();
        if self
            .logged_at
            .is_some_and(|t| now.duration_since(t) < DEAD_LETTER_LOG_EVERY)
        {
            self.unlogged += 1;
        } else {
            let also = std::mem::take(&mut self.unlogged);
            self.logged_at = Some(now);
            tracing::warn!(sink = %self.sink, reason, path = %self.path.display(), more_since_last_line = also,
                "record refused by the target for itself, dead-lettered");
        }
        Ok(())
    }
}

struct Counters {
    sent_events: Counter,
    sent_bytes: Counter,
    retries: Counter,
    timeouts: Counter,
    latency: HistogramSeries,
}

/// Bucket bounds of `sink_request_duration_seconds`, in milliseconds: a
/// local ClickHouse answers in single-digit ms, a remote store under load
/// in seconds, and `request_timeout` defaults to 30 s.
const LATENCY_BOUNDS_MS: [f64; 12] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

impl Counters {
    /// Count one request's time in the histogram (cumulative buckets).
    fn observe_latency(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        for (bound, bucket) in LATENCY_BOUNDS_MS.iter().zip(&self.latency.buckets) {
            if ms as f64 <= *bound {
                bucket.inc();
            }
        }
        // `+Inf`, last.
        if let Some(inf) = self.latency.buckets.last() {
            inf.inc();
        }
        self.latency.sum.add(ms);
        self.latency.count.inc();
    }
}

/// The delivery side of one sink.
struct Delivery<T> {
    transport: T,
    cfg: DeliveryConfig,
    breaker: Breaker,
    backoff: Backoff,
    dead: DeadLetters,
    counters: Counters,
    health: TargetHealth,
    /// An unexplained refusal that every record of a request got: while the
    /// target answers with it, it is refusing everyone (no bisection, no
    /// dead letters). Cleared once the target stores anything.
    refuses_everyone: Option<String>,
    /// The run's signal: delivery gives up `shutdown_timeout` after it.
    shutdown: sluice_core::Shutdown,
    summary: SinkSummary,
}

/// Why a request was given up.
enum GaveUp {
    /// The shutdown deadline passed with the target still failing; the
    /// indices of the records neither stored nor dead-lettered yet.
    Deadline(Vec<usize>),
    /// A refused record could not be written to the dead-letter file: it
    /// exists nowhere else, so the request stays undelivered.
    DeadLetters(std::io::Error),
}

impl<T: Transport> Delivery<T> {
    /// Send `records` until each is stored or dead-lettered; `Err` when the
    /// shutdown deadline passed first or a dead letter could not be kept.
    async fn deliver(&mut self, records: &[&[u8]], buffer: &Buffer) -> Result<(), GaveUp> {
        let whole: Vec<usize> = (0..records.len()).collect();
        let mut groups: Vec<Vec<usize>> = vec![whole.clone()];
        // Single records refused for an unclear reason: dead-lettered once
        // the request is settled, unless every record of it was refused for
        // that same reason (then the target refuses everyone).
        let mut doubtful: Vec<(usize, String)> = Vec::new();
        let mut request: Vec<&[u8]> = Vec::new();
        loop {
            let Some(mut group) = groups.pop() else {
                if let Some(reason) = refused_alike(&doubtful, records.len()) {
                    let failure = Failure {
                        kind: FailureKind::Refusing,
                        reason: format!(
                            "all {} records of a request refused for one reason: {reason}",
                            records.len()
                        ),
                    };
                    self.refuses_everyone = Some(reason);
                    doubtful.clear();
                    self.failed(&failure, buffer).await;
                    groups.push(whole.clone());
                    continue;
                }
                for (i, reason) in doubtful.drain(..) {
                    self.dead_letter(records[i], &reason)?;
                }
                return Ok(());
            };
            loop {
                let now = Instant::now();
                if self.deadline(buffer).is_some_and(|d| now >= d) {
                    let mut pending: Vec<usize> = group;
                    pending.extend(groups.into_iter().flatten());
                    pending.extend(doubtful.into_iter().map(|(i, _)| i));
                    pending.sort_unstable();
                    return Err(GaveUp::Deadline(pending));
                }
                let wait = self.breaker.wait(now);
                if !wait.is_zero() {
                    self.pause(now + wait, buffer).await;
                    continue;
                }
                request.clear();
                request.extend(group.iter().map(|&i| records[i]));
                let sent_at = Instant::now();
                let result = self.transport.send(&request).await;
                self.counters.observe_latency(sent_at.elapsed());
                tracing::debug!(records = request.len(), took = ?sent_at.elapsed(), ?result, "request");
                match result {
                    SendResult::Accepted => {
                        self.stored(&request);
                        break;
                    }
                    SendResult::Rejected(r)
                        if r.blame == Blame::Unclear && self.refuses_everyone.as_ref() == Some(&r.reason) =>
                    {
                        let failure = Failure {
                            kind: FailureKind::Refusing,
                            reason: format!("every record refused for one reason: {}", r.reason),
                        };
                        self.failed(&failure, buffer).await;
                    }
                    SendResult::Rejected(r) => {
                        // The target is up and judging the data.
                        self.breaker.success();
                        if r.blame == Blame::Record {
                            self.health.answered(Instant::now());
                        }
                        if group.len() > 1 {
                            // Find the record at fault.
                            let second = group.split_off(group.len() / 2);
                            groups.push(second);
                            groups.push(group);
                        } else if r.blame == Blame::Record {
                            self.dead_letter(records[group[0]], &r.reason)?;
                        } else {
                            doubtful.push((group[0], r.reason));
                        }
                        break;
                    }
                    SendResult::Partial {
                        retry,
                        rejected,
                        failure,
                    } => {
                        for (i, reason) in &rejected {
                            self.dead_letter(request[*i], reason)?;
                        }
                        let stored: Vec<&[u8]> = (0..request.len())
                            .filter(|i| !retry.contains(i) && !rejected.iter().any(|(r, _)| r == i))
                            .map(|i| request[i])
                            .collect();
                        match &failure {
                            // The target is judging the records one by one.
                            None if stored.is_empty() => self.breaker.success(),
                            None => self.stored(&stored),
                            // Some went in, but the rest fail for the
                            // target's reasons: the episode (and the
                            // growing backoff) goes on.
                            Some(_) => self.count_stored(&stored),
                        }
                        if retry.is_empty() {
                            break;
                        }
                        group = retry.iter().map(|&i| group[i]).collect();
                        match failure {
                            Some(failure) => self.failed(&failure, buffer).await,
                            None => {
                                self.counters.retries.inc();
                                let delay = self.backoff.next_delay();
                                self.pause(Instant::now() + delay, buffer).await;
                            }
                        }
                    }
                    SendResult::Failed(failure) => self.failed(&failure, buffer).await,
                }
            }
        }
    }

    /// When delivery gives up on a failing target: `shutdown_timeout` after
    /// the signal, or after the input ended, whichever came first.
    fn deadline(&self, buffer: &Buffer) -> Option<Instant> {
        let since = match (buffer.closed_at(), self.shutdown.triggered_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        since.map(|t| t + self.cfg.shutdown_timeout)
    }

    /// Wait until `until`, the deadline, or a shutdown signal (which may
    /// bring the deadline closer), whichever comes first.
    async fn pause(&mut self, until: Instant, buffer: &Buffer) {
        let until = self.deadline(buffer).map_or(until, |d| until.min(d));
        let mut shutdown = self.shutdown.clone();
        let signalled = self.shutdown.is_triggered();
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            () = shutdown.wait(), if !signalled => {}
        }
    }

    /// A request failed as a whole: count and report it, pace the retry.
    async fn failed(&mut self, failure: &Failure, buffer: &Buffer) {
        self.counters.retries.inc();
        if failure.kind == FailureKind::Timeout {
            self.counters.timeouts.inc();
        }
        let now = Instant::now();
        self.breaker.failure(now);
        let delay = self.backoff.next_delay();
        self.health.failed(failure, delay, now);
        self.pause(now + delay, buffer).await;
    }

    /// The target stored `records`: it is taking requests.
    fn stored(&mut self, records: &[&[u8]]) {
        self.breaker.success();
        self.backoff.reset();
        self.health.answered(Instant::now());
        self.refuses_everyone = None;
        self.count_stored(records);
    }

    fn count_stored(&mut self, records: &[&[u8]]) {
        let bytes: usize = records.iter().map(|r| r.len()).sum();
        self.counters.sent_events.add(records.len() as u64);
        self.counters.sent_bytes.add(bytes as u64);
        self.summary.events += records.len() as u64;
        self.summary.bytes += bytes as u64;
    }

    fn dead_letter(&mut self, record: &[u8], reason: &str) -> Result<(), GaveUp> {
        let shown = self.transport.describe(record);
        self.dead.write(shown, reason).map_err(GaveUp::DeadLetters)?;
        self.summary.dead_lettered += 1;
        Ok(())
    }
}

/// The reason every one of a request's `n` records was refused for, when
/// there is one and the request had more than one record (a single record
/// cannot tell a bad record from a target that refuses everyone).
fn refused_alike(doubtful: &[(usize, String)], n: usize) -> Option<String> {
    let (_, first) = doubtful.first()?;
    (n > 1 && doubtful.len() == n && doubtful.iter().all(|(_, r)| r == first)).then(|| first.clone())
}

/// Everything a storage sink needs besides its encoder and transport.
pub struct SinkParts {
    /// From the runtime.
    pub ctx: SinkContext,
    /// Batching, retries, buffer.
    pub cfg: DeliveryConfig,
    /// The data directory (disk buffer and dead letters live under it).
    pub data_dir: PathBuf,
}

/// Run a storage sink to the end of its input. See the module docs.
pub async fn run_sink<E: Encoder, T: Transport>(
    parts: SinkParts,
    mut encoder: E,
    transport: T,
) -> Result<SinkSummary, SinkError> {
    let SinkParts { mut ctx, cfg, data_dir } = parts;
    let id = ctx.id.clone();
    let io_err = |action: &'static str| {
        let id = id.clone();
        move |source: std::io::Error| SinkError::Write {
            id: id.clone(),
            action,
            source,
        }
    };
    let buffer_dir = data_dir.join("buffer").join(&id);
    let buffer = Arc::new(
        Buffer::open(&cfg.buffer, &buffer_dir, &ctx.registry, &id).map_err(io_err("opening the disk buffer"))?,
    );
    let labels = [("sink", id.as_str())];
    let r = &ctx.registry;
    let mut delivery = Delivery {
        transport,
        breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_open_for, r, &id),
        backoff: Backoff::new(cfg.retry_initial_backoff, cfg.retry_max_backoff),
        dead: DeadLetters {
            path: cfg
                .dead_letter_path
                .clone()
                .unwrap_or_else(|| data_dir.join("dead_letter").join(format!("{id}.ndjson"))),
            file: None,
            logged_at: None,
            unlogged: 0,
            sink: id.clone(),
            counter: r.counter(
                "sink_rejected_events_total",
                "Records a target refused for themselves, written to the dead-letter file.",
                &labels,
            ),
        },
        counters: Counters {
            sent_events: r.counter("sink_sent_events_total", "Events a target accepted.", &labels),
            sent_bytes: r.counter("sink_sent_bytes_total", "Encoded bytes a target accepted.", &labels),
            retries: r.counter(
                metric_names::SINK_RETRIES_TOTAL,
                "Requests sent again after a failure.",
                &labels,
            ),
            timeouts: r.counter(metric_names::SINK_TIMEOUTS_TOTAL, "Requests that timed out.", &labels),
            latency: r.histogram_ms_as_seconds(
                metric_names::SINK_REQUEST_DURATION_SECONDS,
                "Time from sending a request to its answer (or its failure), by sink.",
                &labels,
                &LATENCY_BOUNDS_MS,
            ),
        },
        health: TargetHealth::new(r, &id),
        refuses_everyone: None,
        shutdown: ctx.shutdown.clone(),
        cfg: cfg.clone(),
        summary: SinkSummary::default(),
    };
    component_metrics::sent_events(r, ComponentKind::Sink, &id, &delivery.counters.sent_events);
    component_metrics::errors(r, ComponentKind::Sink, &id, "rejected_record", &delivery.dead.counter);

    // Intake: its own task, so encoding and buffering go on while a request
    // is in flight.
    let intake_buffer = Arc::clone(&buffer);
    let intake_id = id.clone();
    let intake = tokio::spawn(async move {
        let (mut dropped, mut refused) = ((0u64, 0u64), 0u64);
        let mut result = Ok(());
        while let Some(batch) = ctx.input.recv().await {
            let mut frame = Frame::default();
            encoder.encode(&batch, &mut frame);
            let events = batch.len() as u64;
            match intake_buffer.push(frame, batch).await {
                Ok(Pushed::Stored) => {}
                Ok(Pushed::Dropped) => {
                    dropped.0 += 1;
                    dropped.1 += events;
                }
                Ok(Pushed::Abandoned) => refused += events,
                Err(e) => {
                    result = Err(SinkError::Write {
                        id: intake_id.clone(),
                        action: "writing the disk buffer",
                        source: e,
                    });
                    break;
                }
            }
        }
        // Anything still queued in the channel is dropped undelivered with
        // it (only after a buffer error), which fails its claims.
        intake_buffer.close();
        (result, dropped, refused)
    });

    let max_bytes = cfg.batch_max_bytes.0;
    let mut abandoned = 0;
    let mut failure: Option<SinkError> = None;
    loop {
        let taken = match buffer.take(max_bytes, cfg.batch_max_events, cfg.batch_timeout).await {
            Ok(Some(taken)) => taken,
            Ok(None) => break,
            Err(e) => {
                failure = Some(io_err("reading the disk buffer")(e));
                break;
            }
        };
        let records: Vec<&[u8]> = taken.frames.iter().flat_map(Frame::records).collect();
        let outcome = delivery.deliver(&records, &buffer).await;
        let events = taken.records() as u64;
        // Part of a request stored before the deadline (a split one): a
        // disk buffer keeps only the rest, so the next run does not send
        // the stored part again.
        let requeued = match &outcome {
            Err(GaveUp::Deadline(pending)) if pending.len() < records.len() && buffer.is_disk() => {
                let rest: Vec<&[u8]> = pending.iter().map(|&i| records[i]).collect();
                // No room for it: the whole request stays (sent again).
                buffer.requeue(&rest).ok().map(|()| rest.len())
            }
            _ => None,
        };
        drop(records);
        if let Some(left) = requeued {
            tracing::error!(sink = %id, records_left = left,
                "target still failing after shutdown_timeout: the disk buffer keeps the part of the request not stored yet");
            if let Err(e) = buffer.commit(taken) {
                failure = Some(io_err("committing the disk buffer")(e));
            }
            match buffer.abandon(None) {
                Ok(n) => abandoned = n,
                Err(e) => failure = failure.or(Some(io_err("closing the disk buffer")(e))),
            }
            break;
        }
        let gave_up = match outcome {
            Ok(()) => match buffer.commit(taken) {
                Ok(()) => continue,
                Err(e) => {
                    failure = Some(io_err("committing the disk buffer")(e));
                    None
                }
            },
            Err(GaveUp::Deadline(_)) => {
                tracing::error!(
                    sink = %id,
                    events_in_request = events,
                    "target still failing after shutdown_timeout: a memory buffer's events are not delivered (their sources read them again next start), a disk buffer keeps them"
                );
                Some(taken)
            }
            Err(GaveUp::DeadLetters(e)) => {
                failure = Some(io_err("writing the dead-letter file")(e));
                Some(taken)
            }
        };
        // No more deliveries: what is held fails (memory) or stays (disk),
        // and intake refuses the rest.
        match buffer.abandon(gave_up) {
            Ok(n) => abandoned = n,
            Err(e) => failure = failure.or(Some(io_err("closing the disk buffer")(e))),
        }
        break;
    }
    if failure.is_some() {
        // Ended early on an error: make sure nothing waits on delivery.
        abandoned += buffer.abandon(None).unwrap_or(0);
    }
    let held = buffer.finish().map_err(io_err("closing the disk buffer"))?;
    let (intake_result, dropped, refused) = intake.await.unwrap_or((Ok(()), (0, 0), 0));
    if let Some(e) = failure {
        return Err(e);
    }
    intake_result?;
    let mut summary = delivery.summary;
    (summary.dropped_batches, summary.dropped_events) = dropped;
    summary.abandoned_events = abandoned + refused;
    summary.held_bytes = held;
    summary.quarantined_bytes = buffer.quarantined_bytes();
    Ok(summary)
}

/// How long an HTTP sink waits for a connection, apart from the request
/// timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
