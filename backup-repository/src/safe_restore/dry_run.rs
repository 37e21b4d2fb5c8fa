//! Everything a restore checks before its first change (all a dry run does): each
//! service exists on the host, its importer reads the bundle's formats and says the
//! target can take the data, and what the target holds now.

use std::sync::Arc;

use backup_core::backup::service_target;
use backup_core::bundle::ManifestEntry;
use backup_core::data::ensure_format_supported;
use backup_core::progress::{ProgressEvent, SharedProgress};
use backup_core::{
    BundleReader, DataImporter, Deployment, Error, ErrorKind, HeldData, ImportMode, RecipeRegistry,
    Result, ServiceTarget, WorkspaceHost,
};

use super::report::ArtifactSize;

/// The force mode every safe-restore import runs in: the data is replaced.
pub(crate) const FORCE: ImportMode = ImportMode { force: true };

/// One service to restore, ready to import.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The host's deployment.
    pub(crate) deployment: Deployment,
    /// Its target (config with secrets, runner, progress).
    pub(crate) target: ServiceTarget,
    /// Its recipe's importer.
    pub(crate) importer: Arc<dyn DataImporter>,
    /// The bundle's entries of this service.
    pub(crate) entries: Vec<ManifestEntry>,
    /// What it holds now (`None` when it cannot tell).
    pub(crate) held: Option<Vec<HeldData>>,
}

impl Prepared {
    pub(crate) fn name(&self) -> &str {
        &self.deployment.name
    }

    pub(crate) fn artifact_sizes(&self) -> Vec<ArtifactSize> {
        self.entries
            .iter()
            .map(|e| ArtifactSize {
                name: e.artifact.name.clone(),
                format: e.artifact.format.clone(),
                size: e.size,
                uncompressed_size: e.uncompressed_size,
            })
            .collect()
    }
}

/// Prepares `services` (in plan order) of the verified bundle for import into the host's
/// existing deployments of the same names, running every importer's `check` with force.
/// A service whose current state cannot be described gets a note instead.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] for a service the host does not have,
/// [`ErrorKind::Unsupported`] for a recipe without importer, the importers' format and
/// `check` errors. Nothing is touched.
pub(crate) async fn prepare(
    reader: &BundleReader,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    order: &[String],
    progress: &SharedProgress,
    notes: &mut Vec<String>,
) -> Result<Vec<Prepared>> {
    let deployments = host.list_deployments().await?;
    let mut prepared = Vec::new();
    for name in order {
        let deployment = deployments
            .iter()
            .find(|d| &d.name == name)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("service `{name}` does not exist on the host"),
                )
                .with_hint("a safe restore replaces the data of existing services: create the service first, or restore with backup_core::restore::restore_backup, which recreates services")
            })?;
        let importer = registry
            .get(&deployment.recipe)?
            .importer()
            .cloned()
            .ok_or_else(|| Error::unsupported(&deployment.recipe, "importing data"))?;
        let entries: Vec<ManifestEntry> = reader
            .manifest()
            .entries
            .iter()
            .filter(|e| &e.service == name)
            .cloned()
            .collect();
        let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
        for artifact in &artifacts {
            ensure_format_supported(importer.as_ref(), &deployment.recipe, artifact)?;
        }
        let target = service_target(host, &deployment, Arc::clone(progress));
        if let Err(error) = importer.check(&target, &artifacts, FORCE).await {
            let error = error.context(format!("service `{name}` cannot take the restore"));
            progress.event(&ProgressEvent::Failed {
                service: name.clone(),
                error: error.to_string(),
            });
            return Err(error);
        }
        let held = match importer.describe_target(&target).await {
            Ok(held) => held,
            Err(error) => {
                notes.push(format!(
                    "what service `{name}` holds now could not be read: {error}"
                ));
                None
            }
        };
        prepared.push(Prepared {
            deployment,
            target,
            importer,
            entries,
            held,
        });
    }
    Ok(prepared)
}
