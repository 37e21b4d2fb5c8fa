//! The checks a restore runs before its first change, in a dry run too.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::EntriesByService;
use crate::backup::service_target;
use crate::data::{DataImporter, ImportMode, ServiceTarget};
use crate::host::{Deployment, WorkspaceHost};
use crate::progress::{ProgressEvent, SharedProgress};
use crate::snapshot::WorkspaceSnapshot;
use crate::workspace::{prepared_config, ImportOptions};
use crate::{Error, ErrorKind, RecipeRegistry, Result};

/// Targets for the existing deployments of every service with data.
///
/// # Errors
///
/// [`ErrorKind::NotFound`] for a service the host does not have.
pub(super) fn existing_targets(
    host: &dyn WorkspaceHost,
    existing: &[Deployment],
    entries: &EntriesByService,
    progress: &SharedProgress,
) -> Result<BTreeMap<String, ServiceTarget>> {
    let mut targets = BTreeMap::new();
    for service in entries.keys() {
        let deployment = existing
            .iter()
            .find(|d| &d.name == service)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("service `{service}` does not exist on the target"),
                )
                .with_hint("recreate services from the bundle's snapshot, or create it first")
            })?;
        targets.insert(
            service.clone(),
            service_target(host, deployment, Arc::clone(progress)),
        );
    }
    Ok(targets)
}

/// Runs each importer's [`DataImporter::check`] on its target; a failure is reported as
/// `Failed` naming the service.
pub(super) async fn check_all(
    targets: &BTreeMap<String, ServiceTarget>,
    importers: &BTreeMap<String, Arc<dyn DataImporter>>,
    entries: &EntriesByService,
    mode: ImportMode,
    progress: &SharedProgress,
) -> Result<()> {
    for (service, target) in targets {
        let (Some(importer), Some(service_entries)) =
            (importers.get(service), entries.get(service))
        else {
            continue;
        };
        let artifacts: Vec<_> = service_entries.iter().map(|e| e.artifact.clone()).collect();
        let checked = importer
            .check(target, &artifacts, mode)
            .await
            .map_err(|e| e.context(format!("service `{service}` cannot take the restore")));
        reported(checked, service, progress)?;
    }
    Ok(())
}

/// The checks of a recreating restore before anything changes: for each service with
/// data, the importer's [`DataImporter::check`] against the existing service it replaces
/// (with `force`), and its [`DataImporter::check_new_service`] against the config the
/// new service will be created with.
#[allow(clippy::too_many_arguments)]
pub(super) async fn check_planned(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
    existing: &[Deployment],
    importers: &BTreeMap<String, Arc<dyn DataImporter>>,
    entries: &EntriesByService,
    mode: ImportMode,
    progress: &SharedProgress,
) -> Result<()> {
    let replaced: Vec<Deployment> = existing
        .iter()
        .filter(|d| entries.contains_key(&d.name))
        .cloned()
        .collect();
    let replaced_targets = existing_targets(
        host,
        &replaced,
        &entries
            .iter()
            .filter(|(name, _)| replaced.iter().any(|d| &d.name == *name))
            .map(|(name, list)| (name.clone(), list.clone()))
            .collect(),
        progress,
    )?;
    check_all(&replaced_targets, importers, entries, mode, progress).await?;

    for (service, service_entries) in entries {
        let (Some(importer), Some(snapshot_service)) = (
            importers.get(service),
            snapshot.services.iter().find(|s| &s.name == service),
        ) else {
            continue;
        };
        let recipe = registry.get(&snapshot_service.recipe)?;
        let planned = Deployment {
            id: String::new(),
            name: snapshot_service.name.clone(),
            recipe: snapshot_service.recipe.clone(),
            config: prepared_config(recipe, snapshot_service, options),
            depends_on: snapshot_service.depends_on.clone(),
            status: "planned".into(),
        };
        let target = service_target(host, &planned, Arc::clone(progress));
        let artifacts: Vec<_> = service_entries.iter().map(|e| e.artifact.clone()).collect();
        let checked = importer
            .check_new_service(&target, &artifacts, mode)
            .await
            .map_err(|e| e.context(format!("service `{service}` cannot take the restore")));
        reported(checked, service, progress)?;
    }
    Ok(())
}

fn reported(result: Result<()>, service: &str, progress: &SharedProgress) -> Result<()> {
    if let Err(error) = &result {
        progress.event(&ProgressEvent::Failed {
            service: service.to_string(),
            error: error.to_string(),
        });
    }
    result
}
