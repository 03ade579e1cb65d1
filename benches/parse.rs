//! The parse stage on generator output, next to simd-json's own full parse
//! (a `BorrowedValue` per line) and its tape-only parse on the same bytes.
//!
//! Run: `cargo bench -p sluice-parse --bench parse`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_core::{Batch, Event, Registry, Span};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_parse::ParseStage;

/// A framed batch before it becomes a `Batch`: its data and events.
type Framed = (Vec<u8>, Vec<Event>);

/// ~8 MiB of generator output, framed into 256 KiB batches as the stdin
/// source would.
fn workload() -> (Vec<u8>, Vec<Framed>) {
    let mut w = Workload::new(WorkloadSettings {
        seed: 42,
        ..WorkloadSettings::default()
    });
    let mut all = Vec::new();
    w.fill(&mut all, 8 << 20, u64::MAX);
    let mut batches = Vec::new();
    let mut data = Vec::new();
    let mut events = Vec::new();
    for line in all.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        events.push(Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(line);
        data.push(b'\n');
        if data.len() >= 256 << 10 {
            batches.push((std::mem::take(&mut data), std::mem::take(&mut events)));
        }
    }
    batches.push((data, events));
    (all, batches)
}

fn bench(c: &mut Criterion) {
    let (all, batches) = workload();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(all.len() as u64));
    group.sample_size(20);

    group.bench_function("sluice_field_extraction", |b| {
        let registry = Registry::new();
        let mut stage = ParseStage::new(&registry);
        b.iter_batched(
            || {
                batches
                    .iter()
                    .map(|(d, e)| Batch::new(d.clone(), e.clone()))
                    .collect::<Vec<_>>()
            },
            |mut bs| {
                for batch in &mut bs {
                    stage.parse_batch(batch);
                }
                bs
            },
            BatchSize::LargeInput,
        )
    });

    let lines: Vec<&[u8]> = all.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    group.bench_function("simd_json_full_parse_borrowed_value", |b| {
        let mut scratch = Vec::new();
        let mut buffers = simd_json::Buffers::new(4096);
        b.iter(|| {
            let mut ok = 0usize;
            for line in &lines {
                scratch.clear();
                scratch.extend_from_slice(line);
                if simd_json::to_borrowed_value_with_buffers(&mut scratch, &mut buffers).is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    });

    group.bench_function("simd_json_tape_only", |b| {
        let mut scratch = Vec::new();
        let mut buffers = simd_json::Buffers::new(4096);
        let mut tape = simd_json::Tape(Vec::new());
        b.iter(|| {
            let mut ok = 0usize;
            for line in &lines {
                scratch.clear();
                scratch.extend_from_slice(line);
                scratch.resize(line.len() + simd_json::INPUT_PADDING, 0);
                let mut t = std::mem::replace(&mut tape, simd_json::Tape(Vec::new())).reset();
                if simd_json::fill_tape_padded(&mut scratch, line.len(), &mut buffers, &mut t).is_ok() {
                    ok += 1;
                }
                tape = t.reset();
            }
            ok
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
