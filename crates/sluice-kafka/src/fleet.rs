//! The Kafka side of a fleet-wide budget: a thread that publishes this
//! node's report from the [`FleetExchange`] as soon as it changes, and
//! again every interval while it does not (keyed by node
//! id, to a compacted topic it creates when missing) and hands every
//! report it reads back to the exchange. Kafka is the only coordination:
//! no leader, no other server. It carries bytes and when they were
//! written; what they mean is the budget stage's.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sluice_config::FleetConfig;
use sluice_core::fleet::FleetExchange;
use sluice_core::{Counter, Registry};

/// How often the link looks for a new report between reads: a round's
/// reports must reach every node within half an interval.
const POLL: Duration = Duration::from_millis(10);

/// The largest report the fleet topic and this node's producer take.
const MAX_REPORT_BYTES: &str = "8388608";

/// The link could not start.
#[derive(Debug, thiserror::Error)]
#[error("budget fleet link: {0}")]
pub struct FleetLinkError(String);

/// Start the link for `exchange`; it runs until the exchange is closed.
pub fn start_link(cfg: &FleetConfig, exchange: FleetExchange, registry: &Registry) -> Result<(), FleetLinkError> {
    let client = |extra: &[(&str, &str)]| {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers);
        // Back within a second of the broker: until every node hears the
        // others' reports again, each sums its own fresh one with theirs
        // from before the outage, and p differs between nodes (librdkafka
        // backs off up to 10 s by default).
        c.set("reconnect.backoff.max.ms", "1000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        for (k, v) in &cfg.options {
            c.set(k, v);
        }
        c
    };
    // A report is about 70 bytes a service: 10,000 services fit Kafka's
    // 1 MB default; the topic and the producer allow 8 MB, for more.
    let producer: BaseProducer = client(&[
        ("linger.ms", "0"),
        ("message.timeout.ms", "30000"),
        ("message.max.bytes", MAX_REPORT_BYTES),
    ])
    .create()
    .map_err(|e| FleetLinkError(format!("cannot create the producer: {e}")))?;
    // The topic's partitions are assigned, not subscribed: a group would
    // make a restarted node wait out its killed predecessor's session
    // (45 s by default) before it read anything, deciding alone
    // meanwhile. Every start reads the whole (compacted) topic: the latest
    // report of every node, its own previous run's included. The group id
    // is never joined nor committed to.
    let group = format!("sluice-fleet-{}", exchange.node());
    let consumer: BaseConsumer = client(&[
        ("group.id", &group),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("enable.partition.eof", "false"),
    ])
    .create()
    .map_err(|e| FleetLinkError(format!("cannot create the consumer: {e}")))?;
    let errors = |kind| {
        registry.counter(
            "budget_fleet_link_errors_total",
            "Fleet figures this node could not publish or read (Kafka unreachable, say), by kind.",
            &[("kind", kind)],
        )
    };
    let link = Link {
        topic: cfg.topic.clone(),
        brokers: cfg.brokers.clone(),
        interval: cfg.interval,
        exchange,
        producer,
        consumer,
        unread: RefCell::new(HashMap::new()),
        read_failing: Cell::new(false),
        publish_errors: errors("publish"),
        read_errors: errors("read"),
        published: registry.counter(
            "budget_fleet_reports_published_total",
            "Reports of this node's budget figures sent to the fleet topic.",
            &[],
        ),
    };
    std::thread::Builder::new()
        .name("sluice-fleet".into())
        .spawn(move || link.run())
        .map_err(|e| FleetLinkError(format!("cannot start its thread: {e}")))?;
    Ok(())
}

struct Link {
    topic: String,
    brokers: String,
    interval: Duration,
    exchange: FleetExchange,
    producer: BaseProducer,
    consumer: BaseConsumer,
    /// Per partition, the end offset the link must read up to before the
    /// exchange holds what the topic held at the start (the budget stage
    /// waits for that at a start); emptied as they are reached.
    unread: RefCell<HashMap<i32, i64>>,
    /// Whether the last read failed (a failing read is logged once).
    read_failing: Cell<bool>,
    publish_errors: Counter,
    read_errors: Counter,
    published: Counter,
}

impl Link {
    fn run(self) {
        let mut subscribed = false;
        let mut next_publish = Instant::now();
        let mut next_try = Instant::now();
        let mut last: Option<Arc<[u8]>> = None;
        while !self.exchange.is_closed() {
            if !subscribed && Instant::now() >= next_try {
                // Until the topic exists (or the brokers answer), try again
                // every interval; deciding goes on meanwhile.
                subscribed = self.ensure_topic() && self.assign();
                next_try = Instant::now() + self.interval;
            }
            // A new report goes out at once: the nodes sum each round's
            // reports half an interval after it starts. An unchanged one
            // is sent again each interval, which says the node lives.
            let outgoing = self.exchange.outgoing();
            let changed = match (&outgoing, &last) {
                (Some(o), Some(l)) => !Arc::ptr_eq(o, l),
                (o, l) => o.is_some() != l.is_some(),
            };
            if changed || Instant::now() >= next_publish {
                next_publish = Instant::now() + self.interval;
                if let Some(report) = &outgoing {
                    self.publish(report);
                }
                last = outgoing;
            }
            self.producer.poll(Duration::ZERO);
            if subscribed {
                self.read(POLL);
            } else {
                std::thread::sleep(POLL);
            }
        }
        let _ = self.producer.flush(Duration::from_secs(1));
    }

