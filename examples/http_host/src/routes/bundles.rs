//! The repository: list, info, download, delete, prune (JSON), and the long operations
//! create, verify and restore (202 with a job id; progress over SSE).
//!
//! Results have the shapes `backupctl --json` prints for the same command.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backup_core::backup::BackupRequest;
use backup_core::bundle::BundleOptions;
use backup_core::progress::SharedProgress;
use backup_core::{Error, ErrorKind};
use backup_repository::object_store::ObjectStoreExt;
use backup_repository::{
    safe_restore, BundleFilter, PruneOptions, SafeRestoreOptions, SafeRestoreReport, BUNDLE_SUFFIX,
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::Caller;
use crate::error::{api, error_envelope, ok_envelope, ApiError};
use crate::jobs::{Job, JobProgress};
use crate::state::AppState;

/// `GET …/backups`: the `list` result (`index`, `id`, `name`, `label`, `kind`, `created`,
/// `size`, `services`, `recent`, `locked`, …).
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("list"))?;
    let bundles = state
        .repo
        .list(&BundleFilter::default())
        .await
        .map_err(api("list"))?;
    Ok(Json(ok_envelope("list", &bundles)).into_response())
}

/// `GET …/backups/{bundle}`: the `info` result (the index entry with its manifest).
pub async fn info(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, bundle)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("info"))?;
    let entry = state.repo.info(&bundle).await.map_err(api("info"))?;
    Ok(Json(ok_envelope("info", &entry)).into_response())
}

/// `GET …/backups/{bundle}/download`: the bundle object, streamed from storage.
pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, bundle)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "download";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    let entry = state.repo.info(&bundle).await.map_err(api(COMMAND))?;
    let path = state
        .repo
        .key(&format!("bundles/{}{BUNDLE_SUFFIX}", entry.name));
    let got = state.repo.object_store().get(&path).await.map_err(|e| {
        ApiError::new(
            COMMAND,
            Error::new(ErrorKind::Io, format!("reading bundle {}: {e}", entry.name)),
        )
    })?;
    let stream = got.into_stream().map_err(std::io::Error::other);
    let disposition = format!("attachment; filename=\"{}{BUNDLE_SUFFIX}\"", entry.name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `DELETE …/backups/{bundle}`: the `delete` result (the deleted index entry).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, bundle)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("delete"))?;
    state.writable("deleting bundles").map_err(api("delete"))?;
    let entry = state.repo.delete(&bundle).await.map_err(api("delete"))?;
    Ok(Json(ok_envelope("delete", &entry)).into_response())
}

/// The body of `POST …/prune`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PruneBody {
    /// Report only.
    pub dry_run: bool,
    /// Orphans younger than this many hours are kept (default 24).
    pub grace_hours: Option<u64>,
}

/// `POST …/prune`: the `prune` report; the retention policy comes from the
/// configuration.
pub async fn prune(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    body: Option<Json<PruneBody>>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("prune"))?;
    let Json(body) = body.unwrap_or_default();
    if !body.dry_run {
        state.writable("pruning").map_err(api("prune"))?;
    }
    let options = PruneOptions {
        grace: Duration::from_secs(body.grace_hours.unwrap_or(24).saturating_mul(3600)),
        dry_run: body.dry_run,
        policy: state.retention.clone(),
    };
    let report = state.repo.prune(&options).await.map_err(api("prune"))?;
    Ok(Json(ok_envelope("prune", &report)).into_response())
}

/// `202 {"job", "events"}`.
fn accepted(job: &Job) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"job": job.id, "events": format!("/api/jobs/{}/events", job.id)})),
    )
        .into_response()
}

/// Runs `work` as a job whose final event is the backupctl envelope of its result.
fn spawn_job<T, F>(state: &AppState, command: &'static str, ws: &str, work: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(SharedProgress) -> futures::future::BoxFuture<'static, backup_core::Result<T>>,
{
    let job = state.jobs.start(command, ws);
    let progress: SharedProgress = std::sync::Arc::new(JobProgress(job.clone()));
    let future = work(progress);
    let running = job.clone();
    tokio::spawn(async move {
        let envelope = match future.await {
            Ok(result) => ok_envelope(command, &result),
            Err(error) => error_envelope(command, &error),
        };
        running.finish(envelope);
    });
    accepted(&job)
}

/// The body of `POST …/backups`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CreateBody {
    /// The bundle's label.
    pub label: Option<String>,
    /// Why it was made.
    pub purpose: Option<String>,
    /// Only these services (all when absent).
    pub services: Option<Vec<String>>,
}

