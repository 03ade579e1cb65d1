//! The delivery loop every storage sink shares: intake encodes pipeline
//! batches into frames and buffers them; delivery takes a request's worth of
//! frames, sends it through the sink's [`Transport`] with retries, backoff
//! and the circuit breaker, splits a request the target refuses as bad data
//! until the refusing record is found and dead-lettered, and commits what
//! was delivered.
//!
//! At the end of the input the buffer is drained; if the target stays down,
//! delivery gives up after `shutdown_timeout`: a memory buffer reports its
//! batches undelivered (their sources re-read them next start), a disk
//! buffer keeps them for the next run.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_config::DeliveryConfig;
use sluice_core::{Batch, Counter};
use sluice_io::{SinkContext, SinkError, SinkSummary};

use crate::buffer::{Buffer, Pushed};
use crate::frame::Frame;
use crate::resilience::{Backoff, Breaker};

/// What a target said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Every record was stored.
    Accepted,
    /// The target judged record by record (Elasticsearch `_bulk`, Kafka):
    /// records at the indices in `retry` failed transiently, those in
    /// `rejected` were refused for themselves (with the reason); the rest
    /// were stored.
    Partial {
        /// Indices (into the request's records) to send again.
        retry: Vec<usize>,
        /// Indices refused for good, with the target's reason.
        rejected: Vec<(usize, String)>,
    },
    /// The target refused the whole request as bad data (a 4xx); some record
    /// in it is at fault.
    Rejected(String),
    /// The request failed transiently (connection, 5xx, 429, timeout).
    Failed {
        /// Why.
        reason: String,
        /// It was a timeout.
        timeout: bool,
    },
}

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
}

impl DeadLetters {
    fn write(&mut self, record: &[u8], reason: &str) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?);
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
        tracing::warn!(sink = %self.sink, reason, path = %self.path.display(), "record rejected by the target, dead-lettered");
        Ok(())
    }
}

struct Counters {
    sent_events: Counter,
    sent_bytes: Counter,
    retries: Counter,
    timeouts: Counter,
}

/// The delivery side of one sink.
struct Delivery<T> {
    transport: T,
    cfg: DeliveryConfig,
    breaker: Breaker,
    backoff: Backoff,
    dead: DeadLetters,
    counters: Counters,
    summary: SinkSummary,
}

/// Why a request was given up.
struct GaveUp;

impl<T: Transport> Delivery<T> {
    /// Send `records` until each is stored or dead-lettered; `Err` when the
    /// shutdown deadline passed first.
    async fn deliver(&mut self, records: &[&[u8]], buffer: &Buffer) -> Result<(), GaveUp> {
        let mut groups: Vec<Vec<usize>> = vec![(0..records.len()).collect()];
        let mut request: Vec<&[u8]> = Vec::new();
        while let Some(mut group) = groups.pop() {
            loop {
                let now = Instant::now();
                let deadline = buffer.closed_at().map(|t| t + self.cfg.shutdown_timeout);
                if deadline.is_some_and(|d| now >= d) {
                    return Err(GaveUp);
                }
                let wait = self.breaker.wait(now);
                if !wait.is_zero() {
                    sleep_until_or(now + wait, deadline).await;
                    continue;
                }
                request.clear();
                request.extend(group.iter().map(|&i| records[i]));
                let sent_at = Instant::now();
                let result = self.transport.send(&request).await;
                tracing::debug!(records = request.len(), took = ?sent_at.elapsed(), ?result, "request");
                match result {
                    SendResult::Accepted => {
                        self.stored(&request);
                        break;
                    }
                    SendResult::Rejected(_) if group.len() > 1 => {
                        // The target is up; find the record at fault.
                        self.breaker.success();
                        let second = group.split_off(group.len() / 2);
                        groups.push(second);
                        groups.push(group);
                        break;
                    }
                    SendResult::Rejected(reason) => {
                        self.breaker.success();
                        self.dead_letter(records[group[0]], &reason);
                        break;
                    }
                    SendResult::Partial { retry, rejected } => {
                        self.breaker.success();
                        for (i, reason) in &rejected {
                            self.dead_letter(request[*i], reason);
                        }
                        let stored: Vec<&[u8]> = (0..request.len())
                            .filter(|i| !retry.contains(i) && !rejected.iter().any(|(r, _)| r == i))
                            .map(|i| request[i])
                            .collect();
                        self.stored(&stored);
                        if retry.is_empty() {
                            break;
                        }
                        group = retry.iter().map(|&i| group[i]).collect();
                        self.counters.retries.inc();
                        let delay = self.backoff.next_delay();
                        sleep_until_or(Instant::now() + delay, deadline).await;
                    }
                    SendResult::Failed { reason, timeout } => {
                        self.counters.retries.inc();
                        if timeout {
                            self.counters.timeouts.inc();
                        }
                        self.breaker.failure(Instant::now());
                        let delay = self.backoff.next_delay();
                        tracing::warn!(reason, retry_in = ?delay, "sink request failed");
                        sleep_until_or(Instant::now() + delay, deadline).await;
                    }
                }
            }
        }
        Ok(())
    }

