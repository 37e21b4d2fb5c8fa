//! RDB import never loses the target's data: an RDB the target cannot read is refused
//! before the server is stopped, and one it fails to load is replaced by the old
//! `dump.rdb`, so the server comes back with what it held.

mod common;

use std::sync::Arc;

use backup_core::artifact::formats::REDIS_RDB;
use backup_core::{DataImporter, ErrorKind, ImportMode};
use backup_testkit::redis_server::RedisServer;
use common::{export_bytes, fill_every_type, importer, service, stream_of, TestControl};
use serde_json::json;

fn run_id(server: &RedisServer) -> String {
    server
        .cli(&["INFO", "server"])
        .lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Files the import may have left next to the RDB (temporary or moved-aside copies).
fn leftovers(server: &RedisServer) -> Vec<String> {
    std::fs::read_dir(server.dir())
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".backup-import"))
        .collect()
}

/// A target with every data type and a control that runs it.
fn filled_target() -> (Arc<RedisServer>, TestControl) {
    let target = Arc::new(RedisServer::start());
    fill_every_type(&target);
    let control = TestControl::default();
    control.add(target.clone());
    (target, control)
}

/// An RDB with checksums off (a stored 0), so the header can be edited.
fn without_checksum(mut rdb: Vec<u8>) -> Vec<u8> {
    let len = rdb.len();
    rdb[len - 8..].fill(0);
    rdb
}

#[tokio::test]
async fn an_rdb_of_a_newer_format_version_is_refused_before_the_server_is_stopped() {
    let source = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    let (mut artifact, rdb) = export_bytes(&service(&source, json!({"format": "rdb"})))
        .await
        .expect("rdb export");
    assert_eq!(artifact.format, REDIS_RDB);
    let mut newer = without_checksum(rdb);
    newer[5..9].copy_from_slice(b"0099");
    let (target, control) = filled_target();
    let digest = target.digest();
    let before = run_id(&target);
    let to = service(&target, json!({}));

    let error = importer(&control)
        .import(&to, &artifact, stream_of(newer), ImportMode { force: true })
        .await
        .expect_err("a newer RDB version");
    assert_eq!(error.kind(), ErrorKind::UnsupportedVersion, "{error:?}");
    assert!(error.to_string().contains("99"), "{error}");
    assert_eq!(
        run_id(&target),
        before,
        "the server must not have been restarted"
    );
    assert_eq!(target.digest(), digest);
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));

    // The check (and so a dry run) refuses it from the manifest's rdbVersion alone.
    artifact.metadata.insert("rdbVersion".into(), json!(99));
    let error = importer(&control)
        .check(&to, &[artifact], ImportMode { force: true })
        .await
        .expect_err("check refuses a newer RDB version");
    assert_eq!(error.kind(), ErrorKind::UnsupportedVersion, "{error:?}");
    assert_eq!(run_id(&target), before);
}

#[tokio::test]
async fn an_rdb_the_server_cannot_load_puts_the_old_dump_back_with_the_old_data() {
    let (target, control) = filled_target();
    let digest = target.digest();
    let keys = target.total_keys();
    // Header, checksum and EOF opcode are right, the body is not: only loading finds out.
    let mut broken = b"REDIS0010".to_vec();
    broken.extend_from_slice(&[0x7a, 0x01, b'k', 0x13, 0x37]);
    broken.push(0xff);
    broken.extend_from_slice(&[0u8; 8]);
    let artifact = backup_core::ArtifactDescriptor::new(
        backup_redis::RDB_ARTIFACT,
        REDIS_RDB,
        "application/octet-stream",
    );

    let error = importer(&control)
        .import(
            &service(&target, json!({})),
            &artifact,
            stream_of(broken),
            ImportMode { force: true },
        )
        .await
        .expect_err("redis cannot load it");
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(target.is_running(), "the server must be running again");
    assert_eq!(target.digest(), digest, "the old data must be back");
    assert_eq!(target.total_keys(), keys);
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));
}

#[tokio::test]
async fn a_successful_rdb_import_replaces_the_data_and_leaves_no_copies_behind() {
    let source = RedisServer::start();
    source.cli(&["SET", "new", "1"]);
    let (target, control) = filled_target();
    let (artifact, rdb) = export_bytes(&service(&source, json!({"format": "rdb"})))
        .await
        .expect("rdb export");
    importer(&control)
        .import(
            &service(&target, json!({})),
            &artifact,
            stream_of(rdb),
            ImportMode { force: true },
        )
        .await
        .expect("rdb import");
    assert_eq!(target.digest(), source.digest());
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));
}

#[tokio::test]
async fn an_rdb_import_waits_for_a_save_the_server_is_already_running() {
    let source = RedisServer::start();
    source.cli(&["SET", "new", "1"]);
    let (target, control) = filled_target();
    let (artifact, rdb) = export_bytes(&service(&source, json!({"format": "rdb"})))
        .await
        .expect("rdb export");
    // About a second of background save in progress when the import asks for its SAVE.
    target.cli(&["CONFIG", "SET", "rdb-key-save-delay", "20000"]);
    target.cli(&["BGSAVE"]);
    importer(&control)
        .import(
            &service(&target, json!({})),
            &artifact,
            stream_of(rdb),
            ImportMode { force: true },
        )
        .await
        .expect("rdb import after the running save");
    assert_eq!(target.digest(), source.digest());
}