    fn publish(&self, report: &[u8]) {
        let record = BaseRecord::to(&self.topic).key(self.exchange.node()).payload(report);
        match self.producer.send(record) {
            Ok(()) => self.published.inc(),
            Err((e, _)) => {
                self.publish_errors.inc();
                tracing::warn!(error = %e, "budget: cannot publish this node's figures to the fleet topic");
            }
        }
    }

    /// Read what arrived within `wait`, each report aged by its Kafka
    /// timestamp (one read at startup finds old reports of nodes long
    /// gone: they are stale, not fresh).
    fn read(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut left = wait;
        while let Some(polled) = self.consumer.poll(left) {
            match polled {
                Ok(m) => {
                    if let (Some(key), Some(payload)) = (m.key(), m.payload()) {
                        let sent = match m.timestamp() {
                            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => {
                                UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
                            }
                            Timestamp::NotAvailable => SystemTime::now(),
                        };
                        // An old report still says what its node spent
                        // in a window that may still be running: the
                        // budget stage decides what it counts.
                        self.exchange.receive(&String::from_utf8_lossy(key), payload, sent);
                    }
                    self.read_failing.set(false);
                    self.reached(m.partition(), m.offset() + 1);
                }
                Err(e) => {
                    self.read_errors.inc();
                    if !self.read_failing.replace(true) {
                        tracing::warn!(error = %e, "budget: cannot read the fleet topic (logged once until a read succeeds)");
                    }
                }
            }
            left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
        }
    }

    /// The link has read `partition` up to `next`: tell the exchange once
    /// every partition is read to where it ended at the start.
    fn reached(&self, partition: i32, next: i64) {
        let mut unread = self.unread.borrow_mut();
        if unread.get(&partition).is_some_and(|&end| next >= end) {
            unread.remove(&partition);
        }
        drop(unread);
        self.mark_if_caught_up();
    }

    fn mark_if_caught_up(&self) {
        if self.unread.borrow().is_empty() && !self.exchange.is_caught_up() {
            self.exchange.mark_caught_up();
        }
    }

    /// Read every partition of the topic from its beginning.
    fn assign(&self) -> bool {
        let metadata = match self.consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5)) {
            Ok(m) => m,
            Err(e) => {
                self.read_errors.inc();
                tracing::warn!(topic = %self.topic, error = %e, "budget: cannot read the fleet topic's partitions; retrying");
                return false;
            }
        };
        let mut list = TopicPartitionList::new();
        for t in metadata.topics().iter().filter(|t| t.name() == self.topic) {
            for p in t.partitions() {
                if list
                    .add_partition_offset(&self.topic, p.id(), Offset::Beginning)
                    .is_err()
                {
                    return false;
                }
            }
        }
        if list.count() == 0 {
            return false;
        }
        match self.consumer.assign(&list) {
            Ok(()) => {
                let mut unread = HashMap::new();
                for p in list.elements() {
                    // Unknown, the end is taken as reached: the stage's
                    // wait at a start is for what can be read.
                    if let Ok((low, high)) =
                        self.consumer
                            .fetch_watermarks(&self.topic, p.partition(), Duration::from_secs(5))
                    {
                        if high > low {
                            unread.insert(p.partition(), high);
                        }
                    }
                }
                *self.unread.borrow_mut() = unread;
                self.mark_if_caught_up();
                true
            }
            Err(e) => {
                self.read_errors.inc();
                tracing::warn!(topic = %self.topic, error = %e, "budget: cannot read the fleet topic; retrying");
                false
            }
        }
    }

    /// Create the topic (compacted, one partition) unless it exists.
    fn ensure_topic(&self) -> bool {
        let Ok(admin) = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create::<AdminClient<DefaultClientContext>>()
        else {
            return false;
        };
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return false;
        };
        let topic = NewTopic::new(&self.topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact")
            .set("max.message.bytes", MAX_REPORT_BYTES);
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        match runtime.block_on(admin.create_topics([&topic], &options)).as_deref() {
            Ok([Ok(_)]) | Ok([Err((_, RDKafkaErrorCode::TopicAlreadyExists))]) => true,
            other => {
                self.read_errors.inc();
                tracing::warn!(topic = %self.topic, outcome = ?other, "budget: cannot create the fleet topic; retrying");
                false
            }
        }
    }
}
