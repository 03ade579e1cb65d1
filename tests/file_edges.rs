//! The file source at its edges: more files than `max_open_files`, files
//! the process may not read, a checkpoint it cannot save, cut lines
//! counted. Each asserts the exact lines delivered and the run's verdict.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_to_end, sluice, KillOnDrop};

/// A config reading `include` as raw lines into an uncompressed file sink
/// under `root/out`, with `extra` in the source table.
fn config(root: &Path, include: &str, extra: &str) -> PathBuf {
    let cfg = root.join("sluice.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{root}/state\"\n\
             [sources.files]\ntype = \"file\"\ninclude = [\"{include}\"]\nformat = \"raw\"\n\
             scan_interval = \"100ms\"\npoll_interval = \"20ms\"\ncheckpoint_interval = \"100ms\"\n{extra}\n\
             [sinks.out]\ntype = \"file\"\ndirectory = \"{root}/out\"\ncompression = \"none\"\n",
            root = root.display(),
        ),
    )
    .unwrap();
    cfg
}

/// `n` lines of file `f`: `{"f":f,"seq":i}`.
fn lines_of(f: usize, n: usize) -> String {
    (0..n).map(|i| format!("{{\"f\":{f},\"seq\":{i}}}\n")).collect()
}

/// The delivered `seq`s of each `f`, in output order.
fn delivered(root: &Path) -> BTreeMap<u64, Vec<u64>> {
    let mut by_file: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(root.join("out")) else {
        return by_file;
    };
    let mut files: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files {
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            by_file
                .entry(v["f"].as_u64().unwrap())
                .or_default()
                .push(v["seq"].as_u64().unwrap());
        }
    }
    by_file
}

fn each_file_once_in_order(got: &BTreeMap<u64, Vec<u64>>, files: usize, lines: u64) {
    assert_eq!(got.len(), files, "files delivered");
    for (f, seqs) in got {
        assert_eq!(*seqs, (0..lines).collect::<Vec<u64>>(), "file {f}");
    }
}

#[test]
fn files_beyond_max_open_files_are_read_too() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    for f in 0..5 {
        std::fs::write(root.path().join(format!("logs/{f}.log")), lines_of(f, 100)).unwrap();
    }
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "max_open_files = 2\nexit_at_eof = true");
    let (out, stderr) = run_to_end(&cfg);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("clean: every event was delivered to every sink"),
        "{stderr}"
    );
    assert!(stderr.contains("max_open_files binds"), "{stderr}");
    each_file_once_in_order(&delivered(root.path()), 5, 100);
}

#[test]
fn five_thousand_files_appearing_at_full_speed_are_all_read() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    for d in 0..50 {
        std::fs::create_dir_all(logs.join(format!("{d}"))).unwrap();
    }
    let include = format!("{}/*/*.log", logs.display());
    let cfg = config(root.path(), &include, "");
    let child = sluice()
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _reaper = KillOnDrop(child.id());
    std::thread::sleep(Duration::from_millis(300));
    for f in 0..5000 {
        std::fs::write(logs.join(format!("{}/{f}.log", f % 50)), lines_of(f, 10)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got: usize = delivered(root.path()).values().map(Vec::len).sum();
        if got >= 50_000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {got} of 50,000 lines after 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    each_file_once_in_order(&delivered(root.path()), 5000, 10);
}

/// Make `path` and everything under it usable by any user.
fn open_up(path: &Path) {
    let status = Command::new("chmod").args(["-R", "a+rwX"]).arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_file_the_process_may_not_read_makes_the_run_not_clean() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for f in 0..3 {
        std::fs::write(logs.join(format!("{f}.log")), lines_of(f, 500)).unwrap();
    }
    let include = format!("{}/*.log", logs.display());
    let cfg = config(root.path(), &include, "exit_at_eof = true");
    open_up(root.path());
    // Mode 000, and sluice runs as an unprivileged user (root reads all).
    let locked = logs.join("1.log");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "NOT clean: source `files`: {} not read (opening: Permission denied (os error 13))",
            locked.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("cannot open a log file").count(),
        1,
        "logged once, not at every retry: {stderr}"
    );
    let got = delivered(root.path());
    assert_eq!(got.keys().copied().collect::<Vec<u64>>(), vec![0, 2]);
    assert_eq!(got[&0], (0..500).collect::<Vec<u64>>());
    assert_eq!(got[&2], (0..500).collect::<Vec<u64>>());
}

