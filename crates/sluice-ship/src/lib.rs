//! Shipping to storage with at-least-once delivery. This crate owns the
//! delivery machinery every storage sink shares ([`driver`]: batching by
//! size and time, timeouts, retries with backoff and jitter, a circuit
//! breaker, dead letters for records a target refuses; [`buffer`]: bounded
//! memory or disk buffers that survive kill -9) and the HTTP sinks built on
//! it: ClickHouse, Loki and Elasticsearch. A sink acknowledges a batch to
//! its sources only once the target accepted it or a disk buffer holds it.
//! This crate must not transform events: encoders write each event as the
//! pipeline left it, in the target's wire form.

pub mod buffer;
pub mod clickhouse;
pub mod driver;
pub mod elasticsearch;
pub mod fields;
pub mod frame;
pub mod http;
pub mod loki;
pub mod native_lz4;
pub mod outcome;
pub mod resilience;
pub mod timestamp;

use sluice_core::metric_names;
use std::path::Path;

use sluice_config::{ClickhouseSinkConfig, ElasticsearchSinkConfig, LokiSinkConfig};
use sluice_core::{SinkContext, SinkError, SinkSummary};
use tokio::task::JoinHandle;

pub use driver::{run_sink, Encoder, SinkParts, Transport};
pub use frame::Frame;
pub use outcome::{Blame, Failure, FailureKind, Rejection, SendResult};

type SinkTask = JoinHandle<Result<SinkSummary, SinkError>>;

/// Start a storage sink whose encoder and transport `build` makes (on the
/// runtime, so a setup failure is the sink's error, not a panic).
fn spawn_with<E: Encoder, T: Transport>(
    ctx: SinkContext,
    delivery: sluice_config::DeliveryConfig,
    data_dir: &Path,
    build: impl FnOnce() -> Result<(E, T), String> + Send + 'static,
) -> SinkTask {
    let data_dir = data_dir.to_path_buf();
    tokio::spawn(async move {
        let (encoder, transport) = build().map_err(|message| SinkError::Setup {
            id: ctx.id.clone(),
            message,
        })?;
        let parts = SinkParts {
            ctx,
            cfg: delivery,
            data_dir,
        };
        run_sink(parts, encoder, transport).await
    })
}

/// `invalid_ts_total{sink}`: records whose `ts` a sink could not store.
fn invalid_ts_counter(ctx: &SinkContext) -> sluice_core::Counter {
    ctx.registry.counter(
        metric_names::INVALID_TS_TOTAL,
        "Records whose ts could not be read or is out of the target's range: stored with the time they were encoded, the original kept in the record.",
        &[("sink", ctx.id.as_str())],
    )
}

/// Start a ClickHouse sink.
pub fn spawn_clickhouse(ctx: SinkContext, cfg: ClickhouseSinkConfig, data_dir: &Path) -> SinkTask {
    let delivery = cfg.delivery.clone();
    let invalid_ts = invalid_ts_counter(&ctx);
    spawn_with(ctx, delivery, data_dir, move || {
        Ok((
            clickhouse::ClickhouseEncoder::new(&cfg.columns).counting_invalid_ts(invalid_ts),
            clickhouse::ClickhouseTransport::new(&cfg)?,
        ))
    })
}

/// Start a Loki sink.
pub fn spawn_loki(ctx: SinkContext, cfg: LokiSinkConfig, data_dir: &Path) -> SinkTask {
    let delivery = cfg.delivery.clone();
    let invalid_ts = invalid_ts_counter(&ctx);
    spawn_with(ctx, delivery, data_dir, move || {
        Ok((
            loki::LokiEncoder::new(&cfg.labels).counting_invalid_ts(invalid_ts),
            loki::LokiTransport::new(&cfg)?,
        ))
    })
}

/// Start an Elasticsearch sink.
pub fn spawn_elasticsearch(ctx: SinkContext, cfg: ElasticsearchSinkConfig, data_dir: &Path) -> SinkTask {
    let delivery = cfg.delivery.clone();
    spawn_with(ctx, delivery, data_dir, move || {
        Ok((
            elasticsearch::ElasticsearchEncoder::new(&cfg.index),
            elasticsearch::ElasticsearchTransport::new(&cfg)?,
        ))
    })
}
