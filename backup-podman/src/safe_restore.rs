//! [`safe_restore`]: restore a deployment with a way back. Until `backup-repository`'s
//! safe restore lands, the adapter keeps its own safety backup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::{BundleOptions, BundleReader, ManifestEntry};
use backup_core::progress::ProgressEvent;
use backup_core::restore::restore_service_data;
use backup_core::{
    DataImporter, Error, ErrorKind, ImportMode, ProgressSink, Result, ServiceTarget,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::PodmanConfig;
use crate::exporter::deployment_volumes;
use crate::quiesce::Quiesced;
use crate::{PodmanExporter, PodmanImporter, QUADLETS_ARTIFACT};

/// What a successful [`safe_restore`] did.
#[derive(Debug, Clone)]
pub struct SafeRestoreReport {
    /// The safety bundle of the state before the restore (kept, for the caller to
    /// delete or keep).
    pub safety_backup: PathBuf,
    /// Containers stopped for the restore and started again, in start order.
    pub restarted: Vec<String>,
}

/// Restores `source`'s quadlets and volumes from `bundle` into `service`, safely:
///
/// 1. the bundle is verified and its formats checked;
/// 2. the running containers that use the current or restored volumes are stopped;
/// 3. a safety backup of the current quadlet directory and existing volumes is written
///    into `safety_dir`;
/// 4. quadlet files and volumes are restored (clean: each volume holds exactly the
///    bundle's content);
/// 5. the stopped containers are started in dependency order and must still run after
///    `startCheckSeconds`.
///
/// On a failure in 4 or 5, the safety backup is restored, volumes the restore created are
/// removed, the containers are started again, and the error names what failed and
/// whether the rollback succeeded.
///
/// # Errors
///
/// A failure before anything changed (verification, checks, stopping, the safety backup)
/// is returned as is, with the containers started again.
pub async fn safe_restore(
    service: &ServiceTarget,
    bundle: &BundleReader,
    source: &str,
    safety_dir: &Path,
    progress: &dyn ProgressSink,
) -> Result<SafeRestoreReport> {
    let config = PodmanConfig::from_service(service)?;
    let podman = config.podman(service);
    bundle.verify(progress).await?;
    let entries: Vec<ManifestEntry> = bundle
        .manifest()
        .entries
        .iter()
        .filter(|e| e.service == source)
        .cloned()
        .collect();
    if entries.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("the bundle holds no data of service `{source}`"),
        ));
    }
    let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
    let importer = PodmanImporter;
    importer
        .check_new_service(service, &artifacts, ImportMode { force: true })
        .await?;
    let (_, current) = deployment_volumes(&config)?;
    let mut volumes = current;
    for artifact in &artifacts {
        if let Some(name) = artifact.metadata.get("volume").and_then(Value::as_str) {
            if !volumes.iter().any(|v| v == name) {
                volumes.push(name.to_string());
            }
        }
    }
    let mut existing = Vec::new();
    for name in &volumes {
        if podman.volume_inspect(name).await?.is_some() {
            existing.push(name.clone());
        }
    }
    std::fs::create_dir_all(&config.quadlet_dir)
        .map_err(|e| Error::io(format!("creating `{}`", config.quadlet_dir.display()), e))?;
    let mut quiesced = Quiesced::stop_users(&podman, &existing).await?;
    // The containers are stopped: neither the safety backup nor the restore stops more.
    let quiet = with_config(service, &existing, false);
    // Process id and a per-process count: a second safe restore from the same process
    // into the same directory must not collide with the first one's safety backup.
    static SAFETY_BACKUPS: AtomicU64 = AtomicU64::new(0);
    let safety = safety_dir.join(format!(
        "{}-before-restore-{}-{}.backup.zip",
        service.name,
        std::process::id(),
        SAFETY_BACKUPS.fetch_add(1, Ordering::Relaxed)
    ));
    let export = [ServiceExport {
        target: quiet.clone(),
        exporter: Arc::new(PodmanExporter),
    }];
    if let Err(error) =
        write_bundle(&safety, BundleOptions::default(), None, &export, progress).await
    {
        let restarted = quiesced.resume().await;
        return Err(crate::quiesce::with_restart_outcome(
            error.context("writing the safety backup (nothing was changed)"),
            restarted,
        ));
    }
    let restored = async {
        restore_service_data(
            bundle,
            &quiet,
            &importer,
            &entries,
            ImportMode { force: true },
            true,
            progress,
        )
        .await?;
        quiesced.resume().await?;
        check_running(&podman, quiesced.stopped(), config.start_check_seconds).await
    }
    .await;
    let Err(error) = restored else {
        return Ok(SafeRestoreReport {
            safety_backup: safety,
            restarted: quiesced.stopped().to_vec(),
        });
    };
    progress.event(&ProgressEvent::RollingBack {
        reason: error.to_string(),
    });
    let created: Vec<String> = volumes
        .iter()
        .filter(|v| !existing.contains(v))
        .cloned()
        .collect();
    let rollback = roll_back(
        service,
        &quiet,
        &safety,
        &created,
        quiesced.stopped(),
        progress,
    )
    .await;
    Err(match rollback {
        Ok(()) => Error::new(
            error.kind(),
            format!(
                "the restore of service `{}` failed and was rolled back to the state before it (safety backup `{}`): {}",
                service.name,
                safety.display(),
                error.message()
            ),
        )
        .with_hint(
            "the deployment is as it was before the restore; fix the cause above or restore another backup",
        ),
        Err(rollback_error) => Error::new(
            error.kind(),
            format!(
                "the restore of service `{}` failed: {}; and rolling back failed too: {rollback_error}",
                service.name,
                error.message()
            ),
        )
        .with_hint(format!(
            "restore the safety backup `{}` by hand (it holds the quadlets and volumes from before the restore)",
            safety.display()
        )),
    })
}

