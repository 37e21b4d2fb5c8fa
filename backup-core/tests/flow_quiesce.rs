//! `create_backup` honours `DataExporter::requirements()`: a service whose exporter needs
//! it stopped is stopped through the host for its export and started again afterwards.

mod flow_support;

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use backup_core::artifact::{ArtifactData, ArtifactDescriptor};
use backup_core::async_trait;
use backup_core::backup::{create_backup, BackupRequest};
use backup_core::memory_host::{HostCall, InMemoryHost, STATUS_RUNNING, STATUS_STOPPED};
use backup_core::progress::{CollectedProgress, ProgressEvent, ProgressSink};
use backup_core::{
    DataExporter, ErrorKind, ExportRequirements, Recipe, RequiredState, Result, ServiceTarget,
};
use flow_support::{new, registry, source_host, workspace};
use futures::FutureExt;
use serde_json::json;

/// Records the host's status of `files` every time bytes of `files` reach the bundle.
struct StatusDuringExport {
    host: Arc<InMemoryHost>,
    seen: Mutex<Vec<String>>,
}

impl ProgressSink for StatusDuringExport {
    fn event(&self, event: &ProgressEvent) {
        if let ProgressEvent::BytesTransferred { service, .. } = event {
            let status = self.host.get(service).expect("exported service").status;
            self.seen
                .lock()
                .expect("lock")
                .push(format!("{service}:{status}"));
        }
    }
}

fn quiesce_calls(host: &InMemoryHost) -> Vec<HostCall> {
    host.calls()
        .into_iter()
        .filter(|c| matches!(c, HostCall::Stopped(_) | HostCall::Started(_)))
        .collect()
}

#[tokio::test]
async fn a_service_whose_exporter_needs_it_stopped_is_stopped_during_its_export_and_started_after()
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = Arc::new(source_host(&tmp.path().join("src"), json!({})));
    let sink = Arc::new(StatusDuringExport {
        host: Arc::clone(&host),
        seen: Mutex::new(Vec::new()),
    });
    let path = tmp.path().join("b.backup.zip");
    create_backup(
        host.as_ref(),
        &registry(),
        &BackupRequest::default(),
        &path,
        sink.clone(),
    )
    .await
    .expect("backup");
    let seen = sink.seen.lock().expect("lock").clone();
    assert!(seen.iter().any(|s| s.starts_with("files:")), "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.ends_with(&format!(":{STATUS_STOPPED}"))),
        "bytes were read while a service was not stopped: {seen:?}"
    );
    // Both services use the directory exporter (RequiredState::Stopped): each is stopped
    // for its own export only, in export order.
    assert_eq!(
        quiesce_calls(&host),
        [
            HostCall::Stopped("app".into()),
            HostCall::Started("app".into()),
            HostCall::Stopped("files".into()),
            HostCall::Started("files".into()),
        ]
    );
    assert_eq!(host.get("files").expect("files").status, STATUS_RUNNING);
    assert!(path.exists());
}

#[tokio::test]
async fn a_failing_export_still_starts_the_stopped_service_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = source_host(&tmp.path().join("src"), json!({}));
    std::fs::remove_dir_all(tmp.path().join("src/files")).expect("rm");
    let progress = CollectedProgress::new();
    let path = tmp.path().join("b.backup.zip");
    let err = create_backup(
        &host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(progress.clone()),
    )
    .await
    .expect_err("the files directory is gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(
        quiesce_calls(&host)[2..],
        [
            HostCall::Stopped("files".into()),
            HostCall::Started("files".into())
        ]
    );
    assert_eq!(host.get("files").expect("files").status, STATUS_RUNNING);
    assert!(!path.exists());
    assert!(progress
        .events()
        .iter()
        .any(|e| matches!(e, ProgressEvent::Failed { service, .. } if service == "files")));
}

#[derive(Debug)]
struct PanickingExporter;

#[async_trait]
impl DataExporter for PanickingExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Stopped,
            consistency: "copy files of a stopped service".into(),
        }
    }

    async fn artifacts(&self, _service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        panic!("exporter bug")
    }

    async fn export(
        &self,
        _service: &ServiceTarget,
        _artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        panic!("exporter bug")
    }
}

