//! Output folders: created, locked and probed before any work, so that a run fails at once
//! instead of after hours of training, and two runs never write into one folder together.
//!
//! The lock is an exclusive advisory lock (`flock` on Unix, through `std::fs::File::try_lock`)
//! on `LOCK_FILE` inside the folder, held for as long as the returned [`OutputLock`] lives.
//! The kernel drops it when the process ends, however it ends, so a killed run leaves no stale
//! lock behind. The holder writes its process id into the file for the error a second process
//! gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a locked output folder.
pub const LOCK_FILE: &str = ".levelset.lock";

#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error("{path}: cannot use as an output folder: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is in use by another levelset run ({}); wait for it to finish or choose another output folder",
        holder_text(*pid)
    )]
    Locked { path: PathBuf, pid: Option<u32> },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "process id not yet written".to_string(),
    }
}

/// An exclusive lock on an output folder; released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    // Held open: closing the file releases the lock.
    _file: File,
}

impl OutputLock {
    /// Creates `dir` (and its parents) if needed, takes the exclusive lock on it without
    /// waiting, records this process's id and checks that a file can be written there.
    pub fn acquire(dir: &Path) -> Result<OutputLock, OutDirError> {
        let io = |source| OutDirError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = open_lock_file(dir, true).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(OutDirError::Locked {
                    path: dir.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        // Writing the id is also the probe: a folder that takes this file takes results.
        (|| {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(std::process::id().to_string().as_bytes())?;
            file.sync_all()
        })()
        .map_err(io)?;
        Ok(OutputLock { _file: file })
    }
}

/// Whether another process holds `dir`'s lock now, and its process id when it wrote one.
/// `None` when the folder has no lock file or nobody holds it.
pub fn holder(dir: &Path) -> Option<Option<u32>> {
    let mut file = open_lock_file(dir, false).ok()?;
    match file.try_lock() {
        // Taken and released again at once (dropping `file` unlocks it).
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read_pid(&mut file)),
        Err(TryLockError::Error(_)) => None,
    }
}

/// Opens `dir`'s lock file for reading and writing (creating it if `create`). The holder
/// truncates it to write its process id, so a link planted at its name would have that
/// truncate the file it points to, outside the folder: a symbolic link is not followed
/// (`O_NOFOLLOW`), and a file with other hard links, or anything but a regular file, is
/// refused.
fn open_lock_file(dir: &Path, create: bool) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(format!(
                    "{} is a symbolic link; a lock file must be a regular file (remove it)",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file of its own ({} links); remove it",
            path.display(),
            meta.nlink()
        )));
    }
    Ok(file)
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_a_folder_is_refused_with_the_holders_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let lock = OutputLock::acquire(&dir).unwrap();
        assert_eq!(holder(&dir), Some(Some(std::process::id())));
        match OutputLock::acquire(&dir) {
            Err(OutDirError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        assert_eq!(holder(&dir), None);
        OutputLock::acquire(&dir).expect("free again after the holder dropped it");
    }

    #[test]
    fn a_link_at_the_lock_files_name_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("precious");
        std::fs::write(&outside, "keep me").unwrap();
        let soft = tmp.path().join("soft");
        std::fs::create_dir_all(&soft).unwrap();
        std::os::unix::fs::symlink(&outside, soft.join(LOCK_FILE)).unwrap();
        let hard = tmp.path().join("hard");
        std::fs::create_dir_all(&hard).unwrap();
        std::fs::hard_link(&outside, hard.join(LOCK_FILE)).unwrap();
        for (dir, expected) in [(&soft, "is a symbolic link"), (&hard, "2 links")] {
            let error = OutputLock::acquire(dir).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
            assert_eq!(holder(dir), None);
        }
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep me");
    }

    #[test]
    fn folder_without_lock_file_has_no_holder() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(holder(tmp.path()), None);
    }
}
