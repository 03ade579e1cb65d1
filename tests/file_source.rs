//! End to end for the node-level file source, with real files, real
//! rotation (rename+create and copytruncate), real processes and kill -9.
//!
//! Every written line is `{"f":<file>,"s":"<stream>","n":<seq per stream>}`
//! (plus padding), so the output can be checked for exactly-once, in order
//! per stream.

mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const FILES: usize = 20;

fn pod_dir(root: &Path, i: usize) -> PathBuf {
    root.join("pods").join(format!("ns{}_pod{i}_uid{i}", i % 3)).join("app")
}

/// Appends runtime lines to one container's log file and rotates it.
struct Writer {
    index: usize,
    path: PathBuf,
    cri: bool,
    file: std::fs::File,
    seq: [u64; 2],
    rotations: usize,
    /// (stream, seq) → byte offset of the runtime line that completes it, in
    /// the file generation it was written to (for the kill test's bound).
    offsets: Vec<((usize, u64), u64)>,
    written: u64,
}

impl Writer {
    fn new(root: &Path, index: usize, cri: bool) -> Writer {
        let dir = pod_dir(root, index);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        Writer {
            index,
            path,
            cri,
            file,
            seq: [0, 0],
            rotations: 0,
            offsets: Vec::new(),
            written: 0,
        }
    }

    /// One application line on `stream` (0 stdout, 1 stderr), split into
    /// pieces when `split`.
    fn line(&mut self, stream: usize, split: bool) {
        let n = self.seq[stream];
        self.seq[stream] += 1;
        let name = ["stdout", "stderr"][stream];
        let record = format!(
            "{{\"f\":{},\"s\":\"{name}\",\"n\":{n},\"pad\":\"{}\"}}",
            self.index,
            "x".repeat(40)
        );
        let pieces: Vec<&str> = if split {
            let mid = record.len() / 2;
            vec![&record[..mid], &record[mid..]]
        } else {
            vec![&record[..]]
        };
        let mut out = String::new();
        for (k, piece) in pieces.iter().enumerate() {
            let last = k + 1 == pieces.len();
            if self.cri {
                let tag = if last { "F" } else { "P" };
                out.push_str(&format!(
                    "2026-11-25T01:02:03.{:09}Z {name} {tag} {piece}\n",
                    n % 1_000_000_000
                ));
            } else {
                let log = if last { format!("{piece}\n") } else { piece.to_string() };
                let log = serde_json::to_string(&log).unwrap();
                out.push_str(&format!(
                    "{{\"log\":{log},\"stream\":\"{name}\",\"time\":\"2026-11-25T01:02:03.5Z\"}}\n"
                ));
            }
        }
        self.offsets.push(((stream, n), self.written));
        self.file.write_all(out.as_bytes()).unwrap();
        self.written += out.len() as u64;
    }

    fn rotate_rename(&mut self) {
        self.rotations += 1;
        let rotated = self.path.with_extension(format!("log.{}", self.rotations));
        std::fs::rename(&self.path, &rotated).unwrap();
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap();
        self.written = 0;
    }

    fn rotate_copytruncate(&mut self) {
        self.rotations += 1;
        let copy = self.path.with_extension(format!("log.{}", self.rotations));
        std::fs::copy(&self.path, &copy).unwrap();
        self.file.set_len(0).unwrap();
        self.written = 0;
    }
}

fn write_config(root: &Path, out: &Path, include: &str, extra: &str) -> PathBuf {
    let cfg = root.join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{state}\"\n\
             [pipeline]\nbatch_bytes = \"64KiB\"\n\
             [sources.pods]\ntype = \"file\"\ninclude = [\"{include}\"]\nscan_interval = \"100ms\"\n\
             poll_interval = \"20ms\"\nrotate_wait = \"300ms\"\ncheckpoint_interval = \"100ms\"\n{extra}\n\
             [sinks.out]\ntype = \"file\"\ndirectory = \"{out}\"\ncompression = \"none\"\nrotate_bytes = \"64MiB\"\n\
             [report]\nsummary = false\n",
            state = root.join("state").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    cfg
}

fn output_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).map_or(Vec::new(), |d| d.map(|e| e.unwrap().path()).collect());
    files.sort();
    files
}

/// Every complete output line, parsed; a torn last line (kill -9 mid-write)
/// is skipped: it was never acknowledged, so it is re-sent.
fn read_output(dir: &Path) -> Vec<serde_json::Value> {
    read_files(&output_files(dir))
}

fn read_files(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.split_inclusive('\n') {
            if !line.ends_with('\n') {
                continue;
            }
            out.push(serde_json::from_str(line.trim_end()).unwrap_or_else(|e| panic!("{}: {e}: {line}", f.display())));
        }
    }
    out
}

