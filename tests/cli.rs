//! End to end through the `sluice` binary: validation messages, the shipped
//! configurations, the generator → parse → zstd file job, and a graceful
//! SIGTERM that still delivers everything read.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

#[test]
fn every_shipped_config_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = sluice().args(["validate", "--config"]).arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "found {checked} configs");
}

#[test]
fn readme_names_every_shipped_config_and_every_subcommand_and_no_other() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    for entry in std::fs::read_dir(repo("config")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") {
            assert!(
                readme.contains(&format!("config/{name}")),
                "README does not name config/{name}"
            );
        }
    }
    let help = sluice().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 5, "{help}");
    for c in &commands {
        assert!(
            readme.contains(&format!("sluice {c} ")),
            "README's Using it does not name `sluice {c}`"
        );
    }
    // And README shows no subcommand the binary lacks.
    let using = readme.split("## Using it").nth(1).unwrap().split("```").nth(1).unwrap();
    for line in using.lines().filter(|l| l.starts_with("sluice ")) {
        let c = line.split_whitespace().nth(1).unwrap();
        assert!(commands.contains(&c), "README names `sluice {c}`, which does not exist");
    }
}

#[test]
fn validate_names_the_line_and_key_of_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sources.in]\ntype = \"stdin\"\n\n[sinks.out]\ntype = \"file\"\ndirectory = \"/tmp/x\"\nrotate_byte = \"1MiB\"\n",
    )
    .unwrap();
    let out = sluice().args(["validate", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    let expected_head = format!("{}:7:1: unknown field `rotate_byte`, expected one of", path.display());
    assert!(err.starts_with(&expected_head), "{err}");
    assert!(err.contains("rotate_bytes"), "{err}");

    let missing = sluice()
        .args(["validate", "--config", "/nonexistent/sluice.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("cannot read config /nonexistent/sluice.toml"));
}

#[test]
fn generate_is_reproducible() {
    let a = sluice()
        .args(["generate", "-n", "2000", "--seed", "5"])
        .output()
        .unwrap();
    let b = sluice()
        .args(["generate", "-n", "2000", "--seed", "5"])
        .output()
        .unwrap();
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout.iter().filter(|&&c| c == b'\n').count(), 2000);
}

/// What the parse stage must make of one generated line.
fn expected_output(line: &[u8]) -> Option<Vec<u8>> {
    if line.is_empty() {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(v) if v.is_object() => Some(line.to_vec()),
        _ => Some(serde_json::to_vec(&serde_json::json!({ "message": String::from_utf8_lossy(line) })).unwrap()),
    }
}

#[test]
fn generator_to_zstd_files_delivers_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let config = dir.path().join("job.toml");
    std::fs::write(
        &config,
        "[sources.gen]\ntype = \"generator\"\nseed = 9\ncount = 60000\n\n\
         [sinks.files]\ntype = \"file\"\ndirectory = \"${OUT}\"\nrotate_bytes = \"64KiB\"\n",
    )
    .unwrap();
    let run = sluice()
        .args(["run", "--no-progress", "--config"])
        .arg(&config)
        .env("OUT", &out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );

    let mut files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 3, "rotated into several files: {files:?}");
    let mut got = Vec::new();
    for f in &files {
        assert!(f.to_str().unwrap().ends_with(".ndjson.zst"));
        got.extend(zstd::decode_all(std::fs::File::open(f).unwrap()).unwrap());
    }

    let generated = sluice()
        .args(["generate", "-n", "60000", "--seed", "9"])
        .output()
        .unwrap()
        .stdout;
    let mut expected = Vec::new();
    for line in generated.split(|&b| b == b'\n') {
        if let Some(out) = expected_output(line) {
            expected.extend(out);
            expected.push(b'\n');
        }
    }
    assert_eq!(
        got.iter().filter(|&&b| b == b'\n').count(),
        expected.iter().filter(|&&b| b == b'\n').count()
    );
    assert!(got == expected, "file contents differ from the expected NDJSON");
}

#[test]
fn sigterm_drains_everything_already_read_and_exits_zero() {
    let mut child = sluice()
        .args(["run", "--config"])
        .arg(repo("config/passthrough.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = (0..500).map(|i| format!("{{\"i\":{i}}}\nplain {i}\n")).collect();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Read until all 1000 events came out while stdin stays open.
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 65536];
    while got.iter().filter(|&&b| b == b'\n').count() < 1000 {
        assert!(
            Instant::now() < deadline,
            "output stalled: {} lines",
            got.iter().filter(|&&b| b == b'\n').count()
        );
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "stdout closed early");
        got.extend_from_slice(&buf[..n]);
    }
    // stdin is still open: only the signal can end this run.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    stdout.read_to_end(&mut got).unwrap();
    let text = String::from_utf8(got).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[0], "{\"i\":0}");
    assert_eq!(lines[1], "{\"message\":\"plain 0\"}");
    assert_eq!(lines[999], "{\"message\":\"plain 499\"}");
    drop(stdin);
}
