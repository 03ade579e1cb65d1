//! The synchronous middle: one worker thread per stage, bounded channels in
//! between, fan-out to the sinks at the end.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::{metric_names, AckToken, Batch, Counter, Gauge, Registry, SinkBatch, Stage};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::RuntimeError;

/// How often an idle stage is ticked (flush timeouts are multiples of it).
pub const TICK: Duration = Duration::from_millis(100);

/// Where a stage thread sends its output.
enum Downstream {
    Next(mpsc::Sender<Batch>),
    /// Each sink's input and the count of events it was handed.
    Sinks(Vec<(mpsc::Sender<SinkBatch>, Counter)>),
}

impl Downstream {
    /// Send one batch on; `false` once nobody downstream listens.
    fn send(&self, batch: Batch) -> bool {
        match self {
            Downstream::Next(tx) => match tx.blocking_send(batch) {
                Ok(()) => true,
                Err(mpsc::error::SendError(batch)) => {
                    batch.fail_acks();
                    false
                }
            },
            Downstream::Sinks(sinks) => {
                let mut batch = batch;
                // A batch whose events were all dropped on purpose (sampling)
                // is done.
                if batch.is_empty() {
                    batch.release_acks();
                    return true;
                }
                // Each sink gets the bytes shared and a claim of its own on
                // the acknowledgements; the batch's part ends here.
                let acks = batch.take_acks();
                let batch = Arc::new(batch);
                let mut any = false;
                for (tx, received) in sinks {
                    // A sink that died drops what it is sent: its claim fails.
                    let sent = tx.blocking_send(SinkBatch::new(batch.clone(), acks.clone())).is_ok();
                    if sent {
                        received.add(batch.len() as u64);
                    }
                    any |= sent;
                }
                acks.into_iter().for_each(AckToken::release);
                any
            }
        }
    }
}

/// The running chain.
pub struct Chain {
    threads: Vec<(&'static str, JoinHandle<()>)>,
}

impl Chain {
    /// Wait for every stage thread; returns one message per thread that
    /// crashed.
    pub fn join(self) -> Vec<String> {
        self.threads
            .into_iter()
            .filter_map(|(name, t)| t.join().err().map(|_| format!("stage `{name}` thread crashed")))
            .collect()
    }
}

/// Start one thread per stage (or one fan-out thread when there is none).
pub fn start(
    stages: Vec<Box<dyn Stage>>,
    head: mpsc::Receiver<Batch>,
    sinks: Vec<(String, mpsc::Sender<SinkBatch>)>,
    capacity: usize,
    registry: &Registry,
) -> Result<Chain, RuntimeError> {
    let sinks: Vec<(mpsc::Sender<SinkBatch>, Counter)> = sinks
        .into_iter()
        .map(|(id, tx)| {
            let received = component_metrics::received_events_counter(registry, ComponentKind::Sink, &id);
            (tx, received)
        })
        .collect();
    let handle = Handle::current();
    let mut threads = Vec::new();
    let mut input = head;
    let count = stages.len();
    let mut stages: Vec<Option<Box<dyn Stage>>> = stages.into_iter().map(Some).collect();
    if stages.is_empty() {
        stages.push(None);
    }
    let mut sinks = Some(sinks);
    for (i, stage) in stages.into_iter().enumerate() {
        let last = i + 1 >= count;
        let (downstream, next_input) = if last {
            (Downstream::Sinks(sinks.take().unwrap_or_default()), None)
        } else {
            let (tx, rx) = mpsc::channel(capacity);
            (Downstream::Next(tx), Some(rx))
        };
        let name = stage.as_ref().map_or("fanout", |s| s.name());
        let panics = registry.counter(
            "stage_panics_total",
            "Batches lost to a bug in a stage (the stage keeps running).",
            &[("stage", name)],
        );
        let watch = StageWatch {
            busy_since: registry.gauge(
                metric_names::STAGE_BUSY_SINCE_SECONDS,
                "Unix time a stage began its current batch; 0 while it waits (liveness reads it).",
                &[("stage", name)],
            ),
            queue: registry.gauge(
                metric_names::STAGE_QUEUE_BATCHES,
                "Batches waiting in a stage's input channel: where backpressure shows.",
                &[("stage", name)],
            ),
            stall: std::env::var(STALL_HOOK).is_ok_and(|s| s == name),
            flow: stage.is_some().then(|| {
                component_metrics::errors(registry, ComponentKind::Stage, name, "panic", &panics);
                (
                    component_metrics::received_events_counter(registry, ComponentKind::Stage, name),
                    component_metrics::sent_events_counter(registry, ComponentKind::Stage, name),
                )
            }),
        };
        let rx = std::mem::replace(&mut input, next_input.unwrap_or_else(|| mpsc::channel(1).1));
        let h = handle.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-{name}"))
            .spawn(move || stage_loop(stage, rx, downstream, h, panics, watch))
            .map_err(|source| RuntimeError::Thread { stage: name, source })?;
        threads.push((name, thread));
    }
    Ok(Chain { threads })
}

/// Test hook: a stage named in this variable hangs on its first batch, so
/// the liveness check can be seen failing. Never set in production.
pub const STALL_HOOK: &str = "SLUICE_TEST_STALL_STAGE";

/// What a stage thread publishes about itself for the admin endpoint.
struct StageWatch {
    busy_since: Gauge,
    queue: Gauge,
    stall: bool,
    /// Events in and out of the stage (none for the bare fan-out).
    flow: Option<(Counter, Counter)>,
}

impl StageWatch {
    fn begin(&self, queued: usize) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs().max(1));
        self.busy_since.set(now as i64);
        self.queue.set(queued as i64);
        if self.stall {
            loop {
                std::thread::park();
            }
        }
    }

    fn end(&self) {
        self.busy_since.set(0);
    }
}

