//! End to end for configuration reload: 20 reloads, by `POST /reload` and
//! by SIGHUP, alternating a budget change, a sink added or removed, and a
//! bad file, while writers append to the file source's files as fast as
//! they can. Every line must reach the sink present throughout exactly
//! once, each added sink must see an unbroken run of every file's lines
//! from its start to its removal, and the bad files must leave the
//! pipeline running and be counted.

mod common;
use common::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FILES: usize = 3;

/// One HTTP/1.1 request on loopback: (status, body).
fn request(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// The value of an unlabelled series in `/metrics`.
fn metric(port: u16, name: &str) -> u64 {
    let (_, body) = request(port, "GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name} not exposed")) as u64
}

/// The pipeline's config: files → parse → budget → sink `a` (always) and,
/// when `b` names one, sink `b<n>` writing to `out/b<n>`.
fn config(dir: &Path, port: u16, budget: &str, b: Option<usize>) -> String {
    let mut c = format!(
        r#"data_dir = "{dir}/state"
[admin]
address = "127.0.0.1:{port}"
[report]
progress = false
[sources.files]
type = "file"
include = ["{dir}/in/*.log"]
format = "raw"
[budget]
default = "{budget}"
[sinks.a]
type = "file"
directory = "{dir}/out/a"
compression = "none"
"#,
        dir = dir.display()
    );
    if let Some(n) = b {
        c.push_str(&format!(
            "[sinks.b{n}]\ntype = \"file\"\ndirectory = \"{}/out/b{n}\"\ncompression = \"none\"\n",
            dir.display()
        ));
    }
    c
}

/// Two kinds of bad file: one that does not parse, one that moves the
/// data directory (which cannot change while running).
fn bad_config(dir: &Path, port: u16, round: usize) -> String {
    if round.is_multiple_of(2) {
        config(dir, port, "lots", None)
    } else {
        config(dir, port, "10GiB/day", None).replace("/state\"", "/elsewhere\"")
    }
}

/// Append numbered lines to `in/f<k>.log` as fast as the disk takes them
/// until `stop`; returns how many were written.
fn writer(path: PathBuf, k: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let mut n = 0u64;
        let mut buf = String::new();
        while !stop.load(Ordering::Relaxed) {
            buf.clear();
            for _ in 0..500 {
                buf.push_str(&format!(
                    "{{\"level\":\"info\",\"service\":\"svc{k}\",\"msg\":\"f{k} {n:09}\"}}\n"
                ));
                n += 1;
            }
            f.write_all(buf.as_bytes()).unwrap();
            // Roughly 2 MB/s per file: full speed for the source on two
            // cores shared with the writers and the test.
            std::thread::sleep(Duration::from_millis(10));
        }
        n
    })
}

/// Per file, the line numbers in every file under `dir`.
fn numbers(dir: &Path) -> HashMap<usize, Vec<u64>> {
    let mut seen: HashMap<usize, Vec<u64>> = HashMap::new();
    for (line, count) in count_lines(dir) {
        let msg = line
            .split("\"msg\":\"f")
            .nth(1)
            .unwrap_or_else(|| panic!("odd line {line}"));
        let (k, n) = msg.split_once(' ').unwrap();
        let n: u64 = n[..9].parse().unwrap();
        for _ in 0..count {
            seen.entry(k.parse().unwrap()).or_default().push(n);
        }
    }
    for v in seen.values_mut() {
        v.sort_unstable();
    }
    seen
}

#[test]
fn twenty_reloads_under_a_busy_file_source_lose_and_repeat_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let port = free_port();
    let cfg_path = write_config(dir, "sluice.toml", &config(dir, port, "100GiB/day", None));

    let stop_writing = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..FILES)
        .map(|k| writer(dir.join(format!("in/f{k}.log")), k, stop_writing.clone()))
        .collect();

    let child = sluice()
        .args(["run", "-c"])
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    wait_for_listener(port);

    let mut b: Option<usize> = None;
    let mut budget = "100GiB/day";
    let mut b_sinks = Vec::new();
    let (mut good, mut bad) = (0u64, 0u64);
    for round in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let (body, refused, expect) = match round % 3 {
            0 => {
                budget = if budget == "100GiB/day" {
                    "200GiB/day"
                } else {
                    "100GiB/day"
                };
                (
                    config(dir, port, budget, b),
                    false,
                    "sources and stages restarted".to_string(),
                )
            }
            1 => {
                let expect = match b {
                    Some(n) => format!("sink `b{n}` removed"),
                    None => format!("sink `b{round}` added"),
                };
                b = match b {
                    Some(_) => None,
                    None => {
                        b_sinks.push(round);
                        Some(round)
                    }
                };
                (config(dir, port, budget, b), false, expect)
            }
            _ => (bad_config(dir, port, round), true, String::new()),
        };
        std::fs::write(&cfg_path, &body).unwrap();
        if refused {
            bad += 1;
        } else {
            good += 1;
        }
        if round.is_multiple_of(2) {
            let (status, reply) = request(port, "POST", "/reload");
            if refused {
                assert_eq!(status, 422, "round {round}: {reply}");
                assert!(reply.contains("\"status\":\"refused\""), "round {round}: {reply}");
            } else {
                assert_eq!(status, 200, "round {round}: {reply}");
                assert!(reply.contains(&expect), "round {round}: `{expect}` not in {reply}");
            }
        } else {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
            let start = Instant::now();
            while metric(port, "sluice_config_reloads_total") + metric(port, "sluice_config_reload_failures_total")
                < good + bad
            {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "round {round}: SIGHUP never applied"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        assert_eq!(
            (
                metric(port, "sluice_config_reloads_total"),
                metric(port, "sluice_config_reload_failures_total")
            ),
            (good, bad),
            "round {round}"
        );
    }
    assert_eq!((good, bad), (14, 6));

    stop_writing.store(true, Ordering::Relaxed);
    let written: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let total: u64 = written.iter().sum();
    let start = Instant::now();
    while count_lines(&dir.join("out/a")).len() < total as usize {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sink a has {} of {total} lines",
            count_lines(&dir.join("out/a")).len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("configuration reload refused"), "{stderr}");

    // Sink `a` ran throughout: every line of every file, exactly once.
    let a = numbers(&dir.join("out/a"));
    for (k, &n) in written.iter().enumerate() {
        let expected: Vec<u64> = (0..n).collect();
        assert!(
            a.get(&k) == Some(&expected),
            "file {k}: sink a does not have lines 0..{n} exactly once"
        );
    }
    // Each `b` ran from one reload to a later one, across a bad file and a
    // budget change: an unbroken run of each file's lines, none twice.
    assert_eq!(b_sinks.len(), 4);
    for n in b_sinks {
        let seen = numbers(&dir.join(format!("out/b{n}")));
        assert_eq!(seen.len(), FILES, "b{n} missed a file");
        for (k, v) in seen {
            let contiguous: Vec<u64> = (v[0]..v[0] + v.len() as u64).collect();
            assert_eq!(v, contiguous, "b{n}, file {k}: a gap or a repeat");
        }
    }
}
