//! Restoring a bundle: verify everything, plan, recreate services, import their data in
//! dependency order, smoke-test, and roll back what was created if anything fails.
//!
//! Order of work, so that nothing is touched before the bundle is known to be good:
//!
//! 1. open the bundle and check its structure, then verify every entry's sha256 and size;
//! 2. check every service's importer exists and reads the artifact formats;
//! 3. validate the snapshot import (versions, recipes, configs, conflicts, cycles) and
//!    build the [`RestorePlan`]; a dry run stops here and reports the plan;
//! 4. recreate services from the snapshot (new ids, new secrets), stage by stage;
//! 5. ask each importer whether its target can take the data (`check`);
//! 6. import each service's artifacts stage by stage, services of one stage concurrently,
//!    then run the importer's smoke test;
//! 7. on failure, remove the services this restore created and return the error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::backup::service_target;
use crate::bundle::{BundleReader, ManifestEntry};
use crate::data::{ensure_format_supported, DataImporter, ImportMode, ServiceTarget};
use crate::host::{Deployment, WorkspaceHost};
use crate::plan::RestorePlan;
use crate::progress::{ProgressEvent, ProgressSink, SharedProgress};
use crate::registry::RecipeRegistry;
use crate::workspace::{import_workspace, validate_import, ImportOptions};
use crate::{Error, ErrorKind, Result};

/// How [`restore_backup`] restores.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Recreate the services from the bundle's snapshot (new ids and secrets) before
    /// importing data. Without it, data goes into the host's existing services of the
    /// same names.
    pub recreate_services: bool,
    /// Import options: `force`, `dry_run`, config overrides, readiness timeout, concurrency.
    pub import: ImportOptions,
    /// Only restore these services' data (all when `None`).
    pub services: Option<Vec<String>>,
    /// Run each importer's smoke test after its data is in.
    pub smoke_test: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            recreate_services: true,
            import: ImportOptions::default(),
            services: None,
            smoke_test: true,
        }
    }
}

/// One artifact restored (or, in a dry run, to be restored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoredArtifact {
    /// Service name.
    pub service: String,
    /// Artifact name.
    pub artifact: String,
    /// Artifact format.
    pub format: String,
    /// Stored size in the bundle.
    pub size: u64,
}

/// What a restore did, or would do in a dry run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// Id of the restored bundle.
    pub bundle_id: String,
    /// The stages services were (or would be) restored in.
    pub plan: RestorePlan,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Services created from the snapshot, with their new ids (never their secrets).
    pub created: Vec<String>,
    /// Existing services whose data was (or would be) replaced.
    pub replaced: Vec<String>,
    /// Artifacts restored (or to be restored), in order.
    pub artifacts: Vec<RestoredArtifact>,
}

