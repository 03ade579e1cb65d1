//! The Kafka sink's record encoder on the same parsed generator output as
//! the storage encoders (`benches/ship.rs`): MB/s per core of input turned
//! into keyed records. Its own bench so `sluice-kafka` and `sluice-ship`
//! do not depend on each other through dev-dependencies.
//!
//! Run: `cargo bench -p sluice-kafka --bench kafka`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

#[path = "encode_input.rs"]
mod encode_input;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use encode_input::{batches, encode_all};

fn bench(c: &mut Criterion) {
    let (input, bytes) = batches();
    let mut group = c.benchmark_group("ship_encode");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("kafka_records", |b| {
        let mut enc = sluice_kafka::KafkaEncoder::new("service");
        b.iter(|| encode_all(&mut enc, &input))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
