//! Delivery tells the truth, against the real ClickHouse (Debian's 18.16,
//! started by the test) and the local HTTP server of the sink tests: a disk
//! buffer on a full volume applies backpressure and loses nothing; SIGTERM
//! during an outage ends within `shutdown_timeout` with the data read
//! again next start; a damaged disk buffer region is reported, not called
//! clean; a 200 whose body is a ClickHouse exception is no success.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::clickhouse::ClickHouse;
use common::http_server::HttpServer;
use common::{run_with_stdin, sluice, spawn_piped, write_config};

/// `n` CRI lines of JSON records numbered from `from`, each about 300 bytes.
fn cri_lines(from: u64, n: u64) -> String {
    let pad = "x".repeat(200);
    (from..from + n)
        .map(|i| {
            format!(
                "2026-11-25T01:00:00.000000000Z stdout F {{\"ts\":\"2026-11-25T01:00:00Z\",\"service\":\"orders\",\"seq\":{i},\"msg\":\"{pad}\"}}\n"
            )
        })
        .collect()
}

/// A tmpfs of `size` mounted at `at` for as long as it lives.
struct SmallVolume(PathBuf);

impl SmallVolume {
    fn mount(at: &Path, size: &str) -> SmallVolume {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: this test needs root (as CI has)",
            at.display()
        );
        SmallVolume(at.to_path_buf())
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The file source's checkpointed offset of its only file, if any.
fn checkpoint(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("state/checkpoints/pods.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["files"][0]["offset"].as_u64()
}

fn pod_source(dir: &Path, exit_at_eof: bool) -> String {
    format!(
        r#"
data_dir = "{d}/state"
[sources.pods]
type = "file"
include = ["{d}/pods/*/*/*.log"]
exit_at_eof = {exit_at_eof}
"#,
        d = dir.display()
    )
}

fn pod_log(dir: &Path) -> PathBuf {
    let pods = dir.join("pods/shop_orders-7d9f_1234/orders");
    std::fs::create_dir_all(&pods).unwrap();
    pods.join("0.log")
}

#[test]
fn a_full_disk_buffer_volume_holds_back_the_source_and_loses_nothing() {
    let mut ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let log = pod_log(dir.path());
    std::fs::write(&log, cri_lines(0, 6000)).unwrap();
    let file_len = std::fs::metadata(&log).unwrap().len();
    assert!(file_len > 1_800_000);
    let _volume = SmallVolume::mount(&dir.path().join("state/buffer"), "1m");
    let config = write_config(
        dir.path(),
        "sluice.toml",
        &format!(
            r#"{source}
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}"
[sinks.ch.delivery]
batch_max_events = 1000
batch_timeout = "200ms"
retry_initial_backoff = "100ms"
retry_max_backoff = "500ms"
breaker_open_for = "500ms"
[sinks.ch.delivery.buffer]
type = "disk"
max_bytes = "64MiB"
"#,
            source = pod_source(dir.path(), true),
            endpoint = ch.endpoint()
        ),
    );
    ch.stop();
    let child = sluice()
        .args(["run", "-c"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The volume fills; the source is held back: its checkpoint stays
    // behind what the buffer took, well short of the file's end.
    std::thread::sleep(Duration::from_secs(6));
    let held_back = checkpoint(dir.path()).unwrap_or(0);
    assert!(
        held_back < 1_100_000,
        "checkpoint {held_back} of {file_len}: a 1 MiB buffer cannot hold more"
    );
    ch.restart();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("disk buffer's volume is full"), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );
    let counts = ch.seq_counts("logs");
    assert_eq!(counts.len(), 6000, "every line arrived");
    assert!(counts.iter().all(|(s, n)| *s < 6000 && *n == 1), "each exactly once");
    assert_eq!(checkpoint(dir.path()), Some(file_len));
}

#[test]
fn sigterm_during_an_outage_with_a_full_memory_buffer_ends_at_the_deadline() {
    let mut ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let log = pod_log(dir.path());
    std::fs::write(&log, cri_lines(0, 20_000)).unwrap();
    let file_len = std::fs::metadata(&log).unwrap().len();
    let sink = format!(
        r#"
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}"
[sinks.ch.delivery]
batch_max_events = 2000
batch_max_bytes = "256KiB"
batch_timeout = "200ms"
retry_max_backoff = "1s"
shutdown_timeout = "3s"
[sinks.ch.delivery.buffer]
max_bytes = "256KiB"
"#,
        endpoint = ch.endpoint()
    );
    let running = write_config(dir.path(), "running.toml", &(pod_source(dir.path(), false) + &sink));
    ch.stop();
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(&running)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = signalled.elapsed();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took >= Duration::from_secs(3), "not before shutdown_timeout: {took:?}");
    assert!(stderr.contains("NOT clean:"), "{stderr}");
    assert!(
        stderr.contains("not delivered, its target still failing at shutdown"),
        "{stderr}"
    );
    let behind = checkpoint(dir.path()).unwrap_or(0);
    assert!(behind < file_len, "the checkpoint stays behind the undelivered lines");

