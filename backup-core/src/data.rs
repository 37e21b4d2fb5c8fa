//! The streaming data traits every adapter implements: [`DataExporter`] and [`DataImporter`].

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactData, ArtifactDescriptor, ByteStream};
use crate::command::{CommandRunner, LocalRunner};
use crate::progress::{no_progress, SharedProgress};
use crate::Result;

/// The service an exporter or importer works on: its name, recipe, full config (including
/// secrets, which adapters need to connect and must never log), and where commands run.
#[derive(Clone)]
pub struct ServiceTarget {
    /// Service (deployment) name.
    pub name: String,
    /// Recipe slug.
    pub recipe: String,
    /// The service's config, secrets included.
    pub config: serde_json::Value,
    /// Where native tools run for this service: locally, `podman exec`, `kubectl exec`.
    pub runner: Arc<dyn CommandRunner>,
    /// Where progress goes.
    pub progress: SharedProgress,
}

impl ServiceTarget {
    /// A target whose tools run locally and whose progress is dropped.
    pub fn local(
        name: impl Into<String>,
        recipe: impl Into<String>,
        config: serde_json::Value,
    ) -> Self {
        ServiceTarget {
            name: name.into(),
            recipe: recipe.into(),
            config,
            runner: Arc::new(LocalRunner::new()),
            progress: no_progress(),
        }
    }

    /// Replaces the command runner.
    pub fn with_runner(mut self, runner: Arc<dyn CommandRunner>) -> Self {
        self.runner = runner;
        self
    }

    /// Replaces the progress sink.
    pub fn with_progress(mut self, progress: SharedProgress) -> Self {
        self.progress = progress;
        self
    }
}

impl Debug for ServiceTarget {
    // The config holds secrets: Debug shows only names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTarget")
            .field("name", &self.name)
            .field("recipe", &self.recipe)
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

/// The state a service must be in for an export to work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RequiredState {
    /// The service must be running (a database dump over a connection).
    Running,
    /// The service should be stopped (a raw copy of files).
    Stopped,
    /// Either works.
    Any,
}

/// What an exporter needs and how it gets a consistent copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRequirements {
    /// State the service must be in.
    pub required_state: RequiredState,
    /// How consistency is obtained, in words (`pg_dump snapshot`, `stop the container`, …).
    pub consistency: String,
}

/// How an import treats a target that already holds data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportMode {
    /// Replace existing data. Without it an import into a non-empty target is refused
    /// with [`crate::ErrorKind::AlreadyExists`].
    pub force: bool,
}

/// One thing a target holds now (a database, a Redis database, a directory tree, a
/// file, a volume), as [`DataImporter::describe_target`] reports it: what a restore
/// would replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldData {
    /// What it is: `database`, `keys`, `files`, `file`, `volume`, …
    pub kind: String,
    /// Its name: a database name, `db0`, a path.
    pub name: String,
    /// Its size in bytes, when the service tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// How many things it holds (keys, files), when the service tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Exports a service's data as one or more artifacts, each a stream.
///
/// # Contract
///
/// Every implementation guarantees:
/// - [`artifacts`](Self::artifacts) lists what [`export`](Self::export) will produce, and
///   fails (rather than returning an empty list) when the service cannot be read;
/// - the stream of [`export`](Self::export) yields bounded chunks as they are produced,
///   never the whole artifact at once;
/// - a failure at any point (tool exit status, dropped connection, bad data) ends the
///   stream with an error item: a stream that ends without error is complete;
/// - no secret appears in descriptors, metadata, progress events or error messages.
#[async_trait]
pub trait DataExporter: Send + Sync + Debug + 'static {
    /// What the exporter needs from the service, and how it stays consistent.
    fn requirements(&self) -> ExportRequirements;

    /// Lists the artifacts the service's data is made of.
    ///
    /// # Errors
    ///
    /// Fails when the service cannot be reached or its config is unusable.
    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>>;

    /// Opens one artifact as a stream.
    ///
    /// # Errors
    ///
    /// Fails when the export cannot start; later failures arrive as stream errors.
    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData>;
}

