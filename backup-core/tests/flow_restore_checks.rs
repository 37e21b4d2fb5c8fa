//! A restore runs every importer check before its first change, in a dry run too; with
//! `force` the services it replaces are checked before they are removed; a failure that
//! leaves data already replaced says so.

mod flow_support;

use std::sync::Arc;

use backup_core::memory_host::{HostCall, InMemoryHost};
use backup_core::progress::{CollectedProgress, NoProgress, ProgressEvent};
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::ErrorKind;
use flow_support::{backup, fill, new, registry, restore_options, source_host, workspace};
use serde_json::json;

#[tokio::test]
async fn a_dry_run_recreating_services_refuses_a_non_empty_target_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = backup(&source, tmp.path()).await;
    let restored = tmp.path().join("restored");
    fill(&restored.join("files"), "someone else's");
    let target = InMemoryHost::new(workspace("t"));
    let mut options = restore_options(&restored);
    options.import.dry_run = true;
    let progress = CollectedProgress::new();
    let err = restore_backup(
        &bundle,
        &target,
        &registry(),
        &options,
        Arc::new(progress.clone()),
    )
    .await
    .expect_err("a real restore would fail on the non-empty target");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.message().contains("files"), "{err}");
    assert!(target.calls().is_empty());
    assert!(progress
        .events()
        .iter()
        .any(|e| matches!(e, ProgressEvent::Failed { service, .. } if service == "files")));
}

#[tokio::test]
async fn a_dry_run_with_force_runs_the_checks_of_the_services_it_would_replace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = backup(&source, tmp.path()).await;
    // The target's existing app cannot take this data (its check refuses).
    let target = InMemoryHost::new(workspace("t"));
    target.insert(new(
        "app",
        "app",
        json!({ "path": tmp.path().join("old-app"), "refuseCheck": true }),
        &[],
    ));
    let mut options = restore_options(&tmp.path().join("restored"));
    options.import.force = true;
    options.import.dry_run = true;
    let err = failing_restore(
        &bundle,
        &target,
        &options,
        "the existing app's check refuses",
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
    assert!(err.message().contains("`app`"), "{err}");
}

#[tokio::test]
async fn force_checks_the_services_it_replaces_before_removing_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), json!({}));
    let bundle = backup(&source, tmp.path()).await;
    let target = InMemoryHost::new(workspace("t"));
    let old_app = tmp.path().join("old-app");
    fill(&old_app, "old app");
    target.insert(new(
        "app",
        "app",
        json!({ "path": old_app, "refuseCheck": true }),
        &[],
    ));
    let mut options = restore_options(&tmp.path().join("restored"));
    options.import.force = true;
    let err = failing_restore(
        &bundle,
        &target,
        &options,
        "the existing app's check refuses",
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
    assert!(
        target.calls().is_empty(),
        "something changed before the checks: {:?}",
        target.calls()
    );
    assert!(target.get("app").is_some(), "the existing app was removed");
    assert!(old_app.join("a.txt").exists());
}

#[tokio::test]
async fn a_failed_forced_recreate_names_the_existing_services_it_removed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The bundle's app fails its import on whatever service it is restored into.
    let source = source_host(&tmp.path().join("src"), json!({ "failImport": true }));
    let bundle = backup(&source, tmp.path()).await;
    let target = InMemoryHost::new(workspace("t"));
    target.insert(new(
        "app",
        "app",
        json!({ "path": tmp.path().join("old-app") }),
        &[],
    ));
    let mut options = restore_options(&tmp.path().join("restored"));
    options.import.force = true;
    let err = failing_restore(&bundle, &target, &options, "app's import fails").await;
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(
        hint.contains("`app`") && hint.contains("removed") && hint.contains("not brought back"),
        "{err:?}"
    );
    // The created services were rolled back.
    assert!(target.deployments().is_empty());
}

#[tokio::test]
async fn a_failed_restore_into_existing_services_names_those_already_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let source = source_host(&src, json!({}));
    let bundle = backup(&source, tmp.path()).await;
    // Now the existing app fails its import: files (stage 0) is replaced, app (stage 1)
    // fails.
    source.insert(new(
        "app",
        "app",
        json!({ "path": src.join("app"), "failImport": true }),
        &["files"],
    ));
    std::fs::write(src.join("files/a.txt"), b"changed since the backup").expect("write");
    let options = RestoreOptions {
        recreate_services: false,
        import: backup_core::workspace::ImportOptions {
            force: true,
            ..Default::default()
        },
        ..RestoreOptions::default()
    };
    let err = failing_restore(&bundle, &source, &options, "app's import fails").await;
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(
        hint.contains("`files`") && hint.contains("already replaced") && !hint.contains("`app`"),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read_to_string(src.join("files/a.txt")).expect("read"),
        "a of files",
        "files was restored before app failed"
    );
    assert!(!source
        .calls()
        .iter()
        .any(|c| matches!(c, HostCall::Removed(_))));
}

/// Restores `bundle` into `host` with no progress sink, expecting it to fail.
async fn failing_restore(
    bundle: &std::path::Path,
    host: &InMemoryHost,
    options: &RestoreOptions,
    why: &str,
) -> backup_core::Error {
    restore_backup(bundle, host, &registry(), options, Arc::new(NoProgress))
        .await
        .expect_err(why)
}
