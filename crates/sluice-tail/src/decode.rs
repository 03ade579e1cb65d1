//! Container runtime line formats, and the joining of partial lines per
//! (file, stream) so interleaved stdout/stderr pieces never mix.
//!
//! * CRI (containerd, CRI-O): `<RFC3339Nano> <stdout|stderr> <P|F> <content>`;
//!   `P` pieces are joined until the next `F` *of the same stream*.
//! * Docker json-file: `{"log":"...\n","stream":"stdout","time":"..."}`; a
//!   `log` without the trailing `\n` is a 16 KiB piece of a longer line.
//! * Raw: the line as written.

use std::borrow::Cow;

use sluice_config::FileFormat;

/// Which of a container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (or unknown, for raw files).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn index(self) -> usize {
        self as usize
    }

    /// The value written in the `stream` field.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A complete application line recovered from the file.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The application's bytes (joined and unescaped as needed).
    pub content: Cow<'a, [u8]>,
    /// Its stream.
    pub stream: Stream,
    /// The runtime's timestamp of the (last) piece, when the format has one.
    pub runtime_ts: Option<Cow<'a, [u8]>>,
    /// Joined pieces exceeded the cap and were cut.
    pub truncated: bool,
    /// The runtime line did not parse; `content` is the raw line.
    pub malformed: bool,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// File offset where the first held piece starts.
    start: Option<u64>,
    /// When the first held piece was read.
    since: Option<std::time::Instant>,
    truncated: bool,
}

/// Decodes one file's lines. See the module docs.
#[derive(Debug)]
pub struct FileDecoder {
    format: FileFormat,
    pending: [Pending; 2],
    max_merged: usize,
}

impl FileDecoder {
    /// A decoder for `format` (`Auto` decides on the first line).
    pub fn new(format: FileFormat, max_merged: usize) -> FileDecoder {
        FileDecoder {
            format,
            pending: Default::default(),
            max_merged,
        }
    }

    /// The format in use (`Auto` until the first line).
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The file offset of the oldest piece still waiting for its end, if any:
    /// a checkpoint must not pass it.
    pub fn oldest_pending(&self) -> Option<u64> {
        self.pending.iter().filter_map(|p| p.start).min()
    }

