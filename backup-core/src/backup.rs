//! Creating a backup: the workspace snapshot plus every service's data, in one bundle.
//!
//! The bundle is written under a temporary name and renamed only after every exporter
//! succeeded and the manifest is written: a failed export never leaves a file that looks
//! like a good backup.

use std::path::Path;
use std::sync::Arc;

use crate::bundle::{BundleOptions, BundleWriter, Manifest};
use crate::data::{DataExporter, ServiceTarget};
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
/// removed and the error names the service and artifact.
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
    let mut writer = BundleWriter::create(path, options).await?;
    match fill_bundle(&mut writer, snapshot, services, progress).await {
        Ok(()) => {
            let manifest = writer.finish().await?;
            progress.event(&ProgressEvent::Finished {
                operation: "export".into(),
            });
            Ok(manifest)
        }
        Err(error) => {
            writer.abort().await;
            progress.event(&ProgressEvent::Failed {
                service: String::new(),
                error: error.to_string(),
            });
            Err(error)
        }
    }
}

async fn fill_bundle(
    writer: &mut BundleWriter,
    snapshot: Option<&WorkspaceSnapshot>,
    services: &[ServiceExport],
    progress: &dyn ProgressSink,
) -> Result<()> {
    if let Some(snapshot) = snapshot {
        writer.write_snapshot(snapshot).await?;
    }
    for service in services {
        let name = &service.target.name;
        progress.event(&ProgressEvent::ServiceStarted {
            service: name.clone(),
            operation: "export".into(),
        });
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
            .with_hint(
                "check the service's config (databases, paths) or leave it out of the backup",
            ));
        }
        for artifact in &artifacts {
            let data = service
                .exporter
                .export(&service.target, artifact)
                .await
                .map_err(|e| {
                    e.context(format!("exporting `{}` of service `{name}`", artifact.name))
                })?;
            writer
                .write_artifact(name, artifact, data, progress)
                .await
                .map_err(|e| {
                    e.context(format!("exporting `{}` of service `{name}`", artifact.name))
                })?;
        }
        progress.event(&ProgressEvent::ServiceFinished {
            service: name.clone(),
            operation: "export".into(),
        });
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
}

/// Backs up a whole workspace: its snapshot (secrets stripped) and each service's data.
///
/// # Errors
///
/// Invalid configs (see [`export_workspace`]), unknown service names in
/// `request.services`, and any export error; no bundle is left behind on error.
pub async fn create_backup(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    request: &BackupRequest,
    path: &Path,
    progress: SharedProgress,
) -> Result<Manifest> {
    let snapshot = export_workspace(host, registry, &request.export).await?;
    let mut deployments = host.list_deployments().await?;
    deployments.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(wanted) = &request.services {
        for name in wanted {
            if !deployments.iter().any(|d| &d.name == name) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("service `{name}` is not in the workspace"),
                ));
            }
        }
        deployments.retain(|d| wanted.contains(&d.name));
    }
    let mut services = Vec::new();
    for deployment in &deployments {
        let recipe = registry.get(&deployment.recipe)?;
        if let Some(exporter) = recipe.exporter() {
            services.push(ServiceExport {
                target: service_target(host, deployment, Arc::clone(&progress)),
                exporter: Arc::clone(exporter),
            });
        }
    }
    write_bundle(
        path,
        request.bundle.clone(),
        Some(&snapshot),
        &services,
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
