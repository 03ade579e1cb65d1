//! The `kafka` source: a consumer group whose offsets advance only behind
//! the acknowledgements. Each message value is one line (a trailing newline
//! is dropped; a value holding several lines becomes several events). A
//! batch remembers, per partition, the offset after its last message; when
//! every batch up to it has been accepted by every sink, those offsets are
//! committed (asynchronously every `commit_interval`, synchronously at the
//! end). A crash therefore replays at most the unacknowledged tail.
//!
//! A rebalance that takes partitions away is a handover, not a crash: before
//! librdkafka lets them go, the member sends what it buffered, waits (up to
//! `revoke_timeout`) until everything it read was delivered, and commits it,
//! so the new owner starts exactly where this member's deliveries ended.
//! Only partitions the member owns are ever committed: an acknowledgement
//! that arrives after a partition moved must not rewind its new owner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice_config::KafkaSourceConfig;
use sluice_core::{Batch, Counter, SourceContext, SourceError, SourceSummary};
use sluice_io::{DeliveryLedger, FramerCounters, LineFramer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A partition of a topic.
type Partition = (String, i32);

/// Next offset to read, per partition.
type Offsets = BTreeMap<Partition, i64>;

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
        let handoff = Arc::new(Mutex::new(Handoff::new(&ctx, &cfg)));
        let context = SourceConsumerContext {
            handoff: handoff.clone(),
        };
        let consumer: StreamConsumer<SourceConsumerContext> = config
            .create_with_context(context)
            .map_err(|e| setup(format!("cannot create the Kafka consumer: {e}")))?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| setup(format!("cannot subscribe to {topics:?}: {e}")))?;
        let summary = consume(ctx, &cfg, &consumer, &handoff).await;
        // Leaving the group blocks (and revokes, which finds nothing left
        // to hand over): never on a runtime thread.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        Ok(summary)
    })
}

/// What the consume loop and the rebalance callback share. The callback
/// runs inside the loop's own `recv()`, so the two never contend: the
/// mutex only makes the sharing expressible.
struct Handoff {
    /// Every batch's offsets, settled by its acknowledgement; `None` only
    /// while the end of the run waits on it without the lock.
    ledger: Option<DeliveryLedger<Offsets>>,
    /// Read and not yet sent on.
    framer: LineFramer,
    /// The next offset to read of each partition owned, as read so far.
    offsets: Offsets,
    /// Partitions this member owns now: the only ones it commits.
    assigned: BTreeSet<Partition>,
    committed: Offsets,
    last_commit: Instant,
    /// The head of the stage chain; `None` once the source has finished.
    out: Option<mpsc::Sender<Batch>>,
    revoke_timeout: Duration,
    commits: Counter,
    revocations: Counter,
    revoke_timeouts: Counter,
}

impl Handoff {
    fn new(ctx: &SourceContext, cfg: &KafkaSourceConfig) -> Handoff {
        let labels = [("source", ctx.id.as_str())];
        Handoff {
            ledger: Some(DeliveryLedger::new(&ctx.registry, &ctx.id)),
            framer: LineFramer::new(
                ctx.batch_bytes,
                ctx.max_line_bytes,
                FramerCounters::new(&ctx.registry, &ctx.id),
            ),
            offsets: Offsets::new(),
            assigned: BTreeSet::new(),
            committed: Offsets::new(),
            last_commit: Instant::now(),
            out: Some(ctx.out.clone()),
            revoke_timeout: cfg.revoke_timeout,
            commits: ctx.registry.counter(
                "kafka_offset_commits_total",
                "Offset commits of a Kafka source.",
                &labels,
            ),
            revocations: ctx.registry.counter(
                "kafka_revocations_total",
                "Rebalances that took partitions from a Kafka source; each hands over what was read from them.",
                &labels,
            ),
            revoke_timeouts: ctx.registry.counter(
                "kafka_revoke_timeouts_total",
                "Handovers that ran out of revoke_timeout with reads undelivered (the new owner reads them again).",
                &labels,
            ),
        }
    }

    fn ledger(&mut self) -> &mut DeliveryLedger<Offsets> {
        self.ledger
            .as_mut()
            .expect("the ledger is away only at the end of the run")
    }

    /// Frame what is buffered into a batch, registered for its
    /// acknowledgement; `None` when there is nothing to send or nowhere to.
    fn take_batch(&mut self, eof: bool) -> Option<(Batch, mpsc::Sender<Batch>)> {
        let out = self.out.clone()?;
        let mut batch = self.framer.take_batch(eof)?;
        let offsets = self.offsets.clone();
        self.ledger().attach_at(&mut batch, offsets);
        Some((batch, out))
    }

