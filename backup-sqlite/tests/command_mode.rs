//! Command mode runs the real `sqlite3` through the service's runner (here the real
//! `LocalRunner`), and names a missing tool with a hint.

#![allow(clippy::unwrap_used)]

mod common;

use backup_core::{ErrorKind, ImportMode, ServiceTarget};
use serde_json::json;

#[tokio::test]
async fn command_mode_exports_a_consistent_copy_through_the_runner_and_removes_it() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    common::create_empty(&db, "wal");
    common::fill_app_like(&db, 120);
    let remote_tmp = common::dir_in(root.path(), "container-tmp");
    let source = ServiceTarget::local(
        "app",
        backup_sqlite::RECIPE,
        json!({ "path": db, "runner": "command", "tempDir": remote_tmp }),
    );
    let recipe = backup_sqlite::recipe().unwrap();
    let exporter = recipe.exporter().cloned().unwrap();
    let artifacts = exporter.artifacts(&source).await.unwrap();
    assert!(artifacts[0]
        .source_version
        .as_deref()
        .unwrap_or("")
        .starts_with('3'));

    let bundle = root.path().join("app.backup.zip");
    common::export(&recipe, &source, &bundle).await.unwrap();
    assert!(
        common::files_in(&remote_tmp).is_empty(),
        "the temporary copy was left in the container's temp dir"
    );
    let metadata = common::manifest_metadata(&bundle).await;
    assert_eq!(metadata["journalMode"], "wal");
    assert_eq!(metadata["userVersion"], 42);
    assert_eq!(metadata["tables"]["heartbeat"], 120);

    // The restore (local mode) checks the command-mode metadata: same row counts, same
    // schema hash, same sha256.
    let target_db = root.path().join("restored").join("app.db");
    common::restore(
        &recipe,
        &bundle,
        "app",
        &common::service("restored", &target_db),
        ImportMode::default(),
    )
    .await
    .unwrap();
    assert_eq!(common::dump(&db), common::dump(&target_db));
}

#[tokio::test]
async fn command_mode_reports_a_missing_sqlite3_with_a_hint() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    common::fill_app_like(&db, 3);
    let source = ServiceTarget::local(
        "app",
        backup_sqlite::RECIPE,
        json!({ "path": db, "runner": "command", "tool": "/nonexistent/bin/sqlite3" }),
    );
    let recipe = backup_sqlite::recipe().unwrap();
    let exporter = recipe.exporter().cloned().unwrap();
    let err = exporter.artifacts(&source).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let shown = format!("{err} {}", err.hint().unwrap_or_default());
    assert!(shown.contains("/nonexistent/bin/sqlite3"), "{shown}");
    assert!(
        shown.contains("directory"),
        "no hint to the directory adapter: {shown}"
    );

    let bundle = root.path().join("app.backup.zip");
    let err = common::export(&recipe, &source, &bundle).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!bundle.exists());
}

#[tokio::test]
async fn command_mode_export_of_a_missing_database_fails_without_creating_it() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("missing.db");
    let source = ServiceTarget::local(
        "app",
        backup_sqlite::RECIPE,
        json!({ "path": db, "runner": "command" }),
    );
    let recipe = backup_sqlite::recipe().unwrap();
    let err = recipe
        .exporter()
        .unwrap()
        .artifacts(&source)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(!db.exists(), "probing created the database");
}

#[tokio::test]
async fn command_mode_restore_is_refused_before_anything_is_touched() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    let target = ServiceTarget::local(
        "app",
        backup_sqlite::RECIPE,
        json!({ "path": db, "runner": "command" }),
    );
    let recipe = backup_sqlite::recipe().unwrap();
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_sqlite::ARTIFACT,
        "sqlite",
        backup_sqlite::CONTENT_TYPE,
    );
    let err = recipe
        .importer()
        .unwrap()
        .check(&target, &[artifact], ImportMode::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(!db.exists());
}

#[tokio::test]
async fn command_mode_removes_its_copy_when_the_consumer_stops_early() {
    use futures::StreamExt;
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    common::create_empty(&db, "wal");
    common::fill_bulk(&db, 8);
    let remote_tmp = common::dir_in(root.path(), "container-tmp");
    let source = ServiceTarget::local(
        "app",
        backup_sqlite::RECIPE,
        json!({ "path": db, "runner": "command", "tempDir": remote_tmp }),
    );
    let recipe = backup_sqlite::recipe().unwrap();
    let exporter = recipe.exporter().cloned().unwrap();
    let artifact = exporter.artifacts(&source).await.unwrap().remove(0);
    let data = exporter.export(&source, &artifact).await.unwrap();
    let mut stream = data.stream;
    stream.next().await.unwrap().unwrap();
    assert_eq!(
        common::files_in(&remote_tmp).len(),
        1,
        "the copy is being streamed"
    );
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !common::files_in(&remote_tmp).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        common::files_in(&remote_tmp).is_empty(),
        "a dropped export left its copy in the container"
    );
    assert!(
        data.late_metadata.unwrap().await.is_err(),
        "an unfinished export delivered metadata"
    );
}
