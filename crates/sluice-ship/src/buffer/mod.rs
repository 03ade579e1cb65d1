//! The buffer between a sink's intake (encoded batches from the pipeline)
//! and its delivery loop (requests to the target), bounded in bytes.
//!
//! * **Memory**: a queue of frames, each holding its pipeline batch's
//!   acknowledgement tokens (not its bytes: the frame is the encoding), so
//!   the batch's acknowledgement is released only once the target accepted
//!   it.
//! * **Disk**: frames are appended to segment files ([`disk`]) and the batch
//!   is released (acknowledged) as soon as its frame is written: from then
//!   on the buffer, not the source, is responsible for it, and it survives
//!   kill -9.
//!
//! When full, intake either waits (`block`: backpressure reaches the
//! sources) or drops the incoming batch (`drop_newest`, counted). Exactly
//! one intake task and one delivery task use a buffer, which is what lets a
//! single `Notify` permit per direction stand in for a condition variable.

pub(crate) mod disk;

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sluice_config::{BufferConfig, BufferKind, WhenFull};
use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::metric_names;
use sluice_core::{AckToken, Counter, Gauge, Registry, SinkBatch};
use tokio::sync::Notify;

use crate::frame::Frame;
use disk::{DiskQueue, Position};

/// What the memory buffer keeps of an encoded pipeline batch: this sink's
/// claims on its acknowledgements, released once the target stored its
/// records and failed by any other end. The batch's bytes and events are
/// freed as soon as every sink has encoded them: holding whole batches
/// doubled a storage sink's peak RSS.
#[derive(Debug)]
struct Held {
    acks: Vec<AckToken>,
    events: u64,
}

impl Held {
    fn of(batch: SinkBatch) -> Held {
        let events = batch.len() as u64;
        Held {
            acks: batch.into_acks(),
            events,
        }
    }

    fn delivered(self) {
        self.acks.into_iter().for_each(AckToken::release);
    }
}

/// Frames taken for one request, and what committing them means.
#[derive(Debug)]
pub struct Taken {
    /// The frames, oldest first.
    pub frames: Vec<Frame>,
    /// Memory buffer: the batches to release on commit (or fail).
    batches: Vec<Held>,
    /// Disk buffer: where the read position moves on commit.
    disk_to: Option<(Position, u64)>,
    size: u64,
}

impl Taken {
    /// Records in all frames.
    pub fn records(&self) -> usize {
        self.frames.iter().map(Frame::len).sum()
    }
}

enum Backend {
    Memory(VecDeque<(Frame, Held)>),
    Disk {
        queue: Box<DiskQueue>,
        /// A frame read but left for the next request (it did not fit).
        peeked: Option<disk::ReadFrame>,
        last_sync: Instant,
    },
}

struct State {
    backend: Backend,
    /// Bytes held: queued plus in flight.
    bytes: u64,
    closed_at: Option<Instant>,
    /// Delivery gave up: pushes are refused.
    abandoned: bool,
}

/// What one attempt to move a frame into a request found.
enum Pop {
    Took,
    Empty,
    NoRoom,
}

/// What happened to a pushed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Buffered.
    Stored,
    /// Dropped because the buffer was full (`drop_newest`).
    Dropped,
    /// Dropped undelivered: delivery gave up at shutdown.
    Abandoned,
}

/// See the module docs.
pub struct Buffer {
    state: Mutex<State>,
    data_ready: Notify,
    space_ready: Notify,
    max_bytes: u64,
    when_full: WhenFull,
    fsync_interval: Duration,
    bytes_gauge: Gauge,
    dropped: Counter,
    corrupt: Counter,
    volume_full: Counter,
    volume_full_logged: Mutex<Option<Instant>>,
    quarantined_bytes: std::sync::atomic::AtomicU64,
}

