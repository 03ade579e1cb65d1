//! What the end-to-end tests share: starting the built `sluice` binary and
//! stopping it the way an operator would.

#![allow(dead_code)] // each test binary uses its own subset

pub mod clickhouse;
pub mod http_server;
pub mod kafka;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};

/// Write a config file `name` into `dir` and return its path.
pub fn write_config(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// A plain file sink `copy` under `dir/copy`: the reference a storage sink's
/// rows are compared with.
pub fn copy_sink(dir: &Path) -> String {
    format!(
        "[sinks.copy]\ntype = \"file\"\ndirectory = \"{}/copy\"\ncompression = \"none\"\n",
        dir.display()
    )
}

/// A file source `file` that reads `input` as raw lines once and ends,
/// with its state under `dir/state`.
pub fn raw_file_source(dir: &Path, input: &Path) -> String {
    format!(
        "data_dir = \"{}/state\"\n[sources.file]\ntype = \"file\"\ninclude = [\"{}\"]\nformat = \"raw\"\nexit_at_eof = true\n",
        dir.display(),
        input.display()
    )
}

/// `sluice generate --count <count> --seed <seed>` output.
pub fn generated(count: u64, seed: u64) -> Vec<u8> {
    let out = sluice()
        .args(["generate", "--count", &count.to_string(), "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "sluice generate failed");
    out.stdout
}

/// Every line of every file in `dir` (a plain file sink's output), counted;
/// empty when `dir` does not exist yet.
pub fn count_lines(dir: &Path) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return counts;
    };
    for entry in entries {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap_or_default()
            .lines()
        {
            *counts.entry(line.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// SIGTERM a running sluice and require a clean exit (status 0).
pub fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "sluice did not exit cleanly");
}

/// SIGKILLs a spawned sluice when dropped, so a failed assertion does not
/// leave it running (holding the test's pipes open).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a child of this test (harmless if it exited).
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

/// `sluice run -c <config>` in the background, its standard error going
/// to `log` (kept for diagnosis) and its standard output discarded.
pub fn spawn_logged(config: &Path, log: std::fs::File) -> Child {
    sluice()
        .args(["run", "-c"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A loopback port free at the moment of asking (the test's servers and
/// admin endpoints bind it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `127.0.0.1:port` (20 s at most).
pub fn wait_for_listener(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "nothing came up on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Stop a server the test started: SIGTERM, then SIGKILL after 30 s.
pub fn terminate(mut child: Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `sluice run -c <config>` to its end: its output and standard error.
pub fn run_to_end(config: &Path) -> (std::process::Output, String) {
    let out = sluice().args(["run", "-c"]).arg(config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// `sluice run -c <config>` started with its standard input and standard
/// error piped to the test.
pub fn spawn_piped(config: &Path) -> Child {
    sluice()
        .args(["run", "-c"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `sluice run -c <config>` with `input` on its standard input, to its
/// end; standard output is discarded, standard error kept.
pub fn run_with_stdin(config: &Path, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = sluice()
        .args(["run", "-c"])
        .arg(config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}
