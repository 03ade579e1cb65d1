//! The `component_*` families: one view of every source, stage and sink
//! in the same four names (events in, events out, bytes in, errors by
//! kind), labelled `component_kind` (`source`, `stage`, `sink`) and
//! `component` (its id). A component's own counters stay the home of each
//! number: these register the same counter under a second name
//! ([`Registry::alias_counter`]), so nothing is counted twice on the hot
//! path and the two names can never disagree.

use crate::{metric_names, Counter, Registry};

/// What kind of component a series is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// A source.
    Source,
    /// A stage of the chain.
    Stage,
    /// A sink.
    Sink,
}

impl ComponentKind {
    fn label(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Stage => "stage",
            ComponentKind::Sink => "sink",
        }
    }
}

const RECEIVED_HELP: &str = "Events a component took in (a source: framed from its input).";
const SENT_HELP: &str = "Events a component passed on (a sink: the target accepted).";

/// `counter` also counts the events `id` received.
pub fn received_events(registry: &Registry, kind: ComponentKind, id: &str, counter: &Counter) {
    registry.alias_counter(
        counter,
        metric_names::COMPONENT_RECEIVED_EVENTS_TOTAL,
        RECEIVED_HELP,
        &[("component_kind", kind.label()), ("component", id)],
    );
}

/// `counter` also counts the events `id` sent on (a sink: delivered).
pub fn sent_events(registry: &Registry, kind: ComponentKind, id: &str, counter: &Counter) {
    registry.alias_counter(
        counter,
        metric_names::COMPONENT_SENT_EVENTS_TOTAL,
        SENT_HELP,
        &[("component_kind", kind.label()), ("component", id)],
    );
}

/// The events-received counter of a component that keeps no count of its
/// own (the runtime counts what it hands each stage and sink).
pub fn received_events_counter(registry: &Registry, kind: ComponentKind, id: &str) -> Counter {
    registry.counter(
        metric_names::COMPONENT_RECEIVED_EVENTS_TOTAL,
        RECEIVED_HELP,
        &[("component_kind", kind.label()), ("component", id)],
    )
}

/// The events-sent counter of a component that keeps no count of its own.
pub fn sent_events_counter(registry: &Registry, kind: ComponentKind, id: &str) -> Counter {
    registry.counter(
        metric_names::COMPONENT_SENT_EVENTS_TOTAL,
        SENT_HELP,
        &[("component_kind", kind.label()), ("component", id)],
    )
}

/// `counter` also counts the bytes source `id` read.
pub fn received_bytes(registry: &Registry, id: &str, counter: &Counter) {
    registry.alias_counter(
        counter,
        metric_names::COMPONENT_RECEIVED_BYTES_TOTAL,
        "Bytes a source read from its input.",
        &[("component_kind", ComponentKind::Source.label()), ("component", id)],
    );
}

/// `counter` also counts errors of kind `error` in `id`.
pub fn errors(registry: &Registry, kind: ComponentKind, id: &str, error: &str, counter: &Counter) {
    registry.alias_counter(
        counter,
        metric_names::COMPONENT_ERRORS_TOTAL,
        "Errors by component and kind (each also counted by the component's own family).",
        &[("component_kind", kind.label()), ("component", id), ("kind", error)],
    );
}
