//! The `file` sink: NDJSON files, optionally zstd-compressed, rotated by size.
//!
//! Files are named `<prefix>-<UTC open time>-<seq>.ndjson[.zst]`, so a
//! directory listing sorts them in write order, and are created with
//! `create_new` so two runs never write into one file. A batch is
//! acknowledged once its bytes were flushed to the kernel (a zstd block
//! boundary, so everything acknowledged can be decompressed even if the
//! process dies before closing the frame). A file is fsync'ed when it is
//! rotated and at shutdown.

use sluice_core::component_metrics::{self, ComponentKind};
use sluice_core::metric_names;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sluice_config::{Compression, FileSinkConfig};
use sluice_core::encode::write_batch;
use sluice_core::{Counter, SinkBatch, SinkContext, SinkError, SinkSummary};
use tokio::task::JoinHandle;

use crate::stdout_sink::fail_all;

/// Start the file sink.
pub fn spawn(ctx: SinkContext, cfg: FileSinkConfig) -> JoinHandle<Result<SinkSummary, SinkError>> {
    tokio::task::spawn_blocking(move || run(ctx, cfg))
}

/// Counts bytes that reach the file, to rotate on the size on disk.
struct CountingFile {
    file: File,
    written: u64,
    counter: Counter,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.counter.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// An open file. zstd output is a sequence of independent frames, one per
/// flush: a frame is compressed from one contiguous buffer (zstd's fastest
/// path, no window bookkeeping across calls), every acknowledged byte is
/// decodable even if the process dies mid-file, and `zstd -d` reads
/// concatenated frames as one stream.
enum Writer {
    Plain(BufWriter<CountingFile>),
    Zstd {
        file: CountingFile,
        compressor: zstd::bulk::Compressor<'static>,
        frame: Vec<u8>,
    },
}

impl Writer {
    fn written(&self) -> u64 {
        match self {
            Writer::Plain(w) => w.get_ref().written,
            Writer::Zstd { file, .. } => file.written,
        }
    }

    /// Write one flush's worth of NDJSON and hand it to the kernel.
    fn write_chunk(&mut self, ndjson: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(w) => {
                w.write_all(ndjson)?;
                w.flush()
            }
            Writer::Zstd {
                file,
                compressor,
                frame,
            } => {
                frame.clear();
                frame.reserve(zstd::zstd_safe::compress_bound(ndjson.len()));
                compressor.compress_to_buffer(ndjson, frame)?;
                file.write_all(frame)
            }
        }
    }

    /// Flush and fsync.
    fn close(self) -> io::Result<()> {
        let file = match self {
            Writer::Plain(w) => w.into_inner().map_err(|e| e.into_error())?,
            Writer::Zstd { file, .. } => file,
        };
        file.file.sync_all()
    }
}

/// The current file and the naming and retention policy.
struct RotatingFiles {
    cfg: FileSinkConfig,
    current: Option<Writer>,
    created: Vec<PathBuf>,
    seq: u64,
    disk_bytes: Counter,
    rotations: Counter,
}

