//! `diff_bundles`: schema and row-count changes between two backup bundles, read from
//! their manifests only.

mod common;

use backup_postgres::diff_bundles;
use backup_testkit::postgres_server::PostgresServer;
use common::{service, write_postgres_bundle};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn diff_of_two_bundles_reports_schema_changes_and_row_deltas_without_a_server() {
    let server = PostgresServer::start();
    server.create_database("shop");
    server.psql(
        "shop",
        "CREATE TABLE items (id int PRIMARY KEY, title text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let shop = service(&server, "shop", json!({}));
    let before = dir.path().join("before.backup.zip");
    write_postgres_bundle(&shop, &before).await.unwrap();
    server.psql(
        "shop",
        "ALTER TABLE items ADD COLUMN price numeric; \
         CREATE TABLE carts (id int); \
         INSERT INTO items VALUES (11, 'new', 1.5);",
    );
    let after = dir.path().join("after.backup.zip");
    write_postgres_bundle(&shop, &after).await.unwrap();
    drop(server); // the diff needs no server

    let report = diff_bundles(&before, &after).await.unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].service, "shop");
    assert_eq!(report[0].present_in, "both");
    let changes = report[0].changes.as_ref().unwrap();
    assert_eq!(changes.tables_added, vec!["public.carts"]);
    assert_eq!(changes.columns_added[0].column, "price");
    let items = changes
        .row_deltas
        .iter()
        .find(|d| d.table == "public.items")
        .unwrap();
    assert_eq!(items.delta, 1);
}
