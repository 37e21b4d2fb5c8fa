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
pub(crate) fn publish(partial: &PartialFile) -> Result<()> {
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
    if let Some(dir) = target.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(handle) = std::fs::File::open(dir) {
            let _ = handle.sync_all();
        }
    }
    Ok(())
}
