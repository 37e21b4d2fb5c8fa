//! A 200 MB WAL database is exported while a separate `sqlite3` process commits
//! continuously; the restore passes `integrity_check` and holds exactly a state the writer
//! committed: every transaction complete or absent, ids 1..N with no gap.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_core::ImportMode;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

const ROWS_PER_TXN: u64 = 10;

/// Starts `sqlite3 db` as a child process and feeds it one transaction after another
/// (10 `log` rows and one `txn` row with their count and id sum) until `stop` is set.
fn start_writer(
    db: &Path,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let mut child = Command::new("sqlite3")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sqlite3 is installed (scripts/test.sh installs it)");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        writeln!(stdin, ".timeout 10000").unwrap();
        writeln!(stdin, ".bail on").unwrap();
        let mut k = 0u64;
        while !stop.load(Ordering::Relaxed) {
            k += 1;
            let first = (k - 1) * ROWS_PER_TXN + 1;
            let mut sql = String::from("BEGIN IMMEDIATE;\n");
            let mut sum = 0;
            for id in first..first + ROWS_PER_TXN {
                sum += id;
                sql.push_str(&format!(
                    "INSERT INTO log (id, txn, v) VALUES ({id}, {k}, hex(randomblob(64)));\n"
                ));
            }
            sql.push_str(&format!(
                "INSERT INTO txn (id, rows, sum) VALUES ({k}, {ROWS_PER_TXN}, {sum});\nCOMMIT;\n"
            ));
            stdin.write_all(sql.as_bytes()).unwrap();
            sent.store(k, Ordering::Relaxed);
            if k.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        drop(stdin);
        assert!(child.wait().unwrap().success(), "the writer process failed");
    })
}

fn committed_txns(db: &Path) -> u64 {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row("SELECT count(*) FROM txn", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

fn bulk_digest(db: &Path) -> String {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, payload FROM big ORDER BY id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut hasher = Sha256::new();
    while let Some(row) = rows.next().unwrap() {
        hasher.update(row.get::<_, i64>(0).unwrap().to_le_bytes());
        hasher.update(row.get_ref(1).unwrap().as_blob().unwrap());
    }
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_database_exported_while_a_writer_process_commits_restores_a_committed_state() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("live.db");
    common::create_empty(&db, "wal");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE log (id INTEGER PRIMARY KEY, txn INTEGER NOT NULL, v TEXT);
             CREATE TABLE txn (id INTEGER PRIMARY KEY, rows INTEGER NOT NULL, sum INTEGER NOT NULL);",
        )
        .unwrap();
    common::fill_bulk(&db, 200);
    assert!(std::fs::metadata(&db).unwrap().len() >= 200 * 1024 * 1024);
    let bulk_before = bulk_digest(&db);

    let (stop, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writer = start_writer(&db, stop.clone(), sent.clone());
    while committed_txns(&db) < 50 {
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

    let conn = Connection::open(&target_db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (txns, max_txn): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM txn", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let (rows, max_row): (i64, i64) = conn
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM log", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let whole: i64 = conn
        .query_row(
            "SELECT count(*) FROM txn t JOIN
               (SELECT txn, count(*) AS c, sum(id) AS s FROM log GROUP BY txn) g ON g.txn = t.id
             WHERE g.c = t.rows AND g.s = t.sum",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let txns = txns as u64;
    assert!(
        txns >= before_export && txns <= after_export,
        "restored {txns} transactions; {before_export} were committed before the export and {after_export} after"
    );
    assert_eq!(max_txn as u64, txns, "transaction ids have a gap");
    assert_eq!(whole as u64, txns, "a transaction was restored in part");
    assert_eq!(
        rows as u64,
        txns * ROWS_PER_TXN,
        "rows of an uncommitted transaction"
    );
    assert_eq!(max_row as u64, txns * ROWS_PER_TXN, "row ids have a gap");
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