    /// Commit the acknowledged offsets of the partitions owned, where they
    /// moved.
    fn commit<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>, mode: CommitMode) {
        self.last_commit = Instant::now();
        let Some(offsets) = self.ledger.as_ref().and_then(DeliveryLedger::checkpoint) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for (partition, next) in offsets {
            if self.assigned.contains(partition) && self.committed.get(partition) != Some(next) {
                let _ = tpl.add_partition_offset(&partition.0, partition.1, Offset::Offset(*next));
                moved.push((partition.clone(), *next));
            }
        }
        if moved.is_empty() {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                tracing::debug!(?moved, "Kafka offsets committed");
                self.committed.extend(moved);
                self.commits.inc();
            }
            // The group moved on (a rebalance this member has not seen
            // yet): the partitions' new owners replay from the last commit
            // there (at-least-once), so log and carry on.
            Err(e) => tracing::warn!(error = %e, "Kafka offset commit failed"),
        }
    }

    /// Partitions are being taken away: send what is buffered, wait until
    /// everything read was delivered (or `revoke_timeout` passes), commit
    /// it while this member still owns them, then forget them.
    fn hand_over<C: ConsumerContext>(&mut self, consumer: &impl Consumer<C>, revoked: &[Partition]) {
        self.revocations.inc();
        let deadline = tokio::time::Instant::now() + self.revoke_timeout;
        let settled = blocking_on(async {
            if let Some((batch, out)) = self.take_batch(false) {
                if tokio::time::timeout_at(deadline, out.send(batch)).await.is_err() {
                    return false;
                }
            }
            let ledger = self.ledger();
            ledger.drain_ready();
            while !ledger.settled() {
                if !matches!(tokio::time::timeout_at(deadline, ledger.next()).await, Ok(true)) {
                    break;
                }
            }
            ledger.outstanding() == 0
        });
        self.commit(consumer, CommitMode::Sync);
        if settled == Some(true) {
            tracing::info!(partitions = ?revoked, "Kafka partitions handed over: all read from them delivered and committed");
        } else {
            self.revoke_timeouts.inc();
            tracing::warn!(
                partitions = ?revoked,
                outstanding_batches = self.ledger().outstanding(),
                "Kafka partitions revoked before all read from them was delivered; their new owner reads the rest again"
            );
        }
        for p in revoked {
            self.assigned.remove(p);
            self.offsets.remove(p);
            self.committed.remove(p);
        }
    }
}

/// Run `future` to its end from synchronous code on a runtime thread (the
/// rebalance callback runs inside a task's poll): the worker's other tasks
/// move to another thread meanwhile, so the sinks it waits on keep running.
/// `None`, without running it, where waiting could deadlock (no runtime, or
/// a single-threaded one).
fn blocking_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    (handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        .then(|| tokio::task::block_in_place(|| handle.block_on(future)))
}

/// librdkafka's callbacks into the source: the rebalance handover.
struct SourceConsumerContext {
    handoff: Arc<Mutex<Handoff>>,
}

impl ClientContext for SourceConsumerContext {}

impl ConsumerContext for SourceConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let revoked = partitions(list);
            if !revoked.is_empty() {
                lock(&self.handoff).hand_over(consumer, &revoked);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned = partitions(list);
            tracing::info!(partitions = ?assigned, "Kafka partitions assigned");
            lock(&self.handoff).assigned.extend(assigned);
        }
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The shared state. A panic elsewhere with the lock held leaves it still
/// consistent enough to commit from: the ledger only moves forward.
fn lock(handoff: &Mutex<Handoff>) -> MutexGuard<'_, Handoff> {
    handoff.lock().unwrap_or_else(|e| e.into_inner())
}

async fn consume(
    ctx: SourceContext,
    cfg: &KafkaSourceConfig,
    consumer: &StreamConsumer<SourceConsumerContext>,
    handoff: &Mutex<Handoff>,
) -> SourceSummary {
    let messages = ctx.registry.counter(
        "kafka_messages_total",
        "Messages a Kafka source consumed.",
        &[("source", ctx.id.as_str())],
    );
    let mut first_at: Option<Instant> = None;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let linger = first_at.map_or(LINGER, |t| LINGER.saturating_sub(t.elapsed()));
        // No lock is held across `recv()`: the rebalance callback runs in
        // it and takes the lock.
        let flush = tokio::select! {
            _ = shutdown.wait() => break,
            m = consumer.recv() => match m {
                Ok(msg) => {
                    let payload = msg.payload().unwrap_or(b"");
                    let line = payload.strip_suffix(b"\n").unwrap_or(payload);
                    let mut h = lock(handoff);
                    h.framer.extend(line);
                    h.framer.extend(b"\n");
                    messages.inc();
                    h.offsets.insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
                    first_at.get_or_insert_with(Instant::now);
                    h.framer.is_full()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Kafka consumer error");
                    false
                }
            },
            _ = tokio::time::sleep(linger), if first_at.is_some() => true,
            _ = tokio::time::sleep(cfg.commit_interval) => false,
        };
        if flush {
            first_at = None;
            let batch = lock(handoff).take_batch(false);
            if let Some((batch, out)) = batch {
                if out.send(batch).await.is_err() {
                    break;
                }
            }
        }
        let mut h = lock(handoff);
        h.ledger().drain_ready();
        if h.last_commit.elapsed() >= cfg.commit_interval {
            h.commit(consumer, CommitMode::Async);
        }
    }
    let batch = lock(handoff).take_batch(true);
    if let Some((batch, out)) = batch {
        let _ = out.send(batch).await;
    }
    // Close our paths into the chain, wait for every batch to come back,
    // and commit what was acknowledged. The ledger is awaited without the
    // lock held (no rebalance can run now: nothing polls the consumer).
    drop(ctx);
    let mut ledger = {
        let mut h = lock(handoff);
        h.out = None;
        h.ledger.take().expect("the ledger is here until now")
    };
    ledger.close().await;
    let summary = ledger.summary();
    let mut h = lock(handoff);
    h.ledger = Some(ledger);
    h.commit(consumer, CommitMode::Sync);
    summary
}
