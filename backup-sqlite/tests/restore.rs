//! Round trips of rollback-journal, empty and app-like databases, and the import's
//! guarantees: refused non-empty target, untouched target on a bad stream, stale WAL.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use backup_core::{ArtifactDescriptor, ByteStream, ErrorKind, ImportMode, ServiceTarget};
use futures::StreamExt;
use rusqlite::Connection;
use serde_json::json;

fn file_digest(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Exports `source` and returns the artifact (with its late metadata) and the bytes.
async fn export_bytes(source: &ServiceTarget) -> (ArtifactDescriptor, Vec<u8>) {
    let recipe = backup_sqlite::recipe().unwrap();
    let exporter = recipe.exporter().cloned().unwrap();
    let mut artifact = exporter.artifacts(source).await.unwrap().remove(0);
    let data = exporter.export(source, &artifact).await.unwrap();
    let mut bytes = Vec::new();
    let mut stream = data.stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    artifact
        .metadata
        .extend(data.late_metadata.unwrap().await.unwrap());
    (artifact, bytes)
}

fn stream_of(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from(bytes))]))
}

#[tokio::test]
async fn rollback_journal_database_round_trips_with_equal_dump() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("journal.db");
    common::create_empty(&db, "delete");
    common::fill_app_like(&db, 200);
    let recipe = backup_sqlite::recipe().unwrap();
    let bundle = root.path().join("j.backup.zip");
    common::export(&recipe, &common::service("j", &db), &bundle)
        .await
        .unwrap();
    let metadata = common::manifest_metadata(&bundle).await;
    assert_eq!(metadata["journalMode"], "delete");
    assert_eq!(metadata["userVersion"], 42);
    assert_eq!(metadata["tables"]["workflow_entity"], 200);
    let target = root.path().join("out").join("journal.db");
    common::restore(
        &recipe,
        &bundle,
        "j",
        &common::service("out", &target),
        ImportMode::default(),
    )
    .await
    .unwrap();
    assert_eq!(common::dump(&db), common::dump(&target));
    assert_eq!(
        common::sqlite3(&target, "PRAGMA journal_mode;").trim(),
        "delete"
    );
}

#[tokio::test]
async fn n8n_and_uptime_kuma_presets_round_trip_with_equal_dump() {
    for (recipe, file) in [
        (
            backup_sqlite::n8n_recipe().unwrap(),
            backup_sqlite::N8N_DATABASE,
        ),
        (
            backup_sqlite::uptime_kuma_recipe().unwrap(),
            backup_sqlite::UPTIME_KUMA_DATABASE,
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let data_dir = common::dir_in(root.path(), "data");
        let db = data_dir.join(file);
        common::create_empty(&db, "wal");
        common::fill_app_like(&db, 150);
        let slug = recipe.slug().to_string();
        let source = ServiceTarget::local("app", slug.clone(), json!({ "dataDir": data_dir }));
        let bundle = root.path().join("app.backup.zip");
        common::export(&recipe, &source, &bundle).await.unwrap();
        let restored_dir = root.path().join("restored-data");
        let target = ServiceTarget::local("app2", slug, json!({ "dataDir": restored_dir }));
        common::restore(&recipe, &bundle, "app", &target, ImportMode::default())
            .await
            .unwrap();
        let dump = common::dump(&restored_dir.join(file));
        assert!(dump.contains("CREATE TRIGGER workflow_updated"));
        assert!(dump.contains("CREATE VIEW monitor_status"));
        assert!(dump.contains("WITHOUT ROWID"));
        assert_eq!(common::dump(&db), dump, "{file}: .dump differs");
        assert_eq!(
            common::sqlite3(&restored_dir.join(file), "PRAGMA user_version;").trim(),
            "42"
        );
    }
}

#[tokio::test]
async fn empty_database_round_trips_with_no_tables_recorded() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("empty.db");
    common::create_empty(&db, "delete");
    let recipe = backup_sqlite::recipe().unwrap();
    let bundle = root.path().join("e.backup.zip");
    common::export(&recipe, &common::service("e", &db), &bundle)
        .await
        .unwrap();
    assert_eq!(
        common::manifest_metadata(&bundle).await["tables"],
        json!({})
    );
    let target = root.path().join("out").join("empty.db");
    common::restore(
        &recipe,
        &bundle,
        "e",
        &common::service("out", &target),
        ImportMode::default(),
    )
    .await
    .unwrap();
    assert!(target.exists());
    assert_eq!(common::dump(&db), common::dump(&target));
}

