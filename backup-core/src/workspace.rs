//! Export of a workspace's desired state to a [`WorkspaceSnapshot`], and import of one
//! through a [`WorkspaceHost`].
//!
//! Export validates every deployment's config against its recipe and strips the secret
//! fields. Import validates everything before it changes anything, then creates the
//! services stage by stage in [`RestorePlan`] order with newly generated secrets, and
//! removes what it created when anything fails.
//!
//! ```
//! use backup_core::memory_host::InMemoryHost;
//! use backup_core::progress::NoProgress;
//! use backup_core::snapshot::WorkspaceRef;
//! use backup_core::workspace::{export_workspace, import_workspace, ExportOptions, ImportOptions};
//! use backup_core::RecipeRegistry;
//!
//! # futures::executor::block_on(async {
//! let registry = RecipeRegistry::new();
//! let source = InMemoryHost::new(WorkspaceRef { slug: "a".into(), name: "A".into() });
//! let snapshot = export_workspace(&source, &registry, &ExportOptions::default()).await?;
//! let target = InMemoryHost::new(WorkspaceRef { slug: "b".into(), name: "B".into() });
//! let outcome =
//!     import_workspace(&target, &registry, &snapshot, &ImportOptions::default(), &NoProgress)
//!         .await?;
//! assert!(outcome.created.is_empty());
//! # Ok::<(), backup_core::Error>(())
//! # })?;
//! # Ok::<(), backup_core::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};

use crate::host::{Deployment, NewDeployment, RedactedConfig, WorkspaceHost};
use crate::plan::{quoted_list, RestorePlan};
use crate::progress::{ProgressEvent, ProgressSink};
use crate::recipe::Recipe;
use crate::snapshot::{ServiceSnapshot, SnapshotMetadata, WorkspaceSnapshot, SNAPSHOT_VERSION};
use crate::{Error, ErrorKind, FieldError, RecipeRegistry, Result};

/// The operation name progress events carry for an import.
const IMPORT: &str = "import";
/// The per-service operation name progress events carry while creating a service.
const CREATE: &str = "create";

/// How [`export_workspace`] labels the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// User id of whoever exports, or `"system"` (the default).
    pub exported_by: String,
    /// Where the snapshot comes from (platform, engine version).
    pub metadata: Option<SnapshotMetadata>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            exported_by: "system".to_string(),
            metadata: None,
        }
    }
}

