//! `sluice top` in a real pseudo-terminal (openpty(3), 120×30) against a
//! running instance: it draws the components it finds, and `q` or Ctrl-C
//! quits at once, leaving the terminal as it found it. (Its one-snapshot
//! mode on a pipe is checked in `tests/admin.rs`.)

mod common;
use common::*;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pseudo-terminal of 30 rows by 120 columns: (master, slave).
fn pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty(3) writes two fds into the pointed-to ints; the name
    // and termios pointers may be null; the winsize outlives the call.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The text of a terminal stream without its escape sequences, each
/// cursor move standing for a space.
fn visible(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for p in chars.by_ref() {
                    if p.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Run `sluice top` on a pseudo-terminal until its screen shows the
/// pipeline, press `key`, and return its exit status and everything it
/// wrote. Without the key it would run forever.
fn top_until_key(port: u16, key: &[u8]) -> (Option<i32>, Vec<u8>) {
    let (master, slave) = pty();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["top", "--interval", "200ms", "--address", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = std::fs::File::from(master.try_clone().unwrap());
    let sink = screen.clone();
    // Reads until the terminal's last writer is gone (EIO).
    let reading = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let start = Instant::now();
    loop {
        let shown = visible(&screen.lock().unwrap());
        if shown.contains("q quits") && shown.contains("source in") && shown.contains("sink out") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "top never drew the pipeline: {shown}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut keyboard = std::fs::File::from(master);
    keyboard.write_all(key).unwrap();
    let pressed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            pressed.elapsed() < Duration::from_secs(10),
            "top did not quit on {key:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(keyboard);
    reading.join().unwrap();
    let raw = screen.lock().unwrap().clone();
    (status.code(), raw)
}

#[test]
fn top_draws_the_running_pipeline_and_quits_on_q_and_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        "top.toml",
        &format!(
            "data_dir = \"{d}/state\"\n[sources.in]\ntype = \"stdin\"\n[sinks.out]\ntype = \"file\"\ndirectory = \"{d}/out\"\ncompression = \"none\"\n[budget]\n[admin]\naddress = \"127.0.0.1:{port}\"\n",
            d = dir.path().display()
        ),
    );
    let mut run = spawn_piped(&config);
    let _guard = KillOnDrop(run.id());
    let mut stdin = run.stdin.take().unwrap();
    stdin.write_all(&generated(2000, 3)).unwrap();
    stdin.flush().unwrap();
    wait_for_listener(port);

    for key in [&b"q"[..], &b"\x03"[..]] {
        let (code, raw) = top_until_key(port, key);
        assert_eq!(code, Some(0), "{key:?}");
        let text = String::from_utf8_lossy(&raw);
        // The alternate screen entered, left, and the cursor shown again.
        assert!(text.starts_with("\x1b[?1049h"), "{text:?}");
        assert!(text.ends_with("\x1b[?1049l\x1b[?25h"), "{text:?}");
        let shown = visible(&raw);
        assert!(shown.contains("sluice top · 127.0.0.1:"), "{shown}");
        assert!(shown.contains("stage budget queue"), "{shown}");
    }

    drop(stdin);
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}
