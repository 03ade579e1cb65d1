//! The running parts of a pipeline and how they are started and stopped:
//! [`Sinks`], which live as long as their configuration does (a reload
//! that leaves a sink alone keeps it, its connections and its queue), and a
//! [`Generation`], the sources and stage chain of one configuration, which
//! a reload stops at a checkpoint and replaces.

use std::collections::BTreeMap;

use sluice_config::{Config, SinkConfig, SourceConfig};
use sluice_core::{Batch, Registry, Shutdown, SinkBatch, SinkContext, SinkSummary, SourceContext, SourceSummary};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{build_stages, chain, RunReport, RuntimeError};

/// A signal that fires when `parent` does, or on its own: a generation or
/// a sink can be stopped alone, and the process's shutdown stops them all.
pub(crate) fn linked(parent: &Shutdown) -> Shutdown {
    let child = Shutdown::new();
    let (mut parent, mut own) = (parent.clone(), child.clone());
    let fire = child.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = parent.wait() => fire.trigger(),
            _ = own.wait() => {}
        }
    });
    child
}

/// One running sink.
struct RunningSink {
    config: SinkConfig,
    /// The runtime's own sender: the sink's input stays open across
    /// generations until this is dropped.
    input: mpsc::Sender<SinkBatch>,
    stop: Shutdown,
    task: JoinHandle<Result<SinkSummary, String>>,
}

/// Every running sink, by id.
#[derive(Default)]
pub(crate) struct Sinks {
    running: BTreeMap<String, RunningSink>,
}

impl Sinks {
    /// Make the running sinks those of `config`: stop the ones it no longer
    /// has or has changed (each drains what it holds first), start the new
    /// ones. Returns one line per change.
    pub(crate) async fn reconcile(
        &mut self,
        config: &Config,
        registry: &Registry,
        process: &Shutdown,
        report: &mut RunReport,
    ) -> Vec<String> {
        let mut changes = Vec::new();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(id, s)| config.sinks.get(*id) != Some(&s.config))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            self.stop(id, report).await;
            changes.push(if config.sinks.contains_key(id) {
                format!("sink `{id}` restarted with its new settings")
            } else {
                format!("sink `{id}` removed")
            });
        }
        for (id, sink) in &config.sinks {
            if self.running.contains_key(id) {
                continue;
            }
            if !stale.contains(id) {
                changes.push(format!("sink `{id}` added"));
            }
            let running = spawn_sink(id, sink, config, registry, process);
            self.running.insert(id.clone(), running);
        }
        changes
    }

    /// Senders for the chain, in the configuration's sink order.
    pub(crate) fn senders(&self, config: &Config) -> Vec<(String, mpsc::Sender<SinkBatch>)> {
        config
            .sinks
            .keys()
            .filter_map(|id| self.running.get(id).map(|s| (id.clone(), s.input.clone())))
            .collect()
    }

    /// Close one sink's input, let it drain within its shutdown deadline,
    /// and record what it reports.
    async fn stop(&mut self, id: &str, report: &mut RunReport) {
        if let Some(s) = self.running.remove(id) {
            drop(s.input);
            s.stop.trigger();
            record_sink(report, id, s.task.await);
        }
    }

    /// Close every sink's input and wait for each to finish.
    pub(crate) async fn finish(self, report: &mut RunReport) {
        // Inputs close first, so each sink drains as soon as the chain is done.
        let mut tasks = Vec::new();
        for (id, s) in self.running {
            drop(s.input);
            tasks.push((id, s.task));
        }
        for (id, task) in tasks {
            record_sink(report, &id, task.await);
        }
    }
}

fn record_sink(report: &mut RunReport, id: &str, joined: Result<Result<SinkSummary, String>, tokio::task::JoinError>) {
    match joined {
        Ok(Ok(summary)) => merge_sink(report, id, summary),
        Ok(Err(e)) => report.errors.push(e),
        Err(e) => report.errors.push(format!("sink `{id}` crashed: {e}")),
    }
}

fn spawn_sink(id: &str, sink: &SinkConfig, config: &Config, registry: &Registry, process: &Shutdown) -> RunningSink {
    let (tx, rx) = mpsc::channel::<SinkBatch>(config.pipeline.channel_capacity);
    let stop = linked(process);
    let ctx = SinkContext {
        id: id.to_string(),
        input: rx,
        registry: registry.clone(),
        shutdown: stop.clone(),
    };
    let data_dir = &config.data_dir;
    let task = match sink {
        SinkConfig::Stdout(_) => sluice_io::stdout_sink::spawn(ctx),
        SinkConfig::File(cfg) => sluice_io::file_sink::spawn(ctx, cfg.clone()),
        SinkConfig::Clickhouse(cfg) => sluice_ship::spawn_clickhouse(ctx, cfg.clone(), data_dir),
        SinkConfig::Loki(cfg) => sluice_ship::spawn_loki(ctx, cfg.clone(), data_dir),
        SinkConfig::Elasticsearch(cfg) => sluice_ship::spawn_elasticsearch(ctx, cfg.clone(), data_dir),
        SinkConfig::Kafka(cfg) => sluice_kafka::spawn_sink(ctx, cfg.clone(), data_dir),
    };
    // A dead sink cannot take more: stop the input, let the rest drain.
    let process = process.clone();
    let id = id.to_string();
    let task = tokio::spawn(async move {
        let outcome = match task.await {
            Ok(Ok(summary)) => Ok(summary),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("sink `{id}` crashed: {e}")),
        };
        if outcome.is_err() {
            process.trigger();
        }
        outcome
    });
    RunningSink {
        config: sink.clone(),
        input: tx,
        stop,
        task,
    }
}