/// Exports the workspace's deployments as a version-1 snapshot, secrets stripped.
///
/// Reads every deployment, validates its config against its recipe, removes the recipe's
/// secret fields, and sorts services by name. An empty workspace gives a valid snapshot
/// with no services.
///
/// # Errors
///
/// - [`ErrorKind::UnknownRecipe`] when a deployment uses a recipe the registry lacks,
///   naming the deployments and listing the known recipes;
/// - [`ErrorKind::InvalidConfig`] naming every deployment whose config does not match its
///   recipe, with field errors pointing into the snapshot (`/services/<i>/config/…`);
///   messages never quote config values;
/// - [`ErrorKind::InvalidSnapshot`] when the host reports two deployments of one name;
/// - whatever the host reports.
pub async fn export_workspace(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    options: &ExportOptions,
) -> Result<WorkspaceSnapshot> {
    let workspace = host.workspace().await?;
    let mut deployments = host.list_deployments().await?;
    deployments.sort_by(|a, b| a.name.cmp(&b.name));

    let duplicates: BTreeSet<&str> = deployments
        .windows(2)
        .filter(|pair| pair[0].name == pair[1].name)
        .map(|pair| pair[0].name.as_str())
        .collect();
    if !duplicates.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidSnapshot,
            format!(
                "the host lists several deployments named {}",
                quoted_list(duplicates)
            ),
        ));
    }

    let unknown: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| !registry.contains(&d.recipe))
        .collect();
    if !unknown.is_empty() {
        let described: Vec<String> = unknown
            .iter()
            .map(|d| format!("`{}` uses `{}`", d.name, d.recipe))
            .collect();
        return Err(Error::new(
            ErrorKind::UnknownRecipe,
            format!("cannot export: unknown recipes ({})", described.join(", ")),
        )
        .with_hint(known_recipes_hint(registry)));
    }

    let mut services = Vec::with_capacity(deployments.len());
    let mut invalid = Vec::new();
    let mut field_errors = Vec::new();
    for (position, deployment) in deployments.into_iter().enumerate() {
        let recipe = registry.get(&deployment.recipe)?;
        let errors = recipe.config_errors(&Value::Object(deployment.config.clone()));
        if !errors.is_empty() {
            field_errors.extend(errors.into_iter().map(|error| FieldError {
                pointer: format!("/services/{position}/config{}", error.pointer),
                message: format!("deployment `{}`: {}", deployment.name, error.message),
            }));
            invalid.push(deployment.name.clone());
        }
        services.push(ServiceSnapshot {
            config: recipe.strip_secrets(&deployment.config),
            recipe: deployment.recipe,
            name: deployment.name,
            depends_on: deployment.depends_on,
            status: deployment.status,
        });
    }
    if !invalid.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "cannot export: the config of deployment {} does not match its recipe",
                quoted_list(invalid.iter().map(String::as_str))
            ),
        )
        .with_field_errors(field_errors)
        .with_hint("fix the listed fields of these deployments, then export again"));
    }

    Ok(WorkspaceSnapshot {
        version: SNAPSHOT_VERSION,
        exported_at: now_rfc3339()?,
        exported_by: options.exported_by.clone(),
        workspace,
        services,
        metadata: options.metadata.clone(),
    })
}

fn now_rfc3339() -> Result<String> {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot format the export time: {e}"),
            )
        })
}

fn known_recipes_hint(registry: &RecipeRegistry) -> String {
    let known = registry.slugs();
    if known.is_empty() {
        "no recipes are registered; register the recipes this workspace uses".to_string()
    } else {
        format!("known recipes: {}", known.join(", "))
    }
}

/// How [`import_workspace`] and [`validate_import`] behave.
#[derive(Clone, PartialEq)]
pub struct ImportOptions {
    /// Remove existing deployments whose names the snapshot uses, instead of refusing.
    pub force: bool,
    /// Validate and plan only; change nothing.
    pub dry_run: bool,
    /// Per-service config fields merged over the snapshot's config (after secrets are
    /// generated, before validation): "restore anywhere", e.g. a new path or host.
    pub config_overrides: BTreeMap<String, Map<String, Value>>,
    /// How long each service may take to become ready.
    pub ready_timeout: Duration,
    /// How many services of one stage are created at the same time (at least 1).
    pub max_concurrency: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            force: false,
            dry_run: false,
            config_overrides: BTreeMap::new(),
            ready_timeout: Duration::from_secs(60),
            max_concurrency: 4,
        }
    }
}

impl fmt::Debug for ImportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Overrides may set secrets: show which fields, never their values.
        let overrides: BTreeMap<&str, RedactedConfig<'_>> = self
            .config_overrides
            .iter()
            .map(|(service, fields)| (service.as_str(), RedactedConfig(fields)))
            .collect();
        f.debug_struct("ImportOptions")
            .field("force", &self.force)
            .field("dry_run", &self.dry_run)
            .field("config_overrides", &overrides)
            .field("ready_timeout", &self.ready_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .finish()
    }
}

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