impl Buffer {
    /// A buffer for sink `sink`; a disk buffer lives in `dir`.
    pub fn open(cfg: &BufferConfig, dir: &Path, registry: &Registry, sink: &str) -> io::Result<Buffer> {
        let (backend, bytes) = match cfg.kind {
            BufferKind::Memory => (Backend::Memory(VecDeque::new()), 0),
            BufferKind::Disk => {
                let queue = Box::new(DiskQueue::open(dir)?);
                let bytes = queue.pending_bytes();
                (
                    Backend::Disk {
                        queue,
                        peeked: None,
                        last_sync: Instant::now(),
                    },
                    bytes,
                )
            }
        };
        let labels = [("sink", sink)];
        let bytes_gauge = registry.gauge(metric_names::BUFFER_BYTES, "Bytes waiting in a sink's buffer.", &labels);
        bytes_gauge.set(bytes as i64);
        registry
            .gauge(
                metric_names::BUFFER_MAX_BYTES,
                "Bytes a sink's buffer may hold.",
                &labels,
            )
            .set(cfg.limit().0 as i64);
        Ok(Buffer {
            state: Mutex::new(State {
                backend,
                bytes,
                closed_at: None,
                abandoned: false,
            }),
            data_ready: Notify::new(),
            space_ready: Notify::new(),
            max_bytes: cfg.limit().0,
            when_full: cfg.when_full,
            fsync_interval: cfg.fsync_interval,
            bytes_gauge,
            dropped: registry.counter(
                "buffer_dropped_events_total",
                "Events dropped because a sink's buffer was full (when_full = drop_newest).",
                &labels,
            ),
            corrupt: {
                let c = registry.counter(
                    "buffer_corrupt_records_total",
                    "Damaged disk buffer regions moved to quarantine.",
                    &labels,
                );
                component_metrics::errors(registry, ComponentKind::Sink, sink, "corrupt_buffer", &c);
                c
            },
            volume_full: registry.counter(
                "buffer_volume_full_total",
                "Writes to a disk buffer that found its volume full (intake waited or dropped).",
                &labels,
            ),
            volume_full_logged: Mutex::new(None),
            quarantined_bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half-updated
        // in a way later calls would misread, so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Buffer `frame`, the encoding of `batch`. Waits for room (`block`) or
    /// drops it (`drop_newest`). A frame larger than the whole buffer is
    /// still taken when the buffer is empty, so it cannot wedge the sink. A
    /// disk buffer whose volume is full is full too: intake waits (or
    /// drops), retrying the write as delivery frees room. Once delivery
    /// gave up ([`Buffer::abandon`]) nothing is taken any more: the batch
    /// is dropped undelivered.
    pub async fn push(&self, frame: Frame, batch: SinkBatch) -> io::Result<Pushed> {
        let size = frame.size();
        loop {
            let room = self.space_ready.notified();
            let volume_full = {
                let mut st = self.lock();
                if st.abandoned {
                    // Dropped without release: its source hears it failed.
                    return Ok(Pushed::Abandoned);
                }
                let mut volume_full = false;
                if st.bytes == 0 || st.bytes + size <= self.max_bytes {
                    let State { backend, bytes, .. } = &mut *st;
                    match backend {
                        Backend::Memory(q) => {
                            q.push_back((frame, Held::of(batch)));
                            *bytes += size;
                            self.stored(st);
                            return Ok(Pushed::Stored);
                        }
                        Backend::Disk { queue, last_sync, .. } => match queue.append(&frame) {
                            Ok(written) => {
                                *bytes += written;
                                if last_sync.elapsed() >= self.fsync_interval {
                                    queue.sync()?;
                                    *last_sync = Instant::now();
                                }
                                // Written: the buffer is responsible for it now.
                                batch.delivered();
                                self.stored(st);
                                return Ok(Pushed::Stored);
                            }
                            Err(e) if disk::is_volume_full(&e) => {
                                volume_full = true;
                                self.volume_full.inc();
                                self.warn_volume_full(&e);
                            }
                            // Any other error drops the batch: its claims fail.
                            Err(e) => return Err(e),
                        },
                    }
                }
                if self.when_full == WhenFull::DropNewest {
                    self.dropped.add(batch.len() as u64);
                    // Deliberately dropped, by the operator's rule: the
                    // source may move on.
                    batch.delivered();
                    return Ok(Pushed::Dropped);
                }
                volume_full
            };
            if volume_full {
                // Delivery notifies when it frees room; the timeout also
                // catches room freed by anyone else on the volume.
                let _ = tokio::time::timeout(Duration::from_secs(1), room).await;
                continue;
            }
            tracing::trace!(size, "buffer full: intake waits");
            room.await;
            tracing::trace!("intake woke");
        }
    }

    fn stored(&self, st: MutexGuard<'_, State>) {
        self.bytes_gauge.set(st.bytes as i64);
        drop(st);
        self.data_ready.notify_one();
    }

    fn warn_volume_full(&self, e: &io::Error) {
        let mut last = self.volume_full_logged.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, "disk buffer's volume is full: intake waits for delivery to free room (backpressure), nothing is acknowledged meanwhile");
        }
    }

    /// No more pushes: delivery drains what is left and then ends.
    pub fn close(&self) {
        self.lock().closed_at.get_or_insert_with(Instant::now);
        self.data_ready.notify_one();
    }

    /// When intake ended, if it has.
    pub fn closed_at(&self) -> Option<Instant> {
        self.lock().closed_at
    }

    /// Frames for the next request: waits for the first, then gathers more
    /// while they fit in `max_bytes` and `max_records` (a single frame larger
    /// than either still goes alone), waiting at most `linger` after the
    /// first. `None` once the buffer is closed and empty.
    pub async fn take(&self, max_bytes: u64, max_records: usize, linger: Duration) -> io::Result<Option<Taken>> {
        let mut taken = Taken {
            frames: Vec::new(),
            batches: Vec::new(),
            disk_to: None,
            size: 0,
        };
        let mut deadline = None;
        loop {
            let more = self.data_ready.notified();
            let (closed, no_room) = {
                let mut st = self.lock();
                let no_room = self.fill(&mut st, &mut taken, max_bytes, max_records)?;
                (st.closed_at.is_some(), no_room)
            };
            // Full: at a limit, or the next frame would not fit.
            let full = no_room || taken.size >= max_bytes || taken.records() >= max_records;
            tracing::trace!(size = taken.size, full, closed, "take");
            if full || (closed && !taken.frames.is_empty()) {
                return Ok(Some(taken));
            }
            if closed {
                return Ok(None);
            }
            if taken.frames.is_empty() {
                more.await;
                continue;
            }
            let until = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + linger);
            if tokio::time::timeout_at(until, more).await.is_err() {
                // One last look: a push may have landed just now.
                let mut st = self.lock();
                self.fill(&mut st, &mut taken, max_bytes, max_records)?;
                return Ok(Some(taken));
            }
        }
    }

