//! Publishing a finished bundle: the temporary file becomes the bundle at its final path
//! without replacing anything there.

use std::io;
use std::path::{Path, PathBuf};

use crate::{Error, ErrorKind, Result};

/// The temporary file of a writer made with [`super::BundleWriter::create`].
#[derive(Debug)]
pub(crate) struct PartialFile {
    /// The hidden file being written.
    pub(crate) temp: PathBuf,
    /// Where it goes once finished.
    pub(crate) target: PathBuf,
}

/// The error for a bundle path that is taken.
pub(crate) fn already_exists(path: &Path) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("{} already exists", path.display()),
    )
    .with_hint("choose another bundle name, or delete the existing bundle first")
}

/// Removes a temporary file; a failure leaves a file whose name marks it as partial.
pub(crate) fn remove_quietly(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Moves the finished temporary file to its target without replacing anything there,
/// then fsyncs the directory so the new name is durable.
///
/// A failed directory fsync removes the bundle again and fails: a name that may vanish
/// after a crash is not a backup the caller should count on.
pub(crate) fn publish(partial: &PartialFile) -> Result<()> {
    publish_with(partial, &sync_directory)
}

fn sync_directory(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn publish_with(partial: &PartialFile, sync_dir: &dyn Fn(&Path) -> io::Result<()>) -> Result<()> {
    let PartialFile { temp, target } = partial;
    let linked = std::fs::hard_link(temp, target);
    let result = match linked {
        Ok(()) => {
            remove_quietly(temp);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(already_exists(target)),
        // Filesystems without hard links: check, then rename.
        Err(_) if std::fs::symlink_metadata(target).is_ok() => Err(already_exists(target)),
        Err(_) => std::fs::rename(temp, target).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", temp.display(), target.display()),
                e,
            )
        }),
    };
    if result.is_err() {
        remove_quietly(temp);
        return result;
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(|e| {
        remove_quietly(target);
        Error::io(
            format!(
                "syncing directory {} after writing {}",
                dir.display(),
                target.display()
            ),
            e,
        )
        .with_hint("the bundle was removed again; check the disk and file system, then retry")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_directory_fsync_after_publishing_removes_the_bundle_and_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let temp = dir.path().join(".partial");
        let target = dir.path().join("b.backup.zip");
        std::fs::write(&temp, b"bundle").expect("write");
        let partial = PartialFile {
            temp: temp.clone(),
            target: target.clone(),
        };
        let failing = |_: &Path| Err(io::Error::other("injected fsync failure"));
        let error = publish_with(&partial, &failing).expect_err("fsync failure must fail");
        assert!(error.to_string().contains("syncing directory"), "{error}");
        assert!(!target.exists(), "no bundle may stay behind");
        assert!(!temp.exists(), "no partial file may stay behind");
    }

    #[test]
    fn a_published_bundle_replaces_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let temp = dir.path().join(".partial");
        let target = dir.path().join("b.backup.zip");
        std::fs::write(&temp, b"new").expect("write");
        std::fs::write(&target, b"old").expect("write");
        let partial = PartialFile {
            temp,
            target: target.clone(),
        };
        let error = publish(&partial).expect_err("taken name");
        assert_eq!(error.kind(), ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).expect("read"), b"old");
    }
}
