//! Failures give errors users can act on, never a complete-looking stream, and leave
//! targets as they were.

mod common;

use std::sync::Arc;

use backup_core::{DataExporter, DataImporter, ErrorKind, ImportMode};
use backup_redis::{RedisExporter, RedisImporter};
use backup_testkit::redis_server::RedisServer;
use common::{
    export_bytes, fill_every_type, importer, logical_pipe, pipe, service, stream_of, TestControl,
};
use futures::StreamExt;
use serde_json::json;

async fn kill_mid_export(format: &str) {
    let source = RedisServer::start();
    source.cli(&["DEBUG", "POPULATE", "300000", "key", "300"]);
    let from = service(
        &source,
        json!({"format": format, "lowerDisklessSyncDelay": format == "rdb"}),
    );
    let exporter = RedisExporter;
    let artifacts = exporter.artifacts(&from).await.expect("artifacts");
    let mut data = exporter
        .export(&from, &artifacts[0])
        .await
        .expect("export starts");
    let first = data
        .stream
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk ok");
    assert!(!first.is_empty());
    source.stop();
    let mut failure = None;
    while let Some(chunk) = data.stream.next().await {
        if let Err(e) = chunk {
            failure = Some(backup_core::Error::io("export", e));
            break;
        }
    }
    let failure = failure.expect("the stream must end with an error, not quietly");
    assert_eq!(failure.kind(), ErrorKind::Unavailable, "{failure:?}");
    let late = data.late_metadata.expect("late metadata").await;
    assert!(late.is_err());
}

/// A logical export of a server holding every type, and an empty target server.
async fn logical_export_of_every_type() -> (RedisServer, Vec<u8>) {
    let source = RedisServer::start();
    let target = RedisServer::start();
    fill_every_type(&source);
    let (_, bytes) = export_bytes(&service(&source, json!({"format": "logical"})))
        .await
        .expect("export");
    (target, bytes)
}

#[tokio::test]
async fn dropped_connection_mid_rdb_export_ends_the_stream_with_an_error() {
    kill_mid_export("rdb").await;
}

#[tokio::test]
async fn dropped_connection_mid_logical_export_ends_the_stream_with_an_error() {
    kill_mid_export("logical").await;
}

async fn import_bytes(target: &RedisServer, bytes: Vec<u8>) -> backup_core::Result<()> {
    let to = service(target, json!({}));
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_redis::LOGICAL_ARTIFACT,
        backup_core::artifact::formats::REDIS_DUMP_RESTORE,
        "application/octet-stream",
    );
    RedisImporter::new()
        .import(&to, &artifact, stream_of(bytes), ImportMode::default())
        .await
}

#[tokio::test]
async fn corrupt_logical_import_is_an_integrity_error_and_leaves_an_empty_target_empty() {
    let (target, bytes) = logical_export_of_every_type().await;
    // A flipped byte in the middle (a payload or a header field).
    for position in [bytes.len() / 2, bytes.len() / 3, bytes.len() - 6] {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0x5a;
        let error = import_bytes(&target, corrupt)
            .await
            .expect_err("corrupt import");
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
        assert_eq!(target.total_keys(), 0, "target must be left empty");
    }
}

#[tokio::test]
async fn truncated_logical_import_is_an_integrity_error_and_leaves_an_empty_target_empty() {
    let (target, bytes) = logical_export_of_every_type().await;
    for cut in [bytes.len() - 1, bytes.len() - 13, bytes.len() / 2, 5] {
        let error = import_bytes(&target, bytes[..cut].to_vec())
            .await
            .expect_err("truncated import");
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
        assert_eq!(target.total_keys(), 0, "target must be left empty");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    let error = import_bytes(&target, trailing)
        .await
        .expect_err("trailing bytes");
    assert_eq!(error.kind(), ErrorKind::Integrity);
}

#[tokio::test]
async fn import_into_a_non_empty_target_without_force_is_refused_and_with_force_replaces() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    fill_every_type(&source);
    target.cli(&["-n", "5", "SET", "existing", "1"]);
    let control = TestControl::default();
    control.add(target.clone());
    for format in ["logical", "rdb"] {
        let from = service(&source, json!({"format": format}));
        let to = service(&target, json!({}));
        let error = pipe(&from, &to, &importer(&control), ImportMode::default())
            .await
            .expect_err("non-empty target");
        assert_eq!(error.kind(), ErrorKind::AlreadyExists, "{error:?}");
        assert_eq!(target.cli(&["-n", "5", "GET", "existing"]), "1");
        pipe(&from, &to, &importer(&control), ImportMode { force: true })
            .await
            .expect("forced import");
        if format == "logical" {
            // A logical export replaces only the databases it holds (0, 3 and 9).
            assert_eq!(target.cli(&["-n", "5", "GET", "existing"]), "1");
            target.cli(&["-n", "5", "DEL", "existing"]);
        }
        assert_eq!(source.digest(), target.digest());
        target.cli(&["-n", "5", "SET", "existing", "1"]);
    }
}