/// Validates an import completely, without changing anything, and returns its plan.
///
/// Checks, in this order: the snapshot version, unique service names, overrides naming
/// services of the snapshot, a usable `max_concurrency`, that every recipe exists, that
/// every config is valid once secrets are generated and overrides applied, `dependsOn`
/// targets and cycles, and name conflicts with existing deployments (unless `force`).
///
/// # Errors
///
/// - [`ErrorKind::UnsupportedVersion`] naming the snapshot's version;
/// - [`ErrorKind::InvalidSnapshot`] for duplicate service names;
/// - [`ErrorKind::InvalidInput`] for overrides of services not in the snapshot, or a
///   `max_concurrency` of 0;
/// - [`ErrorKind::UnknownRecipe`] listing every unknown slug and the known ones;
/// - [`ErrorKind::InvalidConfig`] with every failing field, pointers like
///   `/services/2/config/port`;
/// - [`ErrorKind::UnknownDependency`] / [`ErrorKind::DependencyCycle`] from the planner;
/// - [`ErrorKind::NameConflict`] naming the existing deployments, unless `force`;
/// - whatever the host reports when listing deployments.
pub async fn validate_import(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
) -> Result<RestorePlan> {
    Ok(validate(host, registry, snapshot, options).await?.plan)
}

/// A validated import: its plan and the existing deployments it would replace.
struct Validated {
    plan: RestorePlan,
    conflicts: Vec<String>,
}

async fn validate(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
) -> Result<Validated> {
    check_version(snapshot)?;
    check_unique_names(snapshot)?;
    check_options(snapshot, options)?;
    check_recipes(snapshot, registry)?;
    check_configs(snapshot, registry, options)?;
    let plan = RestorePlan::from_snapshot(snapshot)?;

    let existing = host.list_deployments().await?;
    let wanted: BTreeSet<&str> = snapshot.service_names().into_iter().collect();
    let conflicts: Vec<String> = existing
        .iter()
        .map(|d| d.name.as_str())
        .filter(|name| wanted.contains(name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    if !conflicts.is_empty() && !options.force {
        return Err(Error::new(
            ErrorKind::NameConflict,
            format!(
                "deployments named {} already exist in this workspace",
                quoted_list(conflicts.iter().map(String::as_str))
            ),
        )
        .with_hint("remove or rename them, or import with force to remove them first"));
    }
    Ok(Validated { plan, conflicts })
}

fn check_version(snapshot: &WorkspaceSnapshot) -> Result<()> {
    if snapshot.version == SNAPSHOT_VERSION {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "snapshot version {} is not supported (this build reads version {SNAPSHOT_VERSION})",
            snapshot.version
        ),
    )
    .with_hint("parse it with a SnapshotParser that has a migration for this version"))
}

fn check_unique_names(snapshot: &WorkspaceSnapshot) -> Result<()> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    let mut field_errors = Vec::new();
    let mut duplicated = BTreeSet::new();
    for (position, service) in snapshot.services.iter().enumerate() {
        if let Some(first) = first_seen.insert(&service.name, position) {
            field_errors.push(FieldError {
                pointer: format!("/services/{position}/name"),
                message: format!("`{}` is also the name of service {first}", service.name),
            });
            duplicated.insert(service.name.as_str());
            // Keep pointing at the first occurrence.
            first_seen.insert(&service.name, first);
        }
    }
    if duplicated.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidSnapshot,
        format!(
            "service names must be unique; duplicated: {}",
            quoted_list(duplicated)
        ),
    )
    .with_field_errors(field_errors)
    .with_hint("rename or remove the duplicated services"))
}

fn check_options(snapshot: &WorkspaceSnapshot, options: &ImportOptions) -> Result<()> {
    if options.max_concurrency == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "max_concurrency must be at least 1",
        ));
    }
    let names: BTreeSet<&str> = snapshot.service_names().into_iter().collect();
    let strangers: Vec<&str> = options
        .config_overrides
        .keys()
        .map(String::as_str)
        .filter(|name| !names.contains(name))
        .collect();
    if strangers.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!(
            "config overrides name services that are not in the snapshot: {}",
            quoted_list(strangers)
        ),
    )
    .with_hint(format!("services in the snapshot: {}", quoted_list(names))))
}

