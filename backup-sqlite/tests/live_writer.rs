//! A 200 MB WAL database is exported while a separate `sqlite3` process commits
//! continuously; the restore passes `integrity_check` and holds exactly a state the writer
//! committed: every transaction complete or absent, ids 1..N with no gap. The same holds
//! for a rollback-journal database, and for command mode.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::{ImportMode, ServiceTarget};
use common::writer::{
    assert_committed_prefix, bulk_digest, committed_txns, create_writer_tables, start_writer,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_database_exported_while_a_writer_process_commits_restores_a_committed_state() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("live.db");
    common::create_empty(&db, "wal");
    create_writer_tables(&db);
    common::fill_bulk(&db, 200);
    assert!(std::fs::metadata(&db).unwrap().len() >= 200 * 1024 * 1024);
    let bulk_before = bulk_digest(&db);

    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = start_writer(&db, stop.clone(), sent.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_txns(&db) < 50 {
        assert!(
            Instant::now() < deadline,
            "the writer process committed nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_export = committed_txns(&db);

    let recipe = backup_sqlite::recipe().unwrap();
    let bundle = root.path().join("live.backup.zip");
    common::export(&recipe, &common::service("live", &db), &bundle)
        .await
        .unwrap();
    let after_export = committed_txns(&db);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        after_export > before_export,
        "the writer committed nothing during the export ({before_export} before, {after_export} after)"
    );

    let target_db = root.path().join("restored").join("live.db");
    let target = common::service("restored", &target_db);
    common::restore(&recipe, &bundle, "live", &target, ImportMode::default())
        .await
        .unwrap();

    let txns = assert_committed_prefix(&target_db, before_export, after_export);
    assert_eq!(
        bulk_digest(&target_db),
        bulk_before,
        "the bulk data changed"
    );
    let metadata = common::manifest_metadata(&bundle).await;
    assert_eq!(metadata["journalMode"], "wal");
    assert_eq!(metadata["tables"]["txn"], serde_json::json!(txns));
    eprintln!(
        "{txns} transactions restored ({before_export}..{after_export} committed around the export, {} sent), {:?}",
        sent.load(Ordering::Relaxed),
        started.elapsed()
    );
}

/// Exports a database of `megabytes` in `journal_mode` (through the `sqlite3` tool in
/// command mode) while the writer commits, restores it, and checks the restored state is
/// one the writer committed.
async fn export_under_writer(journal_mode: &str, megabytes: usize, command_mode: bool) {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("live.db");
    common::create_empty(&db, journal_mode);
    create_writer_tables(&db);
    common::fill_bulk(&db, megabytes);
    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = start_writer(&db, stop.clone(), sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_txns(&db) < 20 {
        assert!(
            Instant::now() < deadline,
            "the writer process committed nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_export = committed_txns(&db);
    let source = if command_mode {
        ServiceTarget::local(
            "live",
            backup_sqlite::RECIPE,
            json!({ "path": db, "runner": "command", "tempDir": root.path() }),
        )
    } else {
        common::service("live", &db)
    };
    let recipe = backup_sqlite::recipe().unwrap();
    let bundle = root.path().join("live.backup.zip");
    common::export(&recipe, &source, &bundle).await.unwrap();
    let after_export = committed_txns(&db);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let target_db = root.path().join("restored").join("live.db");
    common::restore(
        &recipe,
        &bundle,
        "live",
        &common::service("restored", &target_db),
        ImportMode::default(),
    )
    .await
    .unwrap();
    assert_committed_prefix(&target_db, before_export, after_export);
    let metadata = common::manifest_metadata(&bundle).await;
    assert_eq!(metadata["journalMode"], journal_mode);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_journal_database_exported_while_a_writer_process_commits() {
    export_under_writer("delete", 24, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mode_export_while_a_writer_process_commits() {
    export_under_writer("wal", 24, true).await;
}