    fn stored(&mut self, records: &[&[u8]]) {
        self.breaker.success();
        self.backoff.reset();
        let bytes: usize = records.iter().map(|r| r.len()).sum();
        self.counters.sent_events.add(records.len() as u64);
        self.counters.sent_bytes.add(bytes as u64);
        self.summary.events += records.len() as u64;
        self.summary.bytes += bytes as u64;
    }

    fn dead_letter(&mut self, record: &[u8], reason: &str) {
        let shown = self.transport.describe(record);
        if let Err(e) = self.dead.write(shown, reason) {
            // The record cannot be kept anywhere: say so loudly; the run
            // ends unclean through the summary count below.
            tracing::error!(error = %e, "cannot write the dead-letter file");
        }
        self.summary.dead_lettered += 1;
    }
}

async fn sleep_until_or(until: Instant, deadline: Option<Instant>) {
    let until = deadline.map_or(until, |d| until.min(d));
    tokio::time::sleep_until(until.into()).await;
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
            retries: r.counter("sink_retries_total", "Requests sent again after a failure.", &labels),
            timeouts: r.counter("sink_timeouts_total", "Requests that timed out.", &labels),
        },
        cfg: cfg.clone(),
        summary: SinkSummary::default(),
    };

    // Intake: its own task, so encoding and buffering go on while a request
    // is in flight.
    let intake_buffer = Arc::clone(&buffer);
    let intake_id = id.clone();
    let intake = tokio::spawn(async move {
        let mut dropped = 0u64;
        let mut result = Ok(());
        while let Some(batch) = ctx.input.recv().await {
            let mut frame = Frame::default();
            encoder.encode(&batch, &mut frame);
            match intake_buffer.push(frame, batch).await {
                Ok(Pushed::Stored) => {}
                Ok(Pushed::Dropped) => dropped += 1,
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
        // Anything still queued in the channel is dropped undelivered here
        // (only after a buffer error), which fails its acknowledgements.
        intake_buffer.close();
        (result, dropped)
    });

    let max_bytes = cfg.batch_max_bytes.0;
    let mut abandoned = 0;
    loop {
        let taken = buffer
            .take(max_bytes, cfg.batch_max_events, cfg.batch_timeout)
            .await
            .map_err(io_err("reading the disk buffer"))?;
        let Some(taken) = taken else { break };
        let records: Vec<&[u8]> = taken.frames.iter().flat_map(Frame::records).collect();
        match delivery.deliver(&records, &buffer).await {
            Ok(()) => {
                drop(records);
                buffer.commit(taken).map_err(io_err("committing the disk buffer"))?;
            }
            Err(GaveUp) => {
                drop(records);
                let events = taken.records() as u64;
                abandoned = buffer.abandon(Some(taken)).map_err(io_err("closing the disk buffer"))?;
                tracing::error!(
                    sink = %id,
                    events_in_request = events,
                    "target still failing after shutdown_timeout: undelivered data left for the next run"
                );
                break;
            }
        }
    }
    buffer.finish().map_err(io_err("closing the disk buffer"))?;
    let (intake_result, dropped) = intake.await.unwrap_or((Ok(()), 0));
    intake_result?;
    let mut summary = delivery.summary;
    summary.dropped_batches = dropped;
    summary.abandoned_events = abandoned;
    Ok(summary)
}

/// How long an HTTP sink waits for a connection, apart from the request
/// timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
