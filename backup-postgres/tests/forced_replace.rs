//! A forced replace checks the new data before it gives up the old (issue 8 item 7).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::ErrorKind;
use backup_testkit::postgres_server::PostgresServer;
use common::{export_one, import_file, service, Exported};
use serde_json::json;

/// Exports `app` holding 50 items, then returns the export with its recorded row count
/// of `public.items` raised by one, as a tampered or mismatched manifest would say.
async fn export_with_wrong_row_count(server: &PostgresServer, dir: &std::path::Path) -> Exported {
    server.create_database("app");
    server.psql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g;",
    );
    let mut exported = export_one(&service(server, "app", json!({})), dir)
        .await
        .unwrap();
    let rows = &mut exported.descriptor.metadata["rowCounts"]["public.items"];
    assert_eq!(*rows, json!(50));
    *rows = json!(51);
    exported
}

fn leftover_databases(server: &PostgresServer) -> String {
    server.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '%\\_\\_%'",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_restore_whose_smoke_test_fails_leaves_the_old_database_intact() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_with_wrong_row_count(&server, dir.path()).await;
    // The target now holds other data, which a failed replace must keep.
    server.psql(
        "app",
        "DELETE FROM items WHERE id > 7; CREATE TABLE keep_me (v text); \
         INSERT INTO keep_me VALUES ('old data');",
    );
    let before = server.table_checksums("app");

    let err = import_file(&service(&server, "app", json!({})), &exported, true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.message().contains("public.items"), "{err}");
    assert!(err.message().contains("left unchanged"), "{err}");
    assert_eq!(server.table_checksums("app"), before);
    assert_eq!(server.psql("app", "SELECT v FROM keep_me"), "old data");
    assert_eq!(
        leftover_databases(&server),
        "",
        "the temporary database is dropped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_into_a_new_database_whose_smoke_test_fails_drops_it_again() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_with_wrong_row_count(&server, dir.path()).await;
    let err = import_file(&service(&server, "copy", json!({})), &exported, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(!server.database_exists("copy"));
}