#[tokio::test]
async fn non_empty_target_is_refused_without_force() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src.db"), root.path().join("dst.db"));
    common::fill_app_like(&src, 10);
    common::fill_app_like(&dst, 3);
    let before = file_digest(&dst);
    let (artifact, bytes) = export_bytes(&common::service("src", &src)).await;
    let recipe = backup_sqlite::recipe().unwrap();
    let importer = recipe.importer().cloned().unwrap();
    let target = common::service("dst", &dst);
    let err = importer
        .check(
            &target,
            std::slice::from_ref(&artifact),
            ImportMode::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let err = importer
        .import(
            &target,
            &artifact,
            stream_of(bytes.clone()),
            ImportMode::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(file_digest(&dst), before);
    importer
        .import(
            &target,
            &artifact,
            stream_of(bytes),
            ImportMode { force: true },
        )
        .await
        .unwrap();
    assert_eq!(common::dump(&src), common::dump(&dst));
}

#[tokio::test]
async fn truncated_or_corrupt_stream_leaves_the_old_file_in_place() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src.db");
    common::fill_app_like(&src, 400);
    let dir = common::dir_in(root.path(), "target");
    let dst = dir.join("app.db");
    common::fill_app_like(&dst, 5);
    let before = file_digest(&dst);
    let (artifact, bytes) = export_bytes(&common::service("src", &src)).await;
    let recipe = backup_sqlite::recipe().unwrap();
    let importer = recipe.importer().cloned().unwrap();
    let target = common::service("dst", &dst);
    let force = ImportMode { force: true };

    let mut without_metadata = artifact.clone();
    without_metadata.metadata.clear();
    let truncated = bytes[..bytes.len() / 2].to_vec();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2 + 17;
    flipped[middle] ^= 0xff;
    let failed_stream: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(bytes::Bytes::from(bytes[..4096].to_vec())),
        Err(std::io::Error::other("connection reset")),
    ]));
    for (what, artifact, data) in [
        (
            "truncated, with metadata",
            &artifact,
            stream_of(truncated.clone()),
        ),
        (
            "truncated, no metadata",
            &without_metadata,
            stream_of(truncated),
        ),
        ("one byte flipped", &artifact, stream_of(flipped)),
        ("stream error", &artifact, failed_stream),
    ] {
        let result = importer.import(&target, artifact, data, force).await;
        assert!(result.is_err(), "{what}: the import succeeded");
        assert_eq!(file_digest(&dst), before, "{what}: the target changed");
        assert_eq!(
            common::files_in(&dir),
            ["app.db"],
            "{what}: files left behind"
        );
    }
    let err = importer
        .import(
            &target,
            &artifact,
            stream_of(bytes[..bytes.len() / 2].to_vec()),
            force,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
}

#[tokio::test]
async fn stale_wal_of_the_replaced_file_is_not_replayed_into_the_restored_one() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src.db");
    common::create_empty(&src, "wal");
    common::fill_app_like(&src, 50);
    let (artifact, bytes) = export_bytes(&common::service("src", &src)).await;

    let dst = root.path().join("dst.db");
    common::create_empty(&dst, "wal");
    {
        // An app that stopped without checkpointing leaves frames in dst.db-wal.
        let conn = Connection::open(&dst).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; CREATE TABLE old (x); INSERT INTO old VALUES (1), (2);",
        )
        .unwrap();
    }
    let wal = root.path().join("dst.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the test needs a stale WAL"
    );

    let recipe = backup_sqlite::recipe().unwrap();
    let importer = recipe.importer().cloned().unwrap();
    let target = common::service("dst", &dst);
    importer
        .import(
            &target,
            &artifact,
            stream_of(bytes),
            ImportMode { force: true },
        )
        .await
        .unwrap();
    importer.smoke_test(&target, &artifact).await.unwrap();
    assert_eq!(common::dump(&src), common::dump(&dst));
    assert!(!common::dump(&dst).contains("CREATE TABLE old"));
}

