//! Database properties a dump does not hold (encoding, locale, settings, comment) are
//! recorded at export and recreated on import (issue 8 item 22).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::ErrorKind;
use backup_testkit::postgres_server::PostgresServer;
use common::{export_one, import_file, service, Exported};
use serde_json::json;

/// Everything recorded about `db` except its owner, one field a line.
fn properties(server: &PostgresServer, db: &str) -> String {
    server.psql(
        "postgres",
        &format!(
            "SELECT concat_ws(E'\\n', pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, \
               d.datlocprovider, coalesce(d.daticulocale, '-'), \
               coalesce(shobj_description(d.oid, 'pg_database'), '-'), \
               (SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = d.oid AND setrole = 0), \
               (SELECT string_agg(r.rolname || ':' || s.setconfig::text, ';' ORDER BY r.rolname) \
                  FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid)) \
             FROM pg_database d WHERE d.datname = '{db}'"
        ),
    )
}

/// A database `src` in the C locale (the server's default is C.UTF-8) with settings, a
/// per-role setting and a comment, exported in `format`.
async fn export_configured_source(
    server: &PostgresServer,
    format: &str,
    dir: &std::path::Path,
) -> Exported {
    server.psql(
        "postgres",
        "CREATE DATABASE src TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    server.psql(
        "src",
        "CREATE SCHEMA app; CREATE TABLE app.items (id int); \
         INSERT INTO app.items SELECT generate_series(1, 20);",
    );
    server.psql("postgres", "CREATE ROLE reporter");
    for sql in [
        "ALTER DATABASE src SET search_path = app, \"$user\", public",
        "ALTER DATABASE src SET statement_timeout = '5min'",
        "ALTER DATABASE src SET myapp.note = 'it''s a \\ test'",
        // Applied only after the restore, or it would make the restore itself fail.
        "ALTER DATABASE src SET default_transaction_read_only = on",
        "COMMENT ON DATABASE src IS 'the app''s database'",
        "ALTER ROLE reporter IN DATABASE src SET work_mem = '8MB'",
    ] {
        server.psql("postgres", sql);
    }
    export_one(&service(server, "src", json!({"format": format})), dir)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn encoding_locale_settings_and_comment_round_trip_into_a_new_database() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_configured_source(&server, "custom", dir.path()).await;
    let source = properties(&server, "src");
    assert!(source.contains("\nC\nC\n"), "{source}");

    import_file(&service(&server, "dst", json!({})), &exported, false)
        .await
        .unwrap();
    assert_eq!(properties(&server, "dst"), source);
    // A new session picks the settings up: the app's unqualified names resolve.
    assert_eq!(server.psql("dst", "SELECT count(*) FROM items"), "20");
    assert_eq!(server.psql("dst", "SHOW myapp.note"), "it's a \\ test");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_replace_carries_the_database_properties() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_configured_source(&server, "sql", dir.path()).await;
    server.create_database("dst");
    server.psql(
        "dst",
        "CREATE TABLE old (id int); INSERT INTO old VALUES (1);",
    );
    import_file(&service(&server, "dst", json!({})), &exported, true)
        .await
        .unwrap();
    assert_eq!(properties(&server, "dst"), properties(&server, "src"));
    assert_eq!(server.psql("dst", "SELECT count(*) FROM items"), "20");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_empty_database_gets_the_settings_and_comment() {
    let server = PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    let exported = export_configured_source(&server, "custom", dir.path()).await;
    server.create_database("dst");
    import_file(&service(&server, "dst", json!({})), &exported, false)
        .await
        .unwrap();
    let restored = properties(&server, "dst");
    let source = properties(&server, "src");
    // Its own locale stays (an existing database cannot change it); the rest is carried.
    assert!(restored.contains("\nC.UTF-8\nC.UTF-8\n"), "{restored}");
    let tail = |p: &str| p.lines().skip(5).collect::<Vec<_>>().join("\n");
    assert_eq!(tail(&restored), tail(&source));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_icu_locale_round_trips() {
    let server = PostgresServer::start();
    server.psql(
        "postgres",
        "CREATE DATABASE icu_src TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE'",
    );
    server.psql(
        "icu_src",
        "CREATE TABLE t (v text); INSERT INTO t VALUES ('ä');",
    );
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(&service(&server, "icu_src", json!({})), dir.path())
        .await
        .unwrap();
    import_file(&service(&server, "icu_dst", json!({})), &exported, false)
        .await
        .unwrap();
    let restored = properties(&server, "icu_dst");
    assert!(restored.contains("\ni\nde-DE\n"), "{restored}");
    assert_eq!(restored, properties(&server, "icu_src"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_properties_are_quoted_or_refused_and_never_run_as_sql() {
    let server = PostgresServer::start();
    server.create_database("victim");
    server.create_database("src");
    server.psql("src", "CREATE TABLE t (id int);");
    let dir = tempfile::tempdir().unwrap();
    let mut exported = export_one(&service(&server, "src", json!({})), dir.path())
        .await
        .unwrap();
    let injection = "x'); DROP DATABASE victim; --\\' \"";
    let props = &mut exported.descriptor.metadata["databaseProperties"];
    props["comment"] = json!(injection);
    props["settings"] = json!([format!("myapp.note={injection}")]);
    props["roleSettings"] = json!({ injection: ["work_mem=1MB"] });
    import_file(&service(&server, "dst", json!({})), &exported, false)
        .await
        .unwrap();
    assert!(server.database_exists("victim"));
    assert_eq!(
        server.psql(
            "postgres",
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'dst'"
        ),
        injection
    );
    assert_eq!(server.psql("dst", "SHOW myapp.note"), injection);

    for (field, value) in [
        ("settings", json!(["work_mem; DROP DATABASE victim; --=1"])),
        ("encoding", json!("UTF8' OWNER victim --")),
        ("localeProvider", json!("icu; DROP DATABASE victim")),
    ] {
        let mut tampered = exported.clone();
        tampered.descriptor.metadata["databaseProperties"][field] = value;
        let err = import_file(&service(&server, "dst2", json!({})), &tampered, false)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{field}: {err}");
        assert!(!server.database_exists("dst2"), "{field}");
    }
    assert!(server.database_exists("victim"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locale_the_target_lacks_fails_clearly_before_any_data_is_restored() {
    let server = PostgresServer::start();
    server.create_database("src");
    server.psql("src", "CREATE TABLE t (id int);");
    let dir = tempfile::tempdir().unwrap();
    let mut exported = export_one(&service(&server, "src", json!({})), dir.path())
        .await
        .unwrap();
    exported.descriptor.metadata["databaseProperties"]["collate"] = json!("xx_NOWHERE.UTF-8");
    let err = import_file(&service(&server, "dst", json!({})), &exported, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.message().contains("xx_NOWHERE.UTF-8"), "{err}");
    assert!(err.hint().unwrap().contains("locale"), "{err}");
    assert!(!server.database_exists("dst"));
}
