//! sluice's Kafka edges, on librdkafka (rdkafka): the `kafka` sink, a
//! [`Transport`](sluice_ship::Transport) for the shared delivery machinery
//! that produces one message per event (idempotent, zstd, keyed by
//! `service`), and the `kafka` source, a consumer group that commits an
//! offset only once every sink accepted the events before it, so sluice can
//! run as an aggregation tier behind Kafka; and the link that carries a
//! fleet-wide budget's figures between nodes ([`fleet`]). This crate must not transform
//! events; it moves them between Kafka and the pipeline.
//!
//! Two librdkafka traps are handled here once: a consumer is dropped off
//! the async runtime (its destructor blocks while it leaves the group), and
//! no `TopicPartitionList` outlives the consumer it came from.

pub mod fleet;
pub mod sink;
pub mod source;

pub use sink::{spawn_sink, KafkaEncoder, KafkaTransport};
pub use source::spawn_source;
