//! Wake-ups from inotify (through the `notify` crate): the tailing loop
//! sleeps until a watched directory changes or `poll_interval` passes,
//! whichever comes first. inotify makes new lines and new files visible at
//! once; the polling that remains underneath catches whatever inotify
//! cannot report (overflowed queues, network filesystems, a watch limit
//! reached), so a missing or failed watcher costs latency, never data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

/// See the module docs.
pub struct Wakeups {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: Receiver<()>,
    structural: Arc<AtomicBool>,
}

/// The directory a glob pattern can match under: its longest prefix without
/// wildcard characters.
pub fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        let s = part.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(part);
    }
    base
}

impl Wakeups {
    /// Watch the base directories of `include`; on failure, polling only.
    pub fn watch(include: &[String]) -> Wakeups {
        // Capacity 1: a burst of writes is one wake-up, never a backlog.
        let (tx, rx) = sync_channel(1);
        let structural = Arc::new(AtomicBool::new(false));
        let flag = structural.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                if matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_))
                ) {
                    flag.store(true, Ordering::Relaxed);
                }
                let _ = tx.try_send(());
            }
        });
        let watcher = match watcher {
            Ok(mut w) => {
                let mut watching = 0;
                for pattern in include {
                    let base = glob_base(pattern);
                    match w.watch(&base, RecursiveMode::Recursive) {
                        Ok(()) => watching += 1,
                        Err(e) => tracing::warn!(dir = %base.display(), error = %e, "cannot watch; polling it instead"),
                    }
                }
                (watching > 0).then_some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; polling only");
                None
            }
        };
        Wakeups {
            _watcher: watcher,
            rx,
            structural,
        }
    }

    /// Sleep until something changed or `timeout` passed. Returns whether
    /// files were created, removed or renamed (a reason to scan now).
    pub fn wait(&self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
        self.structural.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_bases() {
        assert_eq!(glob_base("/var/log/pods/*/*/*.log"), PathBuf::from("/var/log/pods"));
        assert_eq!(
            glob_base("/var/log/containers/*.log"),
            PathBuf::from("/var/log/containers")
        );
        assert_eq!(glob_base("/tmp/app.log"), PathBuf::from("/tmp/app.log"));
    }

    #[test]
    fn a_new_file_wakes_the_sleeper_early() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let w = Wakeups::watch(&[pattern]);
        let path = dir.path().join("new.log");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(path, b"x\n").unwrap();
        });
        // Far longer than the test takes: only the event can end the wait.
        let structural = w.wait(Duration::from_secs(30));
        writer.join().unwrap();
        assert!(structural, "a created file is a structural change");
    }
}
