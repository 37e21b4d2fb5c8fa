//! The workspace snapshot: a portable JSON description of a workspace's desired state.
//!
//! The format is the one the TypeScript control plane writes (camelCase JSON,
//! `version: 1`), so a snapshot from there parses here and back without loss of meaning.
//! Secrets are never part of a snapshot.

use serde::{Deserialize, Serialize};

use crate::json_limits::{check_shape, JsonLimits};
use crate::{Error, ErrorKind, FieldError, Result};

/// The snapshot format version this build writes.
pub const SNAPSHOT_VERSION: u32 = 1;

/// The largest snapshot parsed or written, in bytes of JSON.
pub const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;
/// Deepest JSON nesting in a snapshot.
pub const MAX_SNAPSHOT_DEPTH: usize = 64;
/// Most JSON values (object keys included) in a snapshot.
pub const MAX_SNAPSHOT_VALUES: usize = 1_000_000;

/// The bounds a snapshot's bytes are checked against before they are parsed.
pub(crate) const SNAPSHOT_LIMITS: JsonLimits = JsonLimits {
    max_depth: MAX_SNAPSHOT_DEPTH,
    max_values: MAX_SNAPSHOT_VALUES,
    max_text_bytes: MAX_SNAPSHOT_BYTES as usize,
};

/// Says what bound of a snapshot `json` exceeds, if any (size, nesting, values).
pub(crate) fn snapshot_bounds_problem(json: &[u8]) -> Option<String> {
    if json.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Some(format!(
            "it is {} bytes, more than the {MAX_SNAPSHOT_BYTES} a snapshot may have",
            json.len()
        ));
    }
    check_shape(json, SNAPSHOT_LIMITS)
}

/// A workspace's desired state: which services, their recipe, config and dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSnapshot {
    /// Schema version, for migrations. Only [`SNAPSHOT_VERSION`] is read.
    pub version: u32,
    /// When it was exported, ISO 8601 (RFC 3339).
    pub exported_at: String,
    /// User id, or `"system"`.
    pub exported_by: String,
    /// The workspace the services belong to.
    pub workspace: WorkspaceRef,
    /// The services, with secrets stripped.
    pub services: Vec<ServiceSnapshot>,
    /// Where the snapshot came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<SnapshotMetadata>,
}

/// A workspace's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRef {
    /// URL-safe identifier.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// One service of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSnapshot {
    /// Recipe slug (must exist in the registry on import).
    pub recipe: String,
    /// Instance name, unique in the workspace.
    pub name: String,
    /// Validated config at export time, secrets removed.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Names of services this one depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Status at export time (informational).
    pub status: String,
}

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMetadata {
    /// Platform name, e.g. `"mathison"`.
    pub platform: String,
    /// Engine version, for compatibility checks.
    pub engine_version: String,
}

/// Upgrades a snapshot of an older version, as raw JSON, to the current version.
///
/// Register one per old version with [`SnapshotParser::with_migration`]. Version 1 is
/// the only version so far, so the library ships none.
pub type SnapshotMigration =
    fn(serde_json::Value) -> std::result::Result<serde_json::Value, String>;

/// Parses snapshots, applying migrations for older versions.
#[derive(Debug, Clone, Default)]
pub struct SnapshotParser {
    migrations: Vec<(u32, SnapshotMigration)>,
}

impl SnapshotParser {
    /// A parser that reads only the current version.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a migration from `from_version` to `from_version + 1`.
    pub fn with_migration(mut self, from_version: u32, migration: SnapshotMigration) -> Self {
        self.migrations.push((from_version, migration));
        self
    }

    /// Parses a snapshot from JSON bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::UnsupportedVersion`] for a version with no migration path,
    /// [`ErrorKind::InvalidSnapshot`] with field errors for malformed JSON, and for JSON
    /// over [`MAX_SNAPSHOT_BYTES`], nested deeper than [`MAX_SNAPSHOT_DEPTH`] or holding
    /// more than [`MAX_SNAPSHOT_VALUES`] values (refused before it is parsed).
    pub fn parse(&self, json: &[u8]) -> Result<WorkspaceSnapshot> {
        if let Some(problem) = snapshot_bounds_problem(json) {
            return Err(Error::new(
                ErrorKind::InvalidSnapshot,
                format!("snapshot is refused: {problem}"),
            ));
        }
        let mut value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
            Error::new(
                ErrorKind::InvalidSnapshot,
                format!("snapshot is not valid JSON: {e}"),
            )
        })?;
        loop {
            let version = value
                .get("version")
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidSnapshot,
                        "snapshot has no numeric `version`",
                    )
                    .with_field_errors(vec![FieldError {
                        pointer: "/version".into(),
                        message: "required, must be a positive integer".into(),
                    }])
                })?;
            if version == u64::from(SNAPSHOT_VERSION) {
                break;
            }
            let migration = self
                .migrations
                .iter()
                .find(|(from, _)| u64::from(*from) == version)
                .map(|(_, m)| *m);
            match migration {
                Some(migrate) if version < u64::from(SNAPSHOT_VERSION) => {
                    value = migrate(value).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidSnapshot,
                            format!("migrating snapshot version {version} failed: {e}"),
                        )
                    })?;
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::UnsupportedVersion,
                        format!(
                            "snapshot version {version} is not supported (this build reads version {SNAPSHOT_VERSION})"
                        ),
                    )
                    .with_hint("upgrade the library, or export the snapshot again with a matching version"));
                }
            }
        }
        serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidSnapshot,
                format!("snapshot is malformed: {e}"),
            )
        })
    }
}

impl WorkspaceSnapshot {
    /// Parses a current-version snapshot from JSON bytes.
    ///
    /// # Errors
    ///
    /// See [`SnapshotParser::parse`].
    pub fn from_json(json: &[u8]) -> Result<Self> {
        SnapshotParser::new().parse(json)
    }

    /// Serialises to pretty JSON.
    ///
    /// # Errors
    ///
    /// Only if a config holds a value JSON cannot represent (never for parsed input).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| {
            Error::new(
                ErrorKind::InvalidSnapshot,
                format!("serialising snapshot: {e}"),
            )
        })
    }

    /// Service names, in snapshot order.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.name.as_str()).collect()
    }
}
