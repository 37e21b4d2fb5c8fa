//! Export of a workspace's desired state to a [`WorkspaceSnapshot`], and import of one
//! through a [`WorkspaceHost`].
//!
//! Export validates every deployment's config against its recipe and strips the secret
//! fields. Import validates everything before it changes anything, then creates the
//! services stage by stage in [`RestorePlan`](crate::plan::RestorePlan) order with newly
//! generated secrets, and removes what it created when anything fails.
//!
//! An import future that is dropped part-way does not roll back: run it to completion.
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

mod import;
mod validate;

pub use import::{import_workspace, ImportOutcome};
pub(crate) use import::{recreate_services, with_removed_note};
pub(crate) use validate::{prepared_config, validate, Validated};
pub use validate::{validate_import, ImportOptions};

use std::collections::BTreeSet;

use serde_json::Value;

use crate::host::{Deployment, WorkspaceHost};
use crate::plan::quoted_list;
use crate::snapshot::{ServiceSnapshot, SnapshotMetadata, WorkspaceSnapshot, SNAPSHOT_VERSION};
use crate::{Error, ErrorKind, FieldError, RecipeRegistry, Result};

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
/// secret fields (marking those the service does not have as
/// [`crate::recipe::UNSET_SECRET`]) and host settings, and sorts services by name. The
/// snapshot then passes every target-independent check of [`validate_import`] (with
/// default options): `dependsOn` naming a known service other than itself, no cycles,
/// configs valid as they would be recreated. An empty workspace gives a valid snapshot
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
/// - [`ErrorKind::UnknownDependency`] / [`ErrorKind::DependencyCycle`] for a `dependsOn`
///   an import would refuse (unknown service, itself, a cycle), and anything else
///   [`validate_import`] reports regardless of the target;
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
            config: recipe.snapshot_config(&deployment.config),
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

    let snapshot = WorkspaceSnapshot {
        version: SNAPSHOT_VERSION,
        exported_at: now_rfc3339()?,
        exported_by: options.exported_by.clone(),
        workspace,
        services,
        metadata: options.metadata.clone(),
    };
    // The import's own checks, so nothing is exported that an import would refuse.
    validate::validate_snapshot(registry, &snapshot, &ImportOptions::default()).map_err(|e| {
        e.context("cannot export: the workspace would not restore from this snapshot")
    })?;
    Ok(snapshot)
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
