//! What a directory target holds now: its file count and bytes, for dry runs.

use std::path::{Path, PathBuf};

use crate::data::HeldData;
use crate::{Error, ErrorKind, Result};

/// Counts the regular files under `path` and their bytes (symlinks are not followed).
/// A missing directory holds nothing (`None`).
pub(super) async fn describe(path: PathBuf) -> Result<Option<Vec<HeldData>>> {
    tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok(Some(Vec::new()));
        }
        let (files, bytes) = count(&path)?;
        Ok(Some(vec![HeldData {
            kind: "files".into(),
            name: path.display().to_string(),
            size: Some(bytes),
            count: Some(files),
        }]))
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, format!("describing a directory: {e}")))?
}

fn count(root: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io(format!("reading `{}`", entry.path().display()), e))?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry
                    .metadata()
                    .map_err(|e| Error::io(format!("reading `{}`", entry.path().display()), e))?
                    .len();
            }
        }
    }
    Ok((files, bytes))
}