impl RotatingFiles {
    fn extension(&self) -> &'static str {
        match self.cfg.compression {
            Compression::None => "ndjson",
            Compression::Zstd => "ndjson.zst",
        }
    }

    fn open(&mut self) -> io::Result<&mut Writer> {
        if self.current.is_none() {
            std::fs::create_dir_all(&self.cfg.directory)?;
            let stamp = time::OffsetDateTime::now_utc();
            let stamp = format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                stamp.year(),
                stamp.month() as u8,
                stamp.day(),
                stamp.hour(),
                stamp.minute(),
                stamp.second()
            );
            let (file, path) = loop {
                let name = format!("{}-{stamp}-{:06}.{}", self.cfg.prefix, self.seq, self.extension());
                let path = self.cfg.directory.join(name);
                self.seq += 1;
                match OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(f) => break (f, path),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            };
            let file = CountingFile {
                file,
                written: 0,
                counter: self.disk_bytes.clone(),
            };
            self.current = Some(match self.cfg.compression {
                Compression::None => Writer::Plain(BufWriter::with_capacity(1 << 20, file)),
                Compression::Zstd => Writer::Zstd {
                    file,
                    compressor: zstd::bulk::Compressor::new(self.cfg.zstd_level)?,
                    frame: Vec::new(),
                },
            });
            self.created.push(path);
            self.enforce_retention()?;
        }
        Ok(self.current.as_mut().expect("opened above"))
    }

    /// Write a chunk to the current file (opening one if needed) and rotate
    /// when the file reached its size.
    fn write_chunk(&mut self, ndjson: &[u8]) -> io::Result<()> {
        let w = self.open()?;
        w.write_chunk(ndjson)?;
        if w.written() >= self.cfg.rotate_bytes.0 {
            self.rotations.inc();
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        match self.current.take() {
            Some(w) => w.close(),
            None => Ok(()),
        }
    }

    /// Delete this sink's oldest files beyond `max_files`.
    fn enforce_retention(&self) -> io::Result<()> {
        let Some(max) = self.cfg.max_files else { return Ok(()) };
        let mut ours = list_files(&self.cfg.directory, &self.cfg.prefix, self.extension())?;
        ours.sort();
        let excess = ours.len().saturating_sub(max);
        for old in &ours[..excess] {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

/// Files in `dir` written by a sink with `prefix` and extension `ext`.
pub fn list_files(dir: &Path, prefix: &str, ext: &str) -> io::Result<Vec<PathBuf>> {
    let head = format!("{prefix}-");
    let tail = format!(".{ext}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&head) && name.ends_with(&tail) {
            out.push(path);
        }
    }
    Ok(out)
}

fn run(mut ctx: SinkContext, cfg: FileSinkConfig) -> Result<SinkSummary, SinkError> {
    let labels = [("sink", ctx.id.as_str())];
    let r = &ctx.registry;
    let events = r.counter("events_out_total", "Events written by a sink.", &labels);
    component_metrics::sent_events(r, ComponentKind::Sink, &ctx.id, &events);
    let bytes = r.counter(
        "bytes_out_total",
        "NDJSON bytes written by a sink (before compression).",
        &labels,
    );
    let mut files = RotatingFiles {
        cfg,
        current: None,
        created: Vec::new(),
        seq: 0,
        disk_bytes: r.counter(
            metric_names::FILE_BYTES_WRITTEN_TOTAL,
            "Bytes written to files (after compression).",
            &labels,
        ),
        rotations: r.counter("file_rotations_total", "Files closed for size.", &labels),
    };
    let mut summary = SinkSummary::default();
    // NDJSON of the batches held since the last flush; one flush is one
    // write (one zstd frame).
    let mut pending = Vec::with_capacity(4 << 20);
    let mut held: Vec<SinkBatch> = Vec::new();
    loop {
        let next = ctx.input.blocking_recv();
        let end = next.is_none();
        if let Some(batch) = next {
            let before = pending.len();
            write_batch(&batch, &mut pending);
            let n = batch.len() as u64;
            summary.events += n;
            summary.bytes += (pending.len() - before) as u64;
            events.add(n);
            bytes.add((pending.len() - before) as u64);
            held.push(batch);
        }
        // Flush when the input is idle, at the end, or when enough waits.
        if end || ctx.input.is_empty() || held.len() >= 8 || pending.len() >= 4 << 20 {
            let result = if pending.is_empty() {
                Ok(())
            } else {
                files.write_chunk(&pending)
            };
            let result = result.and_then(|()| if end { files.close() } else { Ok(()) });
            if let Err(source) = result {
                fail_all(&held, &mut ctx);
                return Err(SinkError::Write {
                    id: ctx.id,
                    action: "writing a file",
                    source,
                });
            }
            pending.clear();
            // The bytes are with the kernel: delivered.
            held.drain(..).for_each(SinkBatch::delivered);
        }
        if end {
            break;
        }
    }
    summary.files = files.created;
    Ok(summary)
}

#[cfg(test)]
mod tests;
