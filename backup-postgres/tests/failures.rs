//! Failures users can act on: failed dumps, corrupt and truncated dumps, refused restores,
//! and the target left as it was.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::path::{Path, PathBuf};

use backup_core::{DataImporter, ErrorKind, ImportMode, ServiceTarget};
use backup_postgres::PostgresImporter;
use backup_testkit::ports::free_port;
use backup_testkit::postgres_server::PostgresServer;
use common::{export_all, export_one, import_file, import_path, service, Exported};
use serde_json::json;

/// Asserts that `dir` holds no file: a failed export must leave nothing behind.
fn assert_nothing_written(dir: &Path) {
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "a failed export leaves no dump"
    );
}

/// A copy of the exported dump, damaged by `damage`, written beside it as `name`.
fn damaged_copy(exported: &Exported, name: &str, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(&exported.path).unwrap();
    damage(&mut bytes);
    let path = exported.path.with_file_name(name);
    std::fs::write(&path, &bytes).unwrap();
    path
}

/// A service on a port nothing listens on.
fn unreachable_service() -> ServiceTarget {
    let config =
        json!({"host": "127.0.0.1", "port": free_port(), "user": "postgres", "database": "app"});
    ServiceTarget::local("down", backup_postgres::RECIPE, config)
}

/// A restore of a damaged custom dump fails as corrupt data or as pg_restore's error.
fn assert_damaged_restore(err: &backup_core::Error) {
    assert!(
        matches!(err.kind(), ErrorKind::Integrity | ErrorKind::ToolFailed),
        "{err:?}"
    );
}

/// Seeds `app` with `rows` items and exports it in `format` into `dir`.
async fn export_items(server: &PostgresServer, rows: u32, format: &str, dir: &Path) -> Exported {
    seed_items(server, "app", rows);
    export_one(&service(server, "app", json!({"format": format})), dir)
        .await
        .unwrap()
}

/// Restores the dump at `path` (described by `exported`) into `database`; the restore
/// must fail, and its error is returned.
async fn restore_file(
    server: &PostgresServer,
    database: &str,
    exported: &Exported,
    path: &Path,
    force: bool,
) -> backup_core::Error {
    import_path(
        &service(server, database, json!({})),
        &exported.descriptor,
        path,
        force,
    )
    .await
    .unwrap_err()
}

