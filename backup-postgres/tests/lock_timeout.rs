//! pg_dump does not wait forever on a table lock (`lockWaitTimeout`).
#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected errors

mod common;

use std::time::{Duration, Instant};

use backup_core::ErrorKind;
use backup_testkit::postgres_server::PostgresServer;
use common::{export_all, service};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn export_of_a_table_locked_by_another_session_fails_after_the_lock_wait_timeout() {
    let server = PostgresServer::start();
    server.create_database("app");
    server.psql(
        "app",
        "CREATE TABLE items (id int); INSERT INTO items SELECT generate_series(1, 10); \
         CREATE TABLE busy (id int); INSERT INTO busy VALUES (1);",
    );
    let lock = server.lock_table("app", "busy");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        export_all(
            &service(&server, "app", json!({"lockWaitTimeout": 2})),
            dir.path(),
        ),
    )
    .await;
    let elapsed = started.elapsed();
    drop(lock);
    let err = outcome
        .expect("the export waited on the lock instead of failing")
        .unwrap_err();
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("lock wait timeout"), "{err}");
    assert!(err.hint().unwrap().contains("lockWaitTimeout"), "{err}");
}
