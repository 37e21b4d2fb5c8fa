//! Creating a backup: the workspace snapshot plus every service's data, in one bundle.
//!
//! The bundle is written under a temporary name and renamed only after every exporter
//! succeeded and the manifest is written: a failed export never leaves a file that looks
//! like a good backup.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use futures::FutureExt;

use crate::bundle::{BundleOptions, BundleWriter, Manifest};
use crate::data::{DataExporter, RequiredState, ServiceTarget};
use crate::host::{Deployment, WorkspaceHost};
use crate::progress::{ProgressEvent, ProgressSink, SharedProgress};
use crate::registry::RecipeRegistry;
use crate::snapshot::WorkspaceSnapshot;
use crate::workspace::{export_workspace, ExportOptions};
use crate::{Error, ErrorKind, Result};

/// One service whose data goes into a bundle, with the exporter that reads it.
#[derive(Debug, Clone)]
pub struct ServiceExport {
    /// The service (config with secrets, runner, progress).
    pub target: ServiceTarget,
    /// Its recipe's exporter.
    pub exporter: Arc<dyn DataExporter>,
}

/// Writes a bundle at `path` from an optional snapshot and the data of `services`, in order.
///
/// Every artifact streams straight into the bundle. If anything fails, the partial file is
/// removed and the error names the service and artifact. Services are exported as they
/// are: nothing is stopped (see [`create_backup`] for that).
///
/// Progress: per service `ServiceStarted`, `BytesTransferred`, then `ServiceFinished` or
/// `Failed` naming it; then `Finished` (`"export"`) once the bundle is complete, or
/// `OperationFailed` (`"export"`).
///
/// # Errors
///
/// The first export or write error; [`ErrorKind::NotFound`] when an exporter lists no
/// artifacts (an empty export is never taken for a backup).
pub async fn write_bundle(
    path: &Path,
    options: BundleOptions,
    snapshot: Option<&WorkspaceSnapshot>,
    services: &[ServiceExport],
    progress: &dyn ProgressSink,
) -> Result<Manifest> {
    let open = BundleWriter::create(path, options);
    write_bundle_quiesced(open, snapshot, services, None, progress).await
}

/// Services to stop around their export, and the host that stops them.
struct Quiesce<'a> {
    host: &'a dyn WorkspaceHost,
    stop: BTreeSet<String>,
}

async fn write_bundle_quiesced(
    open: impl std::future::Future<Output = Result<BundleWriter>>,
    snapshot: Option<&WorkspaceSnapshot>,
    services: &[ServiceExport],
    quiesce: Option<&Quiesce<'_>>,
    progress: &dyn ProgressSink,
) -> Result<Manifest> {
    let written = async {
        let mut writer = open.await?;
        match fill_bundle(&mut writer, snapshot, services, quiesce, progress).await {
            Ok(()) => writer.finish().await,
            Err(error) => {
                writer.abort().await;
                Err(error)
            }
        }
    }
    .await;
    match &written {
        Ok(_) => progress.event(&ProgressEvent::Finished {
            operation: EXPORT.into(),
        }),
        Err(error) => progress.event(&ProgressEvent::OperationFailed {
            operation: EXPORT.into(),
            error: error.to_string(),
        }),
    }
    written
}

const EXPORT: &str = "export";

async fn fill_bundle(
    writer: &mut BundleWriter,
    snapshot: Option<&WorkspaceSnapshot>,
    services: &[ServiceExport],
    quiesce: Option<&Quiesce<'_>>,
    progress: &dyn ProgressSink,
) -> Result<()> {
    if let Some(snapshot) = snapshot {
        writer.write_snapshot(snapshot).await?;
    }
    for service in services {
        let name = &service.target.name;
        progress.event(&ProgressEvent::ServiceStarted {
            service: name.clone(),
            operation: EXPORT.into(),
        });
        let exported = match quiesce.filter(|q| q.stop.contains(name)) {
            Some(quiesce) => export_stopped(writer, service, quiesce.host, progress).await,
            None => export_service(writer, service, progress).await,
        };
        if let Err(error) = exported {
            progress.event(&ProgressEvent::Failed {
                service: name.clone(),
                error: error.to_string(),
            });
            return Err(error);
        }
        progress.event(&ProgressEvent::ServiceFinished {
            service: name.clone(),
            operation: EXPORT.into(),
        });
    }
    Ok(())
}

