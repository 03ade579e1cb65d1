//! sluice's edges for the foundation: the line framer every byte-stream
//! source shares, the `stdin` and `generator` sources, and the `stdout` and
//! `file` (NDJSON, optional zstd, size rotation) sinks. Sources turn bytes
//! into batches and attach acknowledgement tokens; sinks encode batches with
//! the core output contract and release the tokens once the bytes are
//! written. This crate must not parse, transform or drop events: that is
//! the stage chain's job.

mod delivery;
pub mod file_sink;
pub mod framer;
pub mod generator_source;
pub mod stdin_source;
pub mod stdout_sink;

pub use delivery::DeliveryLedger;
pub use framer::{FramerCounters, LineFramer};