    /// Decode one runtime line (without its `\n`) that starts at file offset
    /// `offset`. Returns the completed application line, if this line
    /// completed one.
    pub fn decode<'a>(&mut self, line: &'a [u8], offset: u64) -> Option<Decoded<'a>> {
        if self.format == FileFormat::Auto {
            self.format = detect(line);
        }
        match self.format {
            FileFormat::Cri => self.cri(line, offset),
            FileFormat::Docker => self.docker(line, offset),
            FileFormat::Raw | FileFormat::Auto => Some(raw(line, false)),
        }
    }

    fn cri<'a>(&mut self, line: &'a [u8], offset: u64) -> Option<Decoded<'a>> {
        let Some((ts, stream, full, content)) = split_cri(line) else {
            return Some(raw(line, true));
        };
        self.piece(stream, content, full, offset, Some(Cow::Borrowed(ts)))
    }

    fn docker<'a>(&mut self, line: &'a [u8], offset: u64) -> Option<Decoded<'a>> {
        #[derive(serde::Deserialize)]
        struct DockerLine<'a> {
            #[serde(borrow)]
            log: Cow<'a, str>,
            #[serde(borrow, default)]
            stream: Cow<'a, str>,
            #[serde(borrow, default)]
            time: Cow<'a, str>,
        }
        let Ok(d) = serde_json::from_slice::<DockerLine<'a>>(line) else {
            return Some(raw(line, true));
        };
        let stream = if d.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        let ts = (!d.time.is_empty()).then(|| cow_bytes(d.time));
        let log = cow_bytes(d.log);
        let full = log.last() == Some(&b'\n');
        let content = match log {
            Cow::Borrowed(b) if full => Cow::Borrowed(strip_eol(b)),
            Cow::Owned(mut v) if full => {
                let n = strip_eol(&v).len();
                v.truncate(n);
                Cow::Owned(v)
            }
            other => other,
        };
        match content {
            Cow::Borrowed(b) => self.piece(stream, b, full, offset, ts),
            Cow::Owned(v) => self.piece(stream, &v, full, offset, ts).map(into_owned),
        }
    }

    /// Add one piece of `stream`; a full piece completes the line.
    fn piece<'a>(
        &mut self,
        stream: Stream,
        content: &'a [u8],
        full: bool,
        offset: u64,
        ts: Option<Cow<'a, [u8]>>,
    ) -> Option<Decoded<'a>> {
        let max = self.max_merged;
        let p = &mut self.pending[stream.index()];
        if p.start.is_none() {
            if full {
                // The common case: a whole line in one piece, no copy.
                let truncated = content.len() > max;
                return Some(Decoded {
                    content: Cow::Borrowed(&content[..content.len().min(max)]),
                    stream,
                    runtime_ts: ts,
                    truncated,
                    malformed: false,
                });
            }
            p.start = Some(offset);
            p.since = Some(std::time::Instant::now());
        }
        let room = max.saturating_sub(p.buf.len());
        if content.len() > room {
            p.truncated = true;
        }
        p.buf.extend_from_slice(&content[..content.len().min(room)]);
        if !full {
            return None;
        }
        p.start = None;
        p.since = None;
        Some(Decoded {
            content: Cow::Owned(std::mem::take(&mut p.buf)),
            stream,
            runtime_ts: ts,
            truncated: std::mem::take(&mut p.truncated),
            malformed: false,
        })
    }

    /// Release the pieces still waiting (the file is gone for good): they
    /// become lines of their own, marked truncated.
    pub fn drain(&mut self) -> Vec<Decoded<'static>> {
        self.drain_where(|_| true)
    }

    /// Release the pieces that have waited since before `cutoff` for an
    /// end that did not come (a writer that died mid-line): they become
    /// lines of their own, marked truncated, so the checkpoint can pass
    /// them and the other stream's lines are not read again at restart.
    pub fn drain_older_than(&mut self, cutoff: std::time::Instant) -> Vec<Decoded<'static>> {
        self.drain_where(|p| p.since.is_some_and(|t| t < cutoff))
    }

    fn drain_where(&mut self, due: impl Fn(&Pending) -> bool) -> Vec<Decoded<'static>> {
        let mut out = Vec::new();
        for (i, p) in self.pending.iter_mut().enumerate() {
            if !due(p) {
                continue;
            }
            p.since = None;
            if p.start.take().is_some() {
                out.push(Decoded {
                    content: Cow::Owned(std::mem::take(&mut p.buf)),
                    stream: if i == 0 { Stream::Stdout } else { Stream::Stderr },
                    runtime_ts: None,
                    truncated: true,
                    malformed: false,
                });
                p.truncated = false;
            }
        }
        out
    }
}

fn into_owned(d: Decoded<'_>) -> Decoded<'static> {
    Decoded {
        content: Cow::Owned(d.content.into_owned()),
        stream: d.stream,
        runtime_ts: d.runtime_ts.map(|t| Cow::Owned(t.into_owned())),
        truncated: d.truncated,
        malformed: d.malformed,
    }
}

fn cow_bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.as_bytes()),
        Cow::Owned(o) => Cow::Owned(o.into_bytes()),
    }
}

fn strip_eol(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn raw(line: &[u8], malformed: bool) -> Decoded<'_> {
    Decoded {
        content: Cow::Borrowed(line),
        stream: Stream::Stdout,
        runtime_ts: None,
        truncated: false,
        malformed,
    }
}

/// `ts stream tag content`, checked strictly enough that a plain log line is
/// not mistaken for CRI.
fn split_cri(line: &[u8]) -> Option<(&[u8], Stream, bool, &[u8])> {
    let sp1 = memchr::memchr(b' ', line)?;
    let ts = &line[..sp1];
    if ts.len() < 20 || !ts[0].is_ascii_digit() || ts.get(10) != Some(&b'T') {
        return None;
    }
    let rest = &line[sp1 + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (Stream::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (Stream::Stderr, r)
    } else {
        return None;
    };
    let full = match rest.first() {
        Some(b'F') => true,
        Some(b'P') => false,
        _ => return None,
    };
    // The content follows one space; an empty line may have none.
    let content = match rest.get(1) {
        None => &rest[1..],
        Some(b' ') => &rest[2..],
        Some(_) => return None,
    };
    Some((ts, stream, full, content))
}

fn detect(line: &[u8]) -> FileFormat {
    if split_cri(line).is_some() {
        FileFormat::Cri
    } else if line.starts_with(b"{\"log\":")
        || (line.starts_with(b"{") && memchr::memmem::find(line, b"\"log\":").is_some())
    {
        FileFormat::Docker
    } else {
        FileFormat::Raw
    }
}

#[cfg(test)]
mod tests;
