//! End to end for multi-line stitching: stack traces produced by the real
//! Python, Java and Node.js runtimes (Go, .NET and Ruby from recorded
//! samples), interleaved across 50 container streams written as CRI log
//! files (some trace lines split into partial pieces), with single-line logs
//! between them; then the hard cases live: a trace split by a rotation, and
//! a stream that goes idle mid-trace.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A trace fixture: its lines and what the stitched event must say.
#[derive(Clone)]
struct Trace {
    lines: Vec<String>,
    error_type: &'static str,
    error_message: &'static str,
    header: Option<(&'static str, &'static str)>,
}

fn run_program(program: &str, args: &[&str], dir: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the test needs `{program}` (scripts/test.sh installs it): {e}"));
    String::from_utf8(out.stderr).unwrap()
}

fn fixture(
    text: &str,
    error_type: &'static str,
    error_message: &'static str,
    header: Option<(&'static str, &'static str)>,
) -> Trace {
    Trace {
        // Empty lines carry nothing and are not part of the event.
        lines: text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect(),
        error_type,
        error_message,
        header,
    }
}

/// The fixtures, produced once per test run (the JVM takes a second).
fn fixtures() -> Vec<Trace> {
    static FIXTURES: std::sync::OnceLock<Vec<Trace>> = std::sync::OnceLock::new();
    FIXTURES.get_or_init(produce_fixtures).clone()
}

fn produce_fixtures() -> Vec<Trace> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.py"),
        "def inner():\n    raise KeyError('k')\ndef middle():\n    try:\n        inner()\n    except KeyError:\n        raise ValueError('bad value')\n\
         def outer():\n    try:\n        middle()\n    except ValueError as e:\n        raise RuntimeError('outer failed') from e\n\
         try:\n    outer()\nexcept Exception:\n    import traceback\n    traceback.print_exc()\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("Main.java"),
        "public class Main {\n  static void inner() { throw new IllegalStateException(\"inner broke\"); }\n\
         static void outer() { try { inner(); } catch (IllegalStateException e) { throw new RuntimeException(\"outer failed\", e); } }\n\
         public static void main(String[] a) { try { outer(); } catch (RuntimeException e) {\n\
         System.err.println(\"2026-11-25 01:02:03.004 ERROR [main] com.example.Main - request failed\"); e.printStackTrace(); } }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.js"),
        "const inner = new Error('db down');\nconst outer = new TypeError('request failed', { cause: inner });\n\
         console.error('[2026-11-25T01:02:03.004Z] error: handler crashed');\nconsole.error(outer);\n",
    )
    .unwrap();
    let python = run_program("python3", &["t.py"], dir.path());
    let java = run_program("java", &["Main.java"], dir.path());
    let node = run_program("node", &["t.js"], dir.path());
    assert!(python.contains("The above exception was the direct cause"), "{python}");
    assert!(java.contains("Caused by: java.lang.IllegalStateException"), "{java}");
    assert!(node.contains("[cause]: Error: db down"), "{node}");
    vec![
        fixture(&python, "RuntimeError", "outer failed", None),
        fixture(&java, "java.lang.RuntimeException", "outer failed", Some(("2026-11-25 01:02:03.004", "ERROR"))),
        fixture(&node, "TypeError", "request failed", Some(("2026-11-25T01:02:03.004Z", "ERROR"))),
        // Recorded from `go run` (Go 1.22).
        fixture(
            "panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\nmain.lookup(...)\n\t/home/dev/app/main.go:8\nmain.main()\n\t/home/dev/app/main.go:12 +0x1d\nexit status 2",
            "runtime error",
            "index out of range [5] with length 3",
            None,
        ),
        fixture(
            "panic: send on closed channel\n\ngoroutine 6 [running]:\nmain.worker(0xc000012345)\n\t/src/worker.go:21 +0x45\ncreated by main.main in goroutine 1\n\t/src/main.go:14 +0x5a\n\ngoroutine 1 [chan receive]:\nmain.main()\n\t/src/main.go:18 +0x8c",
            "panic",
            "send on closed channel",
            None,
        ),
        // Recorded from `dotnet run` (.NET 8).
        fixture(
            "Unhandled exception. System.InvalidOperationException: Order 42 cannot be shipped\n ---> System.NullReferenceException: Object reference not set to an instance of an object.\n   at Shop.Orders.Ship(Int32 id) in /src/Shop/Orders.cs:line 27\n   --- End of inner exception stack trace ---\n   at Shop.Orders.Ship(Int32 id) in /src/Shop/Orders.cs:line 31\n   at Shop.Program.Main(String[] args) in /src/Shop/Program.cs:line 9",
            "System.InvalidOperationException",
            "Order 42 cannot be shipped",
            None,
        ),
        // Recorded from `ruby app.rb` (Ruby 3.4).
        fixture(
            "app.rb:3:in 'divide': divided by 0 (ZeroDivisionError)\n\tfrom app.rb:7:in 'compute'\n\tfrom app.rb:10:in '<main>'",
            "ZeroDivisionError",
            "divided by 0",
            None,
        ),
    ]
}

