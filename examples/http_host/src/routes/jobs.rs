//! `GET /api/jobs/{job}` (status and result) and `GET /api/jobs/{job}/events` (SSE).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backup_core::{Error, ErrorKind};

use crate::auth::Caller;
use crate::error::{api, ApiError};
use crate::jobs::Job;
use crate::state::AppState;

async fn owned_job(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<std::sync::Arc<Job>, ApiError> {
    let not_found = || Error::new(ErrorKind::NotFound, format!("no job `{id}`"));
    let job = state
        .jobs
        .get(id)
        .ok_or_else(not_found)
        .map_err(api("job"))?;
    if !state.owners.may_access(caller, &job.workspace).await {
        return Err(ApiError::new("job", not_found()));
    }
    Ok(job)
}

/// `{"id", "command", "done", "result"}`.
pub async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, &caller, &id).await?;
    Ok(Json(job.status()).into_response())
}

/// The job's events from after `Last-Event-ID` (or the first), live, until `result`.
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = owned_job(&state, &caller, &id).await?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok(job.sse(last, state.settings.heartbeat).into_response())
}
