//! Every data type in several databases, and TTLs, survive export + import.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backup_core::ImportMode;
use backup_redis::RedisImporter;
use backup_testkit::redis_server::RedisServer;
use common::{fill_every_type, importer, pipe, service, TestControl};
use serde_json::json;

#[tokio::test]
async fn every_type_in_several_databases_round_trips_with_equal_digest_logical() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    fill_every_type(&source);
    let from = service(&source, json!({"format": "logical"}));
    let to = service(&target, json!({}));
    pipe(&from, &to, &RedisImporter::new(), ImportMode::default())
        .await
        .expect("logical round trip");
    assert_eq!(source.digest(), target.digest());
    let groups = target.cli(&["-n", "3", "XINFO", "GROUPS", "stream"]);
    assert!(
        groups.contains("group1") && groups.contains("group2"),
        "{groups}"
    );
    assert_eq!(source.total_keys(), target.total_keys());
}

#[tokio::test]
async fn every_type_in_several_databases_round_trips_with_equal_digest_rdb() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    fill_every_type(&source);
    let control = TestControl::default();
    control.add(target.clone());
    let from = service(&source, json!({"format": "rdb"}));
    let to = service(&target, json!({}));
    pipe(&from, &to, &importer(&control), ImportMode::default())
        .await
        .expect("rdb round trip");
    assert_eq!(source.digest(), target.digest());
    assert_eq!(source.total_keys(), target.total_keys());
}

#[tokio::test]
async fn ttls_survive_within_a_second_and_expired_keys_do_not_come_back() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "long", "v", "EX", "3600"]);
    source.cli(&["-n", "2", "SET", "medium", "v", "PX", "120000"]);
    source.cli(&["SET", "short", "v", "PX", "1500"]);
    source.cli(&["SET", "forever", "v"]);
    let from = service(&source, json!({"format": "logical"}));
    let (artifact, bytes) = common::export_bytes(&from).await.expect("export");
    // Let `short` expire between export and import.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let to = service(&target, json!({}));
    backup_core::DataImporter::import(
        &RedisImporter::new(),
        &to,
        &artifact,
        common::stream_of(bytes),
        ImportMode::default(),
    )
    .await
    .expect("import");
    let ttl: i64 = target.cli(&["PTTL", "long"]).parse().expect("pttl");
    let source_ttl: i64 = source.cli(&["PTTL", "long"]).parse().expect("pttl");
    assert!(
        (ttl - source_ttl).abs() < 1000,
        "long: {ttl} vs {source_ttl}"
    );
    let ttl: i64 = target
        .cli(&["-n", "2", "PTTL", "medium"])
        .parse()
        .expect("pttl");
    let source_ttl: i64 = source
        .cli(&["-n", "2", "PTTL", "medium"])
        .parse()
        .expect("pttl");
    assert!(
        (ttl - source_ttl).abs() < 1000,
        "medium: {ttl} vs {source_ttl}"
    );
    assert_eq!(target.cli(&["PTTL", "forever"]), "-1");
    assert_eq!(target.cli(&["EXISTS", "short"]), "0");
    assert_eq!(target.total_keys(), 3);
}

#[tokio::test]
async fn ttls_survive_an_rdb_round_trip() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    source.cli(&["SET", "long", "v", "EX", "3600"]);
    let control = TestControl::default();
    control.add(target.clone());
    pipe(
        &service(&source, json!({"format": "rdb"})),
        &service(&target, json!({})),
        &importer(&control),
        ImportMode::default(),
    )
    .await
    .expect("rdb round trip");
    let ttl: i64 = target.cli(&["PTTL", "long"]).parse().expect("pttl");
    let source_ttl: i64 = source.cli(&["PTTL", "long"]).parse().expect("pttl");
    assert!((ttl - source_ttl).abs() < 1000);
}

#[tokio::test]
async fn only_the_listed_databases_are_exported_logically() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["-n", "1", "SET", "a", "1"]);
    source.cli(&["-n", "2", "SET", "b", "2"]);
    pipe(
        &service(&source, json!({"format": "logical", "databases": [2]})),
        &service(&target, json!({})),
        &RedisImporter::new(),
        ImportMode::default(),
    )
    .await
    .expect("round trip");
    assert_eq!(target.cli(&["-n", "2", "GET", "b"]), "2");
    assert_eq!(target.total_keys(), 1);
}

#[tokio::test]
async fn an_rdb_export_records_server_version_keys_per_database_rdb_version_and_size() {
    use backup_core::DataExporter;
    use futures::StreamExt;
    let source = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "3", "SET", "b", "2"]);
    source.cli(&["-n", "3", "SET", "c", "3"]);
    let from = service(
        &source,
        json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
    );
    let exporter = backup_redis::RedisExporter;
    let artifacts = exporter.artifacts(&from).await.expect("artifacts");
    let descriptor = &artifacts[0];
    assert_eq!(descriptor.format, backup_core::artifact::formats::REDIS_RDB);
    assert!(descriptor
        .source_version
        .as_deref()
        .is_some_and(|v| v.starts_with("Redis 7")));
    assert_eq!(
        descriptor.metadata["keysPerDatabase"],
        json!({"0": 1, "3": 2})
    );
    let data = exporter.export(&from, descriptor).await.expect("export");
    let mut size = 0u64;
    let mut stream = data.stream;
    while let Some(chunk) = stream.next().await {
        size += chunk.expect("chunk").len() as u64;
    }
    let late = data
        .late_metadata
        .expect("late metadata")
        .await
        .expect("late");
    assert_eq!(late["size"], json!(size));
    assert!(late["rdbVersion"].as_u64().is_some_and(|v| v >= 9));
    assert_eq!(late["transfer"], json!("diskless"));
}