#[tokio::test]
async fn smoke_test_reports_a_row_count_that_differs_from_the_manifest() {
    let root = tempfile::tempdir().unwrap();
    let (src, dst) = (root.path().join("src.db"), root.path().join("dst.db"));
    common::fill_app_like(&src, 20);
    let (artifact, bytes) = export_bytes(&common::service("src", &src)).await;
    let recipe = backup_sqlite::recipe().unwrap();
    let importer = recipe.importer().cloned().unwrap();
    let target = common::service("dst", &dst);
    importer
        .import(&target, &artifact, stream_of(bytes), ImportMode::default())
        .await
        .unwrap();
    importer.smoke_test(&target, &artifact).await.unwrap();
    common::sqlite3(&dst, "DELETE FROM monitor WHERE id = 3;");
    let err = importer.smoke_test(&target, &artifact).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(err.to_string().contains("monitor"), "{err}");
}

#[tokio::test]
async fn database_open_in_another_process_is_not_replaced() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("src.db");
    common::fill_app_like(&src, 30);
    let (artifact, bytes) = export_bytes(&common::service("src", &src)).await;
    let dir = common::dir_in(root.path(), "target");
    let dst = dir.join("app.db");
    common::create_empty(&dst, "wal");
    common::fill_app_like(&dst, 4);

    // The "app": a sqlite3 process that opened the database and keeps it open.
    let mut app = std::process::Command::new("sqlite3")
        .arg(&dst)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = app.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"SELECT 'opened', count(*) FROM monitor;\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(app.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("opened"), "{line}");
    let before = common::dump(&dst);

    let recipe = backup_sqlite::recipe().unwrap();
    let importer = recipe.importer().cloned().unwrap();
    let target = common::service("dst", &dst);
    let force = ImportMode { force: true };
    let err = importer
        .import(&target, &artifact, stream_of(bytes.clone()), force)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.hint().unwrap_or_default().contains("stop the app"),
        "{err}"
    );
    assert_eq!(common::dump(&dst), before, "the open database was changed");
    assert!(
        !common::files_in(&dir).iter().any(|f| f.contains("restore")),
        "a temporary file was left behind"
    );

    drop(stdin);
    assert!(app.wait().unwrap().success());
    importer
        .import(&target, &artifact, stream_of(bytes), force)
        .await
        .unwrap();
    assert_eq!(common::dump(&src), common::dump(&dst));
}

#[tokio::test]
async fn export_metadata_describes_the_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("meta.db");
    common::sqlite3(&db, "PRAGMA page_size = 8192; VACUUM;");
    common::fill_app_like(&db, 25);
    let (artifact, bytes) = export_bytes(&common::service("meta", &db)).await;
    let m = &artifact.metadata;
    assert_eq!(m["sqliteVersion"], rusqlite::version());
    assert_eq!(m["pageSize"], 8192);
    assert_eq!(m["pageCount"], json!(bytes.len() / 8192));
    assert_eq!(m["journalMode"], "delete");
    assert_eq!(m["userVersion"], 42);
    assert_eq!(m["sizeBytes"], json!(bytes.len()));
    assert_eq!(
        m["tables"],
        json!({"execution_entity": 25, "heartbeat": 25, "monitor": 25, "setting": 1, "workflow_entity": 25})
    );
    let conn = Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
        .unwrap();
    let mut sql: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    sql.sort();
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for statement in &sql {
        hasher.update(statement.as_bytes());
        hasher.update(b"\n");
    }
    assert_eq!(m["schemaHash"], json!(hex::encode(hasher.finalize())));
    assert_eq!(m["sha256"], json!(hex::encode(Sha256::digest(&bytes))));
}