    /// Move frames into `taken` up to the limits; `true` when it stopped
    /// because the next frame would not fit.
    fn fill(&self, st: &mut State, taken: &mut Taken, max_bytes: u64, max_records: usize) -> io::Result<bool> {
        while taken.size < max_bytes && taken.records() < max_records {
            match self.pop_into(st, taken, max_bytes, max_records)? {
                Pop::Took => {}
                Pop::Empty => return Ok(false),
                Pop::NoRoom => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Move the next frame into `taken` if it fits both limits (the first
    /// always does: frames are not split).
    fn pop_into(&self, st: &mut State, taken: &mut Taken, max_bytes: u64, max_records: usize) -> io::Result<Pop> {
        let records = taken.records();
        let fits = |size: u64, n: usize| {
            taken.frames.is_empty() || (taken.size + size <= max_bytes && records + n <= max_records)
        };
        match &mut st.backend {
            Backend::Memory(q) => {
                let Some((frame, _)) = q.front() else {
                    return Ok(Pop::Empty);
                };
                if !fits(frame.size(), frame.len()) {
                    return Ok(Pop::NoRoom);
                }
                let (frame, batch) = q.pop_front().expect("front exists");
                taken.size += frame.size();
                taken.frames.push(frame);
                taken.batches.push(batch);
                Ok(Pop::Took)
            }
            Backend::Disk { queue, peeked, .. } => {
                let next = match peeked.take() {
                    Some(p) => p,
                    None => match queue.read_next()? {
                        Some(r) => r,
                        None => {
                            self.count_quarantined(queue);
                            return Ok(Pop::Empty);
                        }
                    },
                };
                self.count_quarantined(queue);
                if !fits(next.consumed, next.frame.len()) {
                    *peeked = Some(next);
                    return Ok(Pop::NoRoom);
                }
                taken.size += next.consumed;
                let consumed = taken.disk_to.map_or(0, |(_, c)| c) + next.consumed;
                taken.disk_to = Some((next.after, consumed));
                taken.frames.push(next.frame);
                Ok(Pop::Took)
            }
        }
    }

    fn count_quarantined(&self, queue: &mut DiskQueue) {
        let q = queue.take_quarantined();
        self.corrupt.add(q.len() as u64);
        let bytes: u64 = q.iter().map(|r| r.bytes).sum();
        self.quarantined_bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of damaged disk buffer regions moved to quarantine so far:
    /// kept in `quarantine/`, but not delivered.
    pub fn quarantined_bytes(&self) -> u64 {
        self.quarantined_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The target has `taken` (or it was dead-lettered): release it.
    pub fn commit(&self, taken: Taken) -> io::Result<()> {
        let mut st = self.lock();
        if let (Backend::Disk { queue, .. }, Some((to, consumed))) = (&mut st.backend, taken.disk_to) {
            queue.commit(to, consumed)?;
        }
        st.bytes = st.bytes.saturating_sub(taken.size);
        self.bytes_gauge.set(st.bytes as i64);
        drop(st);
        taken.batches.into_iter().for_each(Held::delivered);
        self.space_ready.notify_one();
        Ok(())
    }

    /// Whether this is a disk buffer.
    pub fn is_disk(&self) -> bool {
        matches!(self.lock().backend, Backend::Disk { .. })
    }

    /// Disk buffer: append `records` as a frame of their own (the part of a
    /// request not delivered yet), before the request is committed, so a
    /// crash in between repeats records but never loses one.
    pub fn requeue(&self, records: &[&[u8]]) -> io::Result<()> {
        let mut frame = Frame::default();
        for r in records {
            frame.bytes.extend_from_slice(r);
            frame.finish_record();
        }
        let mut st = self.lock();
        let State { backend, bytes, .. } = &mut *st;
        let Backend::Disk { queue, .. } = backend else {
            return Err(io::Error::other("only a disk buffer requeues"));
        };
        *bytes += queue.append(&frame)?;
        queue.sync()
    }

    /// `taken` could not be delivered before shutdown. Memory: its batches
    /// and everything still queued are reported undelivered, so their
    /// sources re-read them next start. Disk: nothing is lost; the next run
    /// reads them again. Returns the events given up in memory.
    pub fn abandon(&self, taken: Option<Taken>) -> io::Result<u64> {
        let mut st = self.lock();
        st.abandoned = true;
        // Wake an intake waiting for room: it must drop, not wait.
        self.space_ready.notify_one();
        let mut failed = 0;
        // Dropped without release: their sources hear they failed.
        let mut fail = |b: Held| failed += b.events;
        if let Some(t) = taken {
            t.batches.into_iter().for_each(&mut fail);
        }
        match &mut st.backend {
            Backend::Memory(q) => {
                for (_, b) in q.drain(..) {
                    fail(b);
                }
            }
            Backend::Disk { queue, peeked, .. } => {
                *peeked = None;
                queue.rewind();
                queue.sync()?;
            }
        }
        Ok(failed)
    }

    /// At the end of a run: fsync a disk buffer, or remove its files when
    /// everything in it was delivered. Returns the bytes a disk buffer
    /// still holds for the next run.
    pub fn finish(&self) -> io::Result<u64> {
        let mut st = self.lock();
        let held = st.bytes;
        if let Backend::Disk { queue, .. } = &mut st.backend {
            if !queue.close_if_drained()? {
                queue.sync()?;
                return Ok(held);
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests;
