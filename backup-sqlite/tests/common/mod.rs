//! Helpers shared by the adapter's tests: real databases, real files, the real `sqlite3`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub(crate) mod writer;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::progress::NoProgress;
use backup_core::restore::restore_service_data;
use backup_core::{ImportMode, Recipe, Result, ServiceTarget};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// A service of `recipe` whose database is `path`.
pub(crate) fn service(name: &str, path: &Path) -> ServiceTarget {
    ServiceTarget::local(
        name,
        backup_sqlite::RECIPE,
        serde_json::json!({ "path": path }),
    )
}

/// Runs SQL with the real `sqlite3` tool.
pub(crate) fn sqlite3(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// sha256 of `sqlite3 db .dump` plus `user_version`, streamed; "absent" for no file.
pub(crate) fn dump_digest(db: &Path) -> String {
    if !db.exists() {
        return "absent".to_string();
    }
    let mut child = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(".dump")
        .stdout(Stdio::piped())
        .spawn()
        .expect("sqlite3 is installed");
    let mut hasher = Sha256::new();
    std::io::copy(child.stdout.as_mut().unwrap(), &mut hasher).unwrap();
    assert!(child.wait().unwrap().success(), "sqlite3 .dump failed");
    hasher.update(sqlite3(db, "PRAGMA user_version;").as_bytes());
    hex::encode(hasher.finalize())
}

/// The whole `.dump` text (for small databases).
pub(crate) fn dump(db: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(".dump")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates an empty database at `path` in `journal_mode`.
pub(crate) fn create_empty(path: &Path, journal_mode: &str) {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
}

/// A schema like n8n's and Uptime Kuma's: tables with foreign keys, indexes, a unique
/// index, triggers, views, AUTOINCREMENT (sqlite_sequence), and varied data.
pub(crate) fn fill_app_like(path: &Path, rows: usize) {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA user_version = 42;
         CREATE TABLE workflow_entity (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(128) NOT NULL,
             active BOOLEAN NOT NULL DEFAULT 0, nodes TEXT, settings TEXT, createdAt DATETIME(3) NOT NULL DEFAULT (STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
             updatedAt DATETIME(3));
         CREATE UNIQUE INDEX idx_workflow_name ON workflow_entity(name);
         CREATE TABLE execution_entity (id INTEGER PRIMARY KEY AUTOINCREMENT, workflowId INTEGER REFERENCES workflow_entity(id) ON DELETE CASCADE,
             finished BOOLEAN NOT NULL, status VARCHAR, data BLOB, startedAt DATETIME);
         CREATE INDEX idx_exec_wf ON execution_entity(workflowId, startedAt);
         CREATE TABLE monitor (id INTEGER PRIMARY KEY, name TEXT, url TEXT, interval INTEGER DEFAULT 60, weight REAL);
         CREATE TABLE heartbeat (monitor_id INTEGER NOT NULL REFERENCES monitor(id), status SMALLINT, msg TEXT, time DATETIME, ping REAL,
             PRIMARY KEY (monitor_id, time)) WITHOUT ROWID;
         CREATE TABLE setting (key VARCHAR(200) PRIMARY KEY, value TEXT, type VARCHAR(20));
         CREATE TRIGGER workflow_updated AFTER UPDATE ON workflow_entity BEGIN
             UPDATE workflow_entity SET updatedAt = '2026-01-01' WHERE id = NEW.id; END;
         CREATE VIEW active_workflows AS SELECT id, name FROM workflow_entity WHERE active = 1;
         CREATE VIEW monitor_status AS SELECT m.name, count(h.status) AS beats FROM monitor m LEFT JOIN heartbeat h ON h.monitor_id = m.id GROUP BY m.id;",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO workflow_entity (name, active, nodes, settings) VALUES (?1, ?2, ?3, NULL)",
            rusqlite::params![
                format!("wf {i} ünïcødé 'quoted'"),
                i % 2,
                format!("{{\"n\":{i}}}")
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO execution_entity (workflowId, finished, status, data, startedAt) VALUES (?1, 1, 'ok', ?2, '2026-11-30')",
            rusqlite::params![(i + 1) as i64, vec![(i % 251) as u8; i % 300]],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO monitor (id, name, url, weight) VALUES (?1, ?2, 'https://x.invalid', ?3)",
            rusqlite::params![i as i64, format!("m{i}"), i as f64 / 7.0],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO heartbeat VALUES (?1, 1, 'up', ?2, 12.5)",
            rusqlite::params![i as i64, format!("t{i}")],
        )
        .unwrap();
    }
    tx.execute(
        "INSERT INTO setting VALUES ('primaryBaseURL', NULL, 'general')",
        [],
    )
    .unwrap();
    tx.execute("UPDATE workflow_entity SET active = 1 WHERE id = 1", [])
        .unwrap();
    tx.commit().unwrap();
}

/// Fills a `big` table with about `megabytes` MiB of random blobs, quickly.
pub(crate) fn fill_bulk(path: &Path, megabytes: usize) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, payload BLOB);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {})
         INSERT INTO big (payload) SELECT randomblob(65536) FROM c;",
        megabytes * 16
    ))
    .unwrap();
}

/// Exports `source` with `recipe` into a bundle at `bundle`.
pub(crate) async fn export(recipe: &Recipe, source: &ServiceTarget, bundle: &Path) -> Result<()> {
    let services = [ServiceExport {
        target: source.clone(),
        exporter: recipe.exporter().cloned().unwrap(),
    }];
    write_bundle(
        bundle,
        BundleOptions::default(),
        None,
        &services,
        &NoProgress,
    )
    .await?;
    Ok(())
}

/// Restores the bundle's entries of `source_name` into `target` (smoke test included).
pub(crate) async fn restore(
    recipe: &Recipe,
    bundle: &Path,
    source_name: &str,
    target: &ServiceTarget,
    mode: ImportMode,
) -> Result<()> {
    let importer = recipe.importer().cloned().unwrap();
    let reader = BundleReader::open(bundle).await?;
    reader.verify(&NoProgress).await?;
    let entries: Vec<_> = reader
        .manifest()
        .entries
        .iter()
        .filter(|e| e.service == source_name)
        .cloned()
        .collect();
    let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
    importer.check(target, &artifacts, mode).await?;
    restore_service_data(
        &reader,
        target,
        importer.as_ref(),
        &entries,
        mode,
        true,
        &NoProgress,
    )
    .await
}

/// The manifest metadata of the bundle's first entry.
pub(crate) async fn manifest_metadata(bundle: &Path) -> serde_json::Map<String, serde_json::Value> {
    let reader = BundleReader::open(bundle).await.unwrap();
    reader.manifest().entries[0].artifact.metadata.clone()
}

/// Files in `dir`, sorted.
pub(crate) fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A fresh directory under the test's temp root.
pub(crate) fn dir_in(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `data` to `path`.
pub(crate) fn write(path: &Path, data: &[u8]) {
    std::fs::File::create(path)
        .unwrap()
        .write_all(data)
        .unwrap();
}