fn check_recipes(snapshot: &WorkspaceSnapshot, registry: &RecipeRegistry) -> Result<()> {
    let mut unknown = BTreeSet::new();
    let mut field_errors = Vec::new();
    for (position, service) in snapshot.services.iter().enumerate() {
        if !registry.contains(&service.recipe) {
            unknown.insert(service.recipe.as_str());
            field_errors.push(FieldError {
                pointer: format!("/services/{position}/recipe"),
                message: format!(
                    "service `{}` uses unknown recipe `{}`",
                    service.name, service.recipe
                ),
            });
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnknownRecipe,
        format!("unknown recipes: {}", quoted_list(unknown)),
    )
    .with_field_errors(field_errors)
    .with_hint(known_recipes_hint(registry)))
}

fn check_configs(
    snapshot: &WorkspaceSnapshot,
    registry: &RecipeRegistry,
    options: &ImportOptions,
) -> Result<()> {
    let mut invalid = Vec::new();
    let mut field_errors = Vec::new();
    for (position, service) in snapshot.services.iter().enumerate() {
        let recipe = registry.get(&service.recipe)?;
        let config = prepared_config(recipe, service, options);
        let errors = recipe.config_errors(&Value::Object(config));
        if !errors.is_empty() {
            invalid.push(service.name.as_str());
            field_errors.extend(errors.into_iter().map(|error| FieldError {
                pointer: format!("/services/{position}/config{}", error.pointer),
                message: error.message,
            }));
        }
    }
    if invalid.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::InvalidConfig,
        format!(
            "the config of service {} does not match its recipe",
            quoted_list(invalid)
        ),
    )
    .with_field_errors(field_errors)
    .with_hint("fix the listed fields in the snapshot, or set them with config overrides"))
}

/// The config a service is created with: the snapshot's, new secrets, then overrides.
fn prepared_config(
    recipe: &Recipe,
    service: &ServiceSnapshot,
    options: &ImportOptions,
) -> Map<String, Value> {
    let mut config = service.config.clone();
    recipe.generate_secrets(&mut config);
    if let Some(overrides) = options.config_overrides.get(&service.name) {
        for (key, value) in overrides {
            config.insert(key.clone(), value.clone());
        }
    }
    config
}

/// Validates the import, then (unless a dry run) recreates the snapshot's services.
///
/// With `force`, existing deployments of the same names are removed first (dependents
/// before their dependencies). Then, stage by stage, each service gets new secrets, is
/// created, deployed and waited on until ready; services of one stage run concurrently
/// up to `max_concurrency`, and a stage starts only when the previous one is ready.
/// Progress: `PlanReady`, then per service `ServiceStarted`/`ServiceFinished` (operation
/// `"create"`) or `Failed`, then `Finished` (`"import"`), or `RollingBack` on failure.
///
/// On any failure it removes the deployments it created (newest first) and returns the
/// original error. Deployments removed because of `force` are not brought back.
///
/// # Errors
///
/// Everything [`validate_import`] reports, and the first error of the host while
/// creating, deploying or waiting, with the service named.
pub async fn import_workspace(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
    progress: &dyn ProgressSink,
) -> Result<ImportOutcome> {
    let Validated { plan, conflicts } = match validate(host, registry, snapshot, options).await {
        Ok(validated) => validated,
        Err(error) => {
            progress.event(&ProgressEvent::Failed {
                service: String::new(),
                error: error.to_string(),
            });
            return Err(error);
        }
    };
    progress.event(&ProgressEvent::PlanReady {
        stages: plan.stage_names(),
    });
    if options.dry_run {
        progress.event(&ProgressEvent::Finished {
            operation: IMPORT.to_string(),
        });
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
            if let Err(error) = outcome.result {
                first_error.get_or_insert(error);
            }
        }
        if let Some(error) = first_error {
            roll_back(host, &created, &error, progress).await;
            return Err(error);
        }
    }

    progress.event(&ProgressEvent::Finished {
        operation: IMPORT.to_string(),
    });
    Ok(ImportOutcome {
        plan,
        created,
        removed,
        dry_run: false,
    })
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
