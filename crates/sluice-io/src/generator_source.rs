//! The `generator` source: the built-in workload, as fast as possible or at a
//! fixed rate, for a count of lines or until stopped. Generation is CPU work,
//! so it runs on a blocking thread.

use std::time::{Duration, Instant};

use sluice_config::{GeneratorClock, GeneratorConfig};
use sluice_generator::{TimestampClock, Workload, WorkloadSettings};
use tokio::task::JoinHandle;

use crate::{DeliveryLedger, FramerCounters, LineFramer};
use sluice_core::{SourceContext, SourceError, SourceSummary};

/// Where stopped generators were, by source id and settings: a
/// configuration reload that keeps a generator's settings resumes it
/// instead of starting its count (and its lines) over.
static STOPPED: std::sync::Mutex<Vec<(String, GeneratorConfig, Workload)>> = std::sync::Mutex::new(Vec::new());

fn stopped() -> std::sync::MutexGuard<'static, Vec<(String, GeneratorConfig, Workload)>> {
    STOPPED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Workload settings from the source's configuration.
pub fn settings(cfg: &GeneratorConfig) -> Result<WorkloadSettings, String> {
    let clock = match cfg.clock {
        GeneratorClock::Wall => TimestampClock::wall(),
        GeneratorClock::Simulated => {
            let start = time::OffsetDateTime::parse(&cfg.start, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("start `{}`: {e}", cfg.start))?;
            let ms = (start.unix_timestamp_nanos() / 1_000_000) as i64;
            TimestampClock::simulated(ms, cfg.simulated_rate)
        }
    };
    Ok(WorkloadSettings {
        seed: cfg.seed,
        services: cfg.services,
        clock,
    })
}

/// Start the generator source.
pub fn spawn(ctx: SourceContext, cfg: GeneratorConfig) -> JoinHandle<Result<SourceSummary, SourceError>> {
    tokio::spawn(async move {
        let id = ctx.id.clone();
        let settings = settings(&cfg).map_err(|message| SourceError::Setup {
            id: id.clone(),
            message,
        })?;
        let worker = tokio::task::spawn_blocking(move || generate(ctx, cfg, settings));
        let ledger = worker.await.map_err(|e| SourceError::Setup {
            id,
            message: format!("generator thread failed: {e}"),
        })?;
        Ok(ledger.settle().await)
    })
}

fn generate(ctx: SourceContext, cfg: GeneratorConfig, settings: WorkloadSettings) -> DeliveryLedger {
    let mut ledger = DeliveryLedger::new(&ctx.registry, &ctx.id);
    let mut framer = LineFramer::new(
        ctx.batch_bytes,
        ctx.max_line_bytes,
        FramerCounters::new(&ctx.registry, &ctx.id),
    );
    let resumed = {
        let mut stopped = stopped();
        let at = stopped.iter().position(|(id, c, _)| *id == ctx.id && *c == cfg);
        at.map(|i| stopped.swap_remove(i).2)
    };
    let mut workload = resumed.unwrap_or_else(|| Workload::new(settings));
    let first = workload.lines();
    let limit = cfg.count.unwrap_or(u64::MAX);
    // At a fixed rate, batches hold ~50 ms of events so the flow is smooth.
    let per_batch = cfg.rate.map_or(u64::MAX, |r| ((r / 20.0).ceil() as u64).max(1));
    let started = Instant::now();
    while workload.lines() < limit && !ctx.shutdown.is_triggered() {
        let mut data = Vec::with_capacity(ctx.batch_bytes + 16 * 1024);
        let want = per_batch.min(limit - workload.lines());
        workload.fill(&mut data, ctx.batch_bytes, want);
        if let Some(rate) = cfg.rate {
            let due = started + Duration::from_secs_f64((workload.lines() - first) as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        if let Some(mut batch) = framer.frame_owned(data) {
            ledger.attach(&mut batch);
            if ctx.out.blocking_send(batch).is_err() {
                break;
            }
        }
    }
    if ctx.shutdown.is_triggered() {
        stopped().push((ctx.id.clone(), cfg, workload));
    }
    ledger
}
