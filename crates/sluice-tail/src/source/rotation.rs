//! Following rotation: a truncated file starts over, a copytruncate copy
//! is recognised by its first bytes and continues where its original was
//! read to, and a file rotated away or deleted is closed once read to its
//! end and quiet for `rotate_wait`. Ordering across a rotation (the old
//! generation's tail before the new one's lines) is kept by `after`, which
//! `Tailer::read_file` honours.

use std::path::Path;
use std::time::Instant;

use super::Tailer;
use crate::batch_builder::BatchBuilder;
use crate::tracked::FileId;

impl Tailer {
    /// For a copytruncate copy (its first bytes agree with those of a file
    /// we track or just saw truncated, one being a prefix of the other since
    /// the copy may still be being written): the offset its original had
    /// reached, and the original.
    pub(super) fn copied_from(&self, head: &[u8], path: &Path) -> Option<(u64, FileId)> {
        if head.is_empty() {
            return None;
        }
        let agrees = |other: &[u8]| !other.is_empty() && (other.starts_with(head) || head.starts_with(other));
        // A copytruncate copy lands beside its original (`app.log.1`): files
        // elsewhere that merely start alike (replicas printing the same
        // banner) are files of their own, read whole.
        let beside = |other: &Path| other.parent() == path.parent();
        let live = self
            .files
            .values()
            .filter(|t| agrees(&t.head) && beside(&t.path))
            .map(|t| (t.safe_offset(), t.id));
        let gone = self
            .truncated
            .iter()
            .filter(|(id, (h, _, _))| agrees(h) && self.files.get(id).is_none_or(|t| beside(&t.path)))
            .map(|(id, (_, off, _))| (*off, *id));
        live.chain(gone).max()
    }

    /// Truncated files start over; rotated-away or deleted files are closed
    /// once read to their end and quiet for `rotate_wait`. Whether a read-out
    /// file's path still leads to it is asked only with `check_paths` (the
    /// rounds that scanned: every `scan_interval`, and at once when inotify
    /// saw a file renamed or removed): a path lookup per idle file per poll
    /// was most of what 1,000 idle files cost.
    pub(super) fn check_rotations(&mut self, builder: &mut BatchBuilder, check_paths: bool) {
        let now = Instant::now();
        let mut closed = Vec::new();
        let mut rescan = false;
        for (id, t) in self.files.iter_mut() {
            let size = match t.size() {
                Ok(s) => s,
                Err(_) => continue,
            };
            if let Some((seen, since)) = t.filling {
                if size >= t.read_offset {
                    t.filling = None;
                } else if size != seen {
                    t.filling = Some((size, now));
                    continue;
                } else if now.duration_since(since) < self.cfg.rotate_wait {
                    continue;
                } else {
                    // The copy stopped short: what it holds was read from
                    // its original already.
                    t.filling = None;
                    if t.skip_to(size).is_err() {
                        self.counters.io_errors.inc();
                    }
                    continue;
                }
            }
            if size < t.read_offset {
                tracing::debug!(source = %self.id, path = %t.path.display(), ino = id.ino, size, read = t.read_offset, "file truncated");
                self.counters.truncations.inc();
                self.truncated.insert(*id, (t.head.clone(), t.safe_offset(), now));
                // The copy it may be waiting for now holds all its old bytes.
                t.copied_away = false;
                rescan = true;
                if t.restart_after_truncation().is_err() {
                    self.counters.io_errors.inc();
                }
                builder.offsets.push((*id, 0));
                continue;
            }
            if size > t.read_offset || !check_paths {
                continue;
            }
            if t.path_leads_here(&t.path.clone()) {
                t.gone_since = None;
                continue;
            }
            let since = *t.gone_since.get_or_insert(now);
            if now.duration_since(since.max(t.last_data)) >= self.cfg.rotate_wait {
                t.drain_into(builder);
                builder.offsets.push((*id, t.read_offset));
                closed.push(*id);
            }
        }
        if rescan {
            // copytruncate copies before it truncates: find the copy now, so
            // its tail is read before the original's new lines.
            self.scan(false);
        }
        for id in closed {
            if let Some(t) = self.files.remove(&id) {
                self.counters.rotations.inc();
                if let Some(c) = self.committed.get_mut(&id) {
                    c.final_offset = Some(t.read_offset);
                }
            }
            self.order.retain(|o| *o != id);
        }
        self.counters.files_open.set(self.files.len() as i64);
    }
}
