use super::*;
use sluice_config::ByteSize;
use sluice_core::{ack, AckStatus, EventKind, Registry, Span};
use sluice_core::{Batch, Event};
use tokio::sync::mpsc;

fn json_batch(first: usize, n: usize) -> Batch {
    let mut data = Vec::new();
    let mut events = Vec::new();
    for i in first..first + n {
        let line = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(100));
        let mut e = Event::unparsed(Span::new(data.len(), line.len()), 0, Event::NO_ORIGIN);
        e.kind = EventKind::Json;
        e.keys = 2;
        events.push(e);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    Batch::new(data, events)
}

fn config(dir: &Path, compression: Compression, rotate: u64, max_files: Option<usize>) -> FileSinkConfig {
    FileSinkConfig {
        directory: dir.to_owned(),
        prefix: "t".into(),
        compression,
        zstd_level: 3,
        rotate_bytes: ByteSize(rotate),
        max_files,
    }
}

fn read_all(files: &[PathBuf]) -> String {
    let mut out = String::new();
    for f in files {
        let raw = std::fs::read(f).unwrap();
        let text = if f.extension().unwrap() == "zst" {
            zstd::decode_all(&raw[..]).unwrap()
        } else {
            raw
        };
        out.push_str(std::str::from_utf8(&text).unwrap());
    }
    out
}

fn run_sink(cfg: FileSinkConfig, batches: Vec<Batch>) -> (SinkSummary, Registry) {
    let registry = Registry::new();
    let (tx, rx) = mpsc::channel(64);
    for b in batches {
        tx.try_send(SinkBatch::sole(b)).unwrap();
    }
    drop(tx);
    let ctx = SinkContext {
        id: "f".into(),
        input: rx,
        registry: registry.clone(),
        shutdown: sluice_core::Shutdown::new(),
    };
    (run(ctx, cfg).unwrap(), registry)
}

#[test]
fn zstd_files_rotate_and_hold_every_line_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let batches = (0..40).map(|k| json_batch(k * 500, 500)).collect();
    let (summary, registry) = run_sink(config(dir.path(), Compression::Zstd, 8 * 1024, None), batches);
    assert_eq!(summary.events, 20_000);
    assert!(summary.files.len() > 1, "rotated: {:?}", summary.files);
    let mut sorted = list_files(dir.path(), "t", "ndjson.zst").unwrap();
    sorted.sort();
    assert_eq!(sorted, summary.files, "names sort in write order");
    let text = read_all(&summary.files);
    let ids: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (0..20_000).collect::<Vec<_>>());
    assert_eq!(registry.value("events_out_total", &[("sink", "f")]), Some(20_000));
    assert_eq!(
        registry.value("file_rotations_total", &[("sink", "f")]),
        Some(summary.files.len() as i64 - 1)
    );
}

#[test]
fn plain_files_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let batches = (0..20).map(|k| json_batch(k * 1000, 1000)).collect();
    let (summary, _) = run_sink(config(dir.path(), Compression::None, 64 * 1024, Some(2)), batches);
    let left = list_files(dir.path(), "t", "ndjson").unwrap();
    assert_eq!(left.len(), 2);
    assert!(summary.files.len() > 2);
    let mut newest = summary.files[summary.files.len() - 2..].to_vec();
    newest.sort();
    let mut left_sorted = left;
    left_sorted.sort();
    assert_eq!(left_sorted, newest, "the oldest files went first");
    let last_id = read_all(&newest).lines().last().map(|l| l.to_owned()).unwrap();
    assert!(last_id.starts_with("{\"i\":19999,"), "{last_id}");
}

#[test]
fn batches_are_acknowledged_after_the_write_and_failed_when_it_fails() {
    let (ack_tx, mut ack_rx) = ack::channel();
    let dir = tempfile::tempdir().unwrap();
    let mut ok = json_batch(0, 10);
    ok.add_ack(ack_tx.token(1));
    run_sink(config(dir.path(), Compression::Zstd, 1 << 20, None), vec![ok]);
    assert_eq!(ack_rx.try_recv().unwrap().status, AckStatus::Delivered);

    // A directory that cannot be created: the write fails, the batch is failed.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"file").unwrap();
    let mut doomed = json_batch(0, 10);
    doomed.add_ack(ack_tx.token(2));
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(SinkBatch::sole(doomed)).unwrap();
    drop(tx);
    let ctx = SinkContext {
        id: "f".into(),
        input: rx,
        registry: Registry::new(),
        shutdown: sluice_core::Shutdown::new(),
    };
    let err = run(ctx, config(&blocker.join("sub"), Compression::Zstd, 1 << 20, None)).unwrap_err();
    assert!(err.to_string().starts_with("sink `f`: writing a file failed"), "{err}");
    let a = ack_rx.try_recv().unwrap();
    assert_eq!((a.seq, a.status), (2, AckStatus::Failed));
}
