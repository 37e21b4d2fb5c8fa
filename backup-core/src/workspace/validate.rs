//! Validation of an import before anything changes, and the options of an import.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::known_recipes_hint;
use crate::host::{RedactedConfig, WorkspaceHost};
use crate::plan::{quoted_list, RestorePlan};
use crate::recipe::Recipe;
use crate::snapshot::{ServiceSnapshot, WorkspaceSnapshot, SNAPSHOT_VERSION};
use crate::{Error, ErrorKind, FieldError, RecipeRegistry, Result};

/// How [`super::import_workspace`] and [`validate_import`] behave.
#[derive(Clone, PartialEq)]
pub struct ImportOptions {
    /// Remove existing deployments whose names the snapshot uses, instead of refusing.
    pub force: bool,
    /// Validate and plan only; change nothing. In [`crate::restore::restore_backup`] a dry
    /// run also runs every importer check a real restore runs before its first change
    /// (see [`crate::restore`] for the list).
    pub dry_run: bool,
    /// Per-service config fields merged over the snapshot's config (after secrets are
    /// generated, before validation): "restore anywhere", e.g. a new path or host.
    pub config_overrides: BTreeMap<String, Map<String, Value>>,
    /// How long each service may take to become ready.
    pub ready_timeout: Duration,
    /// How many services of one stage are created at the same time (at least 1).
    pub max_concurrency: usize,
    /// Take the recipes' host settings (fields that choose a program to run, such as
    /// PostgreSQL's `binDir`; see [`crate::recipe::RecipeBuilder::host_setting`]) from the
    /// snapshot. Off by default: a bundle must not pick what runs on this machine, so
    /// these fields are dropped from snapshot configs and come from `config_overrides`.
    pub trust_snapshot_host_settings: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            force: false,
            dry_run: false,
            config_overrides: BTreeMap::new(),
            ready_timeout: Duration::from_secs(60),
            max_concurrency: 4,
            trust_snapshot_host_settings: false,
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
            .field(
                "trust_snapshot_host_settings",
                &self.trust_snapshot_host_settings,
            )
            .finish()
    }
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
pub(crate) struct Validated {
    pub(crate) plan: RestorePlan,
    pub(crate) conflicts: Vec<String>,
}

pub(crate) async fn validate(
    host: &dyn WorkspaceHost,
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
) -> Result<Validated> {
    let plan = validate_snapshot(registry, snapshot, options)?;
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

/// Every check of an import that does not depend on the target: version, unique names,
/// options, recipes, configs (as they will be created), `dependsOn` targets and cycles.
/// Export runs it too, so a bundle is never written that an import would refuse.
pub(crate) fn validate_snapshot(
    registry: &RecipeRegistry,
    snapshot: &WorkspaceSnapshot,
    options: &ImportOptions,
) -> Result<RestorePlan> {
    check_version(snapshot)?;
    check_unique_names(snapshot)?;
    check_options(snapshot, options)?;
    check_recipes(snapshot, registry)?;
    check_configs(snapshot, registry, options)?;
    RestorePlan::from_snapshot(snapshot)
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

/// The config a service is created with: the snapshot's with new secrets (none where the
/// source had none) and without host settings (unless trusted), then overrides.
pub(crate) fn prepared_config(
    recipe: &Recipe,
    service: &ServiceSnapshot,
    options: &ImportOptions,
) -> Map<String, Value> {
    let mut config = recipe.restored_config(&service.config, options.trust_snapshot_host_settings);
    if let Some(overrides) = options.config_overrides.get(&service.name) {
        for (key, value) in overrides {
            config.insert(key.clone(), value.clone());
        }
    }
    config
}
