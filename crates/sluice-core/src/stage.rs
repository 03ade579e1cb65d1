//! The synchronous middle of the pipeline: parse → multiline → redact →
//! budget/sample. Each stage runs on a worker thread and sees whole batches.

use std::time::Instant;

use crate::batch::Batch;

/// One step of the stage chain.
///
/// A stage receives a batch and pushes zero or more batches to `out`: most
/// edit the batch in place and push it on, a stitching stage may hold events
/// back (keeping their acknowledgement tokens) and release them later. Stages
/// must not block on I/O and should allocate per batch, not per event.
pub trait Stage: Send {
    /// A short name for logs and metrics (`parse`, `multiline`, ...).
    fn name(&self) -> &'static str;

    /// Process one batch.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>);

    /// Called about every 100 ms so a stage holding events can release those
    /// whose time is up.
    fn tick(&mut self, _now: Instant, _out: &mut Vec<Batch>) {}

    /// Called once when the input has ended: release everything held.
    fn finish(&mut self, _out: &mut Vec<Batch>) {}
}
