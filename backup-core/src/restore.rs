//! Restoring a bundle: verify everything, plan, check, recreate services, import their
//! data in dependency order, smoke-test, and roll back what was created if anything fails.
//!
//! Order of work, so that nothing is touched before the bundle is known to be good and
//! every target has said it can take the data:
//!
//! 1. open the bundle and check its structure, then verify every entry's sha256 and size;
//! 2. check every service's importer exists and reads the artifact formats;
//! 3. validate the snapshot import (versions, recipes, configs as they will be created,
//!    conflicts, `dependsOn`, cycles) and build the [`RestorePlan`] (`PlanReady`);
//! 4. ask each importer whether its target can take the data:
//!    - into existing services (`recreate_services: false`): [`crate::DataImporter::check`] on
//!      each of them;
//!    - recreating: [`crate::DataImporter::check`] on each existing service `force` will replace
//!      (before it is removed), and [`crate::DataImporter::check_new_service`] on the config each
//!      new service will be created with (formats at least; the directory importer also
//!      checks its target path);
//!
//!    a dry run runs all of this and stops here, reporting the plan;
//! 5. recreate services from the snapshot (with `force`, removing the ones they replace),
//!    stage by stage, then [`crate::DataImporter::check`] each created service;
//! 6. import each service's artifacts stage by stage, services of one stage concurrently,
//!    then run the importer's smoke test;
//! 7. on failure, remove the services this restore created and return the error, whose
//!    hint names the existing services removed for good (`force`) or, restoring into
//!    existing services, those whose data was already replaced (never rolled back).

mod checks;
mod stages;

pub use stages::restore_service_data;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::backup::service_target;
use crate::bundle::{BundleReader, Decryption, ManifestEntry};
use crate::data::{ensure_format_supported, ImportMode, ServiceTarget};
use crate::host::{Deployment, WorkspaceHost};
use crate::plan::{quoted_list, RestorePlan};
use crate::progress::{ProgressEvent, ProgressSink, SharedProgress};
use crate::registry::RecipeRegistry;
use crate::workspace::{recreate_services, validate, with_removed_note, ImportOptions, Validated};
use crate::{Error, ErrorKind, Result};

use checks::{check_all, check_planned, existing_targets};
use stages::import_stages;

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
    /// The key of an encrypted bundle. Every entry is decrypted and checked before any
    /// target is touched; an encrypted bundle without it (or with a wrong one) fails
    /// with [`ErrorKind::WrongKey`] first.
    pub decryption: Option<Decryption>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            recreate_services: true,
            import: ImportOptions::default(),
            services: None,
            smoke_test: true,
            decryption: None,
        }
    }
}

impl RestoreOptions {
    /// Restores data into the services that already run (none is created) and replaces
    /// what they hold (`import.force`): the options for a host whose services exist, such
    /// as `backupctl::ConfiguredHost`. Replacing still verifies every checksum and runs
    /// every importer's checks first; for a safety backup and rollback, restore from a
    /// repository with `backup_repository::safe_restore`.
    pub fn into_existing_services() -> Self {
        let mut options = RestoreOptions {
            recreate_services: false,
            ..RestoreOptions::default()
        };
        options.import.force = true;
        options
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
/// Progress: `Verified` per entry, `PlanReady` once, per service `create` and `import`
/// events (`Failed` naming the service on failure, before any `RollingBack`), and last
/// `Finished` (`"restore"`) on success or `OperationFailed` (`"restore"`) on failure.
///
/// # Errors
///
/// [`ErrorKind::Integrity`] for a corrupt bundle (nothing touched),
/// [`ErrorKind::WrongKey`] for an encrypted bundle without the right key in
/// [`RestoreOptions::decryption`] (nothing touched), validation errors of
/// the snapshot import, [`ErrorKind::Unsupported`] when a service's recipe has no importer
/// or does not read an artifact's format, [`ErrorKind::NotFound`] for a requested service
/// the bundle or host does not have, any importer `check` error (nothing touched), and
/// any importer error (after rolling back the services this restore created).
pub async fn restore_backup(
    path: &Path,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &RestoreOptions,
    progress: SharedProgress,
) -> Result<RestoreReport> {
    let outcome = restore(path, host, registry, options, &progress).await;
    match &outcome {
        Ok(_) => progress.event(&ProgressEvent::Finished {
            operation: RESTORE.into(),
        }),
        Err(error) => progress.event(&ProgressEvent::OperationFailed {
            operation: RESTORE.into(),
            error: error.to_string(),
        }),
    }
    outcome
}

const RESTORE: &str = "restore";

/// Passes every event on except `Finished`: the verify step of a restore is not the end
/// of the operation.
struct WithoutFinished<'a>(&'a dyn ProgressSink);

impl ProgressSink for WithoutFinished<'_> {
    fn event(&self, event: &ProgressEvent) {
        if !matches!(event, ProgressEvent::Finished { .. }) {
            self.0.event(event);
        }
    }
}

