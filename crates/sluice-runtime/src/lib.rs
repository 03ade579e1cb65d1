//! Builds a running pipeline from a [`Config`] and drives it to the end:
//! sources (tokio tasks or blocking readers) → a fixed chain of synchronous
//! stages, one worker thread each, joined by bounded channels → fan-out to
//! every sink. It owns wiring, backpressure, ticking and the shutdown order;
//! it must not know how any source reads, any stage transforms or any sink
//! writes.
//!
//! How a run ends (the mini-redis way): the input ends or [`Shutdown`]
//! fires → each source stops reading, sends what it framed and drops its
//! sender → the first stage sees its channel close, calls `finish` so held
//! events are released, and drops its own sender → ... → each sink sees its
//! channel close, flushes, and returns → the dropped batches release their
//! acknowledgements → each source's delivery ledger settles. Nothing in
//! flight is abandoned; shutdown only stops *new* input.

mod chain;

use std::time::{Duration, Instant};

use sluice_config::{Config, SinkConfig, SourceConfig};
use sluice_core::{
    Batch, Registry, Shutdown, SinkBatch, SinkContext, SinkSummary, SourceContext, SourceSummary, Stage,
};
use sluice_parse::ParseStage;
use tokio::sync::mpsc;

pub use chain::TICK;

/// What a finished run reports.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Wall time from start to the last sink's end.
    pub elapsed: Duration,
    /// Per source, by id.
    pub sources: Vec<(String, SourceSummary)>,
    /// Per sink, by id.
    pub sinks: Vec<(String, SinkSummary)>,
    /// Every component failure, as a message; empty for a clean run.
    pub errors: Vec<String>,
}

/// How a run ended, judged from its report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every component ended cleanly and every emitted event was delivered
    /// to every sink (or dropped by a rule the operator chose).
    Clean,
    /// Nothing was lost, but some data waits in a disk buffer for the next
    /// start; each entry says where.
    Held(Vec<String>),
    /// Something failed or was not delivered; each entry says what.
    NotClean(Vec<String>),
}

impl RunReport {
    /// Whether every component ended cleanly and every emitted event was
    /// delivered to every sink.
    pub fn is_clean(&self) -> bool {
        self.verdict() == Verdict::Clean
    }

