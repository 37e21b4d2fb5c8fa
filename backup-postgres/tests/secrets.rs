//! A password never appears in manifest metadata, errors or Debug output.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::{DataExporter, DataImporter};
use backup_postgres::{PostgresConfig, PostgresExporter, PostgresImporter};
use backup_testkit::postgres_server::PostgresServer;
use common::{export_all, export_one, import_file, service};
use serde_json::json;

const PLANTED: &str = "Pl4nted-Zebra-Passw0rd-91";

#[tokio::test(flavor = "multi_thread")]
async fn no_password_in_metadata_errors_or_debug_output() {
    let server = PostgresServer::start();
    server.create_database("app");
    server.psql("app", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    server.create_password_role("owner", PLANTED, true);
    let dir = tempfile::tempdir().unwrap();

    // The password works (it reaches the tools) …
    let good = service(
        &server,
        "app",
        json!({"user": "owner", "password": PLANTED}),
    );
    let exported = export_one(&good, dir.path()).await.unwrap();
    let manifest_entry = serde_json::to_string(&exported.descriptor).unwrap();
    assert!(!manifest_entry.contains(PLANTED), "{manifest_entry}");
    assert!(!format!("{:?}", exported.descriptor).contains(PLANTED));
    let restored = service(
        &server,
        "copy",
        json!({"user": "owner", "password": PLANTED}),
    );
    import_file(&restored, &exported, false).await.unwrap();

    // … and never shows up in Debug output of the config, service or recipe.
    let config = PostgresConfig::from_json(&good.config).unwrap();
    assert!(!format!("{config:?}").contains(PLANTED));
    assert!(!format!("{good:?}").contains(PLANTED));
    assert!(!format!("{:?}", backup_postgres::recipe().unwrap()).contains(PLANTED));
    assert!(!format!(
        "{:?} {:?}",
        PostgresExporter::new(),
        PostgresImporter::new()
    )
    .contains(PLANTED));

    // Errors with the planted password as the wrong one, or a wrong database, stay clean.
    server.create_password_role("other", "not-the-planted-one", true);
    let wrong = service(
        &server,
        "app",
        json!({"user": "other", "password": PLANTED}),
    );
    let err = export_all(&wrong, dir.path()).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(PLANTED), "{shown}");
    let missing = service(
        &server,
        "nope",
        json!({"user": "owner", "password": PLANTED}),
    );
    let err = PostgresExporter::new()
        .artifacts(&missing)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(PLANTED));
    let err = PostgresImporter::new()
        .check(
            &good,
            std::slice::from_ref(&exported.descriptor),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(PLANTED));

    // A config whose password has the wrong type is rejected without quoting it.
    let err = PostgresConfig::from_json(
        &json!({"host": "h", "user": "u", "database": "d", "password": [PLANTED]}),
    )
    .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(PLANTED));
}
