//! The tailer's rotation handling driven step by step (scan, read, check),
//! so an interleaving that the end-to-end tests hit only by chance is hit
//! every time.

use std::io::Write;
use std::path::Path;

use sluice_config::SourceConfig;
use sluice_core::{Registry, Shutdown};

use super::*;

fn cri(n: u64) -> String {
    format!("2026-11-25T01:02:03.{n:09}Z stdout F {{\"n\":{n}}}\n")
}

fn lines(range: std::ops::Range<u64>) -> String {
    range.map(cri).collect()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A tailer whose source section also has the lines `extra`.
fn tailer_with(root: &Path, extra: &str) -> Tailer {
    let toml = format!(
        "[sources.pods]\ntype = \"file\"\ninclude = [\"{}/pods/*/*/*.log*\"]\n{extra}\n[sinks.o]\ntype = \"stdout\"\n",
        root.display()
    );
    let cfg = sluice_config::parse(&toml, Path::new("test.toml"), &|_| None).unwrap();
    let Some(SourceConfig::File(file)) = cfg.sources.get("pods").cloned() else {
        panic!("a file source")
    };
    // Nothing is sent in these tests: batches are taken from the builder.
    let (out, _) = tokio::sync::mpsc::channel(1);
    let ctx = SourceContext {
        id: "pods".into(),
        out,
        shutdown: Shutdown::new(),
        registry: Registry::new(),
        batch_bytes: 1 << 16,
        max_line_bytes: 1 << 20,
    };
    Tailer::new(ctx, file, root.join("state")).unwrap()
}

/// A container directory whose `0.log` holds `first`, a tailer that has
/// found it and read those lines into `b`, and where a copytruncate copy
/// (`0.log.1`) would go.
struct Scene {
    _root: tempfile::TempDir,
    original: std::path::PathBuf,
    copy: std::path::PathBuf,
    t: Tailer,
    b: BatchBuilder,
    /// The original's id.
    o: FileId,
}

fn scene(first: std::ops::Range<u64>, extra: &str) -> Scene {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pods/ns_pod_uid/app");
    std::fs::create_dir_all(&dir).unwrap();
    let (original, copy) = (dir.join("0.log"), dir.join("0.log.1"));
    std::fs::write(&original, lines(first.clone())).unwrap();
    let mut t = tailer_with(root.path(), extra);
    let mut b = BatchBuilder::with_room(1 << 17);
    assert!(t.scan(true));
    let o = t.order[0];
    assert!(t.read_file(o, &mut b), "lines {first:?}");
    Scene {
        _root: root,
        original,
        copy,
        t,
        b,
        o,
    }
}

/// The `n` of every event in the builder's batch, in order.
fn numbers(builder: &mut BatchBuilder) -> Vec<u64> {
    let (batch, _) = builder.finish();
    batch
        .events()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(batch.line(e)).unwrap();
            v["n"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn a_copy_found_while_it_is_written_and_before_the_truncation_delivers_each_line_once() {
    let mut s = scene(0..10, "");
    // The application writes 10-19; copytruncate starts copying and is
    // seen with lines 0-12 copied so far.
    append(&s.original, &lines(10..20));
    std::fs::write(&s.copy, lines(0..13)).unwrap();
    assert!(s.t.scan(false), "the copy is found");
    let c = *s.t.order.iter().find(|&&id| id != s.o).unwrap();
    assert!(s.t.read_file(c, &mut s.b), "lines 10-12 from the copy");
    assert!(
        !s.t.read_file(s.o, &mut s.b),
        "the original waits: its bytes past the copy's start are the copy's to deliver"
    );
    // The copy completes, the original is truncated and gets a new line.
    append(&s.copy, &lines(13..20));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.original)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&s.original, &lines(20..21));
    assert!(
        !s.t.read_file(s.o, &mut s.b),
        "still waiting: the truncation is not seen yet"
    );
    assert!(s.t.read_file(c, &mut s.b), "lines 13-19 from the copy");
    s.t.check_rotations(&mut s.b, true);
    assert!(s.t.read_file(s.o, &mut s.b), "the truncated original restarts: line 20");
    assert_eq!(numbers(&mut s.b), (0..21).collect::<Vec<u64>>());
}

#[test]
fn a_copy_found_after_the_truncation_continues_where_the_original_was() {
    let mut s = scene(0..10, "");
    append(&s.original, &lines(10..15));
    std::fs::write(&s.copy, lines(0..15)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.original)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&s.original, &lines(15..16));
    // The truncation is seen first; its rescan finds the copy.
    s.t.check_rotations(&mut s.b, true);
    let c = *s.t.order.iter().find(|&&id| id != s.o).expect("found by the rescan");
    assert!(!s.t.read_file(s.o, &mut s.b), "the original waits for the copy");
    assert!(s.t.read_file(c, &mut s.b), "lines 10-14 from the copy");
    assert!(s.t.read_file(s.o, &mut s.b), "then line 15");
    assert_eq!(numbers(&mut s.b), (0..16).collect::<Vec<u64>>());
}

