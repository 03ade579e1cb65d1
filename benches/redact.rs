//! The redaction stage alone on parsed generator output: clean JSON lines
//! (secrets filtered out of the workload), and the mixed stream where ~3% of
//! the lines carry a secret.
//!
//! Run: `cargo bench -p sluice-redact --bench redact`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_core::{Batch, Event, Registry, Span, Stage};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_parse::ParseStage;
use sluice_redact::RedactStage;

/// Parsed ~256 KiB batches of the lines `keep` accepts, and their bytes.
fn batches(keep: impl Fn(&[u8]) -> bool) -> (Vec<Batch>, u64) {
    let mut w = Workload::new(WorkloadSettings {
        seed: 11,
        ..WorkloadSettings::default()
    });
    let mut all = Vec::new();
    w.fill(&mut all, 8 << 20, u64::MAX);
    let registry = Registry::new();
    let mut parse = ParseStage::new(&registry);
    let (mut out, mut total, mut data, mut events) = (Vec::new(), 0u64, Vec::new(), Vec::new());
    for line in all.split(|&b| b == b'\n').filter(|l| !l.is_empty() && keep(l)) {
        events.push(Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN));
        data.extend_from_slice(line);
        data.push(b'\n');
        if data.len() >= 256 << 10 {
            total += data.len() as u64;
            let mut b = Batch::new(std::mem::take(&mut data), std::mem::take(&mut events));
            parse.parse_batch(&mut b);
            out.push(b);
        }
    }
    (out, total)
}

fn clone_batch(b: &Batch) -> Batch {
    let mut c = Batch::new(b.data().to_vec(), b.events().to_vec());
    let _ = c.push_arena(b.arena());
    c
}

fn bench(c: &mut Criterion) {
    const SECRETS: [&[u8]; 10] = [
        b"\"email\"",
        b"\"headers\"",
        b"\"body\"",
        b"\"phone\"",
        b"\"card_number\"",
        b"\"rrn\"",
        b"\"detail\"",
        b"\"aws_access_key_id\"",
        b"\"callback\"",
        b"\"cookie\"",
    ];
    let clean = |l: &[u8]| l.starts_with(b"{") && !SECRETS.iter().any(|s| memchr::memmem::find(l, s).is_some());
    let cfg: sluice_config::Config = sluice_config::parse(
        "[sources.i]\ntype=\"stdin\"\n[sinks.o]\ntype=\"stdout\"\n[redact]\n",
        std::path::Path::new("b"),
        &|_| None,
    )
    .unwrap();
    let mut group = c.benchmark_group("redact");
    group.sample_size(20);
    for (name, (input, bytes)) in [
        ("clean_json", batches(clean)),
        ("mixed_3pct_secrets", batches(|_| true)),
    ] {
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| {
            let mut stage = RedactStage::new(cfg.redact.as_ref().unwrap(), &Registry::new()).unwrap();
            b.iter_batched(
                || input.iter().map(clone_batch).collect::<Vec<_>>(),
                |bs| {
                    let mut out = Vec::with_capacity(bs.len());
                    for batch in bs {
                        stage.process(batch, &mut out);
                    }
                    out
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
