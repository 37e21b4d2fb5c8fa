//! The import keeps a checked temporary copy of the export before it changes anything;
//! when it cannot, it fails with a hint and the target is untouched.

mod common;

use backup_core::ImportMode;
use backup_testkit::redis_server::RedisServer;
use common::{import_logical_bytes, logical_bytes};
use serde_json::json;

/// Imports with `TMPDIR` set to `dir` (the only test in this binary, so the process-wide
/// variable is ours).
async fn import_with_tmpdir(
    target: &RedisServer,
    bytes: Vec<u8>,
    dir: &std::path::Path,
) -> backup_core::Result<()> {
    let saved = std::env::var_os("TMPDIR");
    std::env::set_var("TMPDIR", dir);
    let result = import_logical_bytes(target, bytes, ImportMode { force: true }).await;
    match saved {
        Some(value) => std::env::set_var("TMPDIR", value),
        None => std::env::remove_var("TMPDIR"),
    }
    result
}

#[tokio::test]
async fn without_room_for_the_temporary_copy_a_forced_import_fails_and_changes_nothing() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    target.cli(&["SET", "a", "old"]);
    target.cli(&["SET", "b", "kept"]);
    let before = target.digest();
    let bytes = logical_bytes(&source, json!({})).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Point TMPDIR at a directory that does not exist: no temporary copy can be made.
    // (On a full file system the error is ResourceExhausted, with the same hint.)
    let error = import_with_tmpdir(&target, bytes, &dir.path().join("missing"))
        .await
        .expect_err("no temporary copy");
    assert!(
        error.hint().is_some_and(|h| h.contains("TMPDIR")),
        "{error:?}"
    );
    assert_eq!(target.digest(), before);
}
