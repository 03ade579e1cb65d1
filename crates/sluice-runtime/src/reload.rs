//! Applying a new configuration to a running pipeline without losing or
//! repeating a line.
//!
//! The file is read and checked first; a file that does not load, or that
//! changes what cannot change while running (`data_dir`: the checkpoints,
//! buffers and budget state live there), is refused and the old pipeline
//! never stops. A good one is applied in order: the sources stop at their
//! next read boundary and wait until everything they read was acknowledged
//! by every sink (so their checkpoints name exactly what was delivered);
//! the stage chain drains behind them (the budget stage saves its spend,
//! the multiline stage releases what it held); sinks the new file removes
//! or changes drain and stop (a disk buffer stays on disk, and a changed
//! sink's new run delivers it); new sinks start; then the new chain (the
//! budget stage reads the saved spend back) and the new sources, which
//! resume from the checkpoints. Sinks the file leaves alone keep running
//! throughout, with their connections and queues.

use sluice_config::Config;
use sluice_core::reload::ReloadOutcome;
use sluice_core::{metric_names, Counter, Registry, Shutdown};

use crate::topology::{Generation, Sinks};
use crate::{ConfigLoader, RunReport, RuntimeError};

/// The counters a reload moves.
pub(crate) struct ReloadCounters {
    applied: Counter,
    failed: Counter,
}

impl ReloadCounters {
    pub(crate) fn new(registry: &Registry) -> ReloadCounters {
        ReloadCounters {
            applied: registry.counter(
                metric_names::CONFIG_RELOADS_TOTAL,
                "Configuration reloads applied.",
                &[],
            ),
            failed: registry.counter(
                metric_names::CONFIG_RELOAD_FAILURES_TOTAL,
                "Configuration reloads refused; the running pipeline kept its configuration.",
                &[],
            ),
        }
    }

    /// Count and log one outcome.
    pub(crate) fn record(&self, outcome: &ReloadOutcome) {
        match outcome {
            Ok(changes) => {
                self.applied.inc();
                tracing::info!(changes = %changes.join("; "), "configuration reloaded");
            }
            Err(e) => {
                self.failed.inc();
                tracing::error!(error = %e, "configuration reload refused; the running pipeline is unchanged");
            }
        }
    }
}

/// What in `new` cannot be applied to a pipeline running `current`.
fn refusal(current: &Config, new: &Config) -> Option<String> {
    (new.data_dir != current.data_dir).then(|| {
        format!(
            "`data_dir` cannot change while running (it holds the checkpoints, disk buffers and budget state): {} → {}; restart sluice to move it",
            current.data_dir.display(),
            new.data_dir.display()
        )
    })
}

/// What a good reload changes that only takes effect at the next start.
fn deferred(current: &Config, new: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if new.admin != current.admin {
        notes.push("`admin` settings take effect at the next start".to_string());
    }
    notes
}

/// Load the file again and, if it is good, replace `generation` with one
/// running it. Returns the generation now running (or why none could start
/// again) and the outcome to report.
pub(crate) async fn apply(
    load: &ConfigLoader,
    current: &mut Config,
    generation: Generation,
    sinks: &mut Sinks,
    registry: &Registry,
    process: &Shutdown,
    report: &mut RunReport,
) -> (Result<Generation, RuntimeError>, ReloadOutcome) {
    let new = match load() {
        Ok(c) => c,
        Err(e) => return (Ok(generation), Err(e)),
    };
    if let Some(why) = refusal(current, &new) {
        return (Ok(generation), Err(why));
    }
    generation.finish(report).await;
    let mut changes = sinks.reconcile(&new, registry, process, report).await;
    match Generation::start(&new, registry, sinks.senders(&new), process) {
        Ok(g) => {
            changes.push("sources and stages restarted from their checkpoints".to_string());
            changes.extend(deferred(current, &new));
            *current = new;
            (Ok(g), Ok(changes))
        }
        Err(e) => {
            // The old configuration started before: bring it back.
            sinks.reconcile(current, registry, process, report).await;
            let again = Generation::start(current, registry, sinks.senders(current), process);
            (
                again,
                Err(format!(
                    "the new pipeline did not start ({e}); the previous configuration runs again"
                )),
            )
        }
    }
}
