//! The Kafka side of a fleet-wide budget: a thread that publishes this
//! node's report from the [`FleetExchange`] every interval (keyed by node
//! id, to a compacted topic it creates when missing) and hands every
//! report it reads back to the exchange. Kafka is the only coordination:
//! no leader, no other server. It carries bytes and when they were
//! written; what they mean is the budget stage's.

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
    publish_errors: Counter,
    read_errors: Counter,
    published: Counter,
}

impl Link {
    fn run(self) {
        let mut subscribed = false;
        let mut next_publish = Instant::now();
        let mut next_try = Instant::now();
        while !self.exchange.is_closed() {
            if !subscribed && Instant::now() >= next_try {
                // Until the topic exists (or the brokers answer), try again
                // every interval; deciding goes on meanwhile.
                subscribed = self.ensure_topic() && self.assign();
                next_try = Instant::now() + self.interval;
            }
            if Instant::now() >= next_publish {
                next_publish = Instant::now() + self.interval;
                self.publish();
            }
            self.producer.poll(Duration::ZERO);
            if subscribed {
                self.read(Duration::from_millis(100));
            } else {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.producer.flush(Duration::from_secs(1));
    }

    fn publish(&self) {
        let Some(report) = self.exchange.outgoing() else {
            return;
        };
        let record = BaseRecord::to(&self.topic).key(self.exchange.node()).payload(&*report);
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
                }
                Err(e) => {
                    self.read_errors.inc();
                    tracing::warn!(error = %e, "budget: cannot read the fleet topic");
                }
            }
            left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
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
            Ok(()) => true,
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
