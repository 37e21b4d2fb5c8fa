//! Bind mounts: host directories the quadlet files mount. They are not podman volumes;
//! with `bindMounts: "include"` each one is backed up by the core directory adapter as
//! `bind-N.tar`, otherwise (the default) it is reported as skipped with the reason.

use std::path::{Path, PathBuf};

use backup_core::{ArtifactDescriptor, Error, ErrorKind, Result};
use serde_json::{json, Value};

use crate::quadlet::Deployment;

/// Artifact names of bind mounts start with this.
pub(crate) const PREFIX: &str = "bind-";

/// Whether an artifact holds a bind mount.
pub(crate) fn is_bind(artifact: &ArtifactDescriptor) -> bool {
    artifact.name.starts_with(PREFIX)
}

/// The bind mounts to back up (artifact name, source), and those skipped with a reason.
pub(crate) fn plan(deployment: &Deployment, include: bool) -> (Vec<(String, PathBuf)>, Vec<Value>) {
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut skipped = Vec::new();
    for mount in &deployment.bind_mounts {
        let source = normalize(&mount.source);
        let reason = if !include {
            Some("a bind mount is a host path, not a podman volume: set `bindMounts` to `include` or back it up as a `directory` service")
        } else if source.to_string_lossy().contains('%') {
            Some("the path uses a systemd specifier (`%h`, …) that only systemd resolves")
        } else if !source.is_absolute() {
            Some("the path is not absolute")
        } else if !source.is_dir() {
            Some("the path is not a directory on this machine (files and missing paths are not backed up)")
        } else {
            None
        };
        match reason {
            Some(reason) => skipped.push(json!({
                "source": mount.source.display().to_string(),
                "usedBy": mount.used_by,
                "reason": reason,
            })),
            None if !sources.contains(&source) => sources.push(source),
            None => {}
        }
    }
    sources.sort();
    let planned = sources
        .into_iter()
        .enumerate()
        .map(|(i, source)| (format!("{PREFIX}{i}.tar"), source))
        .collect();
    (planned, skipped)
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The host directory a bind artifact restores, which must be one the restored quadlet
/// files mount (a bundle never chooses where on this machine data is written).
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`] when the artifact names no source or one the quadlets do
/// not mount.
pub(crate) fn restore_target(
    artifact: &ArtifactDescriptor,
    deployment: &Deployment,
) -> Result<PathBuf> {
    let source = artifact
        .metadata
        .get("source")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("artifact `{}` names no source", artifact.name),
            )
        })?;
    let (planned, _) = plan(deployment, true);
    let mounted = deployment
        .bind_mounts
        .iter()
        .any(|b| normalize(&b.source) == source)
        || planned.iter().any(|(_, s)| *s == source);
    if source.is_absolute() && mounted && source.parent().is_some() {
        Ok(source)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "artifact `{}` would restore `{}`, which the deployment's quadlet files do not mount",
                artifact.name,
                source.display()
            ),
        )
        .with_hint("restore the quadlet files first (they come first in a bundle); a bundle never chooses other host paths"))
    }
}
