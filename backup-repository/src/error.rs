//! Object store errors as core errors, with kinds and hints.

use backup_core::{Error, ErrorKind};

/// Maps an object store error to a core error, saying what was being done.
pub(crate) fn store_error(what: impl std::fmt::Display, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let text = e.to_string();
    let (kind, hint) = match &e {
        _ if text.contains("NoSuchBucket") => (
            ErrorKind::NotFound,
            Some("the bucket does not exist: create it first, or check the bucket name"),
        ),
        E::NotFound { .. } => (ErrorKind::NotFound, None),
        E::AlreadyExists { .. } | E::Precondition { .. } => (ErrorKind::AlreadyExists, None),
        E::PermissionDenied { .. } => (
            ErrorKind::PermissionDenied,
            Some("check the credentials' rights on the bucket or the directory's permissions"),
        ),
        E::Unauthenticated { .. } => (
            ErrorKind::PermissionDenied,
            Some("check the access key and secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"),
        ),
        E::NotSupported { .. } | E::NotImplemented { .. } => (ErrorKind::Unsupported, None),
        _ if text.contains("AccessDenied") || text.contains("403") => (
            ErrorKind::PermissionDenied,
            Some("check the credentials' rights on the bucket"),
        ),
        _ if text.contains("onnect") => (
            ErrorKind::Unavailable,
            Some("check the endpoint URL and that the server is running"),
        ),
        _ => (ErrorKind::Io, None),
    };
    let err = Error::new(kind, format!("{what}: {text}"));
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// A corrupt JSON object in the repository.
pub(crate) fn corrupt(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Integrity, format!("{what} is not valid: {e}"))
        .with_hint("the repository was changed by something else; run check")
}
