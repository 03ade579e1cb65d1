//! What a run cost the machine: CPU seconds and peak resident memory, from
//! getrusage(2).

use std::time::{Duration, Instant};

/// A reading of this process's resource use.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Wall time (at a reading) or elapsed wall time (after `since`).
    pub wall: Duration,
    at: Instant,
    /// User + system CPU time.
    pub cpu: Duration,
    /// Peak resident set size in bytes (for the whole process life).
    pub peak_rss: u64,
}

impl Usage {
    /// Read now.
    pub fn now() -> Usage {
        // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_SELF is valid.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            ru
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
        Usage {
            wall: Duration::ZERO,
            at: Instant::now(),
            cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
            // Linux reports kilobytes.
            peak_rss: ru.ru_maxrss as u64 * 1024,
        }
    }

    /// The cost between `earlier` and this reading.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            wall: self.at.duration_since(earlier.at),
            at: self.at,
            cpu: self.cpu.saturating_sub(earlier.cpu),
            peak_rss: self.peak_rss,
        }
    }
}

/// The size of standard input when it is a regular file (`< file`), so a
/// progress bar can show how far along it is.
pub fn stdin_file_size() -> Option<u64> {
    let meta = std::fs::metadata("/proc/self/fd/0").ok()?;
    meta.is_file().then_some(meta.len())
}