    // The target is back: the next start reads them again and delivers all.
    ch.restart();
    let last = write_config(dir.path(), "last.toml", &(pod_source(dir.path(), true) + &sink));
    let out = sluice().args(["run", "-c"]).arg(&last).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let counts = ch.seq_counts("logs");
    assert_eq!(counts.len(), 20_000, "every line arrived");
    assert!(counts.iter().all(|(s, n)| *s < 20_000 && *n == 1), "each exactly once");
}

#[test]
fn a_damaged_disk_buffer_region_is_reported_not_clean() {
    let mut ch = ClickHouse::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "sluice.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.ch]
type = "clickhouse"
endpoint = "{endpoint}"
[sinks.ch.delivery]
batch_max_events = 100
shutdown_timeout = "1s"
retry_max_backoff = "200ms"
[sinks.ch.delivery.buffer]
type = "disk"
"#,
            d = dir.path().display(),
            endpoint = ch.endpoint()
        ),
    );
    let run = |input: &str| run_with_stdin(&config, input);
    // Ten frames of 100 records in the buffer while the target is down.
    ch.stop();
    let input: String = (0..1000)
        .map(|i| format!("{{\"ts\":\"2026-11-25T01:02:03Z\",\"service\":\"orders\",\"seq\":{i}}}\n"))
        .collect();
    let mut child = spawn_piped(&config);
    let mut stdin = child.stdin.take().unwrap();
    for chunk in input.lines().collect::<Vec<_>>().chunks(100) {
        stdin.write_all((chunk.join("\n") + "\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "held: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Flip one byte in the middle of the segment.
    let seg = std::fs::read_dir(dir.path().join("state/buffer/ch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&seg, bytes).unwrap();

    ch.restart();
    let out = run("");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NOT clean: sink `ch`:"), "{stderr}");
    assert!(
        stderr.contains("of damaged disk buffer moved to quarantine, not delivered"),
        "{stderr}"
    );
    let counts = ch.seq_counts("logs");
    assert!(counts.values().all(|&n| n == 1), "nothing twice");
    let quarantined = std::fs::read_dir(dir.path().join("state/buffer/ch/quarantine"))
        .unwrap()
        .count();
    assert!(quarantined >= 1);
    // The damaged frame's records are the only ones missing: whole frames
    // of 100 (the batches were written 150 ms apart).
    let missing = 1000 - counts.len();
    assert!(
        missing > 0 && missing.is_multiple_of(100) && missing <= 200,
        "{missing} missing"
    );
}

#[test]
fn a_clickhouse_200_whose_body_is_an_exception_is_retried() {
    // A proxy or a server that fails after sending its headers: the first
    // answer is a 200 carrying an exception, the next a plain success.
    let server = HttpServer::start(|n, _| {
        if n == 0 {
            (
                200,
                "Code: 999. Coordination::Exception: Connection loss. (KEEPER_EXCEPTION)".into(),
            )
        } else {
            (200, String::new())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = stdin_to(dir.path(), &server.url(), "");
    let input: String = (0..50).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    let out = run_with_stdin(&config, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 1 retries"), "{stderr}");
    let log = server.log.lock().unwrap();
    assert_eq!(log.len(), 2, "sent again after the exception");
    assert_eq!(log[0].0.body, log[1].0.body);
    assert_eq!(
        log[1].0.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(),
        50
    );
}

/// The `seq` of each row of a ClickHouse `JSONEachRow` body.
fn row_seqs(body: &[u8]) -> Vec<u64> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let row: serde_json::Value = serde_json::from_slice(l).unwrap();
            let raw: serde_json::Value = serde_json::from_str(row["raw"].as_str().unwrap()).unwrap();
            raw["seq"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn a_split_cut_short_by_shutdown_resends_only_what_was_not_stored() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    // A ClickHouse that takes at most 250 rows a request (413 above) and
    // goes down after storing three requests, until the test brings it back.
    let down = Arc::new(AtomicBool::new(false));
    let stored_requests = Arc::new(AtomicUsize::new(0));
    let (d, n) = (Arc::clone(&down), Arc::clone(&stored_requests));
    let server = HttpServer::start(move |_, req| {
        let rows = req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        if rows > 250 {
            return (413, "Code: 0. Request Entity Too Large".into());
        }
        if d.load(Ordering::SeqCst) {
            return (503, "down".into());
        }
        if n.fetch_add(1, Ordering::SeqCst) == 2 {
            d.store(true, Ordering::SeqCst);
        }
        (200, String::new())
    });
    let dir = tempfile::tempdir().unwrap();
    let config = stdin_to(
        dir.path(),
        &server.url(),
        r#"batch_max_events = 2000
batch_timeout = "500ms"
shutdown_timeout = "1s"
[sinks.ch.delivery.buffer]
type = "disk""#,
    );
    let run = |input: &str| run_with_stdin(&config, input);
    let input: String = (0..2000)
        .map(|i| format!("{{\"service\":\"s\",\"seq\":{i}}}\n"))
        .collect();
    let out = run(&input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "held on disk: {stderr}");
    assert!(stderr.contains("nothing lost, not all delivered"), "{stderr}");
    assert!(
        stderr.contains("the disk buffer keeps the part of the request not stored yet"),
        "{stderr}"
    );
    assert_eq!(stored_requests.load(Ordering::SeqCst), 3);

    down.store(false, Ordering::SeqCst);
    let out = run("");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );
    let mut seqs: Vec<u64> = server.accepted().iter().flat_map(|r| row_seqs(&r.body)).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2000).collect::<Vec<u64>>(), "each row stored exactly once");
}

/// A stdin run into a ClickHouse sink at `url` (the local server playing
/// it): `delivery` goes into the sink's delivery table.
fn stdin_to(dir: &Path, url: &str, delivery: &str) -> PathBuf {
    write_config(
        dir,
        "sluice.toml",
        &format!(
            r#"
data_dir = "{d}/state"
[sources.in]
type = "stdin"
[sinks.ch]
type = "clickhouse"
endpoint = "{url}"
compression = "none"
[sinks.ch.delivery]
retry_initial_backoff = "50ms"
retry_max_backoff = "200ms"
breaker_open_for = "200ms"
{delivery}
"#,
            d = dir.display(),
        ),
    )
}

#[test]
fn a_refused_record_the_dead_letter_file_cannot_take_is_not_delivered() {
    let server = HttpServer::start(|_, req| {
        if String::from_utf8_lossy(&req.body).contains("refuse me") {
            (400, "Code: 27. DB::Exception: Cannot parse input".into())
        } else {
            (200, String::new())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file: no process, root or not, can create it.
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let config = stdin_to(
        dir.path(),
        &server.url(),
        &format!("dead_letter_path = \"{}/file/dead.ndjson\"", dir.path().display()),
    );
    let mut input: String = (0..99).map(|i| format!("{{\"seq\":{i}}}\n")).collect();
    input.push_str("{\"seq\":99,\"msg\":\"refuse me\"}\n");
    let out = run_with_stdin(&config, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT clean: sink `ch`: writing the dead-letter file failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("source `in`: 100 of 100 events not delivered to every sink"),
        "{stderr}"
    );
}

#[test]
fn drop_newest_names_what_it_dropped_and_stores_the_rest() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let up = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&up);
    let server = HttpServer::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            (200, String::new())
        } else {
            (503, "starting".into())
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = stdin_to(
        dir.path(),
        &server.url(),
        r#"batch_max_bytes = "16KiB"
[sinks.ch.delivery.buffer]
max_bytes = "16KiB"
when_full = "drop_newest""#,
    );
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        up.store(true, Ordering::SeqCst);
    });
    // Twenty batches of 150 lines (each a frame larger than the buffer)
    // while the target is down: the first is taken, later ones dropped.
    let mut child = spawn_piped(&config);
    let mut stdin = child.stdin.take().unwrap();
    for chunk in 0..20 {
        let lines: String = (chunk * 150..(chunk + 1) * 150)
            .map(|i| format!("{{\"service\":\"s\",\"seq\":{i}}}\n"))
            .collect();
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    waker.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stored: Vec<u64> = server.accepted().iter().flat_map(|r| row_seqs(&r.body)).collect();
    let dropped = 3000 - stored.len() as u64;
    assert!(dropped > 0, "the buffer overflowed: {stderr}");
    assert!(
        stderr.contains(&format!(
            "clean: every event was delivered to every sink or dropped by when_full = \"drop_newest\" ({dropped} events at sink `ch`)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(" {dropped} dropped (drop_newest)")),
        "{stderr}"
    );
    let mut unique = stored.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "nothing stored twice");
}
