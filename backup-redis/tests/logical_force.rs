//! A forced logical import replaces only the databases the export holds, and changes
//! nothing before the whole export has been read and checked.

mod common;

use backup_core::{ErrorKind, ImportMode};
use backup_testkit::redis_server::RedisServer;
use common::{fill_every_type, import_logical_bytes, logical_bytes};
use serde_json::json;

const FORCE: ImportMode = ImportMode { force: true };

#[tokio::test]
async fn force_import_of_a_db0_export_leaves_db1_untouched() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "from-source", "new"]);
    source.cli(&["HSET", "h", "f", "v"]);
    target.cli(&["SET", "old-in-db0", "replaced"]);
    target.cli(&["-n", "1", "SET", "kept", "db1 value"]);
    target.cli(&["-n", "1", "RPUSH", "kept-list", "a", "b"]);
    let bytes = logical_bytes(&source, json!({})).await;
    import_logical_bytes(&target, bytes, FORCE)
        .await
        .expect("forced import");
    assert_eq!(target.cli(&["-n", "1", "GET", "kept"]), "db1 value");
    assert_eq!(target.cli(&["-n", "1", "LLEN", "kept-list"]), "2");
    assert_eq!(
        target.cli(&["EXISTS", "old-in-db0"]),
        "0",
        "db 0 is replaced"
    );
    // Without db 1, the target is exactly the source.
    target.cli(&["-n", "1", "FLUSHDB"]);
    assert_eq!(source.digest(), target.digest());
}

#[tokio::test]
async fn force_import_empties_a_listed_database_the_export_holds_empty() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    target.cli(&["-n", "2", "SET", "stale", "1"]);
    target.cli(&["-n", "3", "SET", "other", "1"]);
    // Database 2 is listed, so the export holds it (empty); database 3 is not.
    let bytes = logical_bytes(&source, json!({"databases": [0, 2]})).await;
    import_logical_bytes(&target, bytes, FORCE)
        .await
        .expect("forced import");
    assert_eq!(target.cli(&["-n", "2", "DBSIZE"]), "0");
    assert_eq!(target.cli(&["-n", "3", "GET", "other"]), "1");
    assert_eq!(target.cli(&["GET", "a"]), "1");
}

#[tokio::test]
async fn a_truncated_or_corrupt_export_with_force_leaves_the_target_untouched() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    fill_every_type(&source);
    // The target holds data in the databases the export holds (0, 3, 9) and others.
    fill_every_type(&target);
    target.cli(&["SET", "only-in-target", "1"]);
    target.cli(&["-n", "1", "SET", "db1", "1"]);
    let before = target.digest();
    let bytes = logical_bytes(&source, json!({})).await;
    let mut bad = Vec::new();
    for cut in [bytes.len() - 1, bytes.len() - 13, bytes.len() / 2, 30, 5] {
        bad.push(bytes[..cut].to_vec());
    }
    for position in [
        bytes.len() / 2,
        bytes.len() / 3,
        bytes.len() - 6,
        bytes.len() - 2,
    ] {
        let mut corrupt = bytes.clone();
        corrupt[position] ^= 0x5a;
        bad.push(corrupt);
    }
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"more");
    bad.push(trailing);
    for input in bad {
        let error = import_logical_bytes(&target, input, FORCE)
            .await
            .expect_err("a damaged export must be refused");
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
        assert_eq!(target.digest(), before, "the target must be untouched");
    }
}

#[tokio::test]
async fn a_failure_mid_replay_with_force_flushes_only_the_databases_the_export_holds() {
    let source = RedisServer::start();
    // Values above 1 MB are refused by the target while the keys are replayed.
    let target = RedisServer::builder()
        .arg("proto-max-bulk-len", "1mb")
        .start();
    source.cli(&["SET", "small", "1"]);
    source.command(&[b"SET", b"big", &common::random_bytes(2_500_000, 11)]);
    target.cli(&["SET", "old-in-db0", "1"]);
    target.cli(&["-n", "1", "SET", "kept", "db1 value"]);
    let bytes = logical_bytes(&source, json!({})).await;
    let error = import_logical_bytes(&target, bytes, FORCE)
        .await
        .expect_err("the big value is refused mid-replay");
    assert!(
        error
            .hint()
            .is_some_and(|h| h.contains("proto-max-bulk-len")),
        "{error:?}"
    );
    assert_eq!(
        target.cli(&["DBSIZE"]),
        "0",
        "db 0 is left empty, not half restored"
    );
    assert_eq!(target.cli(&["-n", "1", "GET", "kept"]), "db1 value");
}

#[tokio::test]
async fn a_target_with_too_few_databases_is_refused_before_anything_is_flushed() {
    let source = RedisServer::start();
    let target = RedisServer::builder().arg("databases", "4").start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "9", "SET", "b", "1"]);
    target.cli(&["SET", "kept", "1"]);
    let before = target.digest();
    let bytes = logical_bytes(&source, json!({})).await;
    let error = import_logical_bytes(&target, bytes, FORCE)
        .await
        .expect_err("database 9 does not exist on the target");
    assert!(
        error.hint().is_some_and(|h| h.contains("databases")),
        "{error:?}"
    );
    assert_eq!(target.digest(), before);
}

#[tokio::test]
async fn the_export_records_the_databases_it_holds_in_its_metadata() {
    let source = RedisServer::start();
    source.cli(&["-n", "4", "SET", "a", "1"]);
    let from = common::service(&source, json!({"format": "logical", "databases": [1, 4]}));
    let exporter = backup_redis::RedisExporter;
    let artifacts = backup_core::DataExporter::artifacts(&exporter, &from)
        .await
        .expect("artifacts");
    let data = backup_core::DataExporter::export(&exporter, &from, &artifacts[0])
        .await
        .expect("export");
    let mut stream = data.stream;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        chunk.expect("chunk");
    }
    let late = data
        .late_metadata
        .expect("late metadata")
        .await
        .expect("ok");
    assert_eq!(late.get("databases"), Some(&json!([1, 4])));
}

#[tokio::test]
async fn an_export_stream_slower_than_the_server_idle_timeout_still_imports() {
    let source = RedisServer::start();
    let target = RedisServer::builder().arg("timeout", "1").start();
    source.cli(&["SET", "a", "1"]);
    let bytes = logical_bytes(&source, json!({})).await;
    // The whole export is read before the import talks to the server again: a pause
    // longer than the server's idle timeout must not break it.
    let half = bytes.len() / 2;
    let parts = vec![bytes[..half].to_vec(), bytes[half..].to_vec()];
    let slow = futures::stream::unfold(parts.into_iter(), |mut parts| async move {
        let part = parts.next()?;
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        Some((Ok(bytes::Bytes::from(part)), parts))
    });
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_redis::LOGICAL_ARTIFACT,
        backup_core::artifact::formats::REDIS_DUMP_RESTORE,
        "application/octet-stream",
    );
    backup_core::DataImporter::import(
        &backup_redis::RedisImporter::new(),
        &common::service(&target, json!({})),
        &artifact,
        Box::pin(slow),
        ImportMode::default(),
    )
    .await
    .expect("slow import");
    assert_eq!(source.digest(), target.digest());
}