/// Stops the service, exports it, and starts it again whatever the export's outcome
/// (an error or a panic, which is resumed once the service is started).
async fn export_stopped(
    writer: &mut BundleWriter,
    service: &ServiceExport,
    host: &dyn WorkspaceHost,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let name = &service.target.name;
    host.stop_service(name)
        .await
        .map_err(|e| e.context(format!("stopping service `{name}` for its export")))?;
    let guard = LeftStopped {
        service: name,
        progress,
        armed: true,
    };
    let exported = AssertUnwindSafe(export_service(writer, service, progress))
        .catch_unwind()
        .await;
    guard.disarm();
    let started = host.start_service(name).await.map_err(|e| {
        e.context(format!("starting service `{name}` again after its export"))
            .with_hint(format!("service `{name}` is stopped: start it by hand"))
    });
    match exported {
        Err(panic) => {
            if let Err(error) = &started {
                progress.event(&ProgressEvent::Failed {
                    service: name.clone(),
                    error: error.to_string(),
                });
            }
            std::panic::resume_unwind(panic)
        }
        Ok(Err(error)) => {
            if let Err(not_started) = started {
                progress.event(&ProgressEvent::Failed {
                    service: name.clone(),
                    error: not_started.to_string(),
                });
            }
            Err(error)
        }
        Ok(Ok(())) => started,
    }
}

/// Reports a service left stopped when the backup is dropped (cancelled) during its
/// export: async code cannot run on drop, so it cannot be started again here.
struct LeftStopped<'a> {
    service: &'a str,
    progress: &'a dyn ProgressSink,
    armed: bool,
}

impl LeftStopped<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for LeftStopped<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.progress.event(&ProgressEvent::Failed {
                service: self.service.to_string(),
                error: format!(
                    "the backup was cancelled while service `{}` was stopped for its export; \
                     it was not started again",
                    self.service
                ),
            });
        }
    }
}

async fn export_service(
    writer: &mut BundleWriter,
    service: &ServiceExport,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let name = &service.target.name;
    let artifacts = service
        .exporter
        .artifacts(&service.target)
        .await
        .map_err(|e| e.context(format!("listing the data of service `{name}`")))?;
    if artifacts.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("service `{name}` has no data to export"),
        )
        .with_hint("check the service's config (databases, paths) or leave it out of the backup"));
    }
    for artifact in &artifacts {
        let data = service
            .exporter
            .export(&service.target, artifact)
            .await
            .map_err(|e| e.context(format!("exporting `{}` of service `{name}`", artifact.name)))?;
        writer
            .write_artifact(name, artifact, data, progress)
            .await
            .map_err(|e| e.context(format!("exporting `{}` of service `{name}`", artifact.name)))?;
    }
    Ok(())
}

/// What [`create_backup`] backs up.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// Bundle label, kind, purpose and compression.
    pub bundle: BundleOptions,
    /// Who exports, and platform metadata for the snapshot.
    pub export: ExportOptions,
    /// Only these services' data (all services with an exporter when `None`). The
    /// snapshot always describes the whole workspace.
    pub services: Option<Vec<String>>,
    /// Services the caller has stopped itself for this backup: their exporters need them
    /// stopped ([`crate::RequiredState::Stopped`]), and `create_backup` neither stops nor
    /// starts them. It does not check that they are really stopped.
    pub already_stopped: Vec<String>,
}

