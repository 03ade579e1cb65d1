//! Lookback (no peer has it): the normal lines sampling would drop are held
//! a short while, by trace; when a later line of the same trace turns out to
//! be an error or slow, the held lines are released and kept with it, so a
//! failing request is seen whole. Bounded by time and bytes; what expires
//! is dropped as sampling decided. (The held lines' source batches are
//! acknowledged when sampling drops them: a release after a crash is a
//! bonus, not a delivery guarantee.)
//!
//! `max_bytes` bounds what the held lines cost in memory, not only their
//! text: each line's allocation, its slots in its trace's list and in the
//! expiry queue, and each trace's map entry and list (with the room those
//! collections keep as they grow by doubling). Counting text alone, a
//! 16 MiB lookback held about twice that on the node path.

use std::collections::{HashMap, VecDeque};
use std::mem::size_of;

/// A held line's slot in its trace's list, with the list's growth room.
const LIST_SLOT: usize = 2 * size_of::<(f64, Vec<u8>)>();
/// A held line's slot in the expiry queue, with the queue's growth room.
const QUEUE_SLOT: usize = 2 * size_of::<(f64, u64)>();
/// A trace with held lines: its map entry (with the map's spare room and
/// control byte) and its list's first allocation (four slots).
const TRACE_COST: usize = 2 * (size_of::<(u64, Vec<(f64, Vec<u8>)>)>() + 1) + 4 * size_of::<(f64, Vec<u8>)>();

/// See the module docs.
#[derive(Default)]
pub struct Lookback {
    window: f64,
    max_bytes: usize,
    /// What is held costs, by the constants above.
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
        let lines = self.by_trace.entry(h).or_default();
        if lines.is_empty() {
            self.bytes += TRACE_COST;
        }
        self.bytes += line.capacity() + LIST_SLOT + QUEUE_SLOT;
        lines.push((now, line));
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
        self.bytes -= QUEUE_SLOT;
        if let Some(lines) = self.by_trace.get_mut(&h) {
            if let Some(pos) = lines.iter().position(|(lt, _)| *lt == t) {
                let (_, l) = lines.remove(pos);
                self.bytes -= l.capacity() + LIST_SLOT;
            }
            if lines.is_empty() {
                self.by_trace.remove(&h);
                self.bytes -= TRACE_COST;
            }
        }
        true
    }

    /// The held lines of trace `h`, in order (they leave the buffer).
    pub fn release(&mut self, h: u64) -> Vec<Vec<u8>> {
        let Some(lines) = self.by_trace.remove(&h) else {
            return Vec::new();
        };
        self.bytes -= TRACE_COST + lines.iter().map(|(_, l)| l.capacity() + LIST_SLOT).sum::<usize>();
        // Their `order` entries now point at nothing and expire harmlessly
        // (their queue slots are counted until then).
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_releases_expires_and_bounds() {
        let mut l = Lookback::new(2.0, 1 << 20);
        l.hold(1, 0.0, b"aa".to_vec());
        l.hold(2, 0.5, b"bb".to_vec());
        l.hold(1, 1.0, b"cc".to_vec());
        assert_eq!(l.release(1), vec![b"aa".to_vec(), b"cc".to_vec()]);
        assert!(l.release(1).is_empty());
        l.expire(3.0);
        assert!(l.release(2).is_empty(), "expired after the window");
        // Room for one trace of three of these lines and their bookkeeping.
        let mut l = Lookback::new(2.0, TRACE_COST + 3 * (3 + LIST_SLOT + QUEUE_SLOT));
        for t in 0..10 {
            l.hold(7, 10.0 + t as f64 * 0.01, b"xyz".to_vec());
        }
        assert_eq!(l.release(7).len(), 3, "only three lines' worth is held");
    }

    /// Bytes the current thread has allocated and not freed: the test
    /// binary's allocator counts per thread, so tests running beside this
    /// one do not disturb it.
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static LIVE: Cell<isize> = const { Cell::new(0) };
        }

        pub struct Counting;

        fn add(n: isize) {
            let _ = LIVE.try_with(|c| c.set(c.get() + n));
        }

        // SAFETY: every call is passed through to the system allocator
        // unchanged; the counter only watches.
        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                // SAFETY: the caller's contract, passed on.
                let p = unsafe { System.alloc(layout) };
                if !p.is_null() {
                    add(layout.size() as isize);
                }
                p
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                // SAFETY: the caller's contract, passed on.
                unsafe { System.dealloc(ptr, layout) };
                add(-(layout.size() as isize));
            }
        }

        pub fn live() -> isize {
            LIVE.with(Cell::get)
        }
    }

    #[global_allocator]
    static ALLOCATOR: counting::Counting = counting::Counting;

    #[test]
    fn max_bytes_bounds_the_memory_held_not_only_the_text() {
        const MAX: usize = 4 << 20;
        let start = counting::live();
        let mut l = Lookback::new(60.0, MAX);
        let (mut peak, mut rng) = (0isize, 0x9e37_79b9_7f4a_7c15u64);
        for n in 0..200_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // 1-3 lines per trace, 60-700 bytes each, as the budget stage
            // encodes them (capacity: the line plus its mark).
            let size = 60 + (rng % 640) as usize;
            let mut line = Vec::with_capacity(size + 18);
            line.resize(size, b'x');
            l.hold(n / (1 + rng % 3), n as f64 * 1e-4, line);
            if n % 97 == 0 {
                drop(l.release((n / 2) ^ (rng % 7)));
            }
            if n % 1000 == 0 {
                peak = peak.max(counting::live() - start);
            }
        }
        let held = counting::live() - start;
        assert!(peak <= MAX as isize, "peak {peak} over {MAX}");
        assert!(
            held >= (MAX / 2) as isize,
            "held {held}: the bound is not so loose that little is held"
        );
        drop(l);
        assert_eq!(counting::live() - start, 0, "everything held was freed");
    }
}
