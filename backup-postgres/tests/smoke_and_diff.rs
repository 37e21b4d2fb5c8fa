//! The post-restore smoke test and the snapshot diff (seed 002 `*snapshot-diff`).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::{DataImporter, ErrorKind};
use backup_postgres::{diff, PostgresImporter};
use backup_testkit::postgres_server::PostgresServer;
use common::{export_one, import_file, service, MANY_OBJECTS_SQL};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn smoke_test_passes_after_restore_and_fails_naming_a_tampered_table() {
    let server = PostgresServer::start();
    server.create_database("source");
    server.psql("source", MANY_OBJECTS_SQL);
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(&service(&server, "source", json!({})), dir.path())
        .await
        .unwrap();
    assert_eq!(
        exported.descriptor.metadata["consistentSnapshot"],
        json!(true)
    );
    assert_eq!(exported.descriptor.metadata["tableCount"], json!(11));
    let restored = service(&server, "restored", json!({}));
    import_file(&restored, &exported, false).await.unwrap();

    let importer = PostgresImporter::new();
    importer
        .smoke_test(&restored, &exported.descriptor)
        .await
        .unwrap();

    server.psql(
        "restored",
        "DELETE FROM measurements_2025 WHERE id % 2 = 0;",
    );
    let err = importer
        .smoke_test(&restored, &exported.descriptor)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("public.measurements"), "{err}");

    server.psql("restored", "DROP TABLE audit;");
    let err = importer
        .smoke_test(&restored, &exported.descriptor)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("public.audit"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_of_two_exports_reports_added_table_column_index_and_row_deltas() {
    let server = PostgresServer::start();
    server.create_database("app");
    server.psql(
        "app",
        "CREATE TABLE users (id int PRIMARY KEY, name text); \
         CREATE TABLE legacy (x int); \
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let before_dir = dir.path().join("before");
    let after_dir = dir.path().join("after");
    std::fs::create_dir_all(&before_dir).unwrap();
    std::fs::create_dir_all(&after_dir).unwrap();
    let app = service(&server, "app", json!({}));
    let before = export_one(&app, &before_dir).await.unwrap();

    server.psql(
        "app",
        "ALTER TABLE users ADD COLUMN email text; \
         CREATE INDEX users_email_idx ON users (email); \
         CREATE TABLE orders (id int, user_id int); \
         INSERT INTO orders VALUES (1, 1), (2, 2); \
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(101, 120) g; \
         DROP TABLE legacy;",
    );
    let after = export_one(&app, &after_dir).await.unwrap();

    let changes = diff(&before.descriptor, &after.descriptor).unwrap();
    assert_eq!(changes.tables_added, vec!["public.orders"]);
    assert_eq!(changes.tables_removed, vec!["public.legacy"]);
    assert_eq!(changes.columns_added.len(), 1);
    assert_eq!(changes.columns_added[0].table, "public.users");
    assert_eq!(changes.columns_added[0].column, "email");
    assert_eq!(changes.indexes_added.len(), 1);
    assert_eq!(changes.indexes_added[0].name, "public.users_email_idx");
    let users = changes
        .row_deltas
        .iter()
        .find(|d| d.table == "public.users")
        .unwrap();
    assert_eq!(
        (users.before, users.after, users.delta),
        (Some(100), Some(120), 20)
    );
    let orders = changes
        .row_deltas
        .iter()
        .find(|d| d.table == "public.orders")
        .unwrap();
    assert_eq!(orders.delta, 2);

    let text = changes.to_string();
    assert!(text.contains("+ table public.orders"), "{text}");
    assert!(text.contains("+ column public.users.email text"), "{text}");
    assert!(text.contains("+ index public.users_email_idx"), "{text}");
    assert!(text.contains("public.users: 100 -> 120 (+20)"), "{text}");
    let json = serde_json::to_value(&changes).unwrap();
    assert_eq!(json["tablesAdded"], json!(["public.orders"]));

    let same = diff(&after.descriptor, &after.descriptor).unwrap();
    assert!(same.is_empty());
    assert!(same.to_string().contains("no changes"));
}
