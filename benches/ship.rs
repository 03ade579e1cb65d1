//! The storage encoders on parsed generator output: MB/s per core of input
//! turned into ClickHouse rows, Loki entries, Elasticsearch bulk actions and
//! Kafka records, plus the gzip level-1 pass the HTTP sinks run on a request
//! body. These run on a sink's intake and delivery tasks for every event.
//!
//! Run: `cargo bench -p sluice-ship --bench ship`

// criterion_group! generates a public function it cannot document.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_core::{Batch, Event, Registry, Span};
use sluice_generator::{Workload, WorkloadSettings};
use sluice_parse::ParseStage;
use sluice_ship::{clickhouse, elasticsearch, http, loki, Encoder, Frame};

fn batches() -> (Vec<Batch>, u64) {
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

fn encode_all(enc: &mut impl Encoder, input: &[Batch]) -> usize {
    let mut n = 0;
    for b in input {
        let mut f = Frame::default();
        enc.encode(b, &mut f);
        n += f.bytes.len();
    }
    n
}

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
    group.bench_function("kafka_records", |b| {
        let mut enc = sluice_kafka::KafkaEncoder::new("service");
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
