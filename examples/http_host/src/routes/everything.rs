//! "Export everything" (`POST /api/workspaces/{ws}/export-everything`): in read-only
//! mode the whole bundle is streamed to the response while it is written (nothing is
//! stored); otherwise a backup is written to the repository as a job (202).

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use backup_core::backup::{create_backup_to, BackupRequest};
use backup_core::bundle::{BundleOptions, BundleWriter};
use tokio::sync::mpsc;

use crate::auth::Caller;
use crate::error::{api, ApiError};
use crate::routes::bundles::{start_create, CreateBody};
use crate::state::AppState;

/// Bytes per chunk sent to the response.
const CHUNK: usize = 64 * 1024;

/// A `Write` that hands each chunk to the response body; blocks (on the bundle writer's
/// thread) while the client is slow, so memory stays bounded.
struct ChannelWriter(mpsc::Sender<std::io::Result<Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Streams the bundle (read-only mode) or starts a backup job.
pub async fn export_everything(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(ws): Path<String>,
) -> Result<Response, ApiError> {
    const COMMAND: &str = "export-everything";
    state.authorize(&caller, &ws).await.map_err(api(COMMAND))?;
    if !state.settings.read_only {
        return Ok(start_create(&state, &ws, CreateBody::default()));
    }
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    let sink = std::io::BufWriter::with_capacity(CHUNK, ChannelWriter(tx.clone()));
    let options = BundleOptions {
        purpose: Some("export everything".into()),
        ..BundleOptions::default()
    };
    let writer = BundleWriter::to_writer(sink, options);
    let host = state.host.clone();
    tokio::spawn(async move {
        let request = BackupRequest::default();
        let progress = backup_core::progress::no_progress();
        if let Err(e) =
            create_backup_to(writer, host.as_ref(), host.registry(), &request, progress).await
        {
            // Ends the body with an error: the client sees a cut-off download, never a
            // complete-looking bundle (a partial zip has no manifest).
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let disposition = format!(
        "attachment; filename=\"{ws}-everything{}\"",
        backup_repository::BUNDLE_SUFFIX
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