/// Restores the bundle at `path` into `host`.
///
/// # Errors
///
/// [`ErrorKind::Integrity`] for a corrupt bundle (nothing touched), validation errors of
/// the snapshot import, [`ErrorKind::Unsupported`] when a service's recipe has no importer
/// or does not read an artifact's format, [`ErrorKind::NotFound`] for a requested service
/// the bundle or host does not have, and any importer error (after rolling back the
/// services this restore created).
pub async fn restore_backup(
    path: &Path,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &RestoreOptions,
    progress: SharedProgress,
) -> Result<RestoreReport> {
    let reader = BundleReader::open(path).await?;
    reader.verify(progress.as_ref()).await?;
    let entries = entries_to_restore(&reader, options)?;
    let existing: Vec<Deployment> = host.list_deployments().await?;
    let recipes = recipe_of_each_service(&reader, &existing, &entries, options)?;
    let mut importers = BTreeMap::new();
    for (service, recipe) in &recipes {
        let importer = registry
            .get(recipe)?
            .importer()
            .cloned()
            .ok_or_else(|| Error::unsupported(recipe, "importing data"))?;
        for entry in entries.get(service).into_iter().flatten() {
            ensure_format_supported(importer.as_ref(), recipe, &entry.artifact)?;
        }
        importers.insert(service.clone(), importer);
    }

    let plan = match (options.recreate_services, reader.snapshot()) {
        (true, Some(snapshot)) => {
            validate_import(host, registry, snapshot, &options.import).await?
        }
        (true, None) => {
            return Err(Error::new(
                ErrorKind::InvalidSnapshot,
                "the bundle has no snapshot.json, so services cannot be recreated from it",
            )
            .with_hint(
                "restore its data into existing services instead (recreate_services = false)",
            ))
        }
        (false, Some(snapshot)) => RestorePlan::from_snapshot(snapshot)?,
        (false, None) => {
            let names: Vec<String> = entries.keys().cloned().collect();
            let no_deps: Vec<String> = Vec::new();
            RestorePlan::from_dependencies(names.iter().map(|n| (n.as_str(), no_deps.as_slice())))?
        }
    };
    progress.event(&ProgressEvent::PlanReady {
        stages: plan.stage_names(),
    });
    let mode = ImportMode {
        force: options.import.force,
    };
    let mut report = RestoreReport {
        bundle_id: reader.manifest().id.clone(),
        plan: plan.clone(),
        dry_run: options.import.dry_run,
        created: Vec::new(),
        replaced: existing
            .iter()
            .filter(|d| entries.contains_key(&d.name))
            .map(|d| d.name.clone())
            .collect(),
        artifacts: Vec::new(),
    };
    for name in plan.order() {
        for entry in entries.get(name).into_iter().flatten() {
            report.artifacts.push(RestoredArtifact {
                service: entry.service.clone(),
                artifact: entry.artifact.name.clone(),
                format: entry.artifact.format.clone(),
                size: entry.size,
            });
        }
    }

    if !options.recreate_services {
        let targets = existing_targets(host, &existing, &entries, &progress)?;
        check_all(&targets, &importers, &entries, mode).await?;
        if options.import.dry_run {
            return Ok(report);
        }
        import_stages(
            &reader, &plan, &targets, &importers, &entries, mode, options, &progress,
        )
        .await?;
        progress.event(&ProgressEvent::Finished {
            operation: "restore".into(),
        });
        return Ok(report);
    }

    let snapshot = reader.snapshot().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidSnapshot,
            "the bundle has no snapshot.json",
        )
    })?;
    if options.import.dry_run {
        return Ok(report);
    }
    let outcome =
        import_workspace(host, registry, snapshot, &options.import, progress.as_ref()).await?;
    report.created = outcome.created.iter().map(|d| d.name.clone()).collect();
    let targets: BTreeMap<String, ServiceTarget> = outcome
        .created
        .iter()
        .filter(|d| entries.contains_key(&d.name))
        .map(|d| {
            (
                d.name.clone(),
                service_target(host, d, Arc::clone(&progress)),
            )
        })
        .collect();
    let data = async {
        check_all(&targets, &importers, &entries, mode).await?;
        import_stages(
            &reader, &plan, &targets, &importers, &entries, mode, options, &progress,
        )
        .await
    };
    if let Err(error) = data.await {
        progress.event(&ProgressEvent::RollingBack {
            reason: error.to_string(),
        });
        for deployment in outcome.created.iter().rev() {
            if let Err(cleanup) = host.remove_deployment(&deployment.name).await {
                progress.event(&ProgressEvent::Failed {
                    service: deployment.name.clone(),
                    error: format!("rollback could not remove it: {cleanup}"),
                });
            }
        }
        return Err(error);
    }
    progress.event(&ProgressEvent::Finished {
        operation: "restore".into(),
    });
    Ok(report)
}

type EntriesByService = BTreeMap<String, Vec<ManifestEntry>>;

