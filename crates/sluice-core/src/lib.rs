//! The shared vocabulary of every sluice stage: the zero-copy [`Batch`] of
//! [`Event`]s, the routing [`Field`]s the parse stage extracts, the [`Stage`]
//! trait the synchronous middle of the pipeline implements, the
//! acknowledgement path ([`AckToken`], [`AckTracker`]) through which a source
//! learns that every sink accepted its data, the source/sink contract
//! ([`component`]), the cooperative [`Shutdown`]
//! signal and the [`reload`] request, the [`Registry`] of internal counters, and the NDJSON output
//! contract ([`encode`]). This crate owns data layout and contracts only: it
//! must not do I/O, parse JSON, or depend on any concrete source, stage or sink.

pub mod ack;
pub mod added_fields;
pub mod batch;
pub mod component;
pub mod component_metrics;
pub mod encode;
pub mod event;
pub mod fleet;
pub mod json_scan;
pub mod metric_names;
pub mod metrics;
pub mod reload;
pub mod shutdown;
pub mod stage;

pub use ack::{AckReceiver, AckSender, AckStatus, AckToken, AckTracker, Acknowledgement};
pub use batch::{Batch, Origin, SinkBatch};
pub use component::{SinkContext, SinkError, SinkSummary, SourceContext, SourceError, SourceSummary};
pub use event::{Event, EventKind, Field, FieldValue, Span, FIELD_COUNT};
pub use metrics::{Counter, Gauge, GaugeSet, HistogramSeries, Registry};
pub use shutdown::Shutdown;
pub use stage::Stage;
