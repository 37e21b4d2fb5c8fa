//! The library's one public error type.
//!
//! An [`Error`] carries a [`ErrorKind`] a caller can match on, a one-line message, an
//! optional remediation hint, field-level errors for invalid input, and the source error.
//! `Display` is one line (message, then the hint); `Debug` shows everything.

use std::fmt;

/// What went wrong, in a form a caller can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// A snapshot or manifest is malformed; see [`Error::field_errors`].
    InvalidSnapshot,
    /// A service config does not match its recipe's schema; see [`Error::field_errors`].
    InvalidConfig,
    /// Caller input (an option, a name, an argument) is not acceptable.
    InvalidInput,
    /// A snapshot, manifest or artifact has a version or format this build does not read.
    UnsupportedVersion,
    /// A recipe slug is not registered.
    UnknownRecipe,
    /// A service name already exists on the target.
    NameConflict,
    /// `dependsOn` forms a cycle.
    DependencyCycle,
    /// `dependsOn` names a service that is not in the snapshot.
    UnknownDependency,
    /// Stored bytes do not match what the manifest promises (checksum, size, entries).
    Integrity,
    /// Something looked up does not exist.
    NotFound,
    /// A target already holds data and `force` was not given.
    AlreadyExists,
    /// A server or service could not be reached.
    Unavailable,
    /// The server or the operating system refused the operation.
    PermissionDenied,
    /// An external tool (pg_dump, podman, …) failed; the message carries its stderr.
    ToolFailed,
    /// The adapter cannot do this operation.
    Unsupported,
    /// The operation was cancelled.
    Cancelled,
    /// A local I/O error.
    Io,
    /// The target ran out of space or memory.
    ResourceExhausted,
    /// A restore failed and what it had touched was restored from the safety backup taken
    /// before it: the services hold what they held before the restore.
    RestoreRolledBack,
    /// A restore failed and restoring the safety backup failed too: some services hold
    /// neither their old nor the new data. The hint lists what is left where and the
    /// manual steps; the safety backup is kept.
    RollbackFailed,
    /// Another live process holds the lock this operation needs (a repository's lock);
    /// the message names its host, pid and since when.
    Locked,
    /// A missing or wrong key: an encrypted bundle or repository cannot be opened or
    /// written with what was given (passphrase, identities).
    WrongKey,
    /// Something the operation would delete is in use by something outside it (e.g. a
    /// volume mounted by another deployment's container); nothing was changed.
    InUse,
}

impl ErrorKind {
    /// A short, stable name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidSnapshot => "invalid snapshot",
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::UnknownRecipe => "unknown recipe",
            ErrorKind::NameConflict => "name conflict",
            ErrorKind::DependencyCycle => "dependency cycle",
            ErrorKind::UnknownDependency => "unknown dependency",
            ErrorKind::Integrity => "integrity",
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::ToolFailed => "tool failed",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Io => "io",
            ErrorKind::ResourceExhausted => "resource exhausted",
            ErrorKind::Locked => "locked",
            ErrorKind::WrongKey => "wrong key",
            ErrorKind::RestoreRolledBack => "restore rolled back",
            ErrorKind::RollbackFailed => "rollback failed",
            ErrorKind::InUse => "in use",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failing field of a config or snapshot, located by a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// JSON pointer to the failing value, e.g. `/services/2/config/port`.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.message)
    }
}

/// The library's error: a kind, a message, an optional hint, field errors and a source.
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    field_errors: Vec<FieldError>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Creates an error of `kind` with a one-line `message`.
    ///
    /// The message must never contain a secret: it ends up in logs.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            field_errors: Vec::new(),
            source: None,
        }
    }

    /// Adds a remediation hint: what the user should do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Attaches field-level errors (for invalid configs and snapshots).
    pub fn with_field_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.field_errors = errors;
        self
    }

    /// Prefixes the message with context, keeping kind, hint and source.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What went wrong, for matching.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the user can do about it, when known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Every failing field, for [`ErrorKind::InvalidConfig`] and [`ErrorKind::InvalidSnapshot`].
    pub fn field_errors(&self) -> &[FieldError] {
        &self.field_errors
    }

    /// Shorthand for an [`ErrorKind::Unsupported`] error naming the operation and adapter.
    pub fn unsupported(adapter: &str, operation: &str) -> Self {
        Error::new(
            ErrorKind::Unsupported,
            format!("the {adapter} adapter does not support {operation}"),
        )
    }

    /// Shorthand for an [`ErrorKind::Integrity`] error.
    pub fn integrity(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Integrity, message)
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        let kind = match source.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            std::io::ErrorKind::StorageFull => ErrorKind::ResourceExhausted,
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                ErrorKind::Integrity
            }
            _ => ErrorKind::Io,
        };
        // An I/O error that carries one of our errors (through a stream) keeps its kind.
        if source
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<Error>().is_some())
        {
            if let Some(inner) = source.into_inner() {
                if let Ok(ours) = inner.downcast::<Error>() {
                    return ours.context(what);
                }
            }
            return Error::new(ErrorKind::Io, what.to_string());
        }
        Error::new(kind, format!("{what}: {source}")).with_source(source)
    }

    /// Converts this error into an [`std::io::Error`] that carries it, for streams.
    ///
    /// [`Error::io`] recovers the original kind, message and hint on the other side.
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.field_errors.is_empty() {
            let fields: Vec<String> = self.field_errors.iter().map(|e| e.to_string()).collect();
            write!(f, " [{}]", fields.join("; "))?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(hint) = &self.hint {
            d.field("hint", hint);
        }
        if !self.field_errors.is_empty() {
            d.field("field_errors", &self.field_errors);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::io("I/O error", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_hint_and_fields() {
        let err = Error::new(ErrorKind::InvalidConfig, "config of `db` is invalid")
            .with_hint("fix the fields listed")
            .with_field_errors(vec![FieldError {
                pointer: "/port".into(),
                message: "must be an integer".into(),
            }]);
        let text = err.to_string();
        assert!(!text.contains('\n'));
        assert!(text.contains("/port: must be an integer"));
        assert!(text.contains("hint: fix the fields listed"));
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    }

    #[test]
    fn error_survives_a_trip_through_io_error() {
        let original = Error::integrity("sha256 mismatch").with_hint("re-export");
        let back = Error::io("reading entry", original.into_io());
        assert_eq!(back.kind(), ErrorKind::Integrity);
        assert!(back.message().contains("sha256 mismatch"));
        assert_eq!(back.hint(), Some("re-export"));
    }
}