#[tokio::test]
async fn a_panicking_export_starts_the_stopped_service_before_the_panic_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut registry = registry();
    registry.register(
        Recipe::builder("buggy", json!({ "type": "object" }))
            .exporter(Arc::new(PanickingExporter))
            .build()
            .expect("recipe"),
    );
    let host = InMemoryHost::new(workspace("w"));
    host.insert(new("buggy", "buggy", json!({}), &[]));
    let path = tmp.path().join("b.backup.zip");
    let outcome = AssertUnwindSafe(create_backup(
        &host,
        &registry,
        &BackupRequest::default(),
        &path,
        Arc::new(CollectedProgress::new()),
    ))
    .catch_unwind()
    .await;
    assert!(outcome.is_err(), "the panic must reach the caller");
    assert_eq!(
        quiesce_calls(&host),
        [
            HostCall::Stopped("buggy".into()),
            HostCall::Started("buggy".into())
        ]
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn a_host_that_cannot_stop_services_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = source_host(&tmp.path().join("src"), json!({})).without_stop_support();
    let path = tmp.path().join("b.backup.zip");
    let err = create_backup(
        &host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("cannot stop");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("`files`"), "{err}");
    assert!(err.message().contains("cannot stop"), "{err}");
    assert!(
        err.hint().is_some_and(|h| h.contains("already_stopped")),
        "{err:?}"
    );
    assert!(host.calls().is_empty(), "{:?}", host.calls());
    assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 1);
}

#[tokio::test]
async fn services_the_caller_stopped_itself_are_exported_without_stop_or_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = source_host(&tmp.path().join("src"), json!({})).without_stop_support();
    let path = tmp.path().join("b.backup.zip");
    let request = BackupRequest {
        already_stopped: vec!["files".into(), "app".into()],
        ..BackupRequest::default()
    };
    create_backup(
        &host,
        &registry(),
        &request,
        &path,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("backup of services the caller stopped");
    assert!(quiesce_calls(&host).is_empty());
    assert!(path.exists());

    let unknown = BackupRequest {
        already_stopped: vec!["nope".into()],
        ..BackupRequest::default()
    };
    let err = create_backup(
        &host,
        &registry(),
        &unknown,
        &tmp.path().join("c.backup.zip"),
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("unknown service");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[derive(Debug)]
struct HangingExporter;

#[async_trait]
impl DataExporter for HangingExporter {
    fn requirements(&self) -> ExportRequirements {
        ExportRequirements {
            required_state: RequiredState::Stopped,
            consistency: "copy files of a stopped service".into(),
        }
    }

    async fn artifacts(&self, _service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        futures::future::pending().await
    }

    async fn export(
        &self,
        _service: &ServiceTarget,
        _artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        futures::future::pending().await
    }
}

#[tokio::test]
async fn a_backup_cancelled_while_a_service_is_stopped_reports_it_left_stopped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut registry = registry();
    registry.register(
        Recipe::builder("stuck", json!({ "type": "object" }))
            .exporter(Arc::new(HangingExporter))
            .build()
            .expect("recipe"),
    );
    let host = InMemoryHost::new(workspace("w"));
    host.insert(new("stuck", "stuck", json!({}), &[]));
    let progress = CollectedProgress::new();
    let path = tmp.path().join("b.backup.zip");
    let request = BackupRequest::default();
    let backup = create_backup(
        &host,
        &registry,
        &request,
        &path,
        Arc::new(progress.clone()),
    );
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), backup).await;
    assert!(timed_out.is_err(), "the export hangs");
    assert_eq!(quiesce_calls(&host), [HostCall::Stopped("stuck".into())]);
    assert!(
        progress.events().iter().any(|e| matches!(
            e,
            ProgressEvent::Failed { service, error } if service == "stuck" && error.contains("not started again")
        )),
        "{:?}",
        progress.events()
    );
    assert!(!path.exists());
}

#[tokio::test]
async fn a_service_that_was_not_running_is_backed_up_and_stays_stopped() {
    use backup_core::WorkspaceHost;
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = source_host(&tmp.path().join("src"), json!({}));
    host.stop_service("files")
        .await
        .expect("stop files by hand");
    let path = tmp.path().join("b.backup.zip");
    create_backup(
        &host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("backup");
    assert_eq!(
        quiesce_calls(&host),
        [
            HostCall::Stopped("files".into()),
            HostCall::Stopped("app".into()),
            HostCall::Started("app".into()),
        ],
        "only the running service is stopped and started; `files` is left alone"
    );
    assert_eq!(host.get("files").expect("files").status, STATUS_STOPPED);
    assert!(path.exists());
}
