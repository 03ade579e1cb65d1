//! The `stdout` sink: NDJSON on standard output (the core output contract).
//! Writes run on a blocking thread; a batch is acknowledged once its bytes
//! were handed to the kernel.

use std::io::Write;

use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::encode::write_batch;
use sluice_core::{SinkBatch, SinkContext, SinkError, SinkSummary};
use tokio::task::JoinHandle;

/// Start the stdout sink.
pub fn spawn(ctx: SinkContext) -> JoinHandle<Result<SinkSummary, SinkError>> {
    tokio::task::spawn_blocking(move || run(ctx, std::io::stdout().lock()))
}

/// The sink loop over any writer (tests pass a buffer).
pub fn run(mut ctx: SinkContext, mut out: impl Write) -> Result<SinkSummary, SinkError> {
    let labels = [("sink", ctx.id.as_str())];
    let events = ctx
        .registry
        .counter("events_out_total", "Events written by a sink.", &labels);
    component_metrics::sent_events(&ctx.registry, ComponentKind::Sink, &ctx.id, &events);
    let bytes = ctx.registry.counter(
        "bytes_out_total",
        "NDJSON bytes written by a sink (before compression).",
        &labels,
    );
    let mut summary = SinkSummary::default();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut held: Vec<SinkBatch> = Vec::new();
    while let Some(batch) = ctx.input.blocking_recv() {
        buf.clear();
        write_batch(&batch, &mut buf);
        let n = batch.len() as u64;
        held.push(batch);
        // Flush when the input is idle or a few batches wait, so a slow
        // reader does not hold many acknowledgements back.
        let should_flush = ctx.input.is_empty() || held.len() >= 8;
        let result = out
            .write_all(&buf)
            .and_then(|()| if should_flush { out.flush() } else { Ok(()) });
        if let Err(source) = result {
            fail_all(&held, &mut ctx);
            return Err(SinkError::Write {
                id: ctx.id,
                action: "writing to stdout",
                source,
            });
        }
        summary.events += n;
        summary.bytes += buf.len() as u64;
        events.add(n);
        bytes.add(buf.len() as u64);
        if should_flush {
            // With the kernel: delivered.
            held.drain(..).for_each(SinkBatch::delivered);
        }
    }
    if let Err(source) = out.flush() {
        fail_all(&held, &mut ctx);
        return Err(SinkError::Write {
            id: ctx.id,
            action: "flushing stdout",
            source,
        });
    }
    held.drain(..).for_each(SinkBatch::delivered);
    Ok(summary)
}

/// Mark everything held and everything still queued as not delivered.
pub(crate) fn fail_all(held: &[SinkBatch], ctx: &mut SinkContext) {
    for b in held {
        b.fail();
    }
    ctx.input.close();
    while let Ok(b) = ctx.input.try_recv() {
        b.fail();
    }
}
