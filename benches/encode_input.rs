//! The storage encoders' bench input, shared (through `#[path]`) by the
//! `ship` and `kafka` benches so every encoder is measured on the same
//! events: 8 MiB of generator output parsed into batches of 2,048 events,
//! and a loop that encodes each batch into a fresh frame.

use sluice_core::{Batch, Event, Registry, Span};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_parse::ParseStage;
use sluice_ship::{Encoder, Frame};

/// The parsed batches and the input bytes they hold.
pub fn batches() -> (Vec<Batch>, u64) {
    let mut w = Workload::new(WorkloadSettings::default());
    let mut all = Vec::new();
    w.fill(&mut all, 8 << 20, u64::MAX);
    let mut parse = ParseStage::new(&Registry::new());
    let (mut out, mut bytes, mut data, mut events) = (Vec::new(), 0u64, Vec::new(), Vec::new());
    for line in all.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        events.push(Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(line);
        data.push(b'\n');
        bytes += line.len() as u64 + 1;
        if events.len() == 2048 {
            let mut b = Batch::new(std::mem::take(&mut data), std::mem::take(&mut events));
            parse.parse_batch(&mut b);
            out.push(b);
        }
    }
    let last: u64 = out.iter().map(|b| b.data_len() as u64).sum();
    debug_assert!(last <= bytes);
    (out, last)
}

/// Encode every batch of `input`; the encoded bytes.
pub fn encode_all(enc: &mut impl Encoder, input: &[Batch]) -> usize {
    let mut n = 0;
    for b in input {
        let mut f = Frame::default();
        enc.encode(b, &mut f);
        n += f.bytes.len();
    }
    n
}
