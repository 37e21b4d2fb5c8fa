//! Concurrent RDB exports of one server with `lowerDisklessSyncDelay` share one lowering:
//! the original `repl-diskless-sync-delay` is back afterwards, whatever the interleaving.

mod common;

use std::time::Instant;

use backup_testkit::redis_server::RedisServer;
use common::{export_bytes, service};
use serde_json::json;

fn delay(server: &RedisServer) -> String {
    server
        .cli(&["CONFIG", "GET", "repl-diskless-sync-delay"])
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Ten keys, each taking `micros` to save, and a background save in progress: a
/// replica's sync waits for it, so an export keeps the delay lowered meanwhile.
fn start_slow_save(server: &RedisServer, micros: u32) {
    for i in 0..10 {
        server.cli(&["SET", &format!("k{i}"), "v"]);
    }
    server.cli(&["CONFIG", "SET", "rdb-key-save-delay", &micros.to_string()]);
    server.cli(&["BGSAVE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_exports_with_a_lowered_delay_put_the_original_delay_back() {
    let server = RedisServer::builder()
        .arg("repl-diskless-sync-delay", "7")
        .start();
    for round in 0..3 {
        // The exports overlap: all start while a save is running.
        start_slow_save(&server, 30_000);
        let start = Instant::now();
        let exports: Vec<_> = (0..6)
            .map(|_| {
                let svc = service(
                    &server,
                    json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
                );
                tokio::spawn(async move { export_bytes(&svc).await })
            })
            .collect();
        for export in exports {
            let (_, rdb) = export.await.expect("join").expect("export");
            assert!(rdb.starts_with(b"REDIS"));
        }
        assert_eq!(delay(&server), "7", "round {round}");
        // Every export skipped the 7 s wait: the lowering was shared, not undone early.
        assert!(
            start.elapsed().as_secs() < 7,
            "round {round}: {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_changed_by_someone_else_during_the_export_is_left_alone() {
    let server = RedisServer::builder()
        .arg("repl-diskless-sync-delay", "7")
        .start();
    // The export waits for a running save with the delay lowered; meanwhile the setting
    // is changed the way an operator would.
    start_slow_save(&server, 200_000);
    let svc = service(
        &server,
        json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
    );
    let export = tokio::spawn(async move { export_bytes(&svc).await });
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while delay(&server) != "0" {
        assert!(
            Instant::now() < deadline,
            "the export never lowered the delay"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        !export.is_finished(),
        "the export must still hold the lowering"
    );
    server.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", "3"]);
    export.await.expect("join").expect("export");
    assert_eq!(delay(&server), "3");
}
