//! The budget bench's input, shared (through `#[path]`) with
//! `crates/sluice-budget/examples/decision_cost.rs` so both measure the
//! same events under the same configuration: generator output parsed into
//! batches cut at 256 KiB (the pipeline's default `batch_bytes`), and an
//! event-clock budget of 10 MiB/day for every service.

use sluice_core::{Batch, Event, Registry, Span};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_parse::ParseStage;

/// The budget configuration of both.
pub const CONFIG: &str =
    "[sources.i]\ntype=\"stdin\"\n[sinks.o]\ntype=\"stdout\"\n[budget]\nclock=\"event\"\ndefault=\"10MiB/day\"\n";

/// The same on the wall clock, the default outside replays: no `ts` is
/// read per event (and the probabilities follow the bench's own pace, so
/// its decisions are not the event clock's).
pub const WALL_CLOCK_CONFIG: &str =
    "[sources.i]\ntype=\"stdin\"\n[sinks.o]\ntype=\"stdout\"\n[budget]\nclock=\"wall\"\ndefault=\"10MiB/day\"\n";

/// 8 MiB of generator output (20 services), parsed, in whole batches.
pub fn generator_batches() -> Vec<Batch> {
    let mut w = Workload::new(WorkloadSettings::default());
    let mut all = Vec::new();
    w.fill(&mut all, 8 << 20, u64::MAX);
    let mut parse = ParseStage::new(&Registry::new());
    let (mut out, mut data, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for line in all.split(|&b| b == b'\n').filter(|l| l.starts_with(b"{")) {
        events.push(Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(line);
        data.push(b'\n');
        if data.len() >= 256 << 10 {
            let mut b = Batch::new(std::mem::take(&mut data), std::mem::take(&mut events));
            parse.parse_batch(&mut b);
            out.push(b);
        }
    }
    out
}

/// A fresh copy of `input`: new allocations, as a stage receives them.
pub fn fresh_copy(input: &[Batch]) -> Vec<Batch> {
    input
        .iter()
        .map(|b| Batch::new(b.data().to_vec(), b.events().to_vec()))
        .collect()
}