/// One expected output event of a stream.
#[derive(Debug, PartialEq)]
enum Want {
    Json(String),
    Text(String),
    Trace {
        message: String,
        error_type: String,
        error_message: String,
        lines: u64,
        ts: Option<String>,
        level: Option<String>,
    },
}

fn want_trace(t: &Trace) -> Want {
    Want::Trace {
        message: t.lines.join("\n"),
        error_type: t.error_type.to_string(),
        error_message: t.error_message.to_string(),
        lines: t.lines.len() as u64,
        ts: t.header.map(|h| h.0.to_string()),
        level: t.header.map(|h| h.1.to_string()),
    }
}

fn got(v: &serde_json::Value) -> Want {
    if let Some(n) = v.get("multiline_lines") {
        return Want::Trace {
            message: v["message"].as_str().unwrap().to_string(),
            error_type: v["error_type"].as_str().unwrap_or("").to_string(),
            error_message: v["error_message"].as_str().unwrap_or("").to_string(),
            lines: n.as_u64().unwrap(),
            ts: v.get("ts").map(|t| t.as_str().unwrap().to_string()),
            level: v.get("level").map(|t| t.as_str().unwrap().to_string()),
        };
    }
    match v.get("msg") {
        Some(m) => Want::Json(m.as_str().unwrap().to_string()),
        None => Want::Text(v["message"].as_str().unwrap().to_string()),
    }
}

/// CRI lines for one application line; `split` cuts it into P + F pieces.
fn cri(stream: &str, line: &str, split: bool) -> String {
    let ts = "2026-11-25T01:02:03.000000001Z";
    if split && line.len() > 8 {
        let mid = line.char_indices().nth(line.chars().count() / 2).unwrap().0;
        format!("{ts} {stream} P {}\n{ts} {stream} F {}\n", &line[..mid], &line[mid..])
    } else {
        format!("{ts} {stream} F {line}\n")
    }
}

fn config(root: &Path, extra_source: &str, flush: &str) -> PathBuf {
    let cfg = root.join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{root}/state\"\n[pipeline]\nbatch_bytes = \"16KiB\"\n\
             [sources.pods]\ntype = \"file\"\ninclude = [\"{root}/pods/*/*/*.log*\"]\nread_bytes_per_round = \"4KiB\"\n\
             scan_interval = \"50ms\"\npoll_interval = \"20ms\"\nrotate_wait = \"200ms\"\n{extra_source}\n\
             [multiline]\nflush_timeout = \"{flush}\"\n\
             [sinks.out]\ntype = \"file\"\ndirectory = \"{root}/out\"\ncompression = \"none\"\n[report]\nsummary = false\n",
            root = root.display()
        ),
    )
    .unwrap();
    cfg
}

fn output_by_file(root: &Path) -> BTreeMap<String, Vec<Want>> {
    let mut by_file: BTreeMap<String, Vec<Want>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let dir = Path::new(v["file"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            by_file.entry(dir).or_default().push(got(&v));
        }
    }
    by_file
}