/// Imports artifacts produced by the matching [`DataExporter`].
///
/// # Contract
///
/// Every implementation guarantees:
/// - an artifact whose format is not in [`formats`](Self::formats) is refused with
///   [`crate::ErrorKind::UnsupportedVersion`] before anything is touched;
/// - without [`ImportMode::force`], a target that already holds data is refused with
///   [`crate::ErrorKind::AlreadyExists`] before anything is touched;
/// - a stream that ends with an error or with malformed data makes the import fail, and
///   leaves the target as it was where the service allows (otherwise the docs say so);
/// - no secret appears in progress events or error messages.
#[async_trait]
pub trait DataImporter: Send + Sync + Debug + 'static {
    /// Formats this importer reads.
    fn formats(&self) -> Vec<String>;

    /// Checks, before anything is changed, that every artifact can be imported into the
    /// service: formats are known, the service is reachable, it is empty or `force` is set.
    ///
    /// # Errors
    ///
    /// The first reason the import would fail.
    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()>;

    /// Checks, before the service exists, what can be checked of an import into the
    /// service a restore will create with `service.config` (the snapshot's config with
    /// new secrets and the caller's overrides). It is called in a dry run and before a
    /// recreating restore changes anything; [`check`](Self::check) runs again on the
    /// created service before its data is imported.
    ///
    /// Nothing runs for that service yet, so an implementation must not try to reach it.
    /// The default checks that every format is in [`formats`](Self::formats). An
    /// importer whose target does not need the service running (files on this machine)
    /// should run its whole [`check`](Self::check) here.
    ///
    /// # Errors
    ///
    /// The first reason the import would fail.
    async fn check_new_service(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        _mode: ImportMode,
    ) -> Result<()> {
        let formats = self.formats();
        for artifact in artifacts {
            check_format(&formats, &service.recipe, artifact)?;
        }
        Ok(())
    }

    /// Imports one artifact from its stream.
    ///
    /// # Errors
    ///
    /// Fails on a refused target, a tool failure or malformed data.
    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()>;

    /// Describes what the service holds now, which an import with `force` would replace
    /// (databases with their sizes, Redis databases with their key counts, a directory's
    /// file count and bytes). Read-only; used by dry runs and restore reports. The
    /// default returns `Ok(None)`: the importer cannot tell.
    ///
    /// # Errors
    ///
    /// When the service cannot be read (a database that is down).
    async fn describe_target(&self, _service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
        Ok(None)
    }

    /// Whether the service must be stopped while its data is replaced (a SQLite file
    /// swapped under an app). A safe restore then stops it through the host before the
    /// safety backup and starts it after the restore. The default is `false`.
    fn requires_stopped_service(&self) -> bool {
        false
    }

    /// Checks after a restore that the service holds what the artifact promised (row
    /// counts, key counts, …). The default does nothing.
    ///
    /// # Errors
    ///
    /// A mismatch names what differs.
    async fn smoke_test(
        &self,
        _service: &ServiceTarget,
        _artifact: &ArtifactDescriptor,
    ) -> Result<()> {
        Ok(())
    }
}

/// Refuses an artifact whose format `importer` does not read.
///
/// # Errors
///
/// [`crate::ErrorKind::UnsupportedVersion`] naming the format and what is supported.
pub fn ensure_format_supported(
    importer: &dyn DataImporter,
    adapter: &str,
    artifact: &ArtifactDescriptor,
) -> Result<()> {
    check_format(&importer.formats(), adapter, artifact)
}

fn check_format(formats: &[String], adapter: &str, artifact: &ArtifactDescriptor) -> Result<()> {
    if formats.iter().any(|f| f == &artifact.format) {
        Ok(())
    } else {
        Err(crate::Error::new(
            crate::ErrorKind::UnsupportedVersion,
            format!(
                "the {adapter} importer cannot read artifact `{}` of format `{}`",
                artifact.name, artifact.format
            ),
        )
        .with_hint(format!("supported formats: {}", formats.join(", "))))
    }
}