#[tokio::test]
async fn rdb_import_into_a_server_it_does_not_control_is_unsupported_and_names_logical() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    let error = pipe(
        &service(&source, json!({"format": "rdb"})),
        &service(&target, json!({})),
        &RedisImporter::new(),
        ImportMode::default(),
    )
    .await
    .expect_err("rdb import without control");
    assert_eq!(error.kind(), ErrorKind::Unsupported);
    assert!(error.to_string().contains("logical"), "{error}");
}

#[tokio::test]
async fn a_server_that_is_not_running_is_unavailable() {
    let port = backup_testkit::ports::free_port();
    let service = backup_core::ServiceTarget::local(
        "gone",
        backup_redis::RECIPE,
        json!({"host": "127.0.0.1", "port": port}),
    );
    let error = RedisExporter
        .artifacts(&service)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(error.hint().is_some());
}

#[tokio::test]
async fn a_value_above_proto_max_bulk_len_fails_with_a_hint_to_raise_it() {
    let source = RedisServer::start();
    let target = RedisServer::builder()
        .arg("proto-max-bulk-len", "1mb")
        .start();
    let random = common::random_bytes(2_500_000, 7);
    source.command(&[b"SET", b"big", &random]);
    let error = logical_pipe(&source, &target)
        .await
        .expect_err("value too large for the target");
    assert!(
        error
            .hint()
            .is_some_and(|h| h.contains("proto-max-bulk-len")),
        "{error:?}"
    );
    assert_eq!(target.total_keys(), 0);
}

#[tokio::test]
async fn a_target_out_of_memory_is_resource_exhausted() {
    let source = RedisServer::start();
    let target = RedisServer::builder()
        .arg("maxmemory", "3mb")
        .arg("maxmemory-policy", "noeviction")
        .start();
    for i in 0..20u32 {
        let value = common::random_bytes(500_000, u64::from(i) + 1);
        source.command(&[b"SET", format!("k{i}").as_bytes(), &value]);
    }
    let error = logical_pipe(&source, &target)
        .await
        .expect_err("target out of memory");
    assert_eq!(error.kind(), ErrorKind::ResourceExhausted, "{error:?}");
}

#[tokio::test]
async fn corrupt_or_truncated_rdb_import_is_an_integrity_error_and_leaves_the_target_as_it_was() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    fill_every_type(&source);
    target.cli(&["SET", "kept", "1"]);
    let control = TestControl::default();
    control.add(target.clone());
    let (artifact, rdb) = export_bytes(&service(
        &source,
        json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
    ))
    .await
    .expect("rdb export");
    let mut corrupt = rdb.clone();
    corrupt[rdb.len() / 2] ^= 0x01;
    let truncated = rdb[..rdb.len() - 100].to_vec();
    for bad in [corrupt, truncated] {
        let error = importer(&control)
            .import(
                &service(&target, json!({})),
                &artifact,
                stream_of(bad),
                ImportMode { force: true },
            )
            .await
            .expect_err("damaged RDB");
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
        assert_eq!(
            target.cli(&["GET", "kept"]),
            "1",
            "the target must be untouched"
        );
    }
}

#[tokio::test]
async fn a_target_with_fewer_databases_fails_with_a_hint_and_is_left_empty() {
    let source = RedisServer::start();
    let target = RedisServer::builder().arg("databases", "4").start();
    source.cli(&["-n", "9", "SET", "a", "1"]);
    let error = logical_pipe(&source, &target)
        .await
        .expect_err("database 9 does not exist on the target");
    assert!(
        error.hint().is_some_and(|h| h.contains("databases")),
        "{error:?}"
    );
    assert_eq!(target.total_keys(), 0);
}