/// What `create` prints: the bundle as `list` shows it.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
    body: Option<Json<CreateBody>>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("create"))?;
    state.writable("creating backups").map_err(api("create"))?;
    let Json(body) = body.unwrap_or_default();
    Ok(start_create(&state, &ws, body))
}

/// Starts a backup into the repository as a job.
pub fn start_create(state: &AppState, ws: &str, body: CreateBody) -> Response {
    let request = BackupRequest {
        bundle: BundleOptions {
            label: body.label.filter(|l| !l.trim().is_empty()),
            purpose: body.purpose,
            ..BundleOptions::default()
        },
        services: body.services.filter(|s| !s.is_empty()),
        ..BackupRequest::default()
    };
    let (repo, host) = (state.repo.clone(), state.host.clone());
    spawn_job(state, "create", ws, move |progress| {
        Box::pin(async move {
            repo.create_backup(host.as_ref(), host.registry(), &request, progress)
                .await
        })
    })
}

/// One verified bundle, as `backupctl verify --json` lists it (backupctl's own type is
/// private to its CLI, so it is restated here with the same fields).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    name: String,
    ok: bool,
    entries: usize,
    total_bytes: u64,
    not_decrypted: Vec<String>,
    error: Option<String>,
}

/// `POST …/backups/{bundle}/verify`: a job whose result is `[{name, ok, entries,
/// totalBytes, notDecrypted, error}]`; a bundle that fails verification ends the job
/// with the `integrity` error envelope (exit code 3), as backupctl does.
pub async fn verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, bundle)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, &ws).await.map_err(api("verify"))?;
    let entry = state.repo.info(&bundle).await.map_err(api("verify"))?;
    let repo = state.repo.clone();
    Ok(spawn_job(&state, "verify", &ws, move |progress| {
        Box::pin(async move {
            let report = repo.verify(&entry.manifest.id, progress.as_ref()).await?;
            Ok(vec![Verified {
                name: entry.name,
                ok: true,
                entries: report.entries.len(),
                total_bytes: report.total_bytes,
                not_decrypted: report.not_decrypted,
                error: None,
            }])
        })
    }))
}

/// The body of `POST …/backups/{bundle}/restore`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RestoreBody {
    /// Only these services.
    pub services: Option<Vec<String>>,
    /// Plan only: answered at once (200) with the plan and the phrase to type.
    pub dry_run: bool,
    /// The typed confirmation: the service's name when one service is restored, else
    /// the bundle's name (as `backupctl restore` asks).
    pub confirm: Option<String>,
}

/// The phrase a restore must be confirmed with.
fn confirm_phrase(plan: &SafeRestoreReport) -> String {
    match plan.services.as_slice() {
        [one] => one.service.clone(),
        _ => plan.bundle_name.clone(),
    }
}

/// `POST …/backups/{bundle}/restore`: a safe restore (safety backup, checks, rollback on
/// failure). With `dryRun`, 200 with `{"plan", "confirmPhrase"}`; otherwise `confirm`
/// must equal the phrase (422 if not, nothing changed) and the restore runs as a job
/// whose result is the safe-restore report.
pub async fn restore(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, bundle)): Path<(String, String)>,
    body: Option<Json<RestoreBody>>,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "restore";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    let Json(body) = body.unwrap_or_default();
    let mut options = SafeRestoreOptions {
        services: body.services.filter(|s| !s.is_empty()),
        dry_run: true,
        ..SafeRestoreOptions::default()
    };
    let host = state.host.clone();
    let no_progress = backup_core::progress::no_progress();
    let plan = safe_restore(
        &state.repo,
        &bundle,
        host.as_ref(),
        host.registry(),
        &options,
        no_progress,
    )
    .await
    .map_err(api(COMMAND))?;
    let phrase = confirm_phrase(&plan);
    if body.dry_run {
        return Ok(Json(ok_envelope(
            COMMAND,
            &json!({"plan": plan, "confirmPhrase": phrase}),
        ))
        .into_response());
    }
    state.writable("restoring").map_err(api(COMMAND))?;
    if body.confirm.as_deref().map(str::trim) != Some(phrase.as_str()) {
        return Err(ApiError::new(
            COMMAND,
            Error::new(
                ErrorKind::InvalidInput,
                "restore not confirmed: nothing was changed",
            )
            .with_hint(format!("send \"confirm\": \"{phrase}\"")),
        ));
    }
    options.dry_run = false;
    let repo = state.repo.clone();
    let bundle_id = plan.bundle_id.clone();
    Ok(spawn_job(&state, COMMAND, &ws, move |progress| {
        Box::pin(async move {
            safe_restore(
                &repo,
                &bundle_id,
                host.as_ref(),
                host.registry(),
                &options,
                progress,
            )
            .await
        })
    }))
}
