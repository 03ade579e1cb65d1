//! End to end: 1,000,000 mixed lines through `config/passthrough.toml`
//! (stdin → parse → stdout), every output line checked against an oracle
//! that decides "JSON object or text" with serde_json, independently of the
//! simd-json parse stage under test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const LINES: usize = 1_000_000;
const BIG_AT: usize = 500_000;

/// The input line `i` (without terminator) and its terminator.
fn input_line(i: usize, generated: &[&[u8]]) -> (Vec<u8>, &'static [u8]) {
    let base = generated[i % generated.len()];
    let terminator: &[u8] = if i % 7 == 3 { b"\r\n" } else { b"\n" };
    let line = match i % 50 {
        _ if i == BIG_AT => {
            // One 10 MB line: a valid object that must pass byte for byte.
            format!(
                "{{\"service\":\"bulk\",\"msg\":\"{}\",\"n\":1}}",
                "y".repeat(10_000_000)
            )
            .into_bytes()
        }
        5 => br#"{"level":"ERROR","msg":"cut off"#.to_vec(),
        11 => b"{\"bad\":\"\xff\xfe\xfd\",\"level\":\"info\"}".to_vec(),
        17 => b"plain \x00 text with a NUL".to_vec(),
        23 => b"{\"nul\":\"a\x00b\"}".to_vec(),
        29 => Vec::new(),
        31 => b"[1,2,3]".to_vec(),
        37 => "{\"msg\":\"\u{d55c}\u{ad6d}\u{c5b4} \\u00e9 \\\"q\\\"\",\"level\":\"warn\"}"
            .as_bytes()
            .to_vec(),
        _ => base.to_vec(),
    };
    (line, terminator)
}

enum Expect {
    Skip,
    Json(Vec<u8>),
    Text(String),
}

fn oracle(line: &[u8]) -> Expect {
    if line.is_empty() {
        return Expect::Skip;
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(v) if v.is_object() => Expect::Json(line.to_vec()),
        _ => Expect::Text(String::from_utf8_lossy(line).into_owned()),
    }
}

#[test]
fn a_million_mixed_lines_pass_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let generated = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["generate", "--count", "5000", "--seed", "11"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let generated: Vec<&[u8]> = generated
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();

    let input_path = dir.path().join("in.log");
    let mut input = std::io::BufWriter::new(std::fs::File::create(&input_path).unwrap());
    for i in 0..LINES {
        let (line, term) = input_line(i, &generated);
        input.write_all(&line).unwrap();
        input.write_all(term).unwrap();
    }
    input.flush().unwrap();
    drop(input);

    let output_path = dir.path().join("out.ndjson");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/passthrough.toml");
    let status = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--config", config])
        .stdin(Stdio::from(std::fs::File::open(&input_path).unwrap()))
        .stdout(Stdio::from(std::fs::File::create(&output_path).unwrap()))
        .status()
        .unwrap();
    assert!(status.success(), "sluice exited with {status}");

    let mut out = BufReader::new(std::fs::File::open(&output_path).unwrap());
    let (mut json, mut text, mut skipped) = (0usize, 0usize, 0usize);
    let mut got = Vec::new();
    for i in 0..LINES {
        let (line, _) = input_line(i, &generated);
        let expect = oracle(&line);
        if let Expect::Skip = expect {
            skipped += 1;
            continue;
        }
        got.clear();
        let n = out.read_until(b'\n', &mut got).unwrap();
        assert!(n > 0, "output ended early at input line {i}");
        assert_eq!(got.pop(), Some(b'\n'));
        match expect {
            Expect::Json(bytes) => {
                json += 1;
                assert!(got == bytes, "input line {i}: JSON not byte-identical");
            }
            Expect::Text(message) => {
                text += 1;
                let v: serde_json::Value = serde_json::from_slice(&got).unwrap_or_else(|e| panic!("line {i}: {e}"));
                let obj = v.as_object().unwrap();
                assert_eq!(obj.len(), 1, "line {i}: stdin text events carry only `message`");
                assert_eq!(obj["message"].as_str().unwrap(), message, "input line {i}");
            }
            Expect::Skip => unreachable!(),
        }
    }
    got.clear();
    assert_eq!(out.read_until(b'\n', &mut got).unwrap(), 0, "extra output");
    assert_eq!(skipped, LINES / 50, "the empty lines");
    assert_eq!(json + text + skipped, LINES);
    // The mix really is mixed: every kind appears in bulk.
    assert!(json > 700_000 && text > 100_000, "json {json}, text {text}");
}
