//! Making file system changes survive a power loss: atomic file
//! replacement and directory fsync, used for every small file the storage
//! engine (and the controller) rewrites whole.
//!
//! A file's data is durable once the file is fsynced, but its name (a new
//! file, a rename, a deletion) only once its directory is. So:
//!
//! * [`write_atomically`] writes `.<name>.<random>.tmp` beside the target,
//!   fsyncs it, renames it over the target and fsyncs the directory:
//!   readers see the old contents or the new, never a mix, and after a
//!   crash the file holds one of them. A crash may leave the temporary file
//!   behind; whoever owns the directory removes `*.tmp` files when it
//!   opens it (the log manager for a log directory, log loading for a
//!   partition directory).
//! * [`create_dir_all_durably`] fsyncs the parent of each directory it
//!   creates.
//! * [`sync_dir`] is the directory fsync itself, for callers that create,
//!   rename or delete entries on their own.

use std::fs;
use std::io::Write;
use std::path::Path;

use uuid::Uuid;

use crate::error::{Result, StorageError};

/// fsyncs a directory, making the creations, renames and deletions of its
/// entries durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsync directory", dir))
}

/// Writes `contents` to `path` atomically: a `.tmp` file, fsync, rename,
/// fsync of the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    // A unique name, so two writers of the same file never share one.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Uuid::new_v4().simple()
    ));
    let mut f = fs::File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    f.write_all(contents)
        .map_err(StorageError::io("write", &tmp))?;
    f.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(StorageError::io("rename", &tmp))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Creates `dir` and whichever of its parents are missing, and fsyncs the
/// parent of each directory it creates, so that a new log directory's name
/// survives a power loss like the files in it; Kafka's LogManager flushes a
/// new log directory's parent likewise.
pub fn create_dir_all_durably(dir: &Path) -> Result<()> {
    create_dir_all_syncing_with(dir, |d| fs::File::open(d).and_then(|d| d.sync_all()))
}

/// [`create_dir_all_durably`] with the parent fsync done by `sync` (tests
/// count and fail it).
fn create_dir_all_syncing_with(
    dir: &Path,
    mut sync: impl FnMut(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next.filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        missing.push(d);
        next = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {
                let parent = d
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                sync(parent).map_err(StorageError::io("fsync directory", parent))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(StorageError::io("create log directory", d)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_directories_fsyncs_the_parent_of_each_new_one() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("a/b/c");
        let mut synced = Vec::new();
        create_dir_all_syncing_with(&dir, |p| {
            synced.push(p.to_path_buf());
            fs::File::open(p).and_then(|d| d.sync_all())
        })
        .unwrap();
        assert!(dir.is_dir());
        assert_eq!(
            synced,
            [
                temp.path().to_path_buf(),
                temp.path().join("a"),
                temp.path().join("a/b")
            ]
        );
        // Nothing is created, so nothing is synced.
        synced.clear();
        create_dir_all_syncing_with(&dir, |p| {
            synced.push(p.to_path_buf());
            Ok(())
        })
        .unwrap();
        assert!(synced.is_empty());
        // A failed fsync fails the creation.
        let err = create_dir_all_syncing_with(&temp.path().join("d"), |_| {
            Err(std::io::Error::other("injected"))
        });
        assert!(err.is_err());
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_file() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("f");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["f"]);
    }
}
