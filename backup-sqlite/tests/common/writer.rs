//! A separate `sqlite3` process that commits continuously, and the check that a database
//! holds exactly a state it committed.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

pub(crate) const ROWS_PER_TXN: u64 = 10;

/// Starts `sqlite3 db` as a child process and feeds it one transaction after another
/// (10 `log` rows and one `txn` row with their count and id sum) until `stop` is set.
pub(crate) fn start_writer(
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

pub(crate) fn committed_txns(db: &Path) -> u64 {
    let conn = Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row("SELECT count(*) FROM txn", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

pub(crate) fn bulk_digest(db: &Path) -> String {
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

/// Creates the writer's tables in `db`.
pub(crate) fn create_writer_tables(db: &Path) {
    Connection::open(db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE log (id INTEGER PRIMARY KEY, txn INTEGER NOT NULL, v TEXT);
             CREATE TABLE txn (id INTEGER PRIMARY KEY, rows INTEGER NOT NULL, sum INTEGER NOT NULL);",
        )
        .unwrap();
}

/// Checks `db` passes `integrity_check` and holds transactions 1..N of the writer, each
/// whole, with `low <= N <= high`; returns N.
pub(crate) fn assert_committed_prefix(db: &Path, low: u64, high: u64) -> u64 {
    let conn = Connection::open(db).unwrap();
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
    let txns = txns as u64;
    assert!(
        txns >= low && txns <= high,
        "restored {txns} transactions; {low} were committed before the export and {high} after"
    );
    assert_eq!(max_txn as u64, txns, "transaction ids have a gap");
    assert_eq!(whole as u64, txns, "a transaction was restored in part");
    assert_eq!(
        rows as u64,
        txns * ROWS_PER_TXN,
        "rows of an uncommitted transaction"
    );
    assert_eq!(max_row as u64, txns * ROWS_PER_TXN, "row ids have a gap");
    txns
}
