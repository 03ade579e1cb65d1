//! The tailing loop: discover, read fairly, cut batches, follow rotation,
//! and move checkpoints only behind acknowledged data.
//!
//! Discovery and reading are driven by inotify wake-ups (`wake`) with
//! polling underneath: the include globs are re-scanned every
//! `scan_interval` and at once when a file is created, removed or renamed,
//! and an idle reader sleeps until a watched directory changes or
//! `poll_interval` passes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use sluice_config::{FileSourceConfig, ReadFrom};
use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::{
    metric_names, AckReceiver, AckSender, AckTracker, Counter, Gauge, GaugeSet, SourceContext, SourceSummary,
};
use sluice_io::FramerCounters;

use crate::batch_builder::BatchBuilder;
use crate::checkpoint::{CheckpointStore, FileCheckpoint, Fingerprint, Loaded};
use crate::decode::Stream;
use crate::k8s::PathMeta;
use crate::tracked::{head_of, FileId, TrackedFile};

/// How far one read may take a batch past `batch_bytes`; batch buffers are
/// allocated with this much room twice over (once more for a carried
/// partial line; a longer carry costs one reallocation).
const READ_SLACK: usize = 64 * 1024;

struct Counters {
    framer: FramerCounters,
    files_open: Gauge,
    files_waiting: Gauge,
    lag_bytes: Gauge,
    lag_max_bytes: Gauge,
    /// The `lag_series` files furthest behind, by path.
    lag_by_file: GaugeSet,
    /// Lagging files beyond `lag_series`.
    lag_unlisted: Gauge,
    files_parked: Counter,
    partial_timeouts: Counter,
    rotations: Counter,
    truncations: Counter,
    malformed: Counter,
    checkpoints: Counter,
    io_errors: Counter,
}

/// A file's acknowledged state, as it goes into the checkpoint.
#[derive(Debug, Clone)]
struct Committed {
    fingerprint: Fingerprint,
    offset: u64,
    path: String,
    /// The file was closed; the entry goes once its last offset is committed.
    final_offset: Option<u64>,
    /// The mark of the bytes before `offset`, and the offset it was taken
    /// at (taken again when the offset moves, while the file is open).
    before: Option<(u64, Fingerprint)>,
}

/// What a sent batch completes once delivered.
struct Emitted {
    offsets: Vec<(FileId, u64)>,
    /// Events emitted up to and including this batch.
    events_through: u64,
}

/// The file source's state. See the module docs.
pub struct Tailer {
    id: String,
    shutdown: sluice_core::Shutdown,
    batch_bytes: usize,
    max_line_bytes: usize,
    /// The head of the pipeline; dropped first at the end so the chain can
    /// drain and acknowledge.
    out: Option<tokio::sync::mpsc::Sender<sluice_core::Batch>>,
    cfg: FileSourceConfig,
    store: CheckpointStore,
    counters: Counters,
    files: HashMap<FileId, TrackedFile>,
    /// Round-robin order (fairness).
    order: Vec<FileId>,
    /// Stream keys by container directory: a rotated file's successor
    /// shares its predecessor's key, so a stack trace split by the rotation
    /// is still one stream to the multiline stage. Forgotten when the
    /// directory (a pod's container) is gone; keys are never reused.
    stream_keys: HashMap<PathBuf, u64>,
    next_stream_key: u64,
    restored: HashMap<FileId, FileCheckpoint>,
    /// Files that were truncated: their first bytes before the truncation
    /// and the offset reached. A copytruncate copy found later continues
    /// from there.
    truncated: HashMap<FileId, (Vec<u8>, u64, Instant)>,
    acks: (AckSender, AckReceiver),
    tracker: AckTracker<Emitted>,
    delivered: u64,
    committed: HashMap<FileId, Committed>,
    dirty: bool,
    next_seq: u64,
    emitted: u64,
    failed_batches: u64,
    service_map: Vec<(glob::Pattern, String)>,
    /// Files that could not be opened or read, with the last reason; a
    /// reason is logged when it first appears, not at every retry.
    unreadable: HashMap<PathBuf, String>,
    /// The last checkpoint write's error, if it failed.
    checkpoint_error: Option<String>,
    /// Files the last scan could not open for `max_open_files`.
    waiting: u64,
    cap_warned: bool,
    /// The loop stopped because `exit_at_eof` found nothing more to read
    /// (not a shutdown): the run then claims every file read to its end.
    at_eof: bool,
}

