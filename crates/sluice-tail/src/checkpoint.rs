//! Per-source checkpoints: for each file, its identity and the offset up to
//! which every line was acknowledged by every sink. Written atomically
//! (temporary file, fsync, rename, fsync of the directory) so a crash leaves
//! the old or the new checkpoint, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A file's content identity: a CRC of its first `len` bytes (up to 256).
/// Together with device and inode it tells a rotated file from a new one
/// that reused an inode, and a copytruncate copy from a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Bytes covered.
    pub len: u32,
    /// CRC-32 of those bytes.
    pub crc: u32,
}

/// Bytes a fingerprint covers once a file is long enough.
pub const FINGERPRINT_BYTES: usize = 256;

impl Fingerprint {
    /// The fingerprint of a file's first bytes (`head` is at most
    /// [`FINGERPRINT_BYTES`] long).
    pub fn of(head: &[u8]) -> Fingerprint {
        Fingerprint {
            len: head.len() as u32,
            crc: crc32fast::hash(head),
        }
    }
}

/// One file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheckpoint {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Content identity.
    pub fingerprint: Fingerprint,
    /// Resume here: everything before was acknowledged.
    pub offset: u64,
    /// Where the file was last seen (for operators; identity is dev+inode+fingerprint).
    pub path: String,
    /// The fingerprint of the bytes just before `offset` (up to
    /// [`MARK_BYTES`]): a file truncated and rewritten past the offset
    /// while sluice was stopped no longer has them there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Fingerprint>,
}

/// Bytes before an offset that its mark covers.
pub const MARK_BYTES: u64 = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    files: Vec<FileCheckpoint>,
}

/// Where one source's checkpoints live.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// The checkpoints.
    Files(Vec<FileCheckpoint>),
    /// The file was unreadable as a checkpoint; it was moved aside to the
    /// given path and the source starts without checkpoints.
    Quarantined(PathBuf, String),
}

impl CheckpointStore {
    /// The store of source `id` under `data_dir`.
    pub fn new(data_dir: &Path, id: &str) -> CheckpointStore {
        CheckpointStore {
            path: data_dir.join("checkpoints").join(format!("{id}.json")),
        }
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Load the checkpoints; a missing file is an empty set. A corrupt file
    /// is moved aside (never silently overwritten) and reported.
    pub fn load(&self) -> std::io::Result<Loaded> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Files(Vec::new())),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<CheckpointFile>(&bytes) {
            Ok(f) if f.version == 1 => Ok(Loaded::Files(f.files)),
            other => {
                let why = match other {
                    Ok(f) => format!("unknown version {}", f.version),
                    Err(e) => e.to_string(),
                };
                let aside = self.path.with_extension(format!(
                    "json.corrupt-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                ));
                std::fs::rename(&self.path, &aside)?;
                Ok(Loaded::Quarantined(aside, why))
            }
        }
    }

    /// Replace the checkpoints atomically.
    pub fn save(&self, files: &[FileCheckpoint]) -> std::io::Result<()> {
        let dir = self.path.parent().expect("checkpoint path has a directory");
        sluice_state::create_dir(dir)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec(&CheckpointFile {
            version: 1,
            files: files.to_vec(),
        })
        .map_err(std::io::Error::other)?;
        let mut f = sluice_state::create_file(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, offset: u64) -> FileCheckpoint {
        FileCheckpoint {
            dev: 1,
            ino,
            fingerprint: Fingerprint::of(b"first bytes"),
            offset,
            path: format!("/var/log/pods/a/b/{ino}.log"),
            before: None,
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "pods");
        assert!(matches!(store.load().unwrap(), Loaded::Files(f) if f.is_empty()));
        store.save(&[entry(5, 100), entry(6, 0)]).unwrap();
        store.save(&[entry(5, 200)]).unwrap();
        let Loaded::Files(f) = store.load().unwrap() else {
            panic!()
        };
        assert_eq!(f, vec![entry(5, 200)]);
        assert!(!store.path().with_extension("json.tmp").exists());
    }

    #[test]
    fn a_corrupt_checkpoint_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path(), "pods");
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), b"{\"version\":1,\"files\":[{\"dev\":").unwrap();
        let Loaded::Quarantined(aside, why) = store.load().unwrap() else {
            panic!()
        };
        assert!(aside.exists() && !store.path().exists());
        assert!(why.contains("EOF"), "{why}");
        assert!(matches!(store.load().unwrap(), Loaded::Files(f) if f.is_empty()));
    }

    #[test]
    fn fingerprints_cover_what_they_say() {
        assert_eq!(Fingerprint::of(b"abc").len, 3);
        assert_ne!(Fingerprint::of(b"abc"), Fingerprint::of(b"abd"));
    }
}
