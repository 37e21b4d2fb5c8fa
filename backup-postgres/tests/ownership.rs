//! Restored objects belong to the config's owner role, so an application connecting as
//! that role (not the restoring superuser) can read and write everything (issue 8 item 21).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::ErrorKind;
use backup_testkit::postgres_server::PostgresServer;
use common::{export_one, import_file, service, MANY_OBJECTS_SQL};
use serde_json::json;

/// Relations, schemas, functions, types and large objects of `db` (outside the system
/// schemas, extension members excluded) that `role` does not own.
fn not_owned_by(server: &PostgresServer, db: &str, role: &str) -> String {
    server.psql(
        db,
        &format!(
            "WITH ext AS (SELECT objid FROM pg_depend WHERE deptype = 'e') \
             SELECT coalesce(string_agg(what, ', '), '') FROM ( \
               SELECT c.oid::regclass::text AS what, c.relowner AS owner FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') \
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname !~ '^pg_' AND c.oid NOT IN (SELECT objid FROM ext) \
               UNION ALL SELECT 'schema ' || nspname, nspowner FROM pg_namespace \
                 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname !~ '^pg_' \
               UNION ALL SELECT 'function ' || p.oid::regprocedure::text, p.proowner FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.oid NOT IN (SELECT objid FROM ext) \
               UNION ALL SELECT 'large object ' || oid, lomowner FROM pg_largeobject_metadata \
             ) o WHERE o.owner <> '{role}'::regrole"
        ),
    )
}

/// Every table read and written and every sequence advanced, as `role`.
const USE_EVERYTHING_SQL: &str = r#"DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS t, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname !~ '^pg_'
             AND c.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e')
  LOOP
    IF r.relkind = 'S' THEN
      PERFORM nextval(r.t);
    ELSE
      EXECUTE format('SELECT count(*) FROM %s', r.t);
      EXECUTE format('INSERT INTO %s SELECT * FROM %s WHERE false', r.t, r.t);
      EXECUTE format('DELETE FROM %s WHERE false', r.t);
    END IF;
  END LOOP;
END $$;
INSERT INTO "Kunden_ü" ("näme", qty) VALUES ('written by the app', 3);
UPDATE "schéma"."tâble" SET v = v + 1;
REFRESH MATERIALIZED VIEW mood_counts;
SELECT length(lo_get(content)) FROM docs;
SELECT count(*) FROM audit WHERE msg LIKE 'insert %';"#;

async fn the_owner_role_owns_and_can_use_everything_restored(format: &str) {
    let server = PostgresServer::start();
    server.create_database("source");
    server.psql("source", MANY_OBJECTS_SQL);
    server.psql(
        "postgres",
        "CREATE ROLE app_owner LOGIN NOSUPERUSER NOCREATEDB",
    );
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(
        &service(&server, "source", json!({"format": format})),
        dir.path(),
    )
    .await
    .unwrap();
    // Restored by the superuser, owned by the app's role.
    let restored = service(&server, "restored", json!({"owner": "app_owner"}));
    import_file(&restored, &exported, false).await.unwrap();

    assert_eq!(not_owned_by(&server, "restored", "app_owner"), "");
    assert_eq!(
        server.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'restored'"
        ),
        "app_owner"
    );
    let used = server
        .try_psql_as("app_owner", "restored", USE_EVERYTHING_SQL)
        .unwrap_or_else(|e| panic!("app_owner cannot use the restored data: {e}"));
    // The large object reads back whole; the trigger wrote its third audit row as the app.
    assert_eq!(used, "420000\n3");

    // A forced replace hands the new database to the owner role too.
    server.psql("restored", "CREATE TABLE extra (id int);");
    import_file(&restored, &exported, true).await.unwrap();
    assert_eq!(not_owned_by(&server, "restored", "app_owner"), "");
    server
        .try_psql_as("app_owner", "restored", USE_EVERYTHING_SQL)
        .unwrap_or_else(|e| panic!("app_owner cannot use the replaced data: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_dump_restored_by_the_superuser_belongs_to_the_owner_role() {
    the_owner_role_owns_and_can_use_everything_restored("custom").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_dump_restored_by_the_superuser_belongs_to_the_owner_role() {
    the_owner_role_owns_and_can_use_everything_restored("sql").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_owner_role_is_refused_before_anything_is_created() {
    let server = PostgresServer::start();
    server.create_database("source");
    server.psql("source", "CREATE TABLE t (id int);");
    let dir = tempfile::tempdir().unwrap();
    let exported = export_one(&service(&server, "source", json!({})), dir.path())
        .await
        .unwrap();
    let err = import_file(
        &service(&server, "restored", json!({"owner": "nobody_here"})),
        &exported,
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("nobody_here"), "{err}");
    assert!(err.hint().is_some(), "{err}");
    assert!(!server.database_exists("restored"));
}
