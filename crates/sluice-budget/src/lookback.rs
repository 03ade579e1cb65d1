//! Lookback (no peer has it): the normal lines sampling would drop are held
//! a short while, by trace; when a later line of the same trace turns out to
//! be an error or slow, the held lines are released and kept with it, so a
//! failing request is seen whole. Bounded by time and bytes; what expires
//! is dropped as sampling decided. (The held lines' source batches are
//! acknowledged when sampling drops them: a release after a crash is a
//! bonus, not a delivery guarantee.)

use std::collections::{HashMap, VecDeque};

/// See the module docs.
#[derive(Default)]
pub struct Lookback {
    window: f64,
    max_bytes: usize,
    bytes: usize,
    /// Held encoded lines by trace hash.
    by_trace: HashMap<u64, Vec<(f64, Vec<u8>)>>,
    /// (time, trace) in arrival order, for expiry.
    order: VecDeque<(f64, u64)>,
}

impl Lookback {
    /// Hold for `window` seconds, at most `max_bytes`.
    pub fn new(window: f64, max_bytes: usize) -> Lookback {
        Lookback {
            window,
            max_bytes,
            ..Lookback::default()
        }
    }

    /// Whether lookback is on.
    pub fn enabled(&self) -> bool {
        self.window > 0.0
    }

    /// Hold one encoded line of trace `h` seen at `now`.
    pub fn hold(&mut self, h: u64, now: f64, line: Vec<u8>) {
        self.bytes += line.len();
        self.by_trace.entry(h).or_default().push((now, line));
        self.order.push_back((now, h));
        while self.bytes > self.max_bytes {
            if !self.drop_oldest() {
                break;
            }
        }
    }

    /// Forget what is older than the window.
    pub fn expire(&mut self, now: f64) {
        while self.order.front().is_some_and(|(t, _)| now - t > self.window) {
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) -> bool {
        let Some((t, h)) = self.order.pop_front() else {
            return false;
        };
        if let Some(lines) = self.by_trace.get_mut(&h) {
            if let Some(pos) = lines.iter().position(|(lt, _)| *lt == t) {
                let (_, l) = lines.remove(pos);
                self.bytes -= l.len();
            }
            if lines.is_empty() {
                self.by_trace.remove(&h);
            }
        }
        true
    }

    /// The held lines of trace `h`, in order (they leave the buffer).
    pub fn release(&mut self, h: u64) -> Vec<Vec<u8>> {
        let lines = self.by_trace.remove(&h).unwrap_or_default();
        self.bytes -= lines.iter().map(|(_, l)| l.len()).sum::<usize>();
        // Their `order` entries now point at nothing and expire harmlessly.
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_releases_expires_and_bounds() {
        let mut l = Lookback::new(2.0, 10);
        l.hold(1, 0.0, b"aa".to_vec());
        l.hold(2, 0.5, b"bb".to_vec());
        l.hold(1, 1.0, b"cc".to_vec());
        assert_eq!(l.release(1), vec![b"aa".to_vec(), b"cc".to_vec()]);
        assert!(l.release(1).is_empty());
        l.expire(3.0);
        assert!(l.release(2).is_empty(), "expired after the window");
        for t in 0..10 {
            l.hold(7, 10.0 + t as f64 * 0.01, b"xyz".to_vec());
        }
        assert_eq!(l.release(7).len(), 3, "only 10 bytes are held");
    }
}
