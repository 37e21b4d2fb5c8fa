//! The exporter and importer.

use std::path::PathBuf;

use async_trait::async_trait;
use backup_core::artifact::{formats, late_metadata_channel, ArtifactData, ArtifactDescriptor};
use backup_core::blocking_io::{consume_stream_blocking, stream_from_blocking_writer};
use backup_core::data::ensure_format_supported;
use backup_core::{
    ByteStream, DataExporter, DataImporter, Error, ErrorKind, ExportRequirements, HeldData,
    ImportMode, RequiredState, Result, ServiceTarget,
};

use crate::config::{Layout, Mode, SqliteConfig};
use crate::local;
use crate::metadata::Expected;
use crate::remote::RemoteTool;

/// The one artifact's name.
pub const ARTIFACT: &str = "database.sqlite";
/// The artifact's media type.
pub const CONTENT_TYPE: &str = "application/vnd.sqlite3";

/// Exports a consistent snapshot of a live SQLite database (format `sqlite`).
#[derive(Debug, Clone, Copy)]
pub struct SqliteExporter {
    layout: Layout,
}

/// Imports a `sqlite` artifact: checked in a temporary file, then renamed over the target.
#[derive(Debug, Clone, Copy)]
pub struct SqliteImporter {
    layout: Layout,
}

impl SqliteExporter {
    /// An exporter for a recipe whose database is where `layout` says.
    pub fn new(layout: Layout) -> Self {
        SqliteExporter { layout }
    }
}

impl SqliteImporter {
    /// An importer for a recipe whose database is where `layout` says.
    pub fn new(layout: Layout) -> Self {
        SqliteImporter { layout }
    }
}

fn resolve(service: &ServiceTarget, layout: Layout) -> Result<(SqliteConfig, PathBuf)> {
    let config = SqliteConfig::from_service(service)?;
    let path = config.database_path(&service.name, layout)?;
    Ok((config, path))
}

fn remote(service: &ServiceTarget, config: &SqliteConfig, path: &std::path::Path) -> RemoteTool {
    RemoteTool {
        runner: service.runner.clone(),
        program: config.tool().to_string(),
        temp_dir: config.remote_temp_dir().to_string(),
        database: path.to_string_lossy().into_owned(),
    }
}

async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("blocking task failed: {e}")))?
}

fn unknown_artifact(service: &ServiceTarget, artifact: &ArtifactDescriptor) -> Result<()> {
    if artifact.name == ARTIFACT {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "sqlite service `{}` has no artifact `{}`",
                service.name, artifact.name
            ),
        ))
    }
}

#[async_trait]
impl DataExporter for SqliteExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Any,
            consistency: "an online snapshot in one read transaction (SQLite backup API, or \
                          VACUUM INTO in command mode): the app keeps running"
                .to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let (config, path) = resolve(service, self.layout)?;
        let version = match config.runner {
            Mode::Local => {
                let busy = config.busy_timeout();
                blocking(move || local::open_existing(&path, true, busy).map(drop)).await?;
                rusqlite::version().to_string()
            }
            Mode::Command => remote(service, &config, &path).probe().await?,
        };
        Ok(vec![ArtifactDescriptor::new(
            ARTIFACT,
            formats::SQLITE,
            CONTENT_TYPE,
        )
        .with_source_version(version)])
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        unknown_artifact(service, artifact)?;
        let (config, path) = resolve(service, self.layout)?;
        match config.runner {
            Mode::Command => remote(service, &config, &path).export().await,
            Mode::Local => {
                let busy = config.busy_timeout();
                let (sender, late) = late_metadata_channel("the sqlite export");
                let stream = stream_from_blocking_writer(move |out| {
                    let metadata = local::export_snapshot(&path, busy, out)?;
                    let _ = sender.send(Ok(metadata));
                    Ok(())
                });
                Ok(ArtifactData {
                    stream,
                    late_metadata: Some(late),
                })
            }
        }
    }
}

fn local_only(service: &ServiceTarget, config: &SqliteConfig) -> Result<()> {
    match config.runner {
        Mode::Local => Ok(()),
        Mode::Command => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "service `{}` uses command mode: restoring a SQLite database inside a container is not supported",
                service.name
            ),
        )
        .with_hint("restore into the volume's path on this machine (runner `local`) with the app stopped")),
    }
}

async fn ensure_target_usable(
    service: &ServiceTarget,
    path: PathBuf,
    config: &SqliteConfig,
    mode: ImportMode,
) -> Result<()> {
    let busy = config.busy_timeout();
    let shown = path.display().to_string();
    let empty = blocking(move || local::target_is_empty(&path, busy)).await?;
    if empty || mode.force {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "database `{shown}` of service `{}` already holds data",
                service.name
            ),
        )
        .with_hint("restore with force to replace it (stop the app first)"))
    }
}

#[async_trait]
impl DataImporter for SqliteImporter {
    fn formats(&self) -> Vec<String> {
        vec![formats::SQLITE.to_string()]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        for artifact in artifacts {
            ensure_format_supported(self, crate::RECIPE, artifact)?;
        }
        let (config, path) = resolve(service, self.layout)?;
        local_only(service, &config)?;
        ensure_target_usable(service, path, &config, mode).await
    }

    /// The database file and its size (a missing file holds nothing).
    async fn describe_target(&self, service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
        let (config, path) = resolve(service, self.layout)?;
        local_only(service, &config)?;
        match std::fs::metadata(&path) {
            Ok(meta) => Ok(Some(vec![HeldData {
                kind: "file".into(),
                name: path.display().to_string(),
                size: Some(meta.len()),
                count: None,
            }])),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(Vec::new())),
            Err(e) => Err(Error::io(format!("reading `{}`", path.display()), e)),
        }
    }

    /// The app must not hold the file while it is swapped.
    fn requires_stopped_service(&self) -> bool {
        true
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, crate::RECIPE, artifact)?;
        let (config, path) = resolve(service, self.layout)?;
        local_only(service, &config)?;
        ensure_target_usable(service, path.clone(), &config, mode).await?;
        let expected = Expected::from_descriptor(artifact)?;
        let busy = config.busy_timeout();
        consume_stream_blocking(data, move |reader| {
            local::import_file(reader, &path, &expected, busy)
        })
        .await
        .map_err(|e| {
            e.context(format!(
                "restoring the database of service `{}`",
                service.name
            ))
        })
    }

    async fn smoke_test(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<()> {
        let (config, path) = resolve(service, self.layout)?;
        local_only(service, &config)?;
        let expected = Expected::from_descriptor(artifact)?;
        let busy = config.busy_timeout();
        let what = format!("smoke test of service `{}`", service.name);
        blocking(move || {
            if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) == 0
                && expected.tables.as_ref().is_none_or(|t| t.is_empty())
            {
                return Ok(());
            }
            local::verify(&path, &expected, &what, false, busy)
        })
        .await
    }
}
