//! The built-in `directory` adapter: a directory tree as one tar stream.
//!
//! It is the seeds' "generic PVC" fallback: any service whose data is a directory (a
//! mounted volume, an app's data folder) can be backed up with it.
//!
//! - **Export** walks the tree in sorted order and streams a POSIX tar (artifact
//!   `tree.tar`, format [`formats::TAR`]) preserving file modes, mtimes, symlinks (as
//!   links, never followed) and empty directories. Sockets are skipped: they only exist
//!   while a program runs.
//! - **Import** unpacks into a fresh staging directory beside the target and swaps it in
//!   only when the whole stream unpacked: a truncated or corrupt stream leaves the target
//!   exactly as it was. A non-empty target is replaced only with `force`. Entries whose
//!   path is absolute or climbs out with `..` are refused with an error naming them.
//!
//! ```no_run
//! # fn main() -> backup_core::Result<()> {
//! let mut registry = backup_core::RecipeRegistry::new();
//! backup_core::directory::register(&mut registry)?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::artifact::{formats, ArtifactData, ArtifactDescriptor, ByteStream};
use crate::blocking_io::{consume_stream_blocking, stream_from_blocking_writer};
use crate::data::{
    ensure_format_supported, DataExporter, DataImporter, ExportRequirements, ImportMode,
    RequiredState, ServiceTarget,
};
use crate::recipe::Recipe;
use crate::registry::RecipeRegistry;
use crate::{Error, ErrorKind, Result};

/// The recipe slug.
pub const RECIPE: &str = "directory";
/// The one artifact's name.
pub const ARTIFACT: &str = "tree.tar";

/// Config of a `directory` service.
///
/// Only `path` is read; other fields are ignored, so a host's own recipe (a static site, an
/// app with a data folder) can reuse the directory exporter and importer with a richer
/// config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryConfig {
    /// Absolute path of the directory.
    pub path: PathBuf,
}

impl DirectoryConfig {
    /// Reads the config of a service.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when `path` is missing or not absolute.
    pub fn from_service(service: &ServiceTarget) -> Result<Self> {
        let config: DirectoryConfig =
            serde_json::from_value(service.config.clone()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "config of service `{}` is not a directory config: {e}",
                        service.name
                    ),
                )
            })?;
        if !config.path.is_absolute() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "directory path of service `{}` must be absolute",
                    service.name
                ),
            ));
        }
        Ok(config)
    }
}

/// The JSON Schema of [`DirectoryConfig`].
pub fn config_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": { "path": { "type": "string", "minLength": 1, "pattern": "^/" } },
        "required": ["path"],
        "additionalProperties": true
    })
}

/// The `directory` recipe with its exporter and importer.
///
/// # Errors
///
/// Never in practice: the schema is static.
pub fn recipe() -> Result<Recipe> {
    Recipe::builder(RECIPE, config_schema())
        .description("A directory tree on this machine (a volume, an app's data folder)")
        .exporter(Arc::new(DirectoryExporter))
        .importer(Arc::new(DirectoryImporter))
        .data_export_description(
            "A tar of the whole tree: files, modes, mtimes, symlinks and empty directories",
        )
        .build()
}

/// Registers the `directory` recipe.
///
/// # Errors
///
/// See [`recipe`].
pub fn register(registry: &mut RecipeRegistry) -> Result<()> {
    registry.register(recipe()?);
    Ok(())
}

/// Exports a directory tree as a tar stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryExporter;

/// Imports a tar stream into a directory, atomically.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectoryImporter;

#[async_trait]
impl DataExporter for DirectoryExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Stopped,
            consistency: "stop writers first: files are read one by one".to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let config = DirectoryConfig::from_service(service)?;
        let metadata = tokio::fs::metadata(&config.path).await.map_err(|e| {
            Error::io(
                format!("reading directory of service `{}`", service.name),
                e,
            )
            .with_hint("check the service's `path` and that the volume is mounted")
        })?;
        if !metadata.is_dir() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "`{}` of service `{}` is not a directory",
                    config.path.display(),
                    service.name
                ),
            ));
        }
        Ok(vec![ArtifactDescriptor::new(
            ARTIFACT,
            formats::TAR,
            "application/x-tar",
        )])
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        if artifact.name != ARTIFACT {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "directory service `{}` has no artifact `{}`",
                    service.name, artifact.name
                ),
            ));
        }
        let root = DirectoryConfig::from_service(service)?.path;
        let counts = Arc::new(Mutex::new(TreeCounts::default()));
        let counts_for_writer = Arc::clone(&counts);
        let stream = stream_from_blocking_writer(move |out| {
            let found = write_tree(&root, out)?;
            if let Ok(mut counts) = counts_for_writer.lock() {
                *counts = found;
            }
            Ok(())
        });
        let late = Box::pin(async move {
            let counts = counts.lock().map(|c| c.clone()).unwrap_or_default();
            Ok(counts.into_metadata())
        });
        Ok(ArtifactData {
            stream,
            late_metadata: Some(late),
        })
    }
}

