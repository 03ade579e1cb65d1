//! Builds a running pipeline from a [`Config`] and drives it to the end:
//! sources (tokio tasks or blocking readers) → a fixed chain of synchronous
//! stages, one worker thread each, joined by bounded channels → fan-out to
//! every sink. It owns wiring, backpressure, ticking, the shutdown order and
//! configuration reload (a new generation of sources and stages over the
//! sinks that stay); it must not know how any source reads, any stage
//! transforms or any sink writes.
//!
//! How a run ends (the mini-redis way): the input ends or [`Shutdown`]
//! fires → each source stops reading, sends what it framed and drops its
//! sender → the first stage sees its channel close, calls `finish` so held
//! events are released, and drops its own sender → ... → each sink sees its
//! channel close, flushes, and returns → the dropped batches release their
//! acknowledgements → each source's delivery ledger settles. Nothing in
//! flight is abandoned; shutdown only stops *new* input.

mod chain;
mod reload;
mod topology;

use std::time::{Duration, Instant};

use reload::ReloadCounters;
use sluice_config::Config;
use sluice_core::{Registry, Shutdown, SinkSummary, SourceSummary, Stage};
use sluice_parse::ParseStage;
use topology::Generation;

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
    /// The state folder is not private to sluice's user.
    #[error(transparent)]
    State(#[from] sluice_state::StateDirError),
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

/// Whether `config` keeps anything under `data_dir`: file checkpoints,
/// budget state, a network sink's buffer and dead letters.
fn keeps_state(config: &Config) -> bool {
    use sluice_config::{SinkConfig, SourceConfig};
    config.budget.is_some()
        || config.sources.values().any(|s| matches!(s, SourceConfig::File(_)))
        || config
            .sinks
            .values()
            .any(|s| !matches!(s, SinkConfig::Stdout(_) | SinkConfig::File(_)))
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
        let mut stage = sluice_budget::BudgetStage::new(b, registry, state).map_err(|e| RuntimeError::Stage {
            stage: "budget",
            message: e.to_string(),
        })?;
        if let Some(fleet) = b
            .fleet
            .as_ref()
            .filter(|_| b.scope == sluice_config::BudgetScope::Fleet)
        {
            let exchange = sluice_core::fleet::FleetExchange::new(&fleet.node_id);
            sluice_kafka::fleet::start_link(fleet, exchange.clone(), registry).map_err(|e| RuntimeError::Stage {
                stage: "budget",
                message: e.to_string(),
            })?;
            stage = stage.with_fleet(fleet, exchange, registry);
        }
        stages.push(Box::new(stage));
    }
    Ok(stages)
}

/// Reads and checks the configuration again for a reload: the binary
/// knows where it came from.
pub type ConfigLoader = Box<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Run `config` to the end (input exhausted or `shutdown` fired), applying
/// reloads (SIGHUP, `POST /reload`) with `reload` when there is one. Must
/// be called inside a multi-threaded tokio runtime.
pub async fn run(
    config: &Config,
    registry: &Registry,
    shutdown: Shutdown,
    reload: Option<ConfigLoader>,
) -> Result<RunReport, RuntimeError> {
    let started = Instant::now();
    if keeps_state(config) {
        sluice_state::prepare_dir(&config.data_dir)?;
    }
    let (reload_handle, mut requests) = sluice_core::reload::channel();
    let mut admin_state = sluice_admin::AdminState::new(registry.clone(), shutdown.clone(), config.admin.stall_after);
    if reload.is_some() {
        admin_state = admin_state.with_reload(reload_handle.clone());
    }
    // Up before the components, so a probe sees `starting`; a taken port
    // costs the endpoint, never the run.
    let _admin = match sluice_admin::start(&config.admin, admin_state.clone()) {
        Ok(server) => server,
        Err(e) => {
            tracing::warn!(error = %e, "running without the admin endpoint");
            None
        }
    };
    listen_for_hangup(reload.is_some().then(|| reload_handle.clone()));
    let counters = ReloadCounters::new(registry);

    let mut report = RunReport::default();
    let mut current = config.clone();
    // Sinks first, so the chain has somewhere to send.
    let mut sinks = topology::Sinks::default();
    sinks.reconcile(&current, registry, &shutdown, &mut report).await;
    let mut generation = match Generation::start(&current, registry, sinks.senders(&current), &shutdown) {
        Ok(g) => g,
        Err(e) => {
            sinks.finish(&mut report).await;
            return Err(e);
        }
    };
    admin_state.mark_started();

    loop {
        tokio::select! {
            _ = generation.sources_ended() => break,
            Some(request) = requests.recv() => {
                let (next, outcome) = match &reload {
                    _ if shutdown.is_triggered() => (Ok(generation), Err("the pipeline is shutting down".to_string())),
                    None => (Ok(generation), Err("no configuration file to reload: sluice runs its embedded default".to_string())),
                    Some(load) => {
                        reload::apply(load, &mut current, generation, &mut sinks, registry, &shutdown, &mut report).await
                    }
                };
                counters.record(&outcome);
                if let Some(reply) = request.reply {
                    let _ = reply.send(outcome);
                }
                match next {
                    Ok(g) => generation = g,
                    Err(e) => {
                        // Neither the new configuration nor the old one
                        // would start again: end the run, report why.
                        report.errors.push(e.to_string());
                        shutdown.trigger();
                        sinks.finish(&mut report).await;
                        report.elapsed = started.elapsed();
                        return Ok(report);
                    }
                }
            }
        }
    }
    generation.finish(&mut report).await;
    sinks.finish(&mut report).await;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// SIGHUP asks for a reload; without a configuration file to read again it
/// is logged and ignored (never the default action, which would kill the
/// process).
fn listen_for_hangup(handle: Option<sluice_core::reload::ReloadHandle>) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reload through the admin endpoint");
            return;
        }
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match &handle {
                Some(h) if h.request() => tracing::info!("SIGHUP: reloading the configuration"),
                Some(_) => tracing::warn!("SIGHUP: a reload is already queued"),
                None => tracing::warn!("SIGHUP ignored: no configuration file to reload (the embedded default runs)"),
            }
        }
    });
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