    /// How the run ended, with every reason it was not clean.
    pub fn verdict(&self) -> Verdict {
        let mut lost: Vec<String> = self.errors.clone();
        for (id, s) in &self.sources {
            lost.extend(s.problems.iter().map(|p| format!("source `{id}`: {p}")));
            if s.failed_batches > 0 || s.delivered_events != s.emitted_events {
                lost.push(format!(
                    "source `{id}`: {} of {} events not delivered to every sink",
                    s.emitted_events.saturating_sub(s.delivered_events),
                    s.emitted_events
                ));
            }
        }
        let mut held = Vec::new();
        for (id, s) in &self.sinks {
            if s.abandoned_events > 0 {
                lost.push(format!(
                    "sink `{id}`: {} events not delivered, its target still failing at shutdown",
                    s.abandoned_events
                ));
            }
            if s.quarantined_bytes > 0 {
                lost.push(format!(
                    "sink `{id}`: {} bytes of damaged disk buffer moved to quarantine, not delivered",
                    s.quarantined_bytes
                ));
            }
            if s.held_bytes > 0 {
                held.push(format!(
                    "sink `{id}`: {} bytes held in its disk buffer for the next start",
                    s.held_bytes
                ));
            }
        }
        if !lost.is_empty() {
            lost.extend(held);
            Verdict::NotClean(lost)
        } else if !held.is_empty() {
            Verdict::Held(held)
        } else {
            Verdict::Clean
        }
    }
}

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A stage could not be built from its configuration.
    #[error("stage `{stage}`: {message}")]
    Stage {
        /// The stage.
        stage: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stage thread could not be started.
    #[error("cannot start the `{stage}` stage thread: {source}")]
    Thread {
        /// The stage.
        stage: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Build the stage chain a configuration asks for, in pipeline order:
/// parse → multiline → redact → budget.
pub fn build_stages(config: &Config, registry: &Registry) -> Result<Vec<Box<dyn Stage>>, RuntimeError> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if config.pipeline.parse {
        stages.push(Box::new(ParseStage::new(registry)));
    }
    if let Some(m) = &config.multiline {
        let stage = sluice_multiline::MultilineStage::new(m, registry).map_err(|e| RuntimeError::Stage {
            stage: "multiline",
            message: e.to_string(),
        })?;
        stages.push(Box::new(stage));
    }
    if let Some(r) = &config.redact {
        let stage = sluice_redact::RedactStage::new(r, registry).map_err(|e| RuntimeError::Stage {
            stage: "redact",
            message: e.to_string(),
        })?;
        stages.push(Box::new(stage));
    }
    if let Some(b) = &config.budget {
        let state = Some(config.data_dir.clone());
        let stage = sluice_budget::BudgetStage::new(b, registry, state).map_err(|e| RuntimeError::Stage {
            stage: "budget",
            message: e.to_string(),
        })?;
        stages.push(Box::new(stage));
    }
    Ok(stages)
}

/// Run `config` to the end (input exhausted or `shutdown` fired). Must be
/// called inside a multi-threaded tokio runtime.
pub async fn run(config: &Config, registry: &Registry, shutdown: Shutdown) -> Result<RunReport, RuntimeError> {
    let started = Instant::now();
    let capacity = config.pipeline.channel_capacity;
    let admin_state = sluice_admin::AdminState::new(registry.clone(), shutdown.clone(), config.admin.stall_after);
    // Up before the components, so a probe sees `starting`; a taken port
    // costs the endpoint, never the run.
    let _admin = match sluice_admin::start(&config.admin, admin_state.clone()) {
        Ok(server) => server,
        Err(e) => {
            tracing::warn!(error = %e, "running without the admin endpoint");
            None
        }
    };

    // Sinks first, so the chain has somewhere to send.
    let mut sink_senders = Vec::new();
    let mut sink_tasks = Vec::new();
    for (id, sink) in &config.sinks {
        let (tx, rx) = mpsc::channel::<SinkBatch>(capacity);
        sink_senders.push(tx);
        let ctx = SinkContext {
            id: id.clone(),
            input: rx,
            registry: registry.clone(),
            shutdown: shutdown.clone(),
        };
        let task = match sink {
            SinkConfig::Stdout(_) => sluice_io::stdout_sink::spawn(ctx),
            SinkConfig::File(cfg) => sluice_io::file_sink::spawn(ctx, cfg.clone()),
            SinkConfig::Clickhouse(cfg) => sluice_ship::spawn_clickhouse(ctx, cfg.clone(), &config.data_dir),
            SinkConfig::Loki(cfg) => sluice_ship::spawn_loki(ctx, cfg.clone(), &config.data_dir),
            SinkConfig::Elasticsearch(cfg) => sluice_ship::spawn_elasticsearch(ctx, cfg.clone(), &config.data_dir),
            SinkConfig::Kafka(cfg) => sluice_kafka::spawn_sink(ctx, cfg.clone(), &config.data_dir),
        };
        sink_tasks.push((id.clone(), task));
    }

    let (head_tx, head_rx) = mpsc::channel::<Batch>(capacity);
    let stages = build_stages(config, registry)?;
    let chain = chain::start(stages, head_rx, sink_senders, capacity, registry)?;

    let mut source_tasks = Vec::new();
    for (id, source) in &config.sources {
        let ctx = SourceContext {
            id: id.clone(),
            out: head_tx.clone(),
            shutdown: shutdown.clone(),
            registry: registry.clone(),
            batch_bytes: config.pipeline.batch_bytes.0 as usize,
            max_line_bytes: config.pipeline.max_line_bytes.0 as usize,
        };
        let task = match source {
            SourceConfig::Stdin(_) => sluice_io::stdin_source::spawn(ctx),
            SourceConfig::Generator(cfg) => sluice_io::generator_source::spawn(ctx, cfg.clone()),
            SourceConfig::File(cfg) => sluice_tail::spawn(ctx, cfg.clone(), config.data_dir.clone()),
            SourceConfig::Kafka(cfg) => sluice_kafka::spawn_source(ctx, cfg.clone()),
        };
        source_tasks.push((id.clone(), task));
    }
    // Only sources may keep the head open: when the last one ends, the
    // chain drains and closes behind it.
    drop(head_tx);
    admin_state.mark_started();

    let mut report = RunReport::default();
    for (id, task) in sink_tasks {
        match task.await {
            Ok(Ok(summary)) => report.sinks.push((id, summary)),
            Ok(Err(e)) => {
                // A dead sink cannot take more: stop the input, let the rest drain.
                shutdown.trigger();
                report.errors.push(e.to_string());
            }
            Err(e) => {
                shutdown.trigger();
                report.errors.push(format!("sink `{id}` crashed: {e}"));
            }
        }
    }
    report.errors.extend(chain.join());
    for (id, task) in source_tasks {
        match task.await {
            Ok(Ok(summary)) => report.sources.push((id, summary)),
            Ok(Err(e)) => report.errors.push(e.to_string()),
            Err(e) => report.errors.push(format!("source `{id}` crashed: {e}")),
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Turn SIGINT and SIGTERM into `shutdown`; a second signal exits at once
/// (status 130) for an operator who does not want to wait for the drain.
pub fn install_signal_handlers(shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        for round in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            if round == 0 {
                tracing::info!("signal received: finishing in-flight work (signal again to exit now)");
                shutdown.trigger();
            } else {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
        }
    });
}
