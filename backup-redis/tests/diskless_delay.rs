//! `lowerDisklessSyncDelay`: skips the diskless wait and always puts the setting back.

mod common;

use std::time::Instant;

use backup_core::{DataExporter, ErrorKind};
use backup_redis::RedisExporter;
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

#[tokio::test]
async fn lower_diskless_sync_delay_skips_the_wait_and_restores_the_original_setting() {
    let server = RedisServer::builder()
        .arg("repl-diskless-sync-delay", "7")
        .start();
    server.cli(&["SET", "a", "1"]);
    let start = Instant::now();
    let (_, rdb) = export_bytes(&service(
        &server,
        json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
    ))
    .await
    .expect("export");
    assert!(rdb.starts_with(b"REDIS"));
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
    assert_eq!(delay(&server), "7");
}

#[tokio::test]
async fn without_the_option_the_setting_is_untouched() {
    let server = RedisServer::builder()
        .arg("repl-diskless-sync-delay", "1")
        .start();
    let (_, rdb) = export_bytes(&service(&server, json!({"format": "rdb"})))
        .await
        .expect("export");
    assert!(rdb.starts_with(b"REDIS"));
    assert_eq!(delay(&server), "1");
}

#[tokio::test]
async fn lower_diskless_sync_delay_restores_the_setting_when_the_export_fails() {
    let server = RedisServer::builder()
        .arg("repl-diskless-sync-delay", "7")
        .start();
    server.cli(&[
        "ACL", "SETUSER", "ops", "on", ">ops-pw", "~*", "&*", "+@all", "-sync", "-psync",
    ]);
    let svc = service(
        &server,
        json!({"username": "ops", "password": "ops-pw", "format": "rdb", "lowerDisklessSyncDelay": true}),
    );
    let artifacts = RedisExporter.artifacts(&svc).await.expect("artifacts");
    let error = RedisExporter
        .export(&svc, &artifacts[0])
        .await
        .expect_err("SYNC refused");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    assert_eq!(delay(&server), "7");
}
