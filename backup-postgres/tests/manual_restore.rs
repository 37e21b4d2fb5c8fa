//! The way back without this library: a bundle is a plain zip of zstd streams, so
//! `unzip -p | zstd -d | pg_restore …` (or `psql`) typed by the operator, as the crate
//! README documents it, restores a database with the stock tools alone. The manifest's
//! `restoreCommand` is for reading, never for running: a tampered manifest could name
//! any program.
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use backup_core::bundle::BundleReader;
use backup_testkit::ports::require_binary;
use backup_testkit::postgres_server::PostgresServer;
use common::{service, write_postgres_bundle};
use serde_json::json;
use std::process::{Command, Stdio};

async fn restore_by_hand(format: &str) {
    let unzip = require_binary("unzip", &[]);
    let zstd = require_binary("zstd", &[]);
    let server = PostgresServer::start();
    let db = format!("by_hand_{format}");
    server.create_database(&db);
    server.psql(
        &db,
        "CREATE TABLE notes (id int PRIMARY KEY, body text); \
         INSERT INTO notes SELECT g, 'note ' || g || E'\\nü' FROM generate_series(1, 500) g;",
    );
    let before = server.table_checksums(&db);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("by-hand.backup.zip");
    write_postgres_bundle(&service(&server, &db, json!({"format": format})), &bundle)
        .await
        .unwrap();
    let reader = BundleReader::open(&bundle).await.unwrap();
    let entry = reader.manifest().entries_of(&db).next().unwrap().clone();
    let command = entry.artifact.metadata["restoreCommand"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!command.contains("PGPASSWORD"), "{command}");

    // The disaster: the database is gone.
    server.psql("postgres", &format!("DROP DATABASE \"{db}\""));

    let bin = server.binary("pg_restore");
    let bin_dir = bin.parent().unwrap().display().to_string();
    let restore = match format {
        "custom" => format!(
            "pg_restore --single-transaction --exit-on-error --no-owner --no-privileges -d {db}"
        ),
        _ => format!("psql -v ON_ERROR_STOP=1 --single-transaction -d {db} -f -"),
    };
    let script = format!(
        "set -o pipefail; createdb -T template0 {db} && \
         {unzip} -p {bundle} {path} | {zstd} -d | {restore}",
        unzip = unzip.display(),
        bundle = bundle.display(),
        path = entry.path,
        zstd = zstd.display(),
    );
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env(
            "PATH",
            format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
        )
        .env("PGHOST", server.host())
        .env("PGPORT", server.port().to_string())
        .env("PGUSER", "postgres")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
    assert_eq!(server.table_checksums(&db), before, "{format}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_dump_restores_by_hand_from_the_bundle_with_the_documented_commands() {
    restore_by_hand("custom").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_dump_restores_by_hand_from_the_bundle_with_the_documented_commands() {
    restore_by_hand("sql").await;
}
