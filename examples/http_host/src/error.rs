//! Errors as HTTP responses: the status from the error's kind, the body the same JSON
//! envelope as `backupctl --json` (`{"command", "ok": false, "exitCode", "error":
//! {"kind", "message", "hint", "fieldErrors": [{"field", "message"}]}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backup_core::{Error, ErrorKind};
use backupctl::Exit;
use serde_json::Value;

/// An error answered with its status and the backupctl error envelope.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The command name the envelope carries (`list`, `import-data`, …).
    pub command: &'static str,
    /// The library error (never carries a secret).
    pub error: Error,
}

impl ApiError {
    /// The error with the status its kind maps to.
    pub fn new(command: &'static str, error: Error) -> ApiError {
        ApiError {
            status: status_for(error.kind()),
            command,
            error,
        }
    }

    /// The error with an explicit status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

/// Maps library errors onto HTTP: validation 422, conflicts 409, missing 404, …
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidSnapshot
        | ErrorKind::InvalidConfig
        | ErrorKind::InvalidInput
        | ErrorKind::UnsupportedVersion
        | ErrorKind::UnknownRecipe
        | ErrorKind::DependencyCycle
        | ErrorKind::UnknownDependency => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NameConflict | ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::Unsupported => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub use backupctl::envelope::ok_envelope;

/// `{"command", "ok": false, "exitCode", "error"}`, as `backupctl --json` prints it.
pub fn error_envelope(command: &str, error: &Error) -> Value {
    backupctl::envelope::error_envelope(command, error, Exit::for_error(error))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(error_envelope(self.command, &self.error))).into_response()
    }
}

/// `result.map_err(api(command))`.
pub fn api(command: &'static str) -> impl Fn(Error) -> ApiError {
    move |error| ApiError::new(command, error)
}
