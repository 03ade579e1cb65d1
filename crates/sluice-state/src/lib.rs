//! State at rest. The disk buffer, dead-letter files, checkpoints and
//! budget state hold log records or facts about them, so they are private
//! to the user sluice runs as whatever the umask: folders are created
//! 0700 and files 0600, and a state folder another user can write to is
//! refused (they could plant or swap what sluice reads back). This crate
//! owns those modes and that check; it must not know what the files hold.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every state folder sluice creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every state file sluice creates.
pub const FILE_MODE: u32 = 0o600;

/// A state folder sluice will not use.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    /// Other users may write to it.
    #[error("state folder {path} can be written by other users (mode {mode:04o}); sluice keeps log records there and will not use it: chmod 700 it or choose another data_dir")]
    Writable {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another user owns it.
    #[error("state folder {path} belongs to uid {owner}, not to uid {me} that sluice runs as; sluice will not keep log records there")]
    Owner {
        /// The folder.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// sluice's effective uid.
        me: u32,
    },
    /// It could not be created or read.
    #[error("state folder {path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// Create `dir` (and its missing parents) 0700; an existing folder is left
/// as it is (see [`check_dir`]).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Create `dir` if missing and check it is private: owned by this user
/// (or by root, when sluice runs as root), writable by no one else. A
/// folder this user owns that others may only read is tightened to 0700.
pub fn prepare_dir(dir: &Path) -> Result<(), StateDirError> {
    let io_err = |source| StateDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    create_dir(dir).map_err(io_err)?;
    let meta = std::fs::metadata(dir).map_err(io_err)?;
    check_dir(dir, meta.uid(), meta.mode())?;
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)).map_err(io_err)?;
    }
    Ok(())
}

/// Whether a folder owned by `owner` with `mode` may hold state.
fn check_dir(dir: &Path, owner: u32, mode: u32) -> Result<(), StateDirError> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        return Err(StateDirError::Owner {
            path: dir.to_path_buf(),
            owner,
            me,
        });
    }
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// `OpenOptions` that create a file 0600.
pub fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Create (or truncate) `path` 0600 for writing. A file that existed keeps
/// its inode, and is made 0600 too.
pub fn create_file(path: &Path) -> io::Result<File> {
    let f = open_options().write(true).create(true).truncate(true).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Write `bytes` to `path`, created or truncated 0600 (what `fs::write`
/// does, privately).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_file(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process umask is shared by every test thread: set it once, to
    /// the loosest value, before anything is created.
    fn loose_umask() {
        // SAFETY: umask(2) only swaps the process's mask.
        unsafe { libc::umask(0) };
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn folders_and_files_are_private_whatever_the_umask() {
        loose_umask();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        prepare_dir(&dir).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&dir)), (0o700, 0o700));
        let file = dir.join("state.json");
        write_file(&file, b"{}").unwrap();
        assert_eq!(mode(&file), 0o600);
        // An existing file rewritten is made private too.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&file, b"{}").unwrap();
        assert_eq!((mode(&file), std::fs::read(&file).unwrap()), (0o600, b"{}".to_vec()));
        let appended = dir.join("dead.ndjson");
        open_options().create(true).append(true).open(&appended).unwrap();
        assert_eq!(mode(&appended), 0o600);
    }

    #[test]
    fn a_folder_others_can_write_is_refused_and_one_they_can_read_is_tightened() {
        loose_umask();
        let root = tempfile::tempdir().unwrap();
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare_dir(&open).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "state folder {} can be written by other users (mode 0777); sluice keeps log records there and will not use it: chmod 700 it or choose another data_dir",
                open.display()
            )
        );
        let readable = root.path().join("readable");
        std::fs::create_dir(&readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&readable).unwrap();
        assert_eq!(mode(&readable), 0o700);
    }

    #[test]
    fn a_folder_of_another_user_is_refused() {
        // SAFETY: geteuid(2) cannot fail.
        let me = unsafe { libc::geteuid() };
        let e = check_dir(Path::new("/x"), me + 1, 0o700).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "state folder /x belongs to uid {}, not to uid {me} that sluice runs as; sluice will not keep log records there",
                me + 1
            )
        );
        assert!(check_dir(Path::new("/x"), me, 0o700).is_ok());
        assert!(check_dir(Path::new("/x"), me, 0o720).is_err());
    }
}