fn truncate(path: &Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(0)
        .unwrap();
}

#[test]
fn a_copy_found_shorter_than_its_original_was_read_is_filling_not_truncated() {
    let mut s = scene(0..15, "");
    // Lines 15-16 are written; copytruncate's copy is seen with only 0-11.
    append(&s.original, &lines(15..17));
    std::fs::write(&s.copy, lines(0..12)).unwrap();
    assert!(s.t.scan(false), "the copy is found");
    let c = *s.t.order.iter().find(|&&id| id != s.o).unwrap();
    s.t.check_rotations(&mut s.b, true);
    assert!(!s.t.read_file(c, &mut s.b), "the copy has not reached line 15 yet");
    assert!(!s.t.read_file(s.o, &mut s.b), "the original waits for its copy");
    // The copy completes, the original is truncated and gets line 17.
    append(&s.copy, &lines(12..17));
    truncate(&s.original);
    append(&s.original, &lines(17..18));
    s.t.check_rotations(&mut s.b, true);
    assert!(!s.t.read_file(s.o, &mut s.b), "the copy still holds lines 15-16");
    assert!(s.t.read_file(c, &mut s.b), "lines 15-16 from the copy");
    assert!(s.t.read_file(s.o, &mut s.b), "the truncated original restarts: line 17");
    assert_eq!(numbers(&mut s.b), (0..18).collect::<Vec<u64>>());
}

#[test]
fn a_copy_that_stops_short_of_where_its_original_was_read_delivers_nothing_and_lets_it_go_on() {
    let mut s = scene(0..15, "rotate_wait = \"50ms\"");
    // The copy is made, then line 15 is written and read from the original
    // before the truncation: the copy ends before where the original was.
    std::fs::write(&s.copy, lines(0..15)).unwrap();
    append(&s.original, &lines(15..16));
    assert!(s.t.read_file(s.o, &mut s.b), "line 15");
    truncate(&s.original);
    append(&s.original, &lines(16..17));
    s.t.check_rotations(&mut s.b, true);
    let c = *s.t.order.iter().find(|&&id| id != s.o).expect("found by the rescan");
    assert!(
        !s.t.read_file(s.o, &mut s.b),
        "the original waits while the copy may still grow"
    );
    std::thread::sleep(std::time::Duration::from_millis(60));
    s.t.check_rotations(&mut s.b, true);
    assert!(
        !s.t.read_file(c, &mut s.b),
        "the copy's lines were all read from the original"
    );
    assert!(s.t.read_file(s.o, &mut s.b), "the original goes on: line 16");
    s.t.check_rotations(&mut s.b, true);
    assert!(!s.t.read_file(c, &mut s.b), "the copy is not taken for truncated");
    assert_eq!(numbers(&mut s.b), (0..17).collect::<Vec<u64>>());
}

#[test]
fn lag_is_what_lies_past_the_checkpoint() {
    let mut s = scene(0..10, "");
    let size = std::fs::metadata(&s.original).unwrap().len() as i64;
    // Read, but nothing acknowledged yet: the whole file is behind.
    s.t.publish_lag();
    assert_eq!(
        (s.t.counters.lag_bytes.get(), s.t.counters.lag_max_bytes.get()),
        (size, size)
    );
    // Acknowledged up to the end, then the writer appends two lines.
    s.t.committed.get_mut(&s.o).unwrap().offset = size as u64;
    append(&s.original, &lines(10..12));
    let grown = std::fs::metadata(&s.original).unwrap().len() as i64;
    s.t.publish_lag();
    assert_eq!(
        (s.t.counters.lag_bytes.get(), s.t.counters.lag_max_bytes.get()),
        (grown - size, grown - size)
    );
}

#[test]
fn only_the_files_furthest_behind_get_a_series_and_the_rest_are_counted() {
    let root = tempfile::tempdir().unwrap();
    for (i, n) in [3u64, 9, 1, 6].iter().enumerate() {
        let dir = root.path().join(format!("pods/ns_pod{i}_uid/app"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), lines(0..*n)).unwrap();
    }
    let mut t = tailer_with(root.path(), "lag_series = 2");
    assert!(t.scan(true));
    // Nothing read or acknowledged: each file is behind by its size.
    t.publish_lag();
    let path = |i: usize| format!("{}/pods/ns_pod{i}_uid/app/0.log", root.path().display());
    let size = |i: usize| std::fs::metadata(path(i)).unwrap().len() as i64;
    assert_eq!(
        t.counters.lag_by_file.members(),
        [(path(1), size(1)), (path(3), size(3))]
    );
    assert_eq!(t.counters.lag_unlisted.get(), 2);
    // A file that caught up leaves the set; the next one behind takes its place.
    let caught_up = t
        .files
        .iter()
        .find(|(_, f)| f.path.ends_with("ns_pod1_uid/app/0.log"))
        .map(|(id, _)| *id);
    let caught_up = caught_up.unwrap();
    t.committed
        .entry(caught_up)
        .or_insert_with(|| Committed {
            fingerprint: Fingerprint::of(b""),
            offset: 0,
            path: String::new(),
            final_offset: None,
            before: None,
        })
        .offset = size(1) as u64;
    t.publish_lag();
    assert_eq!(
        t.counters.lag_by_file.members(),
        [(path(3), size(3)), (path(0), size(0))]
    );
    assert_eq!(t.counters.lag_unlisted.get(), 1);
}

