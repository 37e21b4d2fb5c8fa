//! [`PodmanExporter`]: the quadlet files as one tar, each named volume as the tar
//! `podman volume export` streams, with the volume's driver, options, labels and root
//! owner and mode in the manifest.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backup_core::artifact::{late_metadata_channel, LateMetadataSender};
use backup_core::directory::DirectoryExporter;
use backup_core::{
    ArtifactData, ArtifactDescriptor, ByteStream, DataExporter, Error, ErrorKind,
    ExportRequirements, RequiredState, Result, ServiceTarget,
};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use crate::bind;
use crate::cli::{Podman, VolumeInfo};
use crate::config::{BindMounts, PodmanConfig};
use crate::export_inspection::{Inspected, Inspection};
use crate::quadlet::{discover, Deployment};
use crate::quiesce::{with_restart_outcome, Quiesced};
use crate::tarscan::{checked, TarSummary};
use crate::{formats, quadlet_target, volume_artifact_name, QUADLETS_ARTIFACT};

/// Exports a podman deployment: quadlet files and named volumes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PodmanExporter;

/// The deployment's quadlets and the volumes to back up (`volumes`, else discovered).
pub(crate) fn deployment_volumes(config: &PodmanConfig) -> Result<(Deployment, Vec<String>)> {
    let deployment = if config.quadlet_dir.is_dir() {
        discover(&config.quadlet_dir)?
    } else {
        Deployment::default()
    };
    let volumes = match &config.volumes {
        Some(list) => list.clone(),
        None => deployment.volumes.iter().map(|v| v.name.clone()).collect(),
    };
    Ok((deployment, volumes))
}

fn quadlets_metadata(
    deployment: &Deployment,
    volumes: &[String],
    skipped: Vec<Value>,
) -> Map<String, Value> {
    let mut map = Map::new();
    let files: Vec<Value> = deployment.units.iter().map(|u| json!(u.file)).collect();
    map.insert("units".into(), Value::Array(files));
    map.insert("volumes".into(), json!(volumes));
    if !skipped.is_empty() {
        map.insert("skippedBindMounts".into(), Value::Array(skipped));
    }
    map
}

fn volume_metadata(info: &VolumeInfo) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("volume".into(), json!(info.name));
    map.insert("driver".into(), json!(info.driver));
    map.insert("options".into(), json!(info.options));
    map.insert("labels".into(), json!(info.labels));
    map
}

#[async_trait]
impl DataExporter for PodmanExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Any,
            consistency: "with stopContainers (the default) the running containers that use a volume are stopped while it is exported and started again afterwards".to_string(),
        }
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        let config = PodmanConfig::from_service(service)?;
        if !config.quadlet_dir.is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "quadlet directory `{}` of service `{}` does not exist",
                    config.quadlet_dir.display(),
                    service.name
                ),
            )
            .with_hint("check the service's `quadletDir`"));
        }
        let (deployment, volumes) = deployment_volumes(&config)?;
        let podman = config.podman(service);
        let include = config.bind_mounts == BindMounts::Include;
        let (binds, skipped) = bind::plan(&deployment, include);
        let mut artifacts = vec![ArtifactDescriptor {
            metadata: quadlets_metadata(&deployment, &volumes, skipped),
            ..ArtifactDescriptor::new(QUADLETS_ARTIFACT, formats::QUADLETS, "application/x-tar")
        }];
        for name in &volumes {
            let info = podman.volume_inspect(name).await?.ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "volume `{name}` of service `{}` does not exist",
                        service.name
                    ),
                )
                .with_hint("create it (start the deployment once) or remove it from `volumes`")
            })?;
            artifacts.push(ArtifactDescriptor {
                metadata: volume_metadata(&info),
                ..ArtifactDescriptor::new(
                    volume_artifact_name(name),
                    formats::VOLUME,
                    "application/x-tar",
                )
            });
        }
        for (name, source) in binds {
            artifacts.push(
                ArtifactDescriptor::new(
                    name,
                    backup_core::artifact::formats::TAR,
                    "application/x-tar",
                )
                .with_metadata("source", json!(source.display().to_string())),
            );
        }
        Ok(artifacts)
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        let config = PodmanConfig::from_service(service)?;
        if artifact.name == QUADLETS_ARTIFACT {
            return DirectoryExporter
                .export(&quadlet_target(service, &config), &directory_artifact())
                .await;
        }
        if bind::is_bind(artifact) {
            let source = artifact
                .metadata
                .get("source")
                .cloned()
                .unwrap_or(Value::Null);
            let mut target = service.clone();
            target.config = json!({ "path": source });
            return DirectoryExporter
                .export(&target, &directory_artifact())
                .await;
        }
        let volume = artifact
            .metadata
            .get("volume")
            .and_then(Value::as_str)
            .filter(|v| volume_artifact_name(v) == artifact.name)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "podman service `{}` has no artifact `{}`",
                        service.name, artifact.name
                    ),
                )
            })?
            .to_string();
        export_volume(&config, config.podman(service), volume).await
    }
}

