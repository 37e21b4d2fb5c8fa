//! [`PodmanImporter`]: a clean restore. Quadlet files are swapped in atomically by the
//! core directory importer; a volume is emptied (or created with its recorded driver,
//! options and labels) before `podman volume import`, so the result holds exactly the
//! archive's content, and its root gets its recorded owner and mode back.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backup_core::data::ensure_format_supported;
use backup_core::directory::DirectoryImporter;
use backup_core::{
    ArtifactDescriptor, ByteStream, DataImporter, Error, ErrorKind, ImportMode, Result,
    ServiceTarget,
};
use serde_json::Value;

use crate::bind;
use crate::cli::{Podman, RootAttributes, VolumeInfo, ID_MAPPING_HINT};
use crate::config::{check_volume_name, PodmanConfig};
use crate::quiesce::{with_restart_outcome, Quiesced};
use crate::tarscan::{checked, TarSummary};
use crate::{formats, quadlet_target, volume_artifact_name, QUADLETS_ARTIFACT, RECIPE};

/// Imports what [`crate::PodmanExporter`] exported.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodmanImporter;

/// The volume an artifact restores, checked against its name.
fn volume_of(artifact: &ArtifactDescriptor) -> Result<String> {
    let name = artifact
        .metadata
        .get("volume")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("artifact `{}` names no volume", artifact.name),
            )
        })?;
    check_volume_name(name)?;
    if volume_artifact_name(name) != artifact.name {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "artifact `{}` claims to hold volume `{name}`",
                artifact.name
            ),
        ));
    }
    Ok(name.to_string())
}

/// The volume as it was: driver, options and labels recorded at export.
fn recorded_info(artifact: &ArtifactDescriptor, name: &str) -> VolumeInfo {
    let map = |key: &str| {
        artifact
            .metadata
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    VolumeInfo {
        name: name.to_string(),
        driver: artifact
            .metadata
            .get("driver")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        options: map("options"),
        labels: map("labels"),
        mountpoint: String::new(),
    }
}

fn recorded_root(artifact: &ArtifactDescriptor) -> Option<RootAttributes> {
    let number = |key: &str| {
        artifact
            .metadata
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };
    let mode = artifact
        .metadata
        .get("rootMode")
        .and_then(Value::as_str)
        .and_then(|m| u32::from_str_radix(m, 8).ok())?;
    Some(RootAttributes {
        uid: number("rootUid")?,
        gid: number("rootGid")?,
        mode: mode & 0o7777,
    })
}

fn not_empty(service: &str, what: String) -> Error {
    Error::new(
        ErrorKind::AlreadyExists,
        format!("{what} of service `{service}` is not empty"),
    )
    .with_hint("restore with force to replace it")
}

#[async_trait]
impl DataImporter for PodmanImporter {
    fn formats(&self) -> Vec<String> {
        vec![
            formats::QUADLETS.to_string(),
            formats::VOLUME.to_string(),
            backup_core::artifact::formats::TAR.to_string(),
        ]
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        let config = PodmanConfig::from_service(service)?;
        let podman = config.podman(service);
        for artifact in artifacts {
            ensure_format_supported(self, RECIPE, artifact)?;
            if artifact.name == QUADLETS_ARTIFACT {
                DirectoryImporter
                    .check(
                        &quadlet_target(service, &config),
                        &[directory_artifact()],
                        mode,
                    )
                    .await
                    .map_err(|e| e.context("the quadlet directory"))?;
                continue;
            }
            if bind::is_bind(artifact) {
                continue;
            }
            let volume = volume_of(artifact)?;
            if mode.force {
                continue;
            }
            if let Some(info) = podman.volume_inspect(&volume).await? {
                if podman.has_content(info.local_mountpoint()?).await? {
                    return Err(not_empty(&service.name, format!("volume `{volume}`")));
                }
            }
        }
        Ok(())
    }

    async fn check_new_service(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        let config = PodmanConfig::from_service(service)?;
        for artifact in artifacts {
            ensure_format_supported(self, RECIPE, artifact)?;
            if artifact.name == QUADLETS_ARTIFACT {
                DirectoryImporter
                    .check(
                        &quadlet_target(service, &config),
                        &[directory_artifact()],
                        mode,
                    )
                    .await?;
            } else if !bind::is_bind(artifact) {
                volume_of(artifact)?;
            }
        }
        Ok(())
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        ensure_format_supported(self, RECIPE, artifact)?;
        let config = PodmanConfig::from_service(service)?;
        if artifact.name == QUADLETS_ARTIFACT {
            return DirectoryImporter
                .import(
                    &quadlet_target(service, &config),
                    &directory_artifact(),
                    data,
                    mode,
                )
                .await
                .map_err(|e| e.context("restoring the quadlet files"));
        }
        if bind::is_bind(artifact) {
            let deployment = crate::quadlet::discover(&config.quadlet_dir)?;
            let source = bind::restore_target(artifact, &deployment)?;
            let mut target = service.clone();
            target.config = serde_json::json!({ "path": source });
            return DirectoryImporter
                .import(&target, &directory_artifact(), data, mode)
                .await
                .map_err(|e| e.context(format!("restoring bind mount `{}`", source.display())));
        }
        let volume = volume_of(artifact)?;
        let podman = config.podman(service);
        import_volume(&config, &podman, artifact, &volume, data, mode)
            .await
            .map_err(|e| {
                e.context(format!(
                    "restoring volume `{volume}` of service `{}`",
                    service.name
                ))
            })
    }
}

fn directory_artifact() -> ArtifactDescriptor {
    ArtifactDescriptor::new(
        backup_core::directory::ARTIFACT,
        backup_core::artifact::formats::TAR,
        "application/x-tar",
    )
}

async fn import_volume(
    config: &PodmanConfig,
    podman: &Podman,
    artifact: &ArtifactDescriptor,
    volume: &str,
    data: ByteStream,
    mode: ImportMode,
) -> Result<()> {
    let info = match podman.volume_inspect(volume).await? {
        Some(info) => info,
        None => {
            podman
                .volume_create(&recorded_info(artifact, volume))
                .await?;
            podman.volume_inspect(volume).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::ToolFailed,
                    format!("volume `{volume}` vanished after it was created"),
                )
            })?
        }
    };
    let mountpoint = info.local_mountpoint()?;
    let has_content = podman.has_content(mountpoint).await?;
    if has_content && !mode.force {
        return Err(
            Error::new(ErrorKind::AlreadyExists, "the volume already holds data")
                .with_hint("restore with force to replace it"),
        );
    }
    let mut quiesced = if config.stop_containers {
        Quiesced::stop_users(podman, &[volume.to_string()]).await?
    } else {
        Quiesced::none(podman.clone())
    };
    let imported = replace_content(podman, mountpoint, artifact, volume, data, has_content).await;
    let restarted = quiesced.resume().await;
    match imported {
        Ok(()) => restarted,
        Err(error) => Err(with_restart_outcome(error, restarted)),
    }
}