#[test]
fn files_of_other_containers_that_start_alike_are_read_whole_not_taken_for_copies() {
    // Replicas printing the same lines (here: identical files) are files
    // of their own, at the first scan and when one appears later: taken
    // for copytruncate copies of each other they were never read, while
    // the run called itself clean.
    let root = tempfile::tempdir().unwrap();
    let path = |pod: &str| root.path().join(format!("pods/shop_{pod}_uid/app/0.log"));
    for pod in ["web-1", "web-2"] {
        std::fs::create_dir_all(path(pod).parent().unwrap()).unwrap();
        std::fs::write(path(pod), lines(0..5)).unwrap();
    }
    let mut t = tailer_with(root.path(), "");
    let mut b = BatchBuilder::with_room(1 << 17);
    assert!(t.scan(true));
    for id in t.order.clone() {
        assert!(t.read_file(id, &mut b));
    }
    std::fs::create_dir_all(path("web-3").parent().unwrap()).unwrap();
    std::fs::write(path("web-3"), lines(0..5)).unwrap();
    assert!(t.scan(false), "the third replica is found");
    let third = *t.order.last().unwrap();
    assert!(t.read_file(third, &mut b), "and read from its start");
    let mut got = numbers(&mut b);
    got.sort_unstable();
    assert_eq!(got, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
}

#[test]
fn a_run_that_stops_at_the_end_of_its_input_names_a_file_it_did_not_read_to_the_end() {
    let s = scene(0..3, "exit_at_eof = true");
    // Lines that arrive after the last read: a run that ends now has not
    // read everything, and must not say so.
    append(&s.original, &lines(3..5));
    let left = std::fs::metadata(&s.original).unwrap().len() - lines(0..3).len() as u64;
    let mut t = s.t;
    t.at_eof = true;
    let summary = t.settle().unwrap();
    assert_eq!(
        summary.problems,
        vec![format!(
            "{} not read to its end ({left} bytes left)",
            s.original.display()
        )]
    );
    // Stopped by a shutdown, the same run claims nothing about the files'
    // ends: its checkpoint says where the next start goes on.
    let s = scene(0..3, "exit_at_eof = true");
    append(&s.original, &lines(3..5));
    assert!(s.t.settle().unwrap().problems.is_empty());
}

#[test]
fn a_deleted_containers_stream_key_is_forgotten_and_never_reused() {
    let root = tempfile::tempdir().unwrap();
    let container = |pod: &str| {
        let dir = root.path().join(format!("pods/ns_{pod}_uid/app"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), lines(0..3)).unwrap();
        dir
    };
    let (a, b) = (container("a"), container("b"));
    let mut t = tailer_with(root.path(), "");
    assert!(t.scan(true));
    let mut keys: Vec<u64> = t.stream_keys.values().copied().collect();
    keys.sort();
    assert_eq!(keys, [2, 4]);
    // Pod a is deleted; pod c appears.
    std::fs::remove_dir_all(a.parent().unwrap()).unwrap();
    container("c");
    t.scan(false);
    let mut keys: Vec<(String, u64)> = t
        .stream_keys
        .iter()
        .map(|(dir, &k)| (dir.strip_prefix(root.path()).unwrap().display().to_string(), k))
        .collect();
    keys.sort();
    let b_key = t.stream_keys[&b];
    assert_eq!(
        keys,
        [
            ("pods/ns_b_uid/app".to_string(), b_key),
            ("pods/ns_c_uid/app".to_string(), 6)
        ]
    );
}

#[test]
fn checkpoints_of_files_deleted_while_stopped_are_dropped_at_the_first_scan() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pods/ns_pod_uid/app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0.log"), lines(0..3)).unwrap();
    let live = FileId::of(&std::fs::metadata(dir.join("0.log")).unwrap());
    // The last run checkpointed this file and one deleted since.
    let entry = |ino, path: &str| crate::checkpoint::FileCheckpoint {
        dev: live.dev,
        ino,
        fingerprint: crate::checkpoint::Fingerprint { len: 0, crc: 0 },
        offset: 10,
        path: path.into(),
        before: None,
    };
    crate::checkpoint::CheckpointStore::new(&root.path().join("state"), "pods")
        .save(&[entry(live.ino, "0.log"), entry(live.ino + 1_000_000, "gone.log")])
        .unwrap();
    let mut t = tailer_with(root.path(), "");
    assert_eq!(t.committed.len(), 2);
    t.scan(true);
    assert_eq!(t.committed.keys().copied().collect::<Vec<_>>(), [live]);
    assert!(t.restored.is_empty());
}
