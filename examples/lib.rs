//! Shared helpers for the runnable examples: listing bundles, sizes, tree comparison.

use std::path::{Path, PathBuf};

use backup_core::bundle::{BundleReader, Manifest};

/// Bundles in `dir` (files ending in `.zip`), newest first, with their manifest and size.
///
/// Only the manifest is read, never the data.
///
/// # Errors
///
/// When `dir` cannot be listed. A file that is not a readable bundle is skipped with a
/// warning on stderr.
pub async fn list_bundles(dir: &Path) -> std::io::Result<Vec<(PathBuf, Manifest, u64)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("zip") {
            continue;
        }
        let size = std::fs::metadata(&path)?.len();
        match BundleReader::open(&path).await {
            Ok(reader) => found.push((path, reader.manifest().clone(), size)),
            Err(error) => eprintln!("    skipping {}: {error}", path.display()),
        }
    }
    found.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at));
    Ok(found)
}

pub use backup_core::narrate::human_bytes;

/// Whether two directory trees hold the same paths, types, modes, mtimes, contents and
/// link targets.
///
/// # Errors
///
/// When either tree cannot be read.
pub fn trees_equal(a: &Path, b: &Path) -> std::io::Result<bool> {
    if !a.is_dir() || !b.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "both trees must be directories",
        ));
    }
    Ok(backup_testkit::tree::tree_digest(a) == backup_testkit::tree::tree_digest(b))
}