/// Empties the volume, imports the archive, restores the root's owner and mode. A failed
/// import, or a root owner and mode that cannot be set, leaves the volume empty (never
/// half-restored) and says so.
async fn replace_content(
    podman: &Podman,
    mountpoint: &str,
    artifact: &ArtifactDescriptor,
    volume: &str,
    data: ByteStream,
    had_content: bool,
) -> Result<()> {
    if had_content {
        podman.empty_volume(mountpoint).await?;
    }
    let summary = Arc::new(Mutex::new(TarSummary::default()));
    let input = checked(data, Arc::clone(&summary));
    let restored = match podman.volume_import(volume, input).await {
        Ok(()) => match recorded_root(artifact) {
            // The root's owner and mode are part of the restore: when they cannot be set,
            // the content goes too.
            Some(root) => podman
                .set_root_attributes(mountpoint, root)
                .await
                .map_err(|e| e.context("setting the volume root's owner and mode")),
            None => Ok(()),
        },
        Err(error) => Err(error.context("importing the archive")),
    };
    if let Err(error) = restored {
        let cleaned = podman.empty_volume(mountpoint).await;
        let state = match cleaned {
            Ok(()) => "its partly imported content was removed".to_string(),
            Err(e) => format!("emptying the partly restored volume failed too: {e}"),
        };
        let hint = if error.hint() == Some(ID_MAPPING_HINT) {
            ID_MAPPING_HINT
        } else {
            "the archive is damaged or podman failed; restore again from a good backup (the safe restore keeps the previous content)"
        };
        return Err(error
            .context(format!("restoring the volume failed ({state})"))
            .with_hint(hint));
    }
    Ok(())
}
