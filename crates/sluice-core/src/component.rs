//! The contract between the runtime and its edges: what a source and a sink
//! are given ([`SourceContext`], [`SinkContext`]), how they fail
//! ([`SourceError`], [`SinkError`]) and what they report when they end
//! ([`SourceSummary`], [`SinkSummary`]). Every source and sink crate builds
//! on these and on nothing of each other's; this module holds the types only.

use crate::{Batch, Registry, Shutdown, SinkBatch};
use tokio::sync::mpsc;

/// What a source reports when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSummary {
    /// Events the source emitted.
    pub emitted_events: u64,
    /// Events every sink accepted (a contiguous prefix of what was emitted).
    pub delivered_events: u64,
    /// Batches some sink could not deliver.
    pub failed_batches: u64,
    /// Input the source could not read, or progress it could not save
    /// (a file it may not open, a checkpoint it could not write), one
    /// message each: any makes the run not clean.
    pub problems: Vec<String>,
}

/// What every source gets from the runtime.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Component id from the configuration.
    pub id: String,
    /// Where batches go (the head of the stage chain). Bounded: a full
    /// channel is backpressure.
    pub out: mpsc::Sender<Batch>,
    /// Stop reading when it fires.
    pub shutdown: Shutdown,
    /// Metrics.
    pub registry: Registry,
    /// Target batch size in bytes.
    pub batch_bytes: usize,
    /// Longest line kept whole.
    pub max_line_bytes: usize,
}

/// What every sink gets from the runtime.
#[derive(Debug)]
pub struct SinkContext {
    /// Component id from the configuration.
    pub id: String,
    /// Batches to write, each shared with the other sinks (fan-out) and
    /// carrying this sink's claims on its acknowledgements: call
    /// [`SinkBatch::delivered`] once the data is written; any other end
    /// fails them. The channel closing means the input has ended: flush
    /// and return.
    pub input: mpsc::Receiver<SinkBatch>,
    /// Metrics.
    pub registry: Registry,
    /// The run's shutdown signal: a sink still holding data for a failing
    /// target gives up `shutdown_timeout` after it fired.
    pub shutdown: Shutdown,
}

/// A source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the input failed.
    #[error("source `{id}`: reading failed: {source}")]
    Read {
        /// Component id.
        id: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration could not be turned into a running source.
    #[error("source `{id}`: {message}")]
    Setup {
        /// Component id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// A sink failed; the batches it held were marked not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed.
    #[error("sink `{id}`: {action} failed: {source}")]
    Write {
        /// Component id.
        id: String,
        /// What it was doing.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration could not be turned into a running sink (a client
    /// that cannot be built, a buffer directory that cannot be opened).
    #[error("sink `{id}`: {message}")]
    Setup {
        /// Component id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// What a sink reports when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// Events written.
    pub events: u64,
    /// NDJSON bytes written (before compression).
    pub bytes: u64,
    /// Files this sink created (file sink only).
    pub files: Vec<std::path::PathBuf>,
    /// Records the target refused for themselves, now in the dead-letter
    /// file (storage sinks).
    pub dead_lettered: u64,
    /// Batches dropped because the buffer was full (`drop_newest`).
    pub dropped_batches: u64,
    /// The events in them: dropped on purpose, by the operator's rule.
    pub dropped_events: u64,
    /// Events still undelivered when the run ended with the target down
    /// (memory buffer: reported to their sources as not delivered).
    pub abandoned_events: u64,
    /// Encoded bytes a disk buffer still holds at the end of the run: safe,
    /// and delivered by the next run, but not delivered by this one.
    pub held_bytes: u64,
    /// Bytes of damaged disk buffer regions moved to `quarantine/`: kept
    /// for inspection, never delivered.
    pub quarantined_bytes: u64,
}
