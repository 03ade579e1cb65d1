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
    /// `None` when inotify is unavailable: polling only.
    watcher: Option<notify::RecommendedWatcher>,
    /// Base directories not watched yet (they did not exist): tried again
    /// on every [`Wakeups::retry`].
    unwatched: Vec<PathBuf>,
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
    pub fn watch(include: &[sluice_config::Glob]) -> Wakeups {
        // Capacity 1: a burst of writes is one wake-up, never a backlog.
        let (tx, rx) = sync_channel(1);
        let structural = Arc::new(AtomicBool::new(false));
        let flag = structural.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                // Opens, reads and closes (ours among them: the tailer's own
                // reads would wake it again) say nothing about new bytes.
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
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
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; polling only");
                None
            }
        };
        let mut w = Wakeups {
            watcher,
            unwatched: include.iter().map(|p| glob_base(p.as_str())).collect(),
            rx,
            structural,
        };
        w.unwatched.dedup();
        w.retry();
        for base in &w.unwatched {
            tracing::warn!(dir = %base.display(), "cannot watch yet (missing?); polling it, and watching once it exists");
        }
        w
    }

    /// Watch the base directories that could not be watched before (a
    /// `/var/log/pods` created after sluice started). Cheap when there are
    /// none; the tailer calls it with each scan.
    pub fn retry(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            self.unwatched.clear();
            return;
        };
        self.unwatched.retain(|base| {
            if !base.exists() {
                return true;
            }
            match watcher.watch(base, RecursiveMode::Recursive) {
                Ok(()) => {
                    tracing::debug!(dir = %base.display(), "watching");
                    false
                }
                Err(_) => true,
            }
        });
    }

    /// Sleep until something changed or `timeout` passed. Returns whether
    /// files were created, removed or renamed (a reason to scan now).
    pub fn wait(&self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            // No watcher holds the sender (inotify unavailable): a plain
            // sleep. Returning at once here made the idle loop spin a core.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
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
        let w = Wakeups::watch(&[sluice_config::Glob::try_from(pattern).unwrap()]);
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

    #[test]
    fn a_directory_created_later_is_watched_and_the_wake_channel_stays_open() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("pods");
        let mut w = Wakeups::watch(&[sluice_config::Glob::try_from(format!("{}/*/*.log", base.display())).unwrap()]);
        assert_eq!(w.unwatched, vec![base.clone()], "missing at start");
        // The watcher lives on although it watches nothing yet, so its
        // wake-up channel stays open and a wait blocks (a dropped watcher
        // closed it, and every wait returned at once: the idle loop spun).
        assert!(matches!(w.rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)));
        std::fs::create_dir_all(base.join("ns_pod_uid")).unwrap();
        w.retry();
        assert!(w.unwatched.is_empty(), "watched once it exists");
        let path = base.join("ns_pod_uid/0.log");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(path, b"x\n").unwrap();
        });
        assert!(w.wait(Duration::from_secs(30)), "the new file wakes it");
        writer.join().unwrap();
    }
}