/// Backs up a whole workspace: its snapshot (secrets and host settings stripped) and
/// each service's data.
///
/// The snapshot is validated as an import would validate it (unique names, known
/// `dependsOn` targets, no cycles), so a bundle this writes is never refused for its
/// structure at restore.
///
/// A service whose exporter requires [`crate::RequiredState::Stopped`] is stopped with
/// [`WorkspaceHost::stop_service`] just before its export and started again with
/// [`WorkspaceHost::start_service`] right after, also when the export fails or panics;
/// unless it is listed in [`BackupRequest::already_stopped`] or its status says it is not
/// running ([`Deployment::is_stopped`]: it stays stopped). When the host cannot stop
/// it ([`WorkspaceHost::can_stop`] is `false`), the backup is refused before anything is
/// written.
///
/// # Errors
///
/// Invalid configs or `dependsOn` (see [`export_workspace`]), unknown service names in
/// `request.services` or `request.already_stopped`, [`ErrorKind::Unsupported`] for a
/// service that must be stopped on a host that cannot stop it, and any export, stop or
/// start error; no bundle is left behind on error.
pub async fn create_backup(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    request: &BackupRequest,
    path: &Path,
    progress: SharedProgress,
) -> Result<Manifest> {
    let open = BundleWriter::create(path, request.bundle.clone());
    create_backup_with(host, registry, request, open, progress).await
}

/// [`create_backup`] into a writer the caller made (for example with
/// [`BundleWriter::to_writer`] over an upload); `request.bundle` is not used, the writer
/// carries its own options.
///
/// On success the writer is finished and its manifest returned; on error it is aborted
/// (for a stream writer the sink keeps a partial zip without manifest: the caller
/// discards it).
///
/// # Errors
///
/// As [`create_backup`].
pub async fn create_backup_to(
    writer: BundleWriter,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    request: &BackupRequest,
    progress: SharedProgress,
) -> Result<Manifest> {
    create_backup_with(host, registry, request, async { Ok(writer) }, progress).await
}

async fn create_backup_with(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    request: &BackupRequest,
    open: impl std::future::Future<Output = Result<BundleWriter>>,
    progress: SharedProgress,
) -> Result<Manifest> {
    let snapshot = export_workspace(host, registry, &request.export).await?;
    let mut deployments = host.list_deployments().await?;
    deployments.sort_by(|a, b| a.name.cmp(&b.name));
    let wanted_lists = request
        .services
        .iter()
        .flatten()
        .chain(&request.already_stopped);
    for name in wanted_lists {
        if !deployments.iter().any(|d| &d.name == name) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("service `{name}` is not in the workspace"),
            ));
        }
    }
    if let Some(wanted) = &request.services {
        deployments.retain(|d| wanted.contains(&d.name));
    }
    let mut services = Vec::new();
    let mut quiesce = Quiesce {
        host,
        stop: BTreeSet::new(),
    };
    let mut cannot_stop = Vec::new();
    for deployment in &deployments {
        let recipe = registry.get(&deployment.recipe)?;
        let Some(exporter) = recipe.exporter() else {
            continue;
        };
        let requirements = exporter.requirements();
        if requirements.required_state == RequiredState::Stopped
            && !request.already_stopped.contains(&deployment.name)
            && !deployment.is_stopped()
        {
            if host.can_stop(deployment) {
                quiesce.stop.insert(deployment.name.clone());
            } else {
                cannot_stop.push(format!(
                    "`{}` ({})",
                    deployment.name, requirements.consistency
                ));
            }
        }
        services.push(ServiceExport {
            target: service_target(host, deployment, Arc::clone(&progress)),
            exporter: Arc::clone(exporter),
        });
    }
    if !cannot_stop.is_empty() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "cannot back up {} consistently: the export needs the service stopped, \
                 and this host cannot stop services",
                cannot_stop.join(", ")
            ),
        )
        .with_hint(
            "implement WorkspaceHost::can_stop, stop_service and start_service; or stop the \
             services yourself and list them in BackupRequest::already_stopped",
        ));
    }
    write_bundle_quiesced(
        open,
        Some(&snapshot),
        &services,
        Some(&quiesce),
        progress.as_ref(),
    )
    .await
}

/// The [`ServiceTarget`] for a host's deployment.
pub fn service_target(
    host: &dyn WorkspaceHost,
    deployment: &Deployment,
    progress: SharedProgress,
) -> ServiceTarget {
    ServiceTarget {
        name: deployment.name.clone(),
        recipe: deployment.recipe.clone(),
        config: serde_json::Value::Object(deployment.config.clone()),
        runner: host.runner_for(deployment),
        progress,
    }
}
