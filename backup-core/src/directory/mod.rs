//! The built-in `directory` adapter: a directory tree as one tar stream.
//!
//! It is the seeds' "generic PVC" fallback: any service whose data is a directory (a
//! mounted volume, an app's data folder) can be backed up with it.
//!
//! - **Export** walks the tree in sorted order and streams a POSIX tar (artifact
//!   `tree.tar`, format [`formats::TAR`]) preserving the root directory's own mode and
//!   owner, file modes, owners (uid/gid), mtimes, symlinks (as links, never followed),
//!   hard links (as links), FIFOs and empty directories. Sockets are skipped: they only
//!   exist while a program runs. Device files are refused by name. Every file is copied
//!   for exactly the length it had when opened, and the export fails when a file's size
//!   or mtime changed while it was read: stop writers first.
//! - **Import** unpacks into a fresh private staging directory and swaps it in only when
//!   the whole stream unpacked and was synced to disk: a truncated or corrupt stream
//!   leaves the target exactly as it was. A non-empty target is replaced only with
//!   `force`. The archive is untrusted: entries whose path is absolute, climbs out with
//!   `..` or lies under a symlink are refused, nothing is created or changed through a
//!   symlink, setuid/setgid bits of files are dropped unless the config sets
//!   `keepSetuid`, and owners are applied only when running as root. A target that is a
//!   mount point (or any target with `restoreInPlace`) is staged inside itself and its
//!   contents are swapped, so the mount point itself is never renamed.
//!
//! ```no_run
//! # fn main() -> backup_core::Result<()> {
//! let mut registry = backup_core::RecipeRegistry::new();
//! backup_core::directory::register(&mut registry)?;
//! # Ok(()) }
//! ```

mod export;
mod held;
mod swap;
mod sys;
mod unpack;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::artifact::{formats, ArtifactData, ArtifactDescriptor, ByteStream};
use crate::blocking_io::{consume_stream_blocking, stream_from_blocking_writer};
use crate::data::{
    ensure_format_supported, DataExporter, DataImporter, ExportRequirements, HeldData, ImportMode,
    RequiredState, ServiceTarget,
};
use crate::recipe::Recipe;
use crate::registry::RecipeRegistry;
use crate::{Error, ErrorKind, Result};
use export::{write_tree, TreeCounts};
use unpack::{unpack_tree, DirAttributes, UnpackOptions};

/// The recipe slug.
pub const RECIPE: &str = "directory";
/// The one artifact's name.
pub const ARTIFACT: &str = "tree.tar";

/// Config of a `directory` service.
///
/// Only the fields below are read; other fields are ignored, so a host's own recipe (a
/// static site, an app with a data folder) can reuse the directory exporter and importer
/// with a richer config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DirectoryConfig {
    /// Absolute path of the directory.
    pub path: PathBuf,
    /// Restore setuid/setgid bits of files as archived. Off by default: an archive could
    /// otherwise plant a setuid program of any owner on this machine.
    #[serde(default)]
    pub keep_setuid: bool,
    /// Restore by swapping the directory's contents instead of renaming a staged tree
    /// over it. Chosen automatically when the directory is a mount point.
    #[serde(default)]
    pub restore_in_place: bool,
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
        "properties": {
            "path": { "type": "string", "minLength": 1, "pattern": "^/" },
            "keepSetuid": { "type": "boolean" },
            "restoreInPlace": { "type": "boolean" }
        },
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
        // Keeping setuid bits is the restoring host's decision, never a bundle's.
        .host_setting("keepSetuid")
        .data_export_description(
            "A tar of the whole tree: files, modes, owners, mtimes, symlinks, hard links, FIFOs and empty directories",
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
            consistency: "stop writers first: files are read one by one, and the export fails when a file changes while it is read".to_string(),
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

    /// The directory's regular files: how many and their bytes.
    async fn describe_target(&self, service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
        held::describe(DirectoryConfig::from_service(service)?.path).await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, RECIPE, artifact)?;
        let config = DirectoryConfig::from_service(service)?;
        ensure_target_usable(&service.name, &config.path, mode).await?;
        if config.path.parent().is_none() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "cannot restore into `/`",
            ));
        }
        let options = UnpackOptions {
            keep_setuid: config.keep_setuid,
            preserve_owner: sys::is_root(),
        };
        consume_stream_blocking(data, move |reader| restore_tree(reader, &config, options))
            .await
            .map_err(|error| {
                error.context(format!("restoring directory of service `{}`", service.name))
            })
    }
}

/// Unpacks, syncs and swaps in; runs on a blocking thread.
fn restore_tree(
    reader: &mut dyn std::io::Read,
    config: &DirectoryConfig,
    options: UnpackOptions,
) -> Result<()> {
    let target = &config.path;
    let in_place = config.restore_in_place
        || match sys::is_mount_point(target) {
            Ok(mounted) => mounted,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(format!("reading `{}`", target.display()), e)),
        };
    let created_root = if in_place {
        target.as_path()
    } else {
        target.parent().unwrap_or(target)
    };
    let created_target = in_place && !target.exists();
    std::fs::create_dir_all(created_root)
        .map_err(|e| Error::io(format!("creating `{}`", created_root.display()), e))?;
    let staging = if in_place {
        swap::inside(target, "restore")
    } else {
        swap::sibling(target, "restore")
    };
    let unpacked = create_staging(&staging).and_then(|()| {
        let root = unpack_tree(reader, &staging, options)?.unwrap_or_else(DirAttributes::implicit);
        if !in_place {
            root.apply(&staging, options)?;
        }
        sys::sync_filesystem(&staging).map_err(|e| {
            Error::io(
                format!("syncing the restored tree `{}`", staging.display()),
                e,
            )
        })?;
        Ok(root)
    });
    let root = match unpacked {
        Ok(root) => root,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            if created_target {
                let _ = std::fs::remove_dir(target);
            }
            return Err(error);
        }
    };
    if in_place {
        swap::swap_contents(&staging, target, &sys::fsync_dir)?;
        root.apply(target, options)?;
        sys::fsync_dir(target).map_err(|e| Error::io(format!("syncing `{}`", target.display()), e))
    } else {
        swap::swap_beside(&staging, target, &sys::fsync_dir)
    }
}

/// Creates the staging directory, private to this process until the swap.
fn create_staging(staging: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| Error::io(format!("creating `{}`", staging.display()), e))
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