#[test]
fn a_checkpoint_that_cannot_be_saved_makes_the_run_not_clean() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    std::fs::write(root.path().join("logs/0.log"), lines_of(0, 200)).unwrap();
    // Where the checkpoint is written first, a directory: the data
    // directory is there and readable, but no checkpoint can be saved.
    std::fs::create_dir_all(root.path().join("state/checkpoints/files.json.tmp")).unwrap();
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "exit_at_eof = true");
    let (out, stderr) = run_to_end(&cfg);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("NOT clean: source `files`: checkpoint not saved ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("the next start reads again from the last saved one"),
        "{stderr}"
    );
    each_file_once_in_order(&delivered(root.path()), 1, 200);
}

#[test]
fn cut_lines_of_files_are_counted() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    // Longer than a read: cut where it exceeds max_line_bytes.
    let long = format!("{{\"f\":1,\"seq\":0,\"pad\":\"{}\"}}\n", "x".repeat(300_000));
    std::fs::write(root.path().join("logs/0.log"), lines_of(0, 10) + &long).unwrap();
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "exit_at_eof = true");
    let text = std::fs::read_to_string(&cfg).unwrap() + "[pipeline]\nmax_line_bytes = \"1KiB\"\n";
    std::fs::write(&cfg, text).unwrap();
    let (out, stderr) = run_to_end(&cfg);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("0 empty lines skipped, 1 over-long lines cut"),
        "{stderr}"
    );
}

