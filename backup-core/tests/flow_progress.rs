//! Progress events tell the truth: one `PlanReady` per restore, `Finished` only at the
//! end of a successful operation, a `Failed` naming the service before `RollingBack`,
//! never a `Failed` without a service.

mod flow_support;

use std::sync::Arc;

use backup_core::backup::{create_backup, BackupRequest};
use backup_core::memory_host::InMemoryHost;
use backup_core::progress::{CollectedProgress, ProgressEvent};
use backup_core::restore::restore_backup;
use backup_core::workspace::{import_workspace, ImportOptions};
use flow_support::{
    assert_no_anonymous_failure, backup, count, position, registry, restore_options, source_host,
    workspace,
};
use serde_json::json;

fn is_plan(e: &ProgressEvent) -> bool {
    matches!(e, ProgressEvent::PlanReady { .. })
}

fn is_finished(e: &ProgressEvent) -> bool {
    matches!(e, ProgressEvent::Finished { .. })
}

#[tokio::test]
async fn a_successful_restore_reports_one_plan_and_finishes_last() {
    let (outcome, events) = restore_collecting(json!({})).await;
    outcome.expect("restore");
    assert_eq!(count(&events, is_plan), 1, "{events:?}");
    assert_eq!(count(&events, is_finished), 1, "{events:?}");
    assert!(
        matches!(events.last(), Some(ProgressEvent::Finished { operation }) if operation == "restore"),
        "{events:?}"
    );
    let plan = position(&events, is_plan);
    let created = position(
        &events,
        |e| matches!(e, ProgressEvent::ServiceStarted { operation, .. } if operation == "create"),
    );
    let verified = position(&events, |e| matches!(e, ProgressEvent::Verified { .. }));
    assert!(verified < plan && plan < created, "{events:?}");
    assert_no_anonymous_failure(&events);
}

#[tokio::test]
async fn a_failed_restore_names_the_service_before_rolling_back_and_never_finishes() {
    let (outcome, events) = restore_collecting(json!({ "failImport": true })).await;
    outcome.expect_err("app's import fails");
    assert_eq!(count(&events, is_plan), 1, "{events:?}");
    assert_eq!(count(&events, is_finished), 0, "{events:?}");
    let failed = position(
        &events,
        |e| matches!(e, ProgressEvent::Failed { service, .. } if service == "app"),
    );
    let rolling_back = position(&events, |e| matches!(e, ProgressEvent::RollingBack { .. }));
    assert!(failed < rolling_back, "{events:?}");
    assert!(
        matches!(events.last(), Some(ProgressEvent::OperationFailed { operation, .. }) if operation == "restore"),
        "{events:?}"
    );
    assert_no_anonymous_failure(&events);
}

#[tokio::test]
async fn a_failed_export_names_the_service_and_never_finishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    std::fs::remove_dir_all(tmp.path().join("src/app")).expect("rm");
    let progress = CollectedProgress::new();
    create_backup(
        &source,
        &registry(),
        &BackupRequest::default(),
        &tmp.path().join("b.backup.zip"),
        Arc::new(progress.clone()),
    )
    .await
    .expect_err("app's directory is gone");
    let events = progress.events();
    assert_eq!(count(&events, is_finished), 0, "{events:?}");
    assert!(events
        .iter()
        .any(|e| matches!(e, ProgressEvent::Failed { service, .. } if service == "app")));
    assert!(
        matches!(events.last(), Some(ProgressEvent::OperationFailed { operation, .. }) if operation == "export"),
        "{events:?}"
    );
    assert_no_anonymous_failure(&events);
}

#[tokio::test]
async fn a_workspace_import_reports_one_plan_and_a_named_failure_before_rolling_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let snapshot =
        backup_core::workspace::export_workspace(&source, &registry(), &Default::default())
            .await
            .expect("snapshot");
    let target = InMemoryHost::new(workspace("t"));
    target.fail_on_ready("app");
    let progress = CollectedProgress::new();
    import_workspace(
        &target,
        &registry(),
        &snapshot,
        &ImportOptions::default(),
        &progress,
    )
    .await
    .expect_err("app never gets ready");
    let events = progress.events();
    assert_eq!(count(&events, is_plan), 1, "{events:?}");
    assert_eq!(count(&events, is_finished), 0, "{events:?}");
    let failed = position(
        &events,
        |e| matches!(e, ProgressEvent::Failed { service, .. } if service == "app"),
    );
    let rolling_back = position(&events, |e| matches!(e, ProgressEvent::RollingBack { .. }));
    assert!(failed < rolling_back, "{events:?}");
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::OperationFailed { .. })
    ));
    assert_no_anonymous_failure(&events);
}

/// Backs up a source whose app has `app_config`, restores it into a new workspace, and
/// returns the outcome with every progress event of the restore.
async fn restore_collecting(
    app_config: serde_json::Value,
) -> (
    backup_core::Result<backup_core::restore::RestoreReport>,
    Vec<ProgressEvent>,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), app_config);
    let bundle = backup(&source, tmp.path()).await;
    let progress = CollectedProgress::new();
    let outcome = restore_backup(
        &bundle,
        &InMemoryHost::new(workspace("t")),
        &registry(),
        &restore_options(&tmp.path().join("restored")),
        Arc::new(progress.clone()),
    )
    .await;
    (outcome, progress.events())
}