fn directory_artifact() -> ArtifactDescriptor {
    ArtifactDescriptor::new(
        backup_core::directory::ARTIFACT,
        backup_core::artifact::formats::TAR,
        "application/x-tar",
    )
}

/// Exports one volume, with its users stopped around it when configured. The volume's
/// inspection runs beside the export and is awaited when the tar ends: a missing volume,
/// a driver without a mount point or a mismatched `rootless` setting still fails the
/// export (with that error rather than podman's), before anything is recorded.
pub(crate) async fn export_volume(
    config: &PodmanConfig,
    podman: Podman,
    volume: String,
) -> Result<ArtifactData> {
    let mut quiesced = if config.stop_containers {
        Quiesced::stop_users(&podman, std::slice::from_ref(&volume)).await?
    } else {
        Quiesced::none(podman.clone())
    };
    let inspection = Inspection::start(&podman, &volume);
    let stream = match podman.volume_export(&volume).await {
        Ok(stream) => stream,
        Err(error) => {
            let error = inspection.outcome().await.err().unwrap_or(error);
            let restarted = quiesced.resume().await;
            return Err(with_restart_outcome(error, restarted));
        }
    };
    let (sender, late) = late_metadata_channel("the volume export");
    let summary = Arc::new(Mutex::new(TarSummary::default()));
    let state = ExportState {
        inner: checked(stream, Arc::clone(&summary)),
        summary,
        quiesced,
        volume,
        inspection: Some(inspection),
        sender: Some(sender),
        done: false,
    };
    let stream: ByteStream = Box::pin(futures::stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    }));
    Ok(ArtifactData {
        stream,
        late_metadata: Some(late),
    })
}

struct ExportState {
    inner: ByteStream,
    summary: Arc<Mutex<TarSummary>>,
    quiesced: Quiesced,
    volume: String,
    inspection: Option<Inspection>,
    sender: Option<LateMetadataSender>,
    done: bool,
}

impl ExportState {
    async fn next_item(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        if self.done {
            return None;
        }
        let outcome = match self.inner.next().await {
            Some(Ok(chunk)) => return Some(Ok(chunk)),
            Some(Err(e)) => {
                let failed = Error::io(format!("exporting volume `{}`", self.volume), e);
                // The inspection names the cause better (no such volume, wrong mode).
                Err(self.inspected().await.err().unwrap_or(failed))
            }
            None => match self.inspected().await {
                Ok(inspected) => self.check_complete(inspected),
                Err(error) => Err(error),
            },
        };
        self.done = true;
        let restarted = self.quiesced.resume().await;
        match (outcome, restarted) {
            (Ok(metadata), Ok(())) => {
                if let Some(sender) = self.sender.take() {
                    let _ = sender.send(Ok(metadata));
                }
                None
            }
            (Ok(_), Err(not_started)) => Some(Err(not_started.into_io())),
            (Err(error), restarted) => Some(Err(with_restart_outcome(error, restarted).into_io())),
        }
    }

    async fn inspected(&mut self) -> Result<Inspected> {
        match self.inspection.take() {
            Some(inspection) => inspection.outcome().await,
            None => Err(Error::new(
                ErrorKind::Cancelled,
                "the volume inspection was already used",
            )),
        }
    }

    fn check_complete(&self, (root, non_empty): Inspected) -> Result<Map<String, Value>> {
        let summary = self.summary.lock().map(|s| *s).unwrap_or_default();
        if summary.entries == 0 && non_empty {
            return Err(Error::new(
                ErrorKind::ToolFailed,
                format!("`podman volume export {}` produced an empty archive of a volume that holds data", self.volume),
            )
            .with_hint("check the volume's driver and that podman can read it (`podman volume export` by hand)"));
        }
        let mut map = Map::new();
        map.insert("rootUid".into(), json!(root.uid));
        map.insert("rootGid".into(), json!(root.gid));
        map.insert("rootMode".into(), json!(format!("{:o}", root.mode)));
        map.insert("entries".into(), json!(summary.entries));
        map.insert("fileBytes".into(), json!(summary.file_bytes));
        Ok(map)
    }
}
