//! `[budget.fleet]`: how the nodes of a fleet share their budget rates over
//! Kafka when `budget.scope = "fleet"`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::humantime_serde_compat;
use crate::model::{check, Invalid};

/// Whose budget `[budget]` describes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// Each sluice enforces every budget on its own (one machine).
    #[default]
    Node,
    /// Every budget is the whole fleet's: the nodes publish their rates and
    /// spend to a Kafka topic and all derive the same keep-probability from
    /// the fleet's sums (`[budget.fleet]`).
    Fleet,
}

/// `[budget.fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Kafka bootstrap servers (`host:port,...`).
    pub brokers: String,
    /// The compacted topic the nodes' rates go to (created, compacted with
    /// one partition, when missing).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// How often this node publishes its rates and re-reads the fleet's.
    #[serde(default = "default_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// This node's name in the fleet: unique per node, stable across
    /// restarts (`"${HOSTNAME}"`, or the Kubernetes node name).
    pub node_id: String,
    /// A node not heard from for this many intervals stops counting with
    /// its rates (what it spent in the window still counts); until then
    /// its spend is carried forward at its last rates, which bridges a
    /// Kafka outage of up to this long (2 minutes at the defaults). When
    /// every other node is silent this long, this node decides alone, by
    /// the node-local rule, until it hears again.
    #[serde(default = "default_stale_intervals")]
    pub stale_intervals: u32,
    /// Extra librdkafka settings for the fleet's producer and consumer.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_topic() -> String {
    "sluice-budget-rates".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_stale_intervals() -> u32 {
    24
}

impl FleetConfig {
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        check(
            !self.brokers.trim().is_empty(),
            "brokers",
            "must name at least one broker",
        )?;
        check(!self.topic.trim().is_empty(), "topic", "must not be empty")?;
        check(
            !self.node_id.trim().is_empty(),
            "node_id",
            "must not be empty (each node needs its own name, e.g. \"${HOSTNAME}\")",
        )?;
        check(
            self.interval >= Duration::from_millis(100),
            "interval",
            "at least 100ms",
        )?;
        check(self.stale_intervals >= 1, "stale_intervals", "at least 1")
    }
}
