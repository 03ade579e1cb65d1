//! The multiline stage alone, on parsed batches where 90% of the lines are
//! single-line logs (generator JSON and plain text) and 10% belong to Java and
//! Python stack traces, spread over 16 streams.
//!
//! Run: `cargo bench -p sluice-multiline --bench multiline`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_core::{Batch, Event, Origin, Registry, Span, Stage};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_multiline::MultilineStage;
use sluice_parse::ParseStage;

const JAVA: &[&str] = &[
    "2026-11-25 01:02:03.004 ERROR [main] com.example.Billing - request failed",
    "java.lang.IllegalStateException: total mismatch for order 4711",
    "\tat com.example.Billing.total(Billing.java:120)",
    "\tat com.example.Billing.invoice(Billing.java:88)",
    "\tat com.example.Api.handle(Api.java:41)",
    "Caused by: java.io.IOException: disk full",
    "\tat com.example.Disk.write(Disk.java:12)",
    "\t... 3 more",
];
const PYTHON: &[&str] = &[
    "Traceback (most recent call last):",
    "  File \"/app/worker.py\", line 88, in score",
    "    features = self.fetch(batch)",
    "  File \"/app/store.py\", line 41, in fetch",
    "    return client.get(key, timeout=0.05)",
    "TimeoutError: feature store read timed out",
];

/// Parsed batches of about 256 KiB each; returns them and their byte size.
fn batches() -> (Vec<Batch>, u64) {
    let mut w = Workload::new(WorkloadSettings {
        seed: 3,
        ..WorkloadSettings::default()
    });
    let mut generated = Vec::new();
    w.fill(&mut generated, 8 << 20, u64::MAX);
    let singles: Vec<&[u8]> = generated
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"\t") && !l.starts_with(b" "))
        .collect();
    let origins: Vec<Arc<Origin>> = (0..16)
        .map(|k| {
            Arc::new(Origin {
                stream_key: k,
                fields_json: "".into(),
                default_service: None,
                namespace: None,
            })
        })
        .collect();
    let registry = Registry::new();
    let mut parse = ParseStage::new(&registry);
    let (mut out, mut total) = (Vec::new(), 0u64);
    let (mut data, mut events) = (Vec::new(), Vec::new());
    let mut origin_of = Vec::new();
    let mut trace_turn = 0usize;
    for (i, single) in singles.iter().enumerate() {
        let mut lines: Vec<&[u8]> = vec![single];
        // About one trace line in ten: a 7-line trace every ~63 singles.
        if i.is_multiple_of(63) {
            let t = if trace_turn.is_multiple_of(2) { JAVA } else { PYTHON };
            trace_turn += 1;
            lines.extend(t.iter().map(|l| l.as_bytes()));
        }
        let stream = i % 16;
        for l in lines {
            events.push(Event::unparsed(Span::new(data.len(), l.len()), 0, 0));
            origin_of.push(stream);
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        if data.len() >= 256 << 10 || i + 1 == singles.len() {
            total += data.len() as u64;
            let mut b = Batch::new(std::mem::take(&mut data), Vec::new());
            let idx: Vec<u32> = origins.iter().map(|o| b.add_origin(o.clone())).collect();
            for (e, s) in events.iter_mut().zip(origin_of.drain(..)) {
                e.origin = idx[s];
            }
            *b.events_mut() = std::mem::take(&mut events);
            parse.parse_batch(&mut b);
            out.push(b);
        }
    }
    (out, total)
}

fn clone_batch(b: &Batch) -> Batch {
    let mut c = Batch::new(b.data().to_vec(), Vec::new());
    let _ = c.push_arena(b.arena());
    for e in b.events() {
        if let Some(o) = b.origin_arc(e) {
            c.add_origin(o);
        }
    }
    *c.events_mut() = b.events().to_vec();
    c
}

fn bench(c: &mut Criterion) {
    let (batches, bytes) = batches();
    let mut group = c.benchmark_group("multiline");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function("auto_90_single_10_trace", |b| {
        let cfg: sluice_config::Config = sluice_config::parse(
            "[sources.i]\ntype=\"stdin\"\n[sinks.o]\ntype=\"stdout\"\n[multiline]\n",
            std::path::Path::new("b"),
            &|_| None,
        )
        .unwrap();
        let mut stage = MultilineStage::new(cfg.multiline.as_ref().unwrap(), &Registry::new()).unwrap();
        b.iter_batched(
            || batches.iter().map(clone_batch).collect::<Vec<_>>(),
            |bs| {
                let mut out = Vec::with_capacity(bs.len() + 1);
                for batch in bs {
                    stage.process(batch, &mut out);
                }
                stage.finish(&mut out);
                out
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