async fn restore(
    path: &Path,
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &RestoreOptions,
    progress: &SharedProgress,
) -> Result<RestoreReport> {
    let mut reader = BundleReader::open(path).await?;
    if let Some(decryption) = &options.decryption {
        reader = reader.with_decryption(decryption.clone());
    }
    // A missing key is refused now, a wrong one by verify: both before any change.
    reader.ensure_decryptable()?;
    reader.verify(&WithoutFinished(progress.as_ref())).await?;
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

    let (plan, conflicts) = match (options.recreate_services, reader.snapshot()) {
        (true, Some(snapshot)) => {
            let Validated { plan, conflicts } =
                validate(host, registry, snapshot, &options.import).await?;
            (plan, conflicts)
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
        (false, Some(snapshot)) => (RestorePlan::from_snapshot(snapshot)?, Vec::new()),
        (false, None) => {
            let names: Vec<String> = entries.keys().cloned().collect();
            let no_deps: Vec<String> = Vec::new();
            let plan = RestorePlan::from_dependencies(
                names.iter().map(|n| (n.as_str(), no_deps.as_slice())),
            )?;
            (plan, Vec::new())
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

    let Some(snapshot) = reader.snapshot().filter(|_| options.recreate_services) else {
        // Into the existing services.
        let targets = existing_targets(host, &existing, &entries, progress)?;
        check_all(&targets, &importers, &entries, mode, progress).await?;
        if options.import.dry_run {
            return Ok(report);
        }
        let stages = import_stages(
            &reader, &plan, &targets, &importers, &entries, mode, options, progress,
        )
        .await;
        return stages
            .result
            .map(|()| report)
            .map_err(|error| with_replaced_note(error, &stages.done));
    };

    check_planned(
        host,
        registry,
        snapshot,
        &options.import,
        &existing,
        &importers,
        &entries,
        mode,
        progress,
    )
    .await?;
    if options.import.dry_run {
        return Ok(report);
    }
    let outcome = recreate_services(
        host,
        registry,
        snapshot,
        &options.import,
        plan.clone(),
        conflicts,
        progress.as_ref(),
    )
    .await?;
    report.created = outcome.created.iter().map(|d| d.name.clone()).collect();
    let targets: BTreeMap<String, ServiceTarget> = outcome
        .created
        .iter()
        .filter(|d| entries.contains_key(&d.name))
        .map(|d| {
            (
                d.name.clone(),
                service_target(host, d, Arc::clone(progress)),
            )
        })
        .collect();
    let data = async {
        check_all(&targets, &importers, &entries, mode, progress).await?;
        import_stages(
            &reader, &plan, &targets, &importers, &entries, mode, options, progress,
        )
        .await
        .result
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
        return Err(with_removed_note(error, &outcome.removed));
    }
    Ok(report)
}

/// Says in the error's hint whose data a failed restore into existing services had
/// already replaced: that is not rolled back.
fn with_replaced_note(error: Error, done: &[String]) -> Error {
    if done.is_empty() {
        return error;
    }
    let note = format!(
        "the data of {} was already replaced by this restore and is not rolled back",
        quoted_list(done.iter().map(String::as_str))
    );
    let hint = match error.hint() {
        Some(hint) => format!("{hint}; {note}"),
        None => note,
    };
    error.with_hint(hint)
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
