//! Recreating a snapshot's services stage by stage, with rollback on failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::{self, StreamExt};

use super::validate::{prepared_config, validate, ImportOptions, Validated};
use crate::host::{Deployment, NewDeployment, WorkspaceHost};
use crate::plan::RestorePlan;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::snapshot::{ServiceSnapshot, WorkspaceSnapshot};
use crate::{Error, RecipeRegistry, Result};

/// The operation name progress events carry for an import.
const IMPORT: &str = "import";
/// The per-service operation name progress events carry while creating a service.
const CREATE: &str = "create";

/// What [`import_workspace`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    /// The plan it followed (or would follow, for a dry run).
    pub plan: RestorePlan,
    /// The deployments it created, in plan order, with their new ids and secrets.
    pub created: Vec<Deployment>,
    /// Existing deployments it removed first (with `force`), dependents first; for a dry
    /// run, the ones it would remove.
    pub removed: Vec<String>,
    /// Whether this was a dry run (then nothing was created or removed).
    pub dry_run: bool,
}

/// Validates the import, then (unless a dry run) recreates the snapshot's services.
///
/// With `force`, existing deployments of the same names are removed first (dependents
/// before their dependencies). Then, stage by stage, each service gets new secrets (none
/// for a secret the source did not have), is created, deployed and waited on until ready;
/// services of one stage run concurrently up to `max_concurrency`, and a stage starts
/// only when the previous one is ready.
/// Progress: `PlanReady`, then per service `ServiceStarted`/`ServiceFinished` (operation
/// `"create"`) or `Failed`, then `Finished` (`"import"`); on failure `RollingBack` (after
/// the failing service's `Failed`) and `OperationFailed` (`"import"`) last.
///
/// On any failure it removes the deployments it created (newest first) and returns the
/// original error. Deployments removed because of `force` are not brought back; the
/// error says which.
///
/// # Errors
///
/// Everything [`super::validate_import`] reports, and the first error of the host while
/// creating, deploying or waiting, with the service named.
pub async fn import_workspace(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
    progress: &dyn ProgressSink,
) -> Result<ImportOutcome> {
    let outcome = async {
        let Validated { plan, conflicts } = validate(host, registry, snapshot, options).await?;
        progress.event(&ProgressEvent::PlanReady {
            stages: plan.stage_names(),
        });
        if options.dry_run {
            let plan_order = plan.order();
            let mut would_remove = conflicts;
            would_remove
                .sort_by_key(|name| std::cmp::Reverse(plan_order.iter().position(|n| n == name)));
            return Ok(ImportOutcome {
                plan,
                created: Vec::new(),
                removed: would_remove,
                dry_run: true,
            });
        }
        recreate_services(host, registry, snapshot, options, plan, conflicts, progress).await
    }
    .await;
    match &outcome {
        Ok(_) => progress.event(&ProgressEvent::Finished {
            operation: IMPORT.to_string(),
        }),
        Err(error) => progress.event(&ProgressEvent::OperationFailed {
            operation: IMPORT.to_string(),
            error: error.to_string(),
        }),
    }
    outcome
}

