//! The storage encoders on parsed generator output: MB/s per core of input
//! turned into ClickHouse rows, Loki entries and Elasticsearch bulk actions,
//! plus the gzip level-1 pass the HTTP sinks run on a request
//! body. These run on a sink's intake and delivery tasks for every event.
//!
//! (Kafka records: `benches/kafka.rs`, same input.)
//!
//! Run: `cargo bench -p sluice-ship --bench ship`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
#[path = "encode_input.rs"]
mod encode_input;

use encode_input::{batches, encode_all};
use sluice_ship::{clickhouse, elasticsearch, http, loki, Encoder, Frame};

fn bench(c: &mut Criterion) {
    let (input, bytes) = batches();
    let mut group = c.benchmark_group("ship_encode");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    let columns = sluice_config::default_ch_columns();
    group.bench_function("clickhouse_rows", |b| {
        let mut enc = clickhouse::ClickhouseEncoder::new(&columns);
        b.iter(|| encode_all(&mut enc, &input))
    });
    let labels: Vec<String> = ["service", "env", "level", "namespace"].map(String::from).to_vec();
    group.bench_function("loki_entries", |b| {
        let mut enc = loki::LokiEncoder::new(&labels);
        b.iter(|| encode_all(&mut enc, &input))
    });
    group.bench_function("elasticsearch_bulk", |b| {
        let mut enc = elasticsearch::ElasticsearchEncoder::new("logs-{service}-{date}");
        b.iter(|| encode_all(&mut enc, &input))
    });
    // gzip level 1 of the ClickHouse body the encoder produced (its input
    // bytes count, so the figures add up per input MB).
    let mut enc = clickhouse::ClickhouseEncoder::new(&columns);
    let mut body = Vec::new();
    for b in &input {
        let mut f = Frame::default();
        enc.encode(b, &mut f);
        body.extend_from_slice(&f.bytes);
    }
    group.bench_function("gzip1_clickhouse_body", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            http::gzip(&body, 1, &mut out);
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