/// The service with an explicit volume list and container stopping switched.
fn with_config(service: &ServiceTarget, volumes: &[String], stop: bool) -> ServiceTarget {
    let mut target = service.clone();
    if let Value::Object(map) = &mut target.config {
        map.insert("volumes".into(), serde_json::json!(volumes));
        map.insert("stopContainers".into(), Value::Bool(stop));
    }
    target
}

async fn check_running(podman: &crate::Podman, ids: &[String], settle: u64) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    tokio::time::sleep(Duration::from_secs(settle)).await;
    for id in ids {
        if !podman.is_running(id).await? {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("container `{}` does not run after the restore", short(id)),
            )
            .with_hint("see `podman logs` of the container"));
        }
    }
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

async fn roll_back(
    service: &ServiceTarget,
    quiet: &ServiceTarget,
    safety: &Path,
    created: &[String],
    containers: &[String],
    progress: &dyn ProgressSink,
) -> Result<()> {
    let config = PodmanConfig::from_service(quiet)?;
    let podman = config.podman(service);
    // Stop what the failed restore may have started.
    let mut running = Vec::new();
    for id in containers {
        if podman.is_running(id).await.unwrap_or(false) {
            running.push(id.clone());
        }
    }
    podman.stop(&running).await?;
    let reader = BundleReader::open(safety).await?;
    let entries: Vec<ManifestEntry> = reader.manifest().entries.clone();
    let mut ordered: Vec<ManifestEntry> = entries
        .iter()
        .filter(|e| e.artifact.name == QUADLETS_ARTIFACT)
        .cloned()
        .collect();
    ordered.extend(
        entries
            .into_iter()
            .filter(|e| e.artifact.name != QUADLETS_ARTIFACT),
    );
    restore_service_data(
        &reader,
        quiet,
        &PodmanImporter,
        &ordered,
        ImportMode { force: true },
        false,
        progress,
    )
    .await?;
    for name in created {
        let spec = podman.spec(["volume", "rm", "--force", name.as_str()]);
        let _ = backup_core::CommandRunnerExt::output(service.runner.as_ref(), &spec).await;
    }
    podman.start(containers).await
}