fn seed_items(server: &PostgresServer, db: &str, rows: u32) {
    server.create_database(db);
    server.psql(
        db,
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, name text); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {rows}) g;"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_of_a_missing_database_fails_with_not_found_and_a_hint() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let err = export_all(&service(&server, "no_such_db", json!({})), dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("no_such_db"), "{err}");
    assert!(err.hint().unwrap().contains("database name"), "{err}");
    assert_nothing_written(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn export_with_bad_credentials_fails_with_permission_denied_and_a_hint() {
    let server = PostgresServer::start();
    server.create_database("app");
    server.create_password_role("app_user", "right-password", true);
    let dir = tempfile::tempdir().unwrap();
    let bad = service(
        &server,
        "app",
        json!({"user": "app_user", "password": "wrong-password"}),
    );
    let err = export_all(&bad, dir.path()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.hint().unwrap().contains("password"), "{err}");
    assert_nothing_written(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn export_from_an_unreachable_server_is_unavailable_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let err = export_all(&unreachable_service(), dir.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.hint().unwrap().contains("running"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pg_dump_failure_after_start_ends_the_export_stream_with_an_error() {
    let server = PostgresServer::start();
    seed_items(&server, "app", 100);
    // A role that may connect but not read the table: pg_dump starts, then fails.
    server.create_password_role("reader", "reader-pw", false);
    server.psql("app", "REVOKE ALL ON items FROM PUBLIC;");
    let dir = tempfile::tempdir().unwrap();
    let limited = service(
        &server,
        "app",
        json!({"user": "reader", "password": "reader-pw"}),
    );
    let err = export_all(&limited, dir.path()).await.unwrap_err();
    assert!(err.message().starts_with("export stream"), "{err}");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.hint().is_some(), "{err}");
    assert_nothing_written(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_custom_dump_fails_and_leaves_no_new_database() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_items(&server, 1000, "custom", dir.path()).await;
    let corrupt = damaged_copy(&exported, "corrupt.dump", |bytes| {
        for b in bytes.iter_mut().take(64) {
            *b ^= 0x5a;
        }
    });

    let err = restore_file(&server, "fresh", &exported, &corrupt, false).await;
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.hint().is_some());
    assert!(
        !server.database_exists("fresh"),
        "the created database is dropped again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_custom_dump_fails_and_a_forced_restore_leaves_the_target_unchanged() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_items(&server, 20_000, "custom", dir.path()).await;
    let truncated = damaged_copy(&exported, "truncated.dump", |bytes| {
        bytes.truncate(bytes.len() / 2)
    });

    // The target now differs from the dump; a failed forced restore must keep it so.
    seed_items(&server, "target", 7);
    let before = server.table_checksums("target");
    let err = restore_file(&server, "target", &exported, &truncated, true).await;
    assert_damaged_restore(&err);
    assert_eq!(server.table_checksums("target"), before, "target unchanged");
    let leftovers = server.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'target\\_\\_%'",
    );
    assert_eq!(leftovers, "0", "the temporary database is dropped");

    let err = restore_file(&server, "fresh", &exported, &truncated, false).await;
    assert_damaged_restore(&err);
    assert!(!server.database_exists("fresh"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_sql_dump_fails_and_leaves_an_empty_database_empty() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_items(&server, 20_000, "sql", dir.path()).await;
    let truncated = damaged_copy(&exported, "truncated.sql", |bytes| {
        bytes.truncate(bytes.len() * 3 / 4)
    });

    server.create_database("empty");
    let err = restore_file(&server, "empty", &exported, &truncated, false).await;
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert_eq!(
        server.psql(
            "empty",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_sql_dump_fails_and_a_forced_restore_leaves_the_target_unchanged() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_items(&server, 500, "sql", dir.path()).await;
    let corrupt = damaged_copy(&exported, "corrupt.sql", |bytes| {
        let text = String::from_utf8(std::mem::take(bytes)).unwrap();
        *bytes = text
            .replacen("CREATE TABLE", "CREATE TABEL", 1)
            .into_bytes();
    });

    seed_items(&server, "target", 3);
    let before = server.table_checksums("target");
    let err = restore_file(&server, "target", &exported, &corrupt, true).await;
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(err.message().contains("syntax error"), "{err}");
    assert_eq!(server.table_checksums("target"), before, "target unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_into_a_non_empty_database_without_force_is_refused() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_items(&server, 10, "custom", dir.path()).await;
    seed_items(&server, "busy", 3);
    let before = server.table_checksums("busy");
    let target = service(&server, "busy", json!({}));

    let err = import_file(&target, &exported, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.hint().unwrap().contains("force"), "{err}");

    // import() refuses too, even when check() was skipped.
    let file = tokio::fs::File::open(&exported.path).await.unwrap();
    let err = PostgresImporter::new()
        .import(
            &target,
            &exported.descriptor,
            backup_core::artifact::stream_from_reader(file),
            ImportMode::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(server.table_checksums("busy"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_an_unreachable_server_and_unknown_formats() {
    let target = unreachable_service();
    let artifact = backup_core::ArtifactDescriptor::new(
        "app.dump",
        "postgres/custom",
        "application/octet-stream",
    );
    let err = PostgresImporter::new()
        .check(
            &target,
            std::slice::from_ref(&artifact),
            ImportMode::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.hint().is_some());

    let rdb =
        backup_core::ArtifactDescriptor::new("db0.rdb", "redis/rdb", "application/octet-stream");
    let err = PostgresImporter::new()
        .check(&target, &[rdb], ImportMode::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion, "{err}");
}