type Key = (u64, String, u64);

fn key(v: &serde_json::Value) -> Key {
    (
        v["f"].as_u64().unwrap(),
        v["s"].as_str().unwrap().to_string(),
        v["n"].as_u64().unwrap(),
    )
}

fn wait_for(out: &Path, want: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let got = read_output(out);
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rotation_both_ways_delivers_every_line_once_in_order() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let include = format!("{}/pods/*/*/*.log*", root.path().display());
    let cfg = write_config(root.path(), &out, &include, "");
    let mut writers: Vec<Writer> = (0..FILES).map(|i| Writer::new(root.path(), i, i % 2 == 0)).collect();
    let child = sluice()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let rounds = 60;
    for round in 0..rounds {
        for w in writers.iter_mut() {
            for k in 0..10 {
                w.line((round + k) % 2, (round * 7 + k) % 5 == 0);
            }
            if round % 15 == 7 {
                if (w.index + round) % 2 == 0 {
                    w.rotate_rename();
                } else {
                    w.rotate_copytruncate();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let total: u64 = writers.iter().map(|w| w.seq[0] + w.seq[1]).sum();
    wait_for(&out, total as usize, Duration::from_secs(60));
    stop(child);
    let got = read_output(&out);

    let mut per_stream: BTreeMap<(u64, String), Vec<u64>> = BTreeMap::new();
    for v in &got {
        let (f, s, n) = key(v);
        assert_eq!(v["container"], "app");
        assert_eq!(v["stream"], s.as_str(), "stream metadata matches the record's stream");
        per_stream.entry((f, s)).or_default().push(n);
    }
    for w in &writers {
        for (si, name) in ["stdout", "stderr"].iter().enumerate() {
            let seen = per_stream
                .get(&(w.index as u64, name.to_string()))
                .cloned()
                .unwrap_or_default();
            let want: Vec<u64> = (0..w.seq[si]).collect();
            assert_eq!(seen, want, "file {} {name}: every line exactly once, in order", w.index);
        }
    }
    assert_eq!(got.len() as u64, total);
}

#[test]
fn partials_interleaved_across_streams_reassemble() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let dir = pod_dir(root.path(), 0);
    std::fs::create_dir_all(&dir).unwrap();
    let ts = "2026-11-25T01:02:03.000000001Z";
    let cri = [
        format!("{ts} stdout P {{\"msg\":\"out-"),
        format!("{ts} stderr P err-part-1 "),
        format!("{ts} stdout P one-"),
        format!("{ts} stderr P err-part-2 "),
        format!("{ts} stdout F two\"}}"),
        format!("{ts} stderr F err-end"),
        format!("{ts} stdout F {{\"msg\":\"whole\"}}"),
    ];
    std::fs::write(dir.join("0.log"), cri.join("\n") + "\n").unwrap();
    let docker_dir = pod_dir(root.path(), 1);
    std::fs::create_dir_all(&docker_dir).unwrap();
    let big = "z".repeat(16 * 1024);
    let docker = [
        serde_json::json!({"log": format!("{{\"big\":\"{big}"), "stream": "stdout", "time": "t1"}),
        serde_json::json!({"log": "Traceback (most recent", "stream": "stderr", "time": "t2"}),
        serde_json::json!({"log": format!("{big}\"}}\n"), "stream": "stdout", "time": "t3"}),
        serde_json::json!({"log": " call last):\n", "stream": "stderr", "time": "t4"}),
    ];
    let docker: Vec<String> = docker.iter().map(|v| v.to_string()).collect();
    std::fs::write(docker_dir.join("0.log"), docker.join("\n") + "\n").unwrap();

    let include = format!("{}/pods/*/*/*.log", root.path().display());
    let cfg = write_config(root.path(), &out, &include, "exit_at_eof = true");
    let status = sluice().args(["run", "--config"]).arg(&cfg).status().unwrap();
    assert!(status.success());
    let got = read_output(&out);
    let mut lines: Vec<(String, String)> = got
        .iter()
        .map(|v| {
            let body = v.get("msg").or(v.get("message")).map_or_else(
                || format!("big:{}", v["big"].as_str().unwrap().len()),
                |m| m.as_str().unwrap().to_string(),
            );
            (v["stream"].as_str().unwrap().to_string(), body)
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ("stderr".to_string(), "Traceback (most recent call last):".to_string()),
            ("stderr".to_string(), "err-part-1 err-part-2 err-end".to_string()),
            ("stdout".to_string(), "big:32768".to_string()),
            ("stdout".to_string(), "out-one-two".to_string()),
            ("stdout".to_string(), "whole".to_string()),
        ]
    );
}

/// kill -9 at random moments under load, restart each time: nothing lost,
/// and the only duplicates are lines after the checkpoint of the killed run.
#[test]
fn kill_9_under_load_loses_nothing_and_repeats_only_the_unacknowledged_tail() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let include = format!("{}/pods/*/*/*.log", root.path().display());
    let cfg = write_config(root.path(), &out, &include, "");
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer_flag = stop_flag.clone();
    let root_path = root.path().to_owned();
    let writer = std::thread::spawn(move || {
        let mut writers: Vec<Writer> = (0..FILES).map(|i| Writer::new(&root_path, i, i % 2 == 0)).collect();
        let mut round = 0usize;
        while !writer_flag.load(std::sync::atomic::Ordering::Relaxed) {
            for w in writers.iter_mut() {
                for k in 0..5 {
                    w.line((round + k) % 2, k == 3);
                }
            }
            round += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        writers
    });

    let checkpoint_path = root.path().join("state/checkpoints/pods.json");
    // Per kill: the checkpointed offset of each file when it died, and the
    // output files that run wrote.
    let mut checkpoints: Vec<HashMap<String, u64>> = Vec::new();
    let mut runs: Vec<Vec<PathBuf>> = Vec::new();
    let mut known: Vec<PathBuf> = Vec::new();
    let new_files = |known: &mut Vec<PathBuf>| {
        let now = output_files(&out);
        let fresh: Vec<PathBuf> = now.iter().filter(|f| !known.contains(f)).cloned().collect();
        *known = now;
        fresh
    };
    let mut rng_state = 0x9e3779b97f4a7c15u64;
    for _ in 0..10 {
        let child = sluice()
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(Duration::from_millis(300 + rng_state % 700));
        let mut child = child;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        runs.push(new_files(&mut known));
        let cp: serde_json::Value = serde_json::from_slice(&std::fs::read(&checkpoint_path).unwrap()).unwrap();
        checkpoints.push(
            cp["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (f["path"].as_str().unwrap().to_string(), f["offset"].as_u64().unwrap()))
                .collect(),
        );
    }
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let writers = writer.join().unwrap();
    // A last clean run picks up the rest.
    let total: u64 = writers.iter().map(|w| w.seq[0] + w.seq[1]).sum();
    let child = sluice()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = wait_for(&out, usize::MAX, Duration::from_secs(0));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let distinct: std::collections::HashSet<Key> = got.iter().map(key).collect();
        if distinct.len() as u64 >= total || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        got = read_output(&out);
    }
    stop(child);
    runs.push(new_files(&mut known));
    let got = read_output(&out);

    let mut count: HashMap<Key, u32> = HashMap::new();
    for v in &got {
        *count.entry(key(v)).or_default() += 1;
    }
    for w in &writers {
        for (si, name) in ["stdout", "stderr"].iter().enumerate() {
            for n in 0..w.seq[si] {
                assert!(
                    count.contains_key(&(w.index as u64, name.to_string(), n)),
                    "lost: file {} {name} #{n}",
                    w.index
                );
            }
        }
    }
    assert_eq!(count.len() as u64, total);
    // The bound: what run k+1 repeats of earlier runs can only be lines at
    // or after the checkpoint run k died with (its unacknowledged tail).
    let offset_of: HashMap<Key, (String, u64)> = writers
        .iter()
        .flat_map(|w| {
            let path = w.path.to_string_lossy().into_owned();
            w.offsets.iter().map(move |((s, n), off)| {
                (
                    (w.index as u64, ["stdout", "stderr"][*s].to_string(), *n),
                    (path.clone(), *off),
                )
            })
        })
        .collect();
    let mut earlier: std::collections::HashSet<Key> = std::collections::HashSet::new();
    let mut duplicates = 0;
    for (k, files) in runs.iter().enumerate() {
        let lines: Vec<Key> = read_files(files).iter().map(key).collect();
        for line in &lines {
            if k > 0 && earlier.contains(line) {
                duplicates += 1;
                let (path, off) = &offset_of[line];
                let checkpoint = checkpoints[k - 1].get(path).copied().unwrap_or(0);
                assert!(
                    *off >= checkpoint,
                    "run {k} repeated {line:?} at offset {off}, before the checkpoint {checkpoint}"
                );
            }
        }
        earlier.extend(lines);
    }
    assert_eq!(duplicates as u64 + total, got.len() as u64);
    eprintln!("kill -9 x10: {total} lines, {duplicates} duplicates");
}