/// Removes the `conflicts` (with `force`) and creates the snapshot's services along a
/// validated `plan`; the part of [`import_workspace`] after validation, without its
/// `PlanReady`, `Finished` and `OperationFailed` events (a restore emits its own).
pub(crate) async fn recreate_services(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
    plan: RestorePlan,
    conflicts: Vec<String>,
    progress: &dyn ProgressSink,
) -> Result<ImportOutcome> {
    let removed = remove_conflicts(host, &plan, conflicts, progress).await?;

    let services: HashMap<&str, &ServiceSnapshot> = snapshot
        .services
        .iter()
        .map(|service| (service.name.as_str(), service))
        .collect();
    let mut created: Vec<Deployment> = Vec::with_capacity(plan.len());
    for stage in &plan.stages {
        let failed = AtomicBool::new(false);
        let outcomes: Vec<ServiceOutcome> = stream::iter(&stage.services)
            .map(|name| {
                create_service(
                    host,
                    registry,
                    services[name.as_str()],
                    options,
                    progress,
                    &failed,
                )
            })
            .buffer_unordered(options.max_concurrency)
            .collect()
            .await;
        let mut first_error = None;
        // Keep plan order within the stage for `created` and for rollback.
        let mut outcomes = outcomes;
        outcomes.sort_by(|a, b| a.name.cmp(&b.name));
        for outcome in outcomes {
            created.extend(outcome.created);
            if let Some(error) = outcome.result.err() {
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            roll_back(host, &created, &error, progress).await;
            return Err(with_removed_note(error, &removed));
        }
    }
    Ok(ImportOutcome {
        plan,
        created,
        removed,
        dry_run: false,
    })
}

/// Says in the error's hint which existing deployments `force` removed for good.
pub(crate) fn with_removed_note(error: Error, removed: &[String]) -> Error {
    if removed.is_empty() {
        return error;
    }
    let note = format!(
        "the existing deployments {} were removed (force) and are not brought back",
        crate::plan::quoted_list(removed.iter().map(String::as_str))
    );
    let hint = match error.hint() {
        Some(hint) => format!("{hint}; {note}"),
        None => note,
    };
    error.with_hint(hint)
}

/// Removes existing deployments the snapshot replaces, dependents first.
async fn remove_conflicts(
    host: &dyn WorkspaceHost,
    plan: &RestorePlan,
    conflicts: Vec<String>,
    progress: &dyn ProgressSink,
) -> Result<Vec<String>> {
    let conflicts: BTreeSet<String> = conflicts.into_iter().collect();
    let mut removed = Vec::with_capacity(conflicts.len());
    for name in plan.order().into_iter().rev() {
        if !conflicts.contains(name) {
            continue;
        }
        if let Err(error) = host.remove_deployment(name).await {
            let error = error.context(format!("removing existing deployment `{name}`"));
            progress.event(&ProgressEvent::Failed {
                service: name.to_string(),
                error: error.to_string(),
            });
            return Err(error);
        }
        removed.push(name.to_string());
    }
    Ok(removed)
}

/// What happened to one service: the deployment if it was created, and the result.
struct ServiceOutcome {
    name: String,
    created: Option<Deployment>,
    result: Result<()>,
}

async fn create_service(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    service: &ServiceSnapshot,
    options: &ImportOptions,
    progress: &dyn ProgressSink,
    failed: &AtomicBool,
) -> ServiceOutcome {
    let name = service.name.clone();
    if failed.load(Ordering::SeqCst) {
        // Another service of this stage failed: start nothing new.
        return ServiceOutcome {
            name,
            created: None,
            result: Ok(()),
        };
    }
    progress.event(&ProgressEvent::ServiceStarted {
        service: name.clone(),
        operation: CREATE.to_string(),
    });
    let mut created = None;
    let result = async {
        let recipe = registry.get(&service.recipe)?;
        let new = NewDeployment {
            name: name.clone(),
            recipe: service.recipe.clone(),
            config: prepared_config(recipe, service, options),
            depends_on: service.depends_on.clone(),
        };
        let deployment = host
            .create_deployment(new)
            .await
            .map_err(|e| e.context(format!("creating `{name}`")))?;
        created = Some(deployment);
        host.deploy(&name)
            .await
            .map_err(|e| e.context(format!("deploying `{name}`")))?;
        host.wait_until_ready(&name, options.ready_timeout)
            .await
            .map_err(|e| e.context(format!("waiting for `{name}` to be ready")))
    }
    .await;
    match &result {
        Ok(()) => progress.event(&ProgressEvent::ServiceFinished {
            service: name.clone(),
            operation: CREATE.to_string(),
        }),
        Err(error) => {
            failed.store(true, Ordering::SeqCst);
            progress.event(&ProgressEvent::Failed {
                service: name.clone(),
                error: error.to_string(),
            });
        }
    }
    ServiceOutcome {
        name,
        created,
        result,
    }
}

/// Removes what the import created, newest first; failures are reported, not returned.
async fn roll_back(
    host: &dyn WorkspaceHost,
    created: &[Deployment],
    error: &Error,
    progress: &dyn ProgressSink,
) {
    progress.event(&ProgressEvent::RollingBack {
        reason: error.to_string(),
    });
    for deployment in created.iter().rev() {
        if let Err(removal) = host.remove_deployment(&deployment.name).await {
            progress.event(&ProgressEvent::Failed {
                service: deployment.name.clone(),
                error: removal
                    .context(format!("rolling back `{}`", deployment.name))
                    .to_string(),
            });
        }
    }
}
