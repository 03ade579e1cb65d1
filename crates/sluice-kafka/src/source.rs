//! The `kafka` source: a consumer group whose offsets advance only behind
//! the acknowledgements. Each message value is one line (a trailing newline
//! is dropped; a value holding several lines becomes several events). A
//! batch remembers, per partition, the offset after its last message; when
//! every batch up to it has been accepted by every sink, those offsets are
//! committed (asynchronously every `commit_interval`, synchronously at the
//! end). A crash therefore replays at most the unacknowledged tail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::KafkaSourceConfig;
use sluice_core::ack::{self, AckReceiver, AckSender};
use sluice_core::{AckStatus, AckTracker, Counter, SourceContext, SourceError, SourceSummary};
use sluice_io::{FramerCounters, LineFramer};
use tokio::task::JoinHandle;

/// Next offset to read, per (topic, partition).
type Offsets = BTreeMap<(String, i32), i64>;

/// A batch is cut after this long even if small, so a quiet topic still
/// flows.
const LINGER: Duration = Duration::from_millis(100);

/// Start the Kafka source.
pub fn spawn_source(ctx: SourceContext, cfg: KafkaSourceConfig) -> JoinHandle<Result<SourceSummary, SourceError>> {
    tokio::spawn(async move {
        let id = ctx.id.clone();
        let setup = |message: String| SourceError::Setup {
            id: id.clone(),
            message,
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", cfg.auto_offset_reset.as_str())
            .set("enable.partition.eof", "false");
        for (k, v) in &cfg.options {
            config.set(k, v);
        }
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| setup(format!("cannot create the Kafka consumer: {e}")))?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| setup(format!("cannot subscribe to {topics:?}: {e}")))?;
        let (summary, consumer) = consume(ctx, &cfg, consumer).await;
        // Leaving the group blocks: never on a runtime thread.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        Ok(summary)
    })
}

struct Committer {
    sender: Option<AckSender>,
    receiver: AckReceiver,
    tracker: AckTracker<(u64, Offsets)>,
    next_seq: u64,
    emitted: u64,
    failed_batches: u64,
    committed: Offsets,
    last_commit: Instant,
    commits: Counter,
}

impl Committer {
    fn drain(&mut self) {
        while let Some(a) = self.receiver.try_recv() {
            self.record(a);
        }
    }

    fn record(&mut self, a: sluice_core::Acknowledgement) {
        if a.status == AckStatus::Failed {
            self.failed_batches += 1;
        }
        self.tracker.acknowledge(a);
    }

    /// Commit the acknowledged offsets if they moved.
    fn commit(&mut self, consumer: &StreamConsumer, mode: CommitMode) {
        let Some((_, offsets)) = self.tracker.checkpoint() else {
            return;
        };
        if *offsets == self.committed {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if self.committed.get(&(topic.clone(), *partition)) != Some(next) {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                tracing::debug!(?offsets, "Kafka offsets committed");
                self.committed = offsets.clone();
                self.commits.inc();
            }
            // A partition moved to another member: it replays from the last
            // commit there (at-least-once), so log and carry on.
            Err(e) => tracing::warn!(error = %e, "Kafka offset commit failed"),
        }
        self.last_commit = Instant::now();
    }
}

async fn consume(
    mut ctx: SourceContext,
    cfg: &KafkaSourceConfig,
    consumer: StreamConsumer,
) -> (SourceSummary, StreamConsumer) {
    let (sender, receiver) = ack::channel();
    let mut committer = Committer {
        sender: Some(sender),
        receiver,
        tracker: AckTracker::new(),
        next_seq: 0,
        emitted: 0,
        failed_batches: 0,
        committed: Offsets::new(),
        last_commit: Instant::now(),
        commits: ctx.registry.counter(
            "kafka_offset_commits_total",
            "Offset commits of a Kafka source.",
            &[("source", ctx.id.as_str())],
        ),
    };
    let messages = ctx.registry.counter(
        "kafka_messages_total",
        "Messages a Kafka source consumed.",
        &[("source", ctx.id.as_str())],
    );
    let mut framer = LineFramer::new(
        ctx.batch_bytes,
        ctx.max_line_bytes,
        FramerCounters::new(&ctx.registry, &ctx.id),
    );
    let mut offsets = Offsets::new();
    let mut first_at: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let linger = first_at.map_or(LINGER, |t| LINGER.saturating_sub(t.elapsed()));
        let flush = tokio::select! {
            _ = shutdown.wait() => break,
            m = consumer.recv() => match m {
                Ok(msg) => {
                    let payload = msg.payload().unwrap_or(b"");
                    let line = payload.strip_suffix(b"\n").unwrap_or(payload);
                    framer.extend(line);
                    framer.extend(b"\n");
                    messages.inc();
                    offsets.insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
                    first_at.get_or_insert_with(Instant::now);
                    framer.is_full()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    false
                }
            },
            _ = tokio::time::sleep(linger), if first_at.is_some() => true,
            _ = tokio::time::sleep(cfg.commit_interval) => false,
        };
        if flush && !send(&mut ctx, &mut framer, &mut committer, &offsets, false).await {
            break;
        }
        if flush {
            first_at = None;
        }
        committer.drain();
        if committer.last_commit.elapsed() >= cfg.commit_interval {
            committer.commit(&consumer, CommitMode::Async);
        }
    }
    send(&mut ctx, &mut framer, &mut committer, &offsets, true).await;
    // Close our path into the chain, wait for every batch to come back, and
    // commit what was acknowledged.
    drop(ctx);
    committer.sender = None;
    while let Some(a) = committer.receiver.recv().await {
        committer.record(a);
    }
    committer.commit(&consumer, CommitMode::Sync);
    let delivered = committer.tracker.checkpoint().map_or(0, |(n, _)| *n);
    let summary = SourceSummary {
        emitted_events: committer.emitted,
        delivered_events: delivered,
        failed_batches: committer.failed_batches,
        problems: Vec::new(),
    };
    (summary, consumer)
}

/// Frame what is buffered into a batch and send it; `false` when the chain
/// has closed.
async fn send(
    ctx: &mut SourceContext,
    framer: &mut LineFramer,
    committer: &mut Committer,
    offsets: &Offsets,
    eof: bool,
) -> bool {
    let Some(mut batch) = framer.take_batch(eof) else {
        return true;
    };
    let Some(sender) = &committer.sender else { return false };
    let seq = committer.next_seq;
    committer.next_seq += 1;
    committer.emitted += batch.len() as u64;
    committer.tracker.emitted(seq, (committer.emitted, offsets.clone()));
    batch.add_ack(sender.token(seq));
    ctx.out.send(batch).await.is_ok()
}