/// The sources and stage chain of one configuration.
pub(crate) struct Generation {
    stop: Shutdown,
    chain: chain::Chain,
    sources: JoinHandle<SourceResults>,
    /// The sources' results once [`Generation::sources_ended`] saw them.
    ended: Option<Result<SourceResults, tokio::task::JoinError>>,
}

type SourceResults = Vec<(String, Result<SourceSummary, String>)>;

impl Generation {
    /// Start the chain toward `sinks`, then the sources.
    pub(crate) fn start(
        config: &Config,
        registry: &Registry,
        sinks: Vec<(String, mpsc::Sender<SinkBatch>)>,
        process: &Shutdown,
    ) -> Result<Generation, RuntimeError> {
        let capacity = config.pipeline.channel_capacity;
        let (head_tx, head_rx) = mpsc::channel::<Batch>(capacity);
        let stages = build_stages(config, registry)?;
        let chain = chain::start(stages, head_rx, sinks, capacity, registry)?;
        let stop = linked(process);
        let mut tasks = Vec::new();
        for (id, source) in &config.sources {
            let ctx = SourceContext {
                id: id.clone(),
                out: head_tx.clone(),
                shutdown: stop.clone(),
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
            tasks.push((id.clone(), task));
        }
        // Only sources may keep the head open: when the last one ends, the
        // chain drains and closes behind it.
        drop(head_tx);
        let sources = tokio::spawn(async move {
            let mut out = Vec::new();
            for (id, task) in tasks {
                let r = match task.await {
                    Ok(Ok(summary)) => Ok(summary),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("source `{id}` crashed: {e}")),
                };
                out.push((id, r));
            }
            out
        });
        Ok(Generation {
            stop,
            chain,
            sources,
            ended: None,
        })
    }

    /// Resolves once every source has ended (input exhausted or stopped)
    /// and settled its acknowledgements. Cancel-safe: a `select!` may drop
    /// it and call it again.
    pub(crate) async fn sources_ended(&mut self) {
        if self.ended.is_none() {
            let results = (&mut self.sources).await;
            self.ended = Some(results);
        }
    }

    /// Stop the sources at their next checkpoint, wait until everything
    /// they read went through the chain and was acknowledged, and record
    /// their summaries.
    pub(crate) async fn finish(self, report: &mut RunReport) {
        self.stop.trigger();
        let results = match self.ended {
            Some(r) => r,
            None => self.sources.await,
        };
        match results {
            Ok(results) => {
                for (id, r) in results {
                    match r {
                        Ok(summary) => merge_source(report, &id, summary),
                        Err(e) => report.errors.push(e),
                    }
                }
            }
            Err(e) => report.errors.push(format!("sources crashed: {e}")),
        }
        // The head closed with the last source: the threads are ending.
        let chain = self.chain;
        match tokio::task::spawn_blocking(move || chain.join()).await {
            Ok(errors) => report.errors.extend(errors),
            Err(e) => report.errors.push(format!("stage chain crashed: {e}")),
        }
    }
}

/// Add one run of a source to the report: a reload runs a source again
/// under the same id, and the report speaks of the whole process.
fn merge_source(report: &mut RunReport, id: &str, s: SourceSummary) {
    match report.sources.iter_mut().find(|(known, _)| known == id) {
        Some((_, total)) => {
            total.emitted_events += s.emitted_events;
            total.delivered_events += s.delivered_events;
            total.failed_batches += s.failed_batches;
            total.problems.extend(s.problems);
        }
        None => report.sources.push((id.to_string(), s)),
    }
}

fn merge_sink(report: &mut RunReport, id: &str, s: SinkSummary) {
    match report.sinks.iter_mut().find(|(known, _)| known == id) {
        Some((_, total)) => {
            total.events += s.events;
            total.bytes += s.bytes;
            total.files.extend(s.files);
            total.dead_lettered += s.dead_lettered;
            total.dropped_batches += s.dropped_batches;
            total.dropped_events += s.dropped_events;
            total.abandoned_events += s.abandoned_events;
            // What a disk buffer held when one run of the sink ended, the
            // next run of it delivers: only the last run's figure holds.
            total.held_bytes = s.held_bytes;
            total.quarantined_bytes += s.quarantined_bytes;
        }
        None => report.sinks.push((id.to_string(), s)),
    }
}