fn stage_loop(
    mut stage: Option<Box<dyn Stage>>,
    mut input: mpsc::Receiver<Batch>,
    downstream: Downstream,
    handle: Handle,
    panics: Counter,
    watch: StageWatch,
) {
    let mut out = Vec::new();
    let mut last_tick = Instant::now();
    let mut open = true;
    while open {
        // Fast path without the timer while batches are flowing.
        let next = match input.try_recv() {
            Ok(b) => Some(b),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => {
                match handle.block_on(async { tokio::time::timeout(TICK, input.recv()).await }) {
                    Ok(b) => b,
                    Err(_) => {
                        tick(&mut stage, &mut out, &mut last_tick);
                        if !forward(&mut out, &downstream, &watch) {
                            break;
                        }
                        continue;
                    }
                }
            }
        };
        watch.begin(input.len());
        if let (Some(b), Some((received, _))) = (&next, &watch.flow) {
            received.add(b.len() as u64);
        }
        match next {
            Some(batch) => match stage.as_mut() {
                Some(s) => {
                    // A bug in a stage costs that batch (its acknowledgements
                    // fail, so no source checkpoints past it), not the process.
                    if catch_unwind(AssertUnwindSafe(|| s.process(batch, &mut out))).is_err() {
                        panics.inc();
                        tracing::error!(stage = s.name(), "stage panicked on a batch; batch not delivered");
                    }
                }
                None => out.push(batch),
            },
            None => {
                if let Some(s) = stage.as_mut() {
                    s.finish(&mut out);
                }
                open = false;
            }
        }
        if last_tick.elapsed() >= TICK {
            tick(&mut stage, &mut out, &mut last_tick);
        }
        watch.end();
        if !forward(&mut out, &downstream, &watch) {
            break;
        }
    }
    // Anything still queued can no longer be delivered.
    input.close();
    while let Ok(b) = input.try_recv() {
        b.fail_acks();
    }
}

fn tick(stage: &mut Option<Box<dyn Stage>>, out: &mut Vec<Batch>, last_tick: &mut Instant) {
    let now = Instant::now();
    if let Some(s) = stage.as_mut() {
        s.tick(now, out);
    }
    *last_tick = now;
}

fn forward(out: &mut Vec<Batch>, downstream: &Downstream, watch: &StageWatch) -> bool {
    if let Some((_, sent)) = &watch.flow {
        sent.add(out.iter().map(|b| b.len() as u64).sum());
    }
    let mut alive = true;
    for batch in out.drain(..) {
        if alive {
            alive = downstream.send(batch);
        } else {
            batch.fail_acks();
        }
    }
    alive
}

#[cfg(test)]
mod tests;
