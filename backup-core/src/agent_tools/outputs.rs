//! The outputs of the agent tools, built from what the library returns, each with the
//! sentence the agent can say as its `summary`.

use serde_json::{json, Value};

use crate::bundle::{Manifest, ManifestEntry};
use crate::narrate::{
    self, backed_up_sentence, display_names, manifest_services, RestoreNarrator, ServiceLabel,
};
use crate::restore::RestoreReport;
use crate::snapshot::WorkspaceSnapshot;
use crate::{Error, ErrorKind, Result};

/// One exported artifact, as `exportAppData` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedArtifact {
    /// Artifact name (`dump`, `files`).
    pub name: String,
    /// Its format (`pg_dump-custom`, `tar`).
    pub format: String,
    /// Its content type, as the download is served.
    pub content_type: String,
    /// Its size in bytes, as downloaded (uncompressed).
    pub size_bytes: u64,
}

impl ExportedArtifact {
    /// The artifact a bundle entry holds, with its uncompressed size.
    pub fn from_entry(entry: &ManifestEntry) -> Self {
        ExportedArtifact {
            name: entry.artifact.name.clone(),
            format: entry.artifact.format.clone(),
            content_type: entry.artifact.content_type.clone(),
            size_bytes: entry.uncompressed_size,
        }
    }
}

/// The services as the outputs list them: name, recipe and display name.
fn services_json(services: &[ServiceLabel]) -> Value {
    let shown = display_names(services);
    Value::Array(
        services
            .iter()
            .zip(shown)
            .map(|(service, shown)| {
                json!({ "name": service.name, "recipe": service.recipe, "displayName": shown })
            })
            .collect(),
    )
}

fn service_json(service: &ServiceLabel) -> Value {
    services_json(std::slice::from_ref(service))
        .as_array_mut()
        .and_then(|list| list.pop())
        .unwrap_or(Value::Null)
}

/// `backupWorkspace`'s output for a written bundle: its id, date, label, stored size and
/// services (recipes from its snapshot, when given).
pub fn backup_workspace_output(manifest: &Manifest, snapshot: Option<&WorkspaceSnapshot>) -> Value {
    let services = manifest_services(manifest, snapshot);
    json!({
        "backupId": manifest.id,
        "createdAt": manifest.created_at,
        "label": manifest.label,
        "sizeBytes": manifest.stored_bytes(),
        "serviceCount": services.len(),
        "services": services_json(&services),
        "summary": backed_up_sentence(&services),
    })
}

/// `restoreWorkspace`'s output for a restore's outcome, with the services and summary of
/// the narrator that followed it (its final sentence when it saw the end).
pub fn restore_workspace_output(
    outcome: &Result<RestoreReport>,
    narrator: &RestoreNarrator,
) -> Value {
    let services = services_json(narrator.services());
    match outcome {
        Ok(report) => {
            let summary = if report.dry_run {
                format!(
                    "I checked the backup and planned the restore; nothing was changed. \
                     It would restore {}.",
                    planned_services(narrator.services())
                )
            } else {
                narrator
                    .final_sentence()
                    .unwrap_or_else(|| narrate::restored_sentence(narrator.services()))
            };
            json!({
                "status": if report.dry_run { "dryRun" } else { "restored" },
                "backupId": report.bundle_id,
                "services": services,
                "created": report.created,
                "replaced": report.replaced,
                "error": null,
                "summary": summary,
            })
        }
        Err(error) => {
            let status = match error.kind() {
                ErrorKind::RestoreRolledBack => "rolledBack",
                ErrorKind::RollbackFailed => "rollbackFailed",
                _ if narrator.rollback_failed() => "rollbackFailed",
                _ if narrator.rolled_back() => "rolledBack",
                _ => "failed",
            };
            let summary = match error.kind() {
                ErrorKind::RestoreRolledBack | ErrorKind::RollbackFailed => {
                    narrate::restore_failed_sentence(error)
                }
                _ => narrator
                    .final_sentence()
                    .unwrap_or_else(|| narrate::restore_failed_sentence(error)),
            };
            json!({
                "status": status,
                "backupId": null,
                "services": services,
                "error": error_json(error),
                "summary": summary,
            })
        }
    }
}

fn planned_services(services: &[ServiceLabel]) -> String {
    if services.is_empty() {
        return "no services".to_owned();
    }
    format!(
        "{}: {}",
        narrate::count_services(services.len()),
        narrate::join_list(&display_names(services))
    )
}

fn error_json(error: &Error) -> Value {
    json!({ "kind": error.kind().as_str(), "message": error.message(), "hint": error.hint() })
}

/// `exportAppData`'s output: the service, its artifacts and their total size.
pub fn export_app_data_output(service: &ServiceLabel, artifacts: &[ExportedArtifact]) -> Value {
    let total: u64 = artifacts.iter().map(|a| a.size_bytes).sum();
    let artifacts: Vec<Value> = artifacts
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "format": a.format,
                "contentType": a.content_type,
                "sizeBytes": a.size_bytes,
            })
        })
        .collect();
    json!({
        "service": service_json(service),
        "artifacts": artifacts,
        "sizeBytes": total,
        "summary": narrate::exported_app_data_sentence(service, total),
    })
}

/// `importAppData`'s output: the service and how many bytes were imported.
pub fn import_app_data_output(service: &ServiceLabel, bytes: u64) -> Value {
    json!({
        "service": service_json(service),
        "sizeBytes": bytes,
        "summary": narrate::imported_app_data_sentence(service, bytes),
    })
}
