//! A million keys round-trip in both formats with equal digests.

mod common;

use std::sync::Arc;

use backup_core::ImportMode;
use backup_testkit::redis_server::RedisServer;
use common::{importer, logical_pipe, pipe, service, TestControl};
use serde_json::json;

const KEYS: &str = "1000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_keys_round_trip_logically_with_equal_digest() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["DEBUG", "POPULATE", KEYS]);
    source.cli(&["-n", "1", "DEBUG", "POPULATE", "1000", "other"]);
    logical_pipe(&source, &target)
        .await
        .expect("logical round trip");
    assert_eq!(target.total_keys(), 1_001_000);
    assert_eq!(source.digest(), target.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_keys_round_trip_as_rdb_with_equal_digest() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    source.cli(&["DEBUG", "POPULATE", KEYS]);
    let control = TestControl::default();
    control.add(target.clone());
    pipe(
        &service(
            &source,
            json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
        ),
        &service(&target, json!({})),
        &importer(&control),
        ImportMode::default(),
    )
    .await
    .expect("rdb round trip");
    assert_eq!(target.total_keys(), 1_000_000);
    assert_eq!(source.digest(), target.digest());
}