/// What an export found, for the manifest.
#[derive(Debug, Clone, Default)]
struct TreeCounts {
    files: u64,
    directories: u64,
    symlinks: u64,
    bytes: u64,
    skipped_sockets: u64,
}

impl TreeCounts {
    fn into_metadata(self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("files".into(), self.files.into());
        map.insert("directories".into(), self.directories.into());
        map.insert("symlinks".into(), self.symlinks.into());
        map.insert("fileBytes".into(), self.bytes.into());
        if self.skipped_sockets > 0 {
            map.insert("skippedSockets".into(), self.skipped_sockets.into());
        }
        map
    }
}

fn write_tree(root: &Path, out: &mut dyn Write) -> Result<TreeCounts> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut counts = TreeCounts::default();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
        children.sort();
        // Visit subdirectories in sorted order: push in reverse onto the stack.
        let mut subdirs = Vec::new();
        for name in children {
            let rel = relative.join(&name);
            let full = root.join(&rel);
            let meta = std::fs::symlink_metadata(&full)
                .map_err(|e| Error::io(format!("reading `{}`", full.display()), e))?;
            let kind = meta.file_type();
            if is_socket(&kind) {
                counts.skipped_sockets += 1;
                continue;
            }
            if kind.is_dir() {
                builder
                    .append_dir(&rel, &full)
                    .map_err(|e| Error::io(format!("archiving `{}`", full.display()), e))?;
                counts.directories += 1;
                subdirs.push(rel);
            } else {
                builder
                    .append_path_with_name(&full, &rel)
                    .map_err(|e| Error::io(format!("archiving `{}`", full.display()), e))?;
                if kind.is_symlink() {
                    counts.symlinks += 1;
                } else {
                    counts.files += 1;
                    counts.bytes += meta.len();
                }
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    builder
        .into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| Error::io("finishing the tar stream", e))?;
    Ok(counts)
}

#[cfg(unix)]
fn is_socket(kind: &std::fs::FileType) -> bool {
    use std::os::unix::fs::FileTypeExt;
    kind.is_socket()
}

#[cfg(not(unix))]
fn is_socket(_kind: &std::fs::FileType) -> bool {
    false
}

#[async_trait]
impl DataImporter for DirectoryImporter {
    fn formats(&self) -> Vec<String> {
        vec![formats::TAR.to_string()]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        for artifact in artifacts {
            ensure_format_supported(self, RECIPE, artifact)?;
        }
        let target = DirectoryConfig::from_service(service)?.path;
        ensure_target_usable(&service.name, &target, mode).await
    }

    /// The target is a path on this machine, not the running service: the whole check
    /// applies to a service that does not exist yet.
    async fn check_new_service(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        self.check(service, artifacts, mode).await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, RECIPE, artifact)?;
        let target = DirectoryConfig::from_service(service)?.path;
        ensure_target_usable(&service.name, &target, mode).await?;
        let parent = target
            .parent()
            .ok_or_else(|| Error::new(ErrorKind::InvalidConfig, "cannot restore into `/`"))?
            .to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
        let staging = sibling(&target, "restore");
        let staging_for_unpack = staging.clone();
        let unpacked = consume_stream_blocking(data, move |reader| {
            std::fs::create_dir(&staging_for_unpack).map_err(|e| {
                Error::io(format!("creating `{}`", staging_for_unpack.display()), e)
            })?;
            unpack_tree(reader, &staging_for_unpack)
        })
        .await;
        if let Err(error) = unpacked {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(error.context(format!("restoring directory of service `{}`", service.name)));
        }
        swap_in(&staging, &target).await
    }
}

async fn ensure_target_usable(service: &str, target: &Path, mode: ImportMode) -> Result<()> {
    match tokio::fs::symlink_metadata(target).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("reading `{}`", target.display()), e)),
        Ok(meta) if !meta.is_dir() => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "`{}` of service `{service}` exists and is not a directory",
                target.display()
            ),
        )),
        Ok(_) => {
            let mut entries = tokio::fs::read_dir(target)
                .await
                .map_err(|e| Error::io(format!("listing `{}`", target.display()), e))?;
            let empty = entries
                .next_entry()
                .await
                .map_err(|e| Error::io(format!("listing `{}`", target.display()), e))?
                .is_none();
            if empty || mode.force {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "directory `{}` of service `{service}` is not empty",
                        target.display()
                    ),
                )
                .with_hint("restore with force to replace its contents"))
            }
        }
    }
}

fn sibling(target: &Path, purpose: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "target".to_string());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    target.with_file_name(format!(".{name}.{purpose}-{}", &unique[..12]))
}

/// Checks one archive path: relative, no `..`, no root or drive prefix.
fn safe_relative_path(path: &Path) -> Result<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::integrity(format!(
                    "archive entry `{}` escapes the target directory",
                    path.display()
                ))
                .with_hint("the archive is malicious or corrupt; it was not restored"));
            }
        }
    }
    Ok(clean)
}

/// Wraps the tar input to tell a clean end from a truncated one, and to keep the original
/// error of the stream (the tar crate replaces it with its own message).
struct WatchedReader<'a> {
    inner: &'a mut dyn Read,
    hit_eof: bool,
    failure: Option<std::io::Error>,
}