#[test]
fn real_traces_across_50_streams_are_stitched_exactly() {
    let traces = fixtures();
    let root = tempfile::tempdir().unwrap();
    let mut expected: BTreeMap<String, Vec<Want>> = BTreeMap::new();
    for i in 0..50 {
        let dir = root.path().join(format!("pods/ns_pod{i}_uid{i}/app"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        let mut want = Vec::new();
        let stream = if i % 2 == 0 { "stdout" } else { "stderr" };
        for k in 0..4 {
            let json = format!("{{\"level\":\"info\",\"msg\":\"ok {i}-{k}\"}}");
            text.push_str(&cri(stream, &json, false));
            want.push(Want::Json(format!("ok {i}-{k}")));
            let t = &traces[(i + k) % traces.len()];
            for (n, line) in t.lines.iter().enumerate() {
                // Some trace lines arrive as CRI partial pieces.
                text.push_str(&cri(stream, line, (i + n) % 4 == 0));
            }
            want.push(want_trace(t));
            let plain = format!("2026-11-25 01:02:03 INFO done {i}-{k}");
            text.push_str(&cri(stream, &plain, false));
            want.push(Want::Text(plain));
        }
        // Streams that end on a trace: it must come out at the end of input.
        if i % 10 == 0 {
            let t = &traces[i % traces.len()];
            for line in &t.lines {
                text.push_str(&cri(stream, line, false));
            }
            want.push(want_trace(t));
        }
        std::fs::write(dir.join("0.log"), text).unwrap();
        expected.insert(dir.to_string_lossy().into_owned(), want);
    }
    let cfg = config(root.path(), "exit_at_eof = true", "5s");
    let status = sluice().args(["run", "--config"]).arg(&cfg).status().unwrap();
    assert!(status.success());
    let got = output_by_file(root.path());
    assert_eq!(got.len(), 50);
    for (dir, want) in &expected {
        assert_eq!(&got[dir], want, "stream {dir}");
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_trace_split_by_rotation_is_one_event_and_an_idle_stream_is_flushed() {
    let traces = fixtures();
    let java = &traces[1];
    let root = tempfile::tempdir().unwrap();
    let rotated = root.path().join("pods/ns_rot_u1/app");
    let idle = root.path().join("pods/ns_idle_u2/app");
    std::fs::create_dir_all(&rotated).unwrap();
    std::fs::create_dir_all(&idle).unwrap();
    // A flush timeout far longer than the rotation takes (generous: CI
    // machines are loaded), far shorter than the idle gap.
    let cfg = config(root.path(), "", "3s");
    let child = sluice()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let half = java.lines.len() / 2;
    let first: String = java.lines[..half].iter().map(|l| cri("stderr", l, false)).collect();
    let second: String = java.lines[half..].iter().map(|l| cri("stderr", l, false)).collect();
    append(&rotated.join("0.log"), &first);
    append(&idle.join("0.log"), &first);
    std::thread::sleep(Duration::from_millis(300));
    // kubelet-style rotation mid-trace: rename, then the rest in a new file.
    std::fs::rename(rotated.join("0.log"), rotated.join("0.log.20261125-010203")).unwrap();
    append(&rotated.join("0.log"), &second);
    std::thread::sleep(Duration::from_millis(6000));
    // The idle stream's rest arrives well after its flush timeout.
    append(&idle.join("0.log"), &second);
    std::thread::sleep(Duration::from_millis(1500));
    stop(child);

    let got = output_by_file(root.path());
    assert_eq!(
        got[&rotated.to_string_lossy().into_owned()],
        vec![want_trace(java)],
        "one event across the rotation"
    );
    let idle_events = &got[&idle.to_string_lossy().into_owned()];
    let first_part = Trace {
        lines: java.lines[..half].to_vec(),
        ..java.clone()
    };
    assert_eq!(
        idle_events[0],
        want_trace(&first_part),
        "flushed at the timeout, not held forever"
    );
    let rest: Vec<Want> = java.lines[half..].iter().map(|l| Want::Text(l.clone())).collect();
    assert_eq!(
        &idle_events[1..],
        &rest[..],
        "what follows the timeout is no longer part of it"
    );
}