fn entries_to_restore(reader: &BundleReader, options: &RestoreOptions) -> Result<EntriesByService> {
    let mut entries = EntriesByService::new();
    for entry in &reader.manifest().entries {
        entries
            .entry(entry.service.clone())
            .or_default()
            .push(entry.clone());
    }
    if let Some(wanted) = &options.services {
        for name in wanted {
            if !entries.contains_key(name) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("the bundle holds no data for service `{name}`"),
                )
                .with_hint(format!(
                    "services with data: {}",
                    entries.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        entries.retain(|name, _| wanted.contains(name));
    }
    Ok(entries)
}

fn recipe_of_each_service(
    reader: &BundleReader,
    existing: &[Deployment],
    entries: &EntriesByService,
    options: &RestoreOptions,
) -> Result<BTreeMap<String, String>> {
    let mut recipes = BTreeMap::new();
    for service in entries.keys() {
        let from_snapshot = reader
            .snapshot()
            .and_then(|s| s.services.iter().find(|s| &s.name == service))
            .map(|s| s.recipe.clone());
        let from_host = existing
            .iter()
            .find(|d| &d.name == service)
            .map(|d| d.recipe.clone());
        // Recreated services take the snapshot's recipe; existing ones keep their own.
        let recipe = if options.recreate_services {
            from_snapshot
        } else {
            from_host.or(from_snapshot)
        };
        let recipe = recipe.ok_or_else(|| {
            Error::integrity(format!(
                "the bundle has data for service `{service}` but its snapshot does not describe it"
            ))
        })?;
        recipes.insert(service.clone(), recipe);
    }
    Ok(recipes)
}

fn existing_targets(
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

async fn check_all(
    targets: &BTreeMap<String, ServiceTarget>,
    importers: &BTreeMap<String, Arc<dyn DataImporter>>,
    entries: &EntriesByService,
    mode: ImportMode,
) -> Result<()> {
    for (service, target) in targets {
        let (Some(importer), Some(service_entries)) =
            (importers.get(service), entries.get(service))
        else {
            continue;
        };
        let artifacts: Vec<_> = service_entries.iter().map(|e| e.artifact.clone()).collect();
        importer
            .check(target, &artifacts, mode)
            .await
            .map_err(|e| e.context(format!("service `{service}` cannot take the restore")))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn import_stages(
    reader: &BundleReader,
    plan: &RestorePlan,
    targets: &BTreeMap<String, ServiceTarget>,
    importers: &BTreeMap<String, Arc<dyn DataImporter>>,
    entries: &EntriesByService,
    mode: ImportMode,
    options: &RestoreOptions,
    progress: &SharedProgress,
) -> Result<()> {
    let concurrency = options.import.max_concurrency.max(1);
    for stage in &plan.stages {
        let jobs = stage.services.iter().filter_map(|service| {
            let target = targets.get(service)?;
            let importer = importers.get(service)?;
            let service_entries = entries.get(service)?;
            Some(restore_service_data(
                reader,
                target,
                importer.as_ref(),
                service_entries,
                mode,
                options.smoke_test,
                progress.as_ref(),
            ))
        });
        futures::stream::iter(jobs)
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(())
}

/// Imports one service's entries from a verified bundle, then smoke-tests each artifact.
///
/// Each entry is streamed from the bundle and checked against its sha256 again on the
/// way, so a file changed after verification still fails the import.
///
/// # Errors
///
/// The importer's error, with the service and artifact named.
pub async fn restore_service_data(
    reader: &BundleReader,
    target: &ServiceTarget,
    importer: &dyn DataImporter,
    entries: &[ManifestEntry],
    mode: ImportMode,
    smoke_test: bool,
    progress: &dyn ProgressSink,
) -> Result<()> {
    let service = &target.name;
    progress.event(&ProgressEvent::ServiceStarted {
        service: service.clone(),
        operation: "import".into(),
    });
    let outcome = async {
        for entry in entries {
            let stream = reader.open_entry(entry)?;
            importer
                .import(target, &entry.artifact, stream, mode)
                .await
                .map_err(|e| {
                    e.context(format!(
                        "restoring `{}` of service `{service}`",
                        entry.artifact.name
                    ))
                })?;
            if smoke_test {
                importer
                    .smoke_test(target, &entry.artifact)
                    .await
                    .map_err(|e| e.context(format!("smoke test of service `{service}`")))?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    match &outcome {
        Ok(()) => progress.event(&ProgressEvent::ServiceFinished {
            service: service.clone(),
            operation: "import".into(),
        }),
        Err(error) => progress.event(&ProgressEvent::Failed {
            service: service.clone(),
            error: error.to_string(),
        }),
    }
    outcome
}