impl Read for WatchedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.hit_eof = true;
                Ok(0)
            }
            Ok(n) => Ok(n),
            Err(error) => {
                let kind = error.kind();
                self.failure.get_or_insert(error);
                Err(std::io::Error::new(kind, "the archive stream failed"))
            }
        }
    }
}

impl WatchedReader<'_> {
    /// The error to report for a failed unpack: the stream's own error first, then
    /// truncation, then what the tar reader said.
    fn explain(&mut self, fallback: Error) -> Error {
        if let Some(failure) = self.failure.take() {
            Error::io("reading the archive stream", failure)
        } else if self.hit_eof {
            Error::integrity("the tar stream ended early: it is truncated")
        } else {
            fallback
        }
    }
}

fn unpack_tree(reader: &mut dyn Read, staging: &Path) -> Result<()> {
    let mut watched = WatchedReader {
        inner: reader,
        hit_eof: false,
        failure: None,
    };
    let outcome = unpack_entries(&mut watched, staging);
    let directories = match outcome {
        Ok(directories) => directories,
        Err(error) => return Err(watched.explain(error)),
    };
    // A complete tar ends with a zero block, which stops the reader before the end of
    // the stream: reaching EOF while reading entries means the archive was cut short.
    if watched.hit_eof {
        return Err(watched.explain(Error::integrity(
            "the tar stream ended early: it is truncated",
        )));
    }
    // Drain what follows the end marker, so an error at the end of the stream (a
    // checksum mismatch reported by the bundle reader) is seen.
    if let Err(error) = std::io::copy(&mut watched, &mut std::io::sink()) {
        return Err(watched.explain(Error::io("reading the end of the archive", error)));
    }
    apply_directory_attributes(staging, &directories)
}

type DirectoryAttributes = BTreeMap<PathBuf, (u32, u64)>;

fn unpack_entries(reader: &mut dyn Read, staging: &Path) -> Result<DirectoryAttributes> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // Directory modes and mtimes are applied last: writing files into a directory
    // changes its mtime, and a read-only directory would refuse its own files.
    let mut directories = DirectoryAttributes::new();
    let entries = archive
        .entries()
        .map_err(|e| Error::io("reading the tar stream", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("reading the tar stream", e))?;
        let raw = entry
            .path()
            .map_err(|e| Error::io("reading a tar entry name", e))?
            .into_owned();
        let relative = safe_relative_path(&raw)?;
        if relative.as_os_str().is_empty() {
            continue;
        }
        if let Some(link) = entry
            .link_name()
            .map_err(|e| Error::io("reading a link target", e))?
        {
            if entry.header().entry_type().is_hard_link() {
                safe_relative_path(&link)?;
            }
        }
        let header = entry.header();
        if header.entry_type().is_dir() {
            let mode = header.mode().unwrap_or(0o755);
            let mtime = header.mtime().unwrap_or(0);
            directories.insert(relative.clone(), (mode, mtime));
            std::fs::create_dir_all(staging.join(&relative))
                .map_err(|e| Error::io(format!("creating `{}`", relative.display()), e))?;
            continue;
        }
        let unpacked = entry
            .unpack_in(staging)
            .map_err(|e| Error::io(format!("unpacking `{}`", relative.display()), e))?;
        if !unpacked {
            return Err(Error::integrity(format!(
                "archive entry `{}` escapes the target directory",
                relative.display()
            )));
        }
    }
    Ok(directories)
}

fn apply_directory_attributes(staging: &Path, directories: &DirectoryAttributes) -> Result<()> {
    // Deepest first, so setting a parent's mtime comes after its children.
    for (relative, (mode, mtime)) in directories.iter().rev() {
        let full = staging.join(relative);
        set_mode(&full, *mode)?;
        let time = filetime::FileTime::from_unix_time(i64::try_from(*mtime).unwrap_or(0), 0);
        filetime::set_file_mtime(&full, time)
            .map_err(|e| Error::io(format!("setting mtime of `{}`", relative.display()), e))?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Error::io(format!("setting mode of `{}`", path.display()), e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

/// Replaces `target` with `staging`; on failure puts the old tree back.
async fn swap_in(staging: &Path, target: &Path) -> Result<()> {
    let old = sibling(target, "old");
    let had_old = match tokio::fs::rename(target, &old).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(staging).await;
            return Err(Error::io(format!("moving `{}` aside", target.display()), e));
        }
    };
    if let Err(e) = tokio::fs::rename(staging, target).await {
        if had_old {
            let _ = tokio::fs::rename(&old, target).await;
        }
        let _ = tokio::fs::remove_dir_all(staging).await;
        return Err(Error::io(
            format!("moving the restored tree to `{}`", target.display()),
            e,
        ));
    }
    if had_old {
        tokio::fs::remove_dir_all(&old)
            .await
            .map_err(|e| Error::io(format!("removing the replaced tree `{}`", old.display()), e))?;
    }
    Ok(())
}