impl Tailer {
    /// Publish how far the open files' checkpoints are behind their ends
    /// (one `fstat` per open file, once a scan): summed and the worst per
    /// source, and per file for only the `lag_series` furthest behind, so
    /// the series a node exposes stay bounded however many files it has.
    fn publish_lag(&mut self) {
        let (mut sum, mut max) = (0u64, 0u64);
        let mut behind: Vec<(u64, &std::path::Path)> = Vec::new();
        for (id, t) in &self.files {
            let Ok(size) = t.size() else { continue };
            let done = self.committed.get(id).map_or(0, |c| c.offset);
            let lag = size.saturating_sub(done);
            sum += lag;
            max = max.max(lag);
            if lag > 0 {
                behind.push((lag, &t.path));
            }
        }
        self.counters.lag_bytes.set(sum as i64);
        self.counters.lag_max_bytes.set(max as i64);
        let keep = self.cfg.lag_series.min(behind.len());
        if keep < behind.len() {
            behind.select_nth_unstable_by(keep, |a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        }
        self.counters.lag_unlisted.set((behind.len() - keep) as i64);
        behind.truncate(keep);
        behind.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        self.counters.lag_by_file.replace(
            behind
                .into_iter()
                .map(|(lag, path)| (path.display().to_string(), lag as i64)),
        );
    }

    /// Set up the source and restore its checkpoints.
    pub fn new(ctx: SourceContext, cfg: FileSourceConfig, data_dir: PathBuf) -> std::io::Result<Tailer> {
        let store = CheckpointStore::new(&data_dir, &ctx.id);
        let l = [("source", ctx.id.as_str())];
        let r = &ctx.registry;
        let counters = Counters {
            framer: FramerCounters::new(r, &ctx.id),
            files_open: r.gauge("files_open", "Files the file source holds open.", &l),
            lag_by_file: r.gauge_set(
                metric_names::FILE_LAG_BY_FILE_BYTES,
                "Bytes of one open file past its checkpoint, for the lag_series files furthest behind.",
                &l,
                "file",
            ),
            lag_unlisted: r.gauge(
                metric_names::FILE_LAG_FILES_UNLISTED,
                "Files behind their checkpoints beyond the lag_series that have their own series.",
                &l,
            ),
            lag_bytes: r.gauge(
                metric_names::FILE_LAG_BYTES,
                "Bytes of the open files not yet acknowledged by every sink (file end minus checkpoint), summed.",
                &l,
            ),
            lag_max_bytes: r.gauge(
                metric_names::FILE_LAG_MAX_BYTES,
                "The largest lag of one open file: how far behind the slowest file is.",
                &l,
            ),
            files_waiting: r.gauge(
                "files_waiting",
                "Files found but not open: max_open_files binds and every open file is still being read.",
                &l,
            ),
            partial_timeouts: r.counter(
                "file_partial_timeouts_total",
                "Partial lines emitted unfinished after partial_timeout (marked truncated).",
                &l,
            ),
            files_parked: r.counter(
                "files_parked_total",
                "Files read to their end and closed to make room under max_open_files (reopened when they grow).",
                &l,
            ),
            rotations: r.counter(
                "file_rotations_seen_total",
                "Files that were rotated away or deleted and read to their end.",
                &l,
            ),
            truncations: r.counter(
                "file_truncations_total",
                "Files that shrank (copytruncate) and were read again from the start.",
                &l,
            ),
            malformed: r.counter(
                "file_malformed_lines_total",
                "Runtime lines that did not parse as CRI/Docker, kept as text.",
                &l,
            ),
            checkpoints: r.counter("checkpoint_writes_total", "Checkpoint files written.", &l),
            io_errors: r.counter("file_io_errors_total", "Errors opening or reading files (retried).", &l),
        };
        component_metrics::errors(r, ComponentKind::Source, &ctx.id, "io", &counters.io_errors);
        component_metrics::errors(r, ComponentKind::Source, &ctx.id, "malformed", &counters.malformed);
        let mut restored = HashMap::new();
        match store.load()? {
            Loaded::Files(files) => {
                for f in files {
                    restored.insert(FileId { dev: f.dev, ino: f.ino }, f);
                }
            }
            Loaded::Quarantined(aside, why) => {
                tracing::error!(source = %ctx.id, moved_to = %aside.display(), %why,
                    "checkpoint file unreadable; moved aside, files will be read from their start");
            }
        }
        let committed = restored
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    Committed {
                        fingerprint: f.fingerprint,
                        offset: f.offset,
                        path: f.path.clone(),
                        final_offset: None,
                        before: f.before.map(|m| (f.offset, m)),
                    },
                )
            })
            .collect();
        let service_map = cfg
            .service_map
            .iter()
            .map(|(k, v)| (k.pattern().clone(), v.clone()))
            .collect();
        Ok(Tailer {
            id: ctx.id,
            shutdown: ctx.shutdown,
            batch_bytes: ctx.batch_bytes,
            max_line_bytes: ctx.max_line_bytes,
            out: Some(ctx.out),
            cfg,
            store,
            counters,
            files: HashMap::new(),
            order: Vec::new(),
            stream_keys: HashMap::new(),
            next_stream_key: 2,
            restored,
            truncated: HashMap::new(),
            acks: sluice_core::ack::channel(),
            tracker: AckTracker::new(),
            delivered: 0,
            committed,
            dirty: false,
            next_seq: 0,
            emitted: 0,
            failed_batches: 0,
            service_map,
            unreadable: HashMap::new(),
            checkpoint_error: None,
            waiting: 0,
            cap_warned: false,
            at_eof: false,
        })
    }

    /// Run until shutdown (or, with `exit_at_eof`, until every file is read),
    /// then wait for every acknowledgement and write the final checkpoint.
    pub fn run(mut self) -> std::io::Result<SourceSummary> {
        let mut builder = BatchBuilder::with_room(self.batch_bytes + 2 * READ_SLACK);
        let mut last_scan: Option<Instant> = None;
        let mut last_checkpoint = Instant::now();
        let mut first_scan = true;
        let mut cursor = 0usize;
        let mut wakeups = crate::wake::Wakeups::watch(&self.cfg.include);
        let mut scan_now = false;
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            let mut found_new = false;
            let scanning =
                std::mem::take(&mut scan_now) || last_scan.is_none_or(|t| t.elapsed() >= self.cfg.scan_interval);
            if scanning {
                found_new = self.scan(first_scan);
                wakeups.retry();
                first_scan = false;
                last_scan = Some(Instant::now());
            }
            // One fair round: at most `read_bytes_per_round` from each file,
            // starting where the last round stopped.
            let mut read_any = false;
            let n = self.order.len();
            for k in 0..n {
                let id = self.order[(cursor + k) % n];
                read_any |= self.read_file(id, &mut builder);
                if builder.len() >= self.batch_bytes && !self.send(&mut builder) {
                    return self.settle();
                }
            }
            cursor = cursor.wrapping_add(1);
            self.check_rotations(&mut builder, scanning);
            self.flush_stale_partials(&mut builder);
            if !read_any && !builder.is_empty() && !self.send(&mut builder) {
                return self.settle();
            }
            self.drain_acks();
            if self.dirty && last_checkpoint.elapsed() >= self.cfg.checkpoint_interval {
                self.write_checkpoint();
                last_checkpoint = Instant::now();
            }
            if !read_any {
                // A copytruncate copy waits for its original to drain and
                // settle (`rotate_wait`): its bytes are still to be read.
                let copies_waiting = self.files.values().any(|t| t.after.is_some());
                if self.cfg.exit_at_eof
                    && !found_new
                    && self.waiting == 0
                    && !copies_waiting
                    && !first_scan
                    && last_scan.is_some()
                {
                    self.at_eof = true;
                    break;
                }
                // Files wait for a slot and the open ones are read out:
                // make room now rather than at the next scan.
                if self.waiting > 0 {
                    scan_now = true;
                    continue;
                }
                scan_now = wakeups.wait(self.cfg.poll_interval);
            }
        }
        if !builder.is_empty() {
            self.send(&mut builder);
        }
        self.settle()
    }

    fn origins_for(&mut self, path: &std::path::Path) -> [std::sync::Arc<sluice_core::Origin>; 2] {
        let meta = PathMeta::from_path(path);
        let key = meta.service_key();
        let service = self
            .service_map
            .iter()
            .find(|(p, _)| p.matches(&key))
            .map(|(_, s)| s.clone())
            .or_else(|| meta.container.clone());
        // A container's directory holds only its own log generations; any
        // other file is a stream of its own.
        let owner = match meta.container {
            Some(_) => path.parent().map(PathBuf::from).unwrap_or_default(),
            None => path.to_path_buf(),
        };
        let next = &mut self.next_stream_key;
        let k = *self.stream_keys.entry(owner).or_insert_with(|| {
            *next += 2;
            *next - 2
        });
        [
            meta.origin(path, Stream::Stdout, k, service.as_deref()),
            meta.origin(path, Stream::Stderr, k + 1, service.as_deref()),
        ]
    }

    /// Find files; returns whether any new one was taken on.
    fn scan(&mut self, first_scan: bool) -> bool {
        let excludes = self.cfg.exclude.clone();
        let mut found = false;
        let mut waiting = 0u64;
        let mut seen = std::collections::HashSet::new();
        for pattern in self.cfg.include.clone() {
            let Ok(paths) = glob::glob(pattern.as_str()) else {
                continue;
            };
            for path in paths.flatten() {
                if excludes.iter().any(|e| e.pattern().matches_path(&path)) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let id = FileId::of(&meta);
                seen.insert(id);
                if self.files.contains_key(&id) {
                    continue;
                }
                // A file we read to its end and closed (rotated away) that a
                // wide glob still matches: reopen only if it grew.
                if let Some(done) = self.committed.get(&id).and_then(|c| c.final_offset) {
                    if meta.len() <= done {
                        continue;
                    }
                }
                // An empty file tells nothing about what it is (a fresh log,
                // or a copytruncate copy about to be filled): wait for bytes.
                if meta.len() == 0 {
                    continue;
                }
                // Open files are a cache: at the cap, the least recently
                // active file that is read to its end makes room.
                if self.files.len() >= self.cfg.max_open_files && !self.park_idle() {
                    waiting += 1;
                    continue;
                }
                match self.open(id, path.clone(), meta.len(), first_scan) {
                    Ok(()) => {
                        found = true;
                        self.unreadable.remove(&path);
                    }
                    Err(e) => self.unreadable_file(path, "opening", &e),
                }
            }
        }
        if first_scan {
            // Files deleted while sluice was stopped: their entries would be
            // kept, and written, for ever.
            let gone: Vec<FileId> = self
                .restored
                .keys()
                .filter(|id| !seen.contains(id) && !self.files.contains_key(id))
                .copied()
                .collect();
            for id in gone {
                self.restored.remove(&id);
                self.committed.remove(&id);
                self.dirty = true;
            }
        }
        // A file that failed and is gone now has nothing left to read.
        self.unreadable.retain(|path, _| path.exists());
        // Pods come and go for the life of a node agent: a deleted
        // container's key would otherwise be kept for ever.
        self.stream_keys.retain(|owner, _| owner.exists());
        // A copytruncate copy shows up within a few scans, or never.
        let horizon = self.cfg.scan_interval * 10 + self.cfg.rotate_wait;
        self.truncated.retain(|_, (_, _, at)| at.elapsed() < horizon);
        // Forget closed files that are gone, once fully acknowledged.
        self.committed
            .retain(|id, c| c.final_offset.is_none_or(|f| seen.contains(id) || c.offset < f));
        self.counters.files_open.set(self.files.len() as i64);
        self.counters.files_waiting.set(waiting as i64);
        self.publish_lag();
        if waiting > 0 && !self.cap_warned {
            self.cap_warned = true;
            tracing::warn!(source = %self.id, max_open_files = self.cfg.max_open_files, waiting,
                "max_open_files binds: every open file is still being read, the rest wait their turn (files_waiting)");
        }
        self.waiting = waiting;
        found
    }

    /// Close the least recently active open file that is read to its end
    /// (nothing carried, nothing pending, no rotation in progress); its
    /// committed entry keeps its identity and offset, and the next scan
    /// reopens it there once it grows. `false` when none can go.
    fn park_idle(&mut self) -> bool {
        let waited_on: std::collections::HashSet<FileId> = self.files.values().filter_map(|t| t.after).collect();
        let idle = self
            .files
            .values()
            .filter(|t| {
                t.after.is_none()
                    && t.filling.is_none()
                    && !t.copied_away
                    && t.gone_since.is_none()
                    && !waited_on.contains(&t.id)
                    && t.safe_offset() == t.read_offset
                    && t.size().is_ok_and(|size| size == t.read_offset)
            })
            .min_by_key(|t| t.last_data)
            .map(|t| (t.id, t.read_offset));
        let Some((id, offset)) = idle else { return false };
        self.files.remove(&id);
        self.order.retain(|o| *o != id);
        if let Some(c) = self.committed.get_mut(&id) {
            c.final_offset = Some(offset);
        }
        self.counters.files_parked.inc();
        true
    }

    fn open(&mut self, id: FileId, path: PathBuf, size: u64, first_scan: bool) -> std::io::Result<()> {
        let file = std::fs::File::open(&path)?;
        let head = head_of(&file)?;
        let fingerprint = Fingerprint::of(&head);
        // Where to start: our checkpoint of this very file; else, for a
        // copytruncate copy, where its original was; else the configured start.
        let same_content = |fp: &Fingerprint| fp.len <= fingerprint.len && prefix_matches(&file, fp);
        // ...and the bytes before the offset are still the ones read: not
        // truncated and rewritten past it meanwhile.
        let marked = |offset: u64| {
            let mark = self
                .committed
                .get(&id)
                .and_then(|c| c.before)
                .filter(|(at, _)| *at == offset);
            mark.is_none_or(|(_, m)| crate::tracked::matches_before(&file, offset, m))
        };
        let closed_at = self
            .committed
            .get(&id)
            .and_then(|c| c.final_offset.map(|f| (c.fingerprint, f)));
        let mut copy = false;
        let restored = self.restored.remove(&id);
        let rewritten = restored
            .as_ref()
            .is_some_and(|c| same_content(&c.fingerprint) && !marked(c.offset))
            || closed_at.is_some_and(|(fp, f)| same_content(&fp) && !marked(f));
        if rewritten {
            tracing::debug!(source = %self.id, path = %path.display(), ino = id.ino, "file rewritten past its checkpoint: read from its start");
            self.counters.truncations.inc();
        }
        let offset = if rewritten {
            0
        } else if let Some(c) = restored.filter(|c| same_content(&c.fingerprint)) {
            c.offset.min(size)
        } else if let Some((_, f)) = closed_at.filter(|(fp, _)| same_content(fp)) {
            f.min(size)
        } else if let Some((copied, original)) = (!first_scan).then(|| self.copied_from(&head, &path)).flatten() {
            // The original continues only once this copy is drained. The
            // copy may still be being written: reading waits for its bytes,
            // and an original not yet seen truncated reads nothing more (its
            // bytes past `copied` are the copy's to deliver).
            let truncation_seen = self.truncated.contains_key(&original);
            if let Some(o) = self.files.get_mut(&original) {
                o.after = Some(id);
                o.copied_away = !truncation_seen;
            }
            copy = true;
            copied
        } else if first_scan && self.cfg.read_from == ReadFrom::End {
            size
        } else {
            0
        };
        tracing::debug!(source = %self.id, path = %path.display(), ino = id.ino, offset, size, "tracking file");
        let origins = self.origins_for(&path);
        let mut t = TrackedFile::new(
            id,
            path,
            file,
            offset,
            self.cfg.format,
            self.cfg.max_merged_line_bytes.0 as usize,
            origins,
        )?;
        t.seek_to_offset()?;
        if copy && offset > size {
            t.filling = Some((size, Instant::now()));
        }
        // A new file where a rotated-away one still has unread lines: it
        // waits for its predecessor.
        t.after = self
            .files
            .values()
            .find(|o| o.path == t.path && o.id != id)
            .map(|o| o.id);
        let c = self.committed.entry(id).or_insert_with(|| Committed {
            fingerprint: t.fingerprint,
            offset,
            path: t.path.to_string_lossy().into_owned(),
            final_offset: None,
            before: None,
        });
        c.final_offset = None;
        self.files.insert(id, t);
        self.order.push(id);
        Ok(())
    }

    fn read_file(&mut self, id: FileId, builder: &mut BatchBuilder) -> bool {
        // A read never takes the batch past its room (a read's worth of
        // slack is left for the one that crosses `batch_bytes`): a batch
        // buffer that must grow is copied, and a bigger one comes from fresh
        // pages the kernel has to clear (seen as 7% of the CPU in perf).
        let room = (self.batch_bytes + READ_SLACK).saturating_sub(builder.len());
        let max = (self.cfg.read_bytes_per_round.0 as usize).min(room.max(READ_SLACK));
        let max_line = self.max_line_bytes;
        if let Some(before) = self.files.get(&id).and_then(|t| t.after) {
            let predecessor = self.files.get(&before);
            let drained = predecessor.is_none_or(|p| p.filling.is_none() && p.size().is_ok_and(|s| s <= p.read_offset));
            // A copy found before its original was seen truncated may still
            // be growing: "drained" now is not drained for good.
            let settled = !self.files.get(&id).is_some_and(|t| t.copied_away)
                || predecessor.is_none_or(|p| p.last_data.elapsed() >= self.cfg.rotate_wait);
            if !drained || !settled {
                return false;
            }
            if let Some(t) = self.files.get_mut(&id) {
                t.after = None;
                t.copied_away = false;
            }
        }
        let Some(t) = self.files.get_mut(&id) else { return false };
        let events_before = builder.events_len();
        let result = t.read_into(builder, max, max_line);
        if let Some((head, offset)) = t.regrown.take() {
            tracing::debug!(source = %self.id, path = %t.path.display(), ino = id.ino, "file truncated and rewritten past the read offset");
            self.counters.truncations.inc();
            // A copytruncate copy, if one shows up, continues from here.
            self.truncated.insert(id, (head, offset, Instant::now()));
            t.copied_away = false;
            builder.offsets.push((id, 0));
            return true;
        }
        let c = &self.counters;
        match result {
            Ok(n) => {
                if n > 0 && !self.unreadable.is_empty() {
                    self.unreadable.remove(&t.path);
                }
                c.framer.bytes.add(n as u64);
                c.framer.events.add((builder.events_len() - events_before) as u64);
                builder.offsets.push((id, t.safe_offset()));
                n > 0
            }
            Err(e) => {
                let path = t.path.clone();
                self.unreadable_file(path, "reading", &e);
                false
            }
        }
    }

    /// Emit partial lines that waited past `partial_timeout`, so their
    /// files' checkpoints can move on.
    fn flush_stale_partials(&mut self, builder: &mut BatchBuilder) {
        for (id, t) in self.files.iter_mut() {
            if !t.has_pending() {
                continue;
            }
            let n = t.flush_stale_partials(builder, self.cfg.partial_timeout);
            if n > 0 {
                self.counters.partial_timeouts.add(n);
                builder.offsets.push((*id, t.safe_offset()));
            }
        }
    }

    /// Count a file that could not be opened or read; log it when its
    /// reason is new. It is retried, and reported at the end if it never
    /// could be read.
    fn unreadable_file(&mut self, path: PathBuf, action: &str, e: &std::io::Error) {
        self.counters.io_errors.inc();
        if e.kind() == std::io::ErrorKind::NotFound {
            // Gone between the scan and the open: nothing left to read.
            return;
        }
        let reason = format!("{action}: {e}");
        if self.unreadable.get(&path) != Some(&reason) {
            tracing::error!(source = %self.id, file = %path.display(), error = %e,
                "cannot {} a log file; retrying, and the run will not be clean while it fails",
                if action == "opening" { "open" } else { "read" });
            self.unreadable.insert(path, reason);
        }
    }

    /// Send the gathered batch; `false` when the pipeline is gone.
    fn send(&mut self, builder: &mut BatchBuilder) -> bool {
        let c = &self.counters;
        c.malformed.add(builder.malformed);
        c.framer.empty.add(builder.empty);
        c.framer.truncated.add(builder.truncated);
        let (mut batch, offsets) = builder.finish();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.emitted += batch.len() as u64;
        self.tracker.emitted(
            seq,
            Emitted {
                offsets,
                events_through: self.emitted,
            },
        );
        batch.add_ack(self.acks.0.token(seq));
        match &self.out {
            Some(out) => out.blocking_send(batch).is_ok(),
            None => false,
        }
    }

    fn drain_acks(&mut self) {
        while let Some(a) = self.acks.1.try_recv() {
            self.apply_ack(a);
        }
    }

    fn apply_ack(&mut self, a: sluice_core::Acknowledgement) {
        if a.status == sluice_core::AckStatus::Failed {
            self.failed_batches += 1;
        }
        let committed = &mut self.committed;
        let files = &self.files;
        let dirty = &mut self.dirty;
        let delivered = &mut self.delivered;
        self.tracker.acknowledge_each(a, |emitted| {
            *delivered = emitted.events_through;
            for (id, off) in &emitted.offsets {
                if let Some(c) = committed.get_mut(id) {
                    c.offset = *off;
                    if let Some(t) = files.get(id) {
                        c.fingerprint = t.fingerprint;
                    }
                    *dirty = true;
                }
            }
        });
    }

    fn write_checkpoint(&mut self) {
        // Mark the bytes before each moved offset while the file is open.
        for (id, c) in self.committed.iter_mut() {
            if c.before.is_none_or(|(at, _)| at != c.offset) {
                if let Some(t) = self.files.get(id) {
                    c.before = t.mark_at(c.offset).map(|m| (c.offset, m));
                }
            }
        }
        let mut entries: Vec<FileCheckpoint> = self
            .committed
            .iter()
            .map(|(id, c)| FileCheckpoint {
                dev: id.dev,
                ino: id.ino,
                fingerprint: c.fingerprint,
                offset: c.offset,
                path: c.path.clone(),
                before: c.before.filter(|(at, _)| *at == c.offset).map(|(_, m)| m),
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        match self.store.save(&entries) {
            Ok(()) => {
                self.counters.checkpoints.inc();
                self.dirty = false;
                if self.checkpoint_error.take().is_some() {
                    tracing::info!(source = %self.id, "checkpoint written again");
                }
            }
            Err(e) => {
                self.counters.io_errors.inc();
                let reason = e.to_string();
                if self.checkpoint_error.as_ref() != Some(&reason) {
                    tracing::error!(source = %self.id, error = %e,
                        "cannot write the checkpoint; retrying, and the run will not be clean while it fails (a restart would read again from the last saved one)");
                }
                self.checkpoint_error = Some(reason);
            }
        }
    }

    /// Wait for every outstanding acknowledgement, then checkpoint.
    /// Files an `exit_at_eof` run stops short of: bytes past the read
    /// offset (a file that grew after its last read, a copy never read).
    /// A run that says it read everything must have.
    fn not_read_to_the_end(&self) -> Vec<String> {
        let mut short: Vec<(&PathBuf, u64)> = self
            .files
            .values()
            .filter_map(|t| {
                let size = t.size().ok()?;
                (size > t.read_offset).then(|| (&t.path, size - t.read_offset))
            })
            .collect();
        short.sort();
        short
            .into_iter()
            .map(|(path, left)| format!("{} not read to its end ({left} bytes left)", path.display()))
            .collect()
    }

    fn settle(mut self) -> std::io::Result<SourceSummary> {
        // Closing our end of the head channel lets the chain drain; the
        // acknowledgements of everything sent then come back.
        self.out = None;
        while self.tracker.outstanding() > 0 && !self.tracker.is_blocked() {
            match self.acks.1.blocking_recv() {
                Some(a) => self.apply_ack(a),
                None => break,
            }
        }
        self.write_checkpoint();
        let mut problems: Vec<String> = self
            .checkpoint_error
            .iter()
            .map(|e| format!("checkpoint not saved ({e}): the next start reads again from the last saved one"))
            .collect();
        let mut unread: Vec<(&PathBuf, &String)> = self.unreadable.iter().collect();
        unread.sort();
        problems.extend(
            unread
                .into_iter()
                .map(|(path, why)| format!("{} not read ({why})", path.display())),
        );
        if self.at_eof {
            problems.extend(self.not_read_to_the_end());
        }
        Ok(SourceSummary {
            emitted_events: self.emitted,
            delivered_events: self.delivered,
            failed_batches: self.failed_batches,
            problems,
        })
    }
}

/// Whether `file` starts with the bytes `fp` fingerprints.
fn prefix_matches(file: &std::fs::File, fp: &Fingerprint) -> bool {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; fp.len as usize];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => return false,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    Fingerprint::of(&head) == *fp
}

mod rotation;
#[cfg(test)]
mod tests;