/// Every output line of the file sink under `root/out`.
fn output_lines(root: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(root.join("out")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_dangling_partial_line_does_not_pin_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pods/shop_api-1_uid/api");
    std::fs::create_dir_all(&dir).unwrap();
    let ts = "2026-11-25T01:00:00.000000000Z";
    let mut text = format!("{ts} stdout F {{\"f\":0,\"seq\":0}}\n{ts} stdout P {{\"f\":0,\"seq\":1,\"half\":\"\n");
    for i in 0..5000 {
        text.push_str(&format!("{ts} stderr F {{\"f\":1,\"seq\":{i}}}\n"));
    }
    let log = dir.join("0.log");
    std::fs::write(&log, &text).unwrap();
    let cfg = |exit_at_eof: bool| {
        let path = root.path().join(format!("sluice-{exit_at_eof}.toml"));
        std::fs::write(
            &path,
            format!(
                "data_dir = \"{d}/state\"\n\
                 [sources.pods]\ntype = \"file\"\ninclude = [\"{d}/pods/*/*/*.log\"]\nformat = \"cri\"\n\
                 partial_timeout = \"500ms\"\nscan_interval = \"100ms\"\npoll_interval = \"20ms\"\n\
                 checkpoint_interval = \"100ms\"\nexit_at_eof = {exit_at_eof}\n\
                 [sinks.out]\ntype = \"file\"\ndirectory = \"{d}/out\"\ncompression = \"none\"\n",
                d = root.path().display()
            ),
        )
        .unwrap();
        path
    };
    let child = sluice()
        .args(["run", "-c"])
        .arg(cfg(false))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _reaper = KillOnDrop(child.id());
    let checkpoint = root.path().join("state/checkpoints/pods.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&checkpoint)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["files"][0]["offset"].as_u64())
        != Some(text.len() as u64)
    {
        assert!(
            Instant::now() < deadline,
            "the checkpoint never passed the partial line"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = output_lines(root.path());
    assert_eq!(lines.len(), 5002, "the whole line, the partial, the 5,000 stderr lines");
    let partial: Vec<&String> = lines.iter().filter(|l| l.contains("half")).collect();
    assert_eq!(partial.len(), 1);
    assert!(partial[0].contains("\"sluice_truncated\":true"), "{}", partial[0]);
    assert!(partial[0].contains("\"stream\":\"stdout\""), "{}", partial[0]);

    // A restart reads nothing again.
    let out = sluice().args(["run", "-c"]).arg(cfg(true)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(output_lines(root.path()).len(), 5002, "nothing shipped twice");
}

/// Lines `from..to` of file `f`, each padded to about 200 bytes.
fn padded_lines(f: usize, from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("{{\"f\":{f},\"seq\":{i},\"pad\":\"{}\"}}\n", "y".repeat(170)))
        .collect()
}

#[test]
fn a_file_truncated_and_regrown_past_the_offset_is_read_again_from_its_start() {
    // Paused (SIGSTOP) while the file is truncated and rewritten longer
    // than what was read: size alone sees only growth.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    let log = root.path().join("logs/0.log");
    std::fs::write(&log, padded_lines(0, 0, 100)).unwrap();
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "");
    let child = sluice()
        .args(["run", "-c"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _reaper = KillOnDrop(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while output_lines(root.path()).len() < 100 {
        assert!(Instant::now() < deadline, "the first 100 lines never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    std::fs::write(&log, padded_lines(1, 0, 150)).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    while output_lines(root.path()).len() < 250 {
        assert!(Instant::now() < deadline, "the rewritten file was not read whole");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got = delivered(root.path());
    assert_eq!(got[&0], (0..100).collect::<Vec<u64>>(), "the first content once");
    assert_eq!(
        got[&1],
        (0..150).collect::<Vec<u64>>(),
        "the new content whole, nothing garbled"
    );
    assert_eq!(got.len(), 2);
}

#[test]
fn a_file_rewritten_past_its_checkpoint_while_stopped_is_read_from_its_start() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    let log = root.path().join("logs/0.log");
    // The same first line both times: the head fingerprint cannot tell.
    let first = "{\"f\":9,\"seq\":0}\n";
    std::fs::write(&log, first.to_string() + &padded_lines(0, 1, 100)).unwrap();
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "exit_at_eof = true");
    let out = sluice().args(["run", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Rewritten in place (same inode), longer, while sluice was stopped.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    drop(f);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all((first.to_string() + &padded_lines(1, 1, 150)).as_bytes())
        .unwrap();
    let out = sluice().args(["run", "-c"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let got = delivered(root.path());
    assert_eq!(got[&9], vec![0, 0], "the shared first line, once per content");
    assert_eq!(got[&0], (1..100).collect::<Vec<u64>>());
    assert_eq!(got[&1], (1..150).collect::<Vec<u64>>(), "the new content whole");
}

#[test]
fn state_is_private_whatever_the_umask_and_an_open_state_folder_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("logs")).unwrap();
    std::fs::write(root.path().join("logs/0.log"), lines_of(0, 50)).unwrap();
    let include = format!("{}/logs/*.log", root.path().display());
    let cfg = config(root.path(), &include, "exit_at_eof = true");
    // The loosest umask: what sluice creates must be private anyway.
    let run = || {
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 000; exec {} run -c {}",
                env!("CARGO_BIN_EXE_sluice"),
                cfg.display()
            ))
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = |p: &str| std::fs::metadata(root.path().join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        [
            mode("state"),
            mode("state/checkpoints"),
            mode("state/checkpoints/files.json")
        ],
        [0o700, 0o700, 0o600]
    );
    // A state folder others may write to: refused before anything is read.
    std::fs::set_permissions(root.path().join("state"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "state folder {}/state can be written by other users (mode 0777)",
            root.path().display()
        )),
        "{stderr}"
    );
}
