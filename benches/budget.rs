//! The budget stage's decisions on parsed generator events (20 services):
//! decisions per second on one core. Batches are cut at 256 KiB of lines,
//! the pipeline's default `batch_bytes`, and the whole input (~15 MB of
//! lines and events) is copied before each run, so the stage reads it from
//! the shared cache as it would after a stage on another core.
//!
//! `read_inputs_only` reads what a decision reads (the event's routing
//! fields and the first byte of each string field's bytes in the line) from
//! the same freshly copied input and does nothing with it: the memory
//! floor under `decide_20_services`, which shows how far the decisions are
//! from being memory-bound.
//!
//! `decide_batch_in_cache` copies each batch (untimed) just before deciding
//! it, so the batch sits in this core's cache as a stage before it on the
//! same core leaves it: the figure for the stage's own work, free of how
//! busy the machine's shared cache and memory are at the moment.
//!
//! `decide_batch_in_cache_wall_clock` is the same on the wall clock, the
//! default outside replays: the event clock reads every record's `ts`.
//! Its probabilities follow the bench's own pace, so it keeps other events.
//!
//! Run: `cargo bench -p sluice-budget --bench budget`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

#[path = "budget_input.rs"]
mod budget_input;

use budget_input::{fresh_copy, generator_batches, CONFIG, WALL_CLOCK_CONFIG};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_budget::BudgetStage;
use sluice_core::{Batch, Field, FieldValue, Registry};

/// Time `stage`'s decisions of `iters` passes over `input`, each batch
/// copied (untimed) just before it is decided.
fn decide_in_cache(stage: &mut BudgetStage, input: &[Batch], iters: u64) -> std::time::Duration {
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..iters {
        for batch in input {
            let mut copy = Batch::new(batch.data().to_vec(), batch.events().to_vec());
            let start = std::time::Instant::now();
            stage.decide(&mut copy);
            spent += start.elapsed();
            std::hint::black_box(copy);
        }
    }
    spent
}

fn bench(c: &mut Criterion) {
    let input = generator_batches();
    let events: u64 = input.iter().map(|b| b.events().len() as u64).sum();
    let parse = |text| sluice_config::parse(text, std::path::Path::new("b"), &|_| None).unwrap();
    let cfg: sluice_config::Config = parse(CONFIG);
    let wall: sluice_config::Config = parse(WALL_CLOCK_CONFIG);
    // A fresh copy of the input for each run (see the module docs).
    let fresh = || fresh_copy(&input);
    let mut group = c.benchmark_group("budget");
    group.throughput(Throughput::Elements(events));
    group.sample_size(20);
    group.bench_function("decide_20_services", |b| {
        let mut stage = BudgetStage::new(cfg.budget.as_ref().unwrap(), &Registry::new(), None).unwrap();
        b.iter_batched(
            fresh,
            |mut bs| {
                for batch in &mut bs {
                    stage.decide(batch);
                }
                bs
            },
            BatchSize::LargeInput,
        )
    });
    // Each batch copied just before its decisions (the copy untimed): the
    // batch sits in this core's cache as the stage before leaves it when it
    // ran on the same core, instead of coming from memory. The figure for
    // the stage's own work; `decide_20_services` adds the cost of reading
    // 15 MB from wherever the machine's shared cache left it.
    group.bench_function("decide_batch_in_cache", |b| {
        let mut stage = BudgetStage::new(cfg.budget.as_ref().unwrap(), &Registry::new(), None).unwrap();
        b.iter_custom(|iters| decide_in_cache(&mut stage, &input, iters))
    });
    // The same on the wall clock (the default outside replays): no `ts`
    // read per event.
    group.bench_function("decide_batch_in_cache_wall_clock", |b| {
        let mut stage = BudgetStage::new(wall.budget.as_ref().unwrap(), &Registry::new(), None).unwrap();
        b.iter_custom(|iters| decide_in_cache(&mut stage, &input, iters))
    });
    group.bench_function("read_inputs_only", |b| {
        let fields = [
            Field::Ts,
            Field::Level,
            Field::Service,
            Field::TraceId,
            Field::Status,
            Field::DurationMs,
            Field::Route,
            Field::ErrorType,
        ];
        b.iter_batched(
            fresh,
            |bs| {
                let mut sum = 0u64;
                for batch in &bs {
                    for e in batch.events() {
                        for f in fields {
                            sum = sum.wrapping_add(match e.field(f) {
                                FieldValue::Str(s) => u64::from(batch.data()[s.start as usize]),
                                FieldValue::Int(i) => i as u64,
                                _ => 1,
                            });
                        }
                    }
                }
                (bs, sum)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
