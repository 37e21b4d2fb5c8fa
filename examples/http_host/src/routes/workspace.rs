//! Workspace snapshot export (`GET /api/workspaces/{ws}/export[?download=true]`) and
//! import (`POST /api/workspaces/{ws}/import[?force=true]`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backup_core::snapshot::WorkspaceSnapshot;
use backup_core::workspace::{export_workspace, validate_import, ExportOptions, ImportOptions};
use backup_core::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{api, ok_envelope, ApiError};
use crate::state::AppState;

/// `?download=true`.
#[derive(Debug, Default, Deserialize)]
pub struct DownloadQuery {
    /// Send the snapshot as an attachment (`Content-Disposition`).
    #[serde(default)]
    pub download: bool,
}

/// The snapshot (secrets stripped), in the `export-snapshot` envelope; with `download`,
/// the bare snapshot as a file.
pub async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "export-snapshot";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    let options = ExportOptions {
        exported_by: format!("http-host ({})", caller.name),
        metadata: None,
    };
    let host = state.host.as_ref();
    let snapshot = export_workspace(host, host.registry(), &options)
        .await
        .map_err(api(COMMAND))?;
    if q.download {
        let body = snapshot.to_json().map_err(api(COMMAND))?;
        let disposition = format!("attachment; filename=\"{ws}.snapshot.json\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(ok_envelope(COMMAND, &snapshot)).into_response())
}

/// `?force=true`.
#[derive(Debug, Default, Deserialize)]
pub struct ForceQuery {
    /// Replace services of the same names instead of answering 409.
    #[serde(default)]
    pub force: bool,
}

/// Validates a snapshot as an import into this workspace: version, recipes, every
/// config against its schema (422 with `fieldErrors` pointers like
/// `/services/0/config/port`), `dependsOn`, and name conflicts (409 unless `force`).
///
/// A configured host never creates services, so the import is planned, not applied:
/// the result is `{"services", "stages", "replaces"}` (`replaces`: the configured
/// services the snapshot's services would replace, with `force`).
pub async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    Query(q): Query<ForceQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "import-snapshot";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    let snapshot = WorkspaceSnapshot::from_json(&body).map_err(api(COMMAND))?;
    let options = ImportOptions {
        force: q.force,
        dry_run: true,
        ..ImportOptions::default()
    };
    let host = state.host.as_ref();
    let plan = validate_import(host, host.registry(), &snapshot, &options)
        .await
        .map_err(api(COMMAND))?;
    let configured = state.host.service_names();
    let replaces: Vec<String> = snapshot
        .service_names()
        .into_iter()
        .filter(|n| configured.iter().any(|c| c == n))
        .map(str::to_string)
        .collect();
    let stages: Vec<Vec<String>> = plan.stages.iter().map(|s| s.services.clone()).collect();
    if replaces.len() < snapshot.services.len() {
        let missing: Vec<&str> = snapshot
            .service_names()
            .into_iter()
            .filter(|n| !replaces.iter().any(|r| r == n))
            .collect();
        return Err(ApiError::new(
            COMMAND,
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "this host does not create services; not configured: {}",
                    missing.join(", ")
                ),
            )
            .with_hint(
                "add them to the configuration file (backupctl import-snapshot prints the TOML)",
            ),
        ));
    }
    Ok(Json(ok_envelope(
        COMMAND,
        &json!({"services": snapshot.service_names(), "stages": stages, "replaces": replaces}),
    ))
    .into_response())
}
