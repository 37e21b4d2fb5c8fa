//! Per-service data: `POST /api/workspaces/{ws}/deployments/{service}/export-data`
//! streams one artifact as a download; `POST …/import-data` streams a multipart upload
//! into the service's importer.
//!
//! Neither buffers the data: the export body is the exporter's stream; the upload's
//! chunks go through a small bounded channel to the importer as they arrive, and the
//! upload is cut off (413) once it passes `--max-upload-bytes`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backup_core::artifact::{ArtifactDescriptor, ByteStream};
use backup_core::data::{DataExporter, ImportMode, ServiceTarget};
use backup_core::{Error, ErrorKind, Result};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::{api, ok_envelope, ApiError};
use crate::state::AppState;

/// Chunks in flight between the upload and the importer.
const UPLOAD_CHANNEL: usize = 8;

/// Which artifact, and whether to replace data.
#[derive(Debug, Default, Deserialize)]
pub struct DataQuery {
    /// The artifact name (needed when the service exports more than one).
    pub artifact: Option<String>,
    /// The artifact's format, for an import (defaults to what the exporter produces).
    pub format: Option<String>,
    /// Replace data the service holds (an import into a non-empty service is 409
    /// without it).
    #[serde(default)]
    pub force: bool,
}

async fn pick_artifact(
    exporter: &dyn DataExporter,
    target: &ServiceTarget,
    wanted: Option<&str>,
) -> Result<ArtifactDescriptor> {
    let artifacts = exporter.artifacts(target).await?;
    let names = || {
        artifacts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match wanted {
        Some(name) => artifacts.iter().find(|a| a.name == name),
        None if artifacts.len() == 1 => artifacts.first(),
        None => None,
    };
    found.cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "service `{}` has artifacts {}: say which with ?artifact=",
                target.name,
                names()
            ),
        )
        .with_hint(format!("artifacts: {}", names()))
    })
}

/// A file name without path separators or quotes.
fn file_name(service: &str, artifact: &str) -> String {
    format!("{service}-{artifact}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Streams one artifact of the service, with its content type; `X-Artifact-Name` and
/// `X-Artifact-Format` say what to send back to `import-data`.
pub async fn export_data(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, service)): Path<(String, String)>,
    Query(q): Query<DataQuery>,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "export-data";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    let (target, recipe) = state.service(&service).await.map_err(api(COMMAND))?;
    let exporter = recipe
        .exporter()
        .ok_or_else(|| Error::unsupported(&target.recipe, "export"))
        .map_err(api(COMMAND))?;
    let artifact = pick_artifact(exporter.as_ref(), &target, q.artifact.as_deref())
        .await
        .map_err(api(COMMAND))?;
    let data = exporter
        .export(&target, &artifact)
        .await
        .map_err(api(COMMAND))?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        file_name(&service, &artifact.name)
    );
    Ok((
        [
            (header::CONTENT_TYPE, artifact.content_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                HeaderName::from_static("x-artifact-name"),
                artifact.name.clone(),
            ),
            (
                HeaderName::from_static("x-artifact-format"),
                artifact.format.clone(),
            ),
        ],
        Body::from_stream(data.stream),
    )
        .into_response())
}

/// Imports the multipart field `file` into the service as it arrives. Result
/// `{"service", "artifact", "format", "bytes"}`.
pub async fn import_data(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    query: Query<DataQuery>,
    multipart: Multipart,
) -> Response {
    match import_data_streamed(state, caller, path, query, multipart).await {
        Ok(response) => response,
        Err(error) => {
            // Refused before the body was read: the connection cannot carry another
            // request, so the client is told not to reuse it.
            let mut response = error.into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

async fn import_data_streamed(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((ws, service)): Path<(String, String)>,
    Query(q): Query<DataQuery>,
    mut multipart: Multipart,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "import-data";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    state.writable("importing data").map_err(api(COMMAND))?;
    let (target, recipe) = state.service(&service).await.map_err(api(COMMAND))?;
    let importer = recipe
        .importer()
        .ok_or_else(|| Error::unsupported(&target.recipe, "import"))
        .map_err(api(COMMAND))?;
    let mut artifact = match recipe.exporter() {
        Some(exporter) => pick_artifact(exporter.as_ref(), &target, q.artifact.as_deref())
            .await
            .map_err(api(COMMAND))?,
        None => ArtifactDescriptor::new(
            q.artifact.clone().unwrap_or_else(|| "data".into()),
            q.format.clone().unwrap_or_default(),
            "application/octet-stream",
        ),
    };
    if let Some(format) = &q.format {
        artifact.format = format.clone();
    }
    let mode = ImportMode { force: q.force };
    importer
        .check(&target, std::slice::from_ref(&artifact), mode)
        .await
        .map_err(api(COMMAND))?;

    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(UPLOAD_CHANNEL);
    let stream: ByteStream = Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let too_large = Arc::new(AtomicBool::new(false));
    let limit = state.settings.max_upload_bytes;
    let pump = pump_upload(&mut multipart, tx, limit, Arc::clone(&too_large));
    let import = importer.import(&target, &artifact, stream, mode);
    let (pumped, imported) = tokio::join!(pump, import);
    if too_large.load(Ordering::SeqCst) {
        let error = Error::new(
            ErrorKind::ResourceExhausted,
            format!("the upload is larger than the limit of {limit} bytes"),
        )
        .with_hint("raise --max-upload-bytes, or import with backupctl on the server");
        return Err(ApiError::new(COMMAND, error).with_status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let bytes = pumped.map_err(api(COMMAND))?;
    imported.map_err(api(COMMAND))?;
    Ok(Json(ok_envelope(
        COMMAND,
        &json!({"service": service, "artifact": artifact.name, "format": artifact.format, "bytes": bytes}),
    ))
    .into_response())
}

/// Sends the `file` field's chunks to the importer; returns the bytes sent.
async fn pump_upload(
    multipart: &mut Multipart,
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    limit: u64,
    too_large: Arc<AtomicBool>,
) -> Result<u64> {
    let bad_upload = |e: axum::extract::multipart::MultipartError| {
        Error::new(ErrorKind::InvalidInput, format!("reading the upload: {e}"))
    };
    let mut sent = 0u64;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_upload)? {
        if field.name() != Some("file") {
            continue;
        }
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let text = e.to_string();
                    let _ = tx.send(Err(std::io::Error::other(text))).await;
                    return Err(bad_upload(e));
                }
            };
            sent += chunk.len() as u64;
            if sent > limit {
                too_large.store(true, Ordering::SeqCst);
                let _ = tx
                    .send(Err(std::io::Error::other(
                        "the upload exceeds the size limit",
                    )))
                    .await;
                return Ok(sent);
            }
            if tx.send(Ok(chunk)).await.is_err() {
                // The importer stopped reading: its own error is the answer.
                return Ok(sent);
            }
        }
        // The importer sees the end of its stream; then the rest of the body (the closing
        // boundary) is read before the answer goes out, since an answer sent while the
        // client still writes can reach it as a broken connection.
        drop(field);
        drop(tx);
        while let Ok(Some(_)) = multipart.next_field().await {}
        return Ok(sent);
    }
    let _ = tx
        .send(Err(std::io::Error::other("the upload has no `file` field")))
        .await;
    Err(
        Error::new(ErrorKind::InvalidInput, "the upload has no `file` field")
            .with_hint("send multipart/form-data with the data in a field named `file`"),
    )
}
