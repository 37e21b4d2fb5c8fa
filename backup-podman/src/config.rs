//! The `podman` recipe's config: where the quadlet files are, which volumes, whether to
//! stop containers, and how to run podman.

use std::path::PathBuf;
use std::sync::Arc;

use backup_core::{Error, ErrorKind, Result, ServiceTarget};
use serde::Deserialize;
use serde_json::json;

use crate::cli::Podman;

/// Config of a `podman` deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PodmanConfig {
    /// Absolute path of the deployment's quadlet directory (`.container`, `.volume`, …).
    pub quadlet_dir: PathBuf,
    /// The named volumes to back up. Absent: every named volume the quadlet files use.
    #[serde(default)]
    pub volumes: Option<Vec<String>>,
    /// Stop the running containers that use a volume while it is exported or imported,
    /// and start them again afterwards (default `true`).
    #[serde(default = "default_true")]
    pub stop_containers: bool,
    /// Podman runs rootless: file owners inside volumes are those of the user namespace,
    /// and the adapter's host tools (`find`, `chown`, `chmod`) run through `podman
    /// unshare`. Must match how podman runs (not root exactly when `true`); a mismatch is
    /// refused with [`ErrorKind::InvalidConfig`] before anything is read or changed.
    #[serde(default)]
    pub rootless: bool,
    /// The podman program (host setting).
    #[serde(default = "default_podman")]
    pub podman: String,
    /// Global podman arguments such as `--root DIR --runroot DIR` (host setting).
    #[serde(default)]
    pub podman_args: Vec<String>,
    /// Seconds a restarted container must keep running for a safe restore to count as
    /// done (default 2).
    #[serde(default = "default_settle")]
    pub start_check_seconds: u64,
    /// `"include"`: back up the host directories the quadlet files bind-mount (through
    /// the core directory adapter); `"skip"` (the default): list them as skipped.
    #[serde(default)]
    pub bind_mounts: BindMounts,
    /// Seconds `podman stop` waits for a container to exit before killing it (default 10).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_seconds: u64,
}

fn default_stop_timeout() -> u64 {
    10
}

/// What happens to bind mounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BindMounts {
    /// Listed in the quadlet artifact's `skippedBindMounts`, not backed up.
    #[default]
    Skip,
    /// Backed up as `bind-N.tar` by the core directory adapter.
    Include,
}

fn default_true() -> bool {
    true
}

fn default_podman() -> String {
    "podman".to_string()
}

fn default_settle() -> u64 {
    2
}

impl PodmanConfig {
    /// Reads the config of a service.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] when `quadletDir` is missing or relative, or a volume
    /// name is not a valid podman volume name.
    pub fn from_service(service: &ServiceTarget) -> Result<Self> {
        let config: PodmanConfig = serde_json::from_value(service.config.clone()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config of service `{}` is not a podman config: {e}",
                    service.name
                ),
            )
        })?;
        if !config.quadlet_dir.is_absolute() {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "`quadletDir` of service `{}` must be absolute",
                    service.name
                ),
            ));
        }
        for name in config.volumes.iter().flatten() {
            check_volume_name(name)?;
        }
        Ok(config)
    }

    /// The podman client for this service, running through the service's runner.
    pub fn podman(&self, service: &ServiceTarget) -> Podman {
        Podman::new(
            Arc::clone(&service.runner),
            self.podman.clone(),
            self.podman_args.clone(),
            self.rootless,
            self.stop_timeout_seconds,
        )
    }
}

/// Refuses names podman would not accept, or that are unsafe in an artifact name.
///
/// # Errors
///
/// [`ErrorKind::InvalidConfig`] naming the volume.
pub(crate) fn check_volume_name(name: &str) -> Result<()> {
    let ok = name.len() <= 200
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("`{name}` is not a valid podman volume name"),
        )
        .with_hint(
            "volume names are letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        ))
    }
}

/// The JSON Schema of [`PodmanConfig`].
pub fn config_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "quadletDir": { "type": "string", "minLength": 1, "pattern": "^/" },
            "volumes": { "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$" } },
            "stopContainers": { "type": "boolean" },
            "rootless": { "type": "boolean" },
            "podman": { "type": "string", "minLength": 1 },
            "podmanArgs": { "type": "array", "items": { "type": "string" } },
            "startCheckSeconds": { "type": "integer", "minimum": 0, "maximum": 600 },
            "stopTimeoutSeconds": { "type": "integer", "minimum": 0, "maximum": 3600 },
            "bindMounts": { "enum": ["skip", "include"] }
        },
        "required": ["quadletDir"],
        "additionalProperties": true
    })
}
