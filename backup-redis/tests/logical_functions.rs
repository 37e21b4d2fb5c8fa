//! Redis 7 function libraries (`FUNCTION LOAD`) travel with a logical export, which
//! `DEBUG DIGEST` does not show: the tests compare `FUNCTION LIST WITHCODE`.

mod common;

use std::sync::Arc;

use backup_core::{ErrorKind, ImportMode};
use backup_testkit::redis_server::RedisServer;
use common::{import_logical_bytes, logical_bytes, logical_pipe, service, TestControl};
use serde_json::json;

const FORCE: ImportMode = ImportMode { force: true };

fn library(name: &str, function: &str, reply: &str) -> String {
    format!(
        "#!lua name={name}\nredis.register_function('{function}', function(keys, args) return '{reply}' end)"
    )
}

fn load(server: &RedisServer, code: &str) {
    server.cli(&["FUNCTION", "LOAD", code]);
}

/// `FUNCTION LIST WITHCODE`, one entry per library, sorted (the server's order is its
/// hash table's).
fn functions(server: &RedisServer) -> Vec<String> {
    let mut libraries: Vec<String> = server
        .cli(&["FUNCTION", "LIST", "WITHCODE"])
        .split("library_name\n")
        .filter(|library| !library.trim().is_empty())
        .map(|library| library.trim().to_string())
        .collect();
    libraries.sort();
    libraries
}

fn fcall(server: &RedisServer, function: &str) -> String {
    server.cli(&["FCALL", function, "0"])
}

#[tokio::test]
async fn function_libraries_survive_a_logical_round_trip() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    load(&source, &library("mylib", "hello", "from source"));
    load(&source, &library("second", "other", "second lib"));
    source.cli(&["SET", "a", "1"]);
    logical_pipe(&source, &target).await.expect("round trip");
    assert_eq!(functions(&source), functions(&target));
    assert_eq!(functions(&target).len(), 2);
    assert_eq!(fcall(&target, "hello"), "from source");
    assert_eq!(source.digest(), target.digest());
}

#[tokio::test]
async fn function_libraries_alone_survive_a_logical_round_trip() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    load(&source, &library("onlylib", "f", "no keys"));
    logical_pipe(&source, &target).await.expect("round trip");
    assert_eq!(functions(&source), functions(&target));
}

#[tokio::test]
async fn force_replaces_libraries_of_the_same_name_and_keeps_the_others() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    load(&source, &library("mylib", "hello", "new"));
    load(&target, &library("mylib", "hello", "old"));
    load(&target, &library("targetlib", "mine", "kept"));
    target.cli(&["SET", "k", "v"]);
    let bytes = logical_bytes(&source, json!({})).await;
    import_logical_bytes(&target, bytes, FORCE)
        .await
        .expect("forced import");
    assert_eq!(fcall(&target, "hello"), "new");
    assert_eq!(fcall(&target, "mine"), "kept");
}

#[tokio::test]
async fn without_force_a_library_the_target_already_has_is_refused_and_nothing_is_left() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    load(&source, &library("mylib", "hello", "new"));
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "2", "SET", "b", "1"]);
    load(&target, &library("mylib", "hello", "old"));
    let before = functions(&target);
    let bytes = logical_bytes(&source, json!({})).await;
    let error = import_logical_bytes(&target, bytes, ImportMode::default())
        .await
        .expect_err("library name collision");
    assert!(error.to_string().contains("mylib"), "{error}");
    assert!(error.hint().is_some(), "{error:?}");
    assert_eq!(
        target.total_keys(),
        0,
        "the restored keys are removed again"
    );
    assert_eq!(functions(&target), before);
}

#[tokio::test]
async fn a_version_1_export_without_functions_is_still_imported() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "3", "RPUSH", "l", "x", "y"]);
    let mut bytes = logical_bytes(&source, json!({})).await;
    assert_eq!(
        &bytes[8..12],
        &2u32.to_be_bytes(),
        "this build writes version 2"
    );
    // Version 1 is the same layout without a functions record (none here).
    bytes[8..12].copy_from_slice(&1u32.to_be_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_be_bytes());
    import_logical_bytes(&target, bytes, ImportMode::default())
        .await
        .expect("version 1 import");
    assert_eq!(source.digest(), target.digest());
}

#[tokio::test]
async fn a_functions_record_in_a_version_1_export_is_refused() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    load(&source, &library("mylib", "hello", "x"));
    let mut bytes = logical_bytes(&source, json!({})).await;
    bytes[8..12].copy_from_slice(&1u32.to_be_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_be_bytes());
    let error = import_logical_bytes(&target, bytes, ImportMode::default())
        .await
        .expect_err("functions record in version 1");
    assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
    assert!(functions(&target).is_empty());
}

#[tokio::test]
async fn function_libraries_survive_an_rdb_round_trip() {
    let source = RedisServer::start();
    let target = Arc::new(RedisServer::start());
    load(&source, &library("mylib", "hello", "in rdb"));
    source.cli(&["SET", "a", "1"]);
    let control = TestControl::default();
    control.add(target.clone());
    common::pipe(
        &service(
            &source,
            json!({"format": "rdb", "lowerDisklessSyncDelay": true}),
        ),
        &service(&target, json!({})),
        &common::importer(&control),
        ImportMode::default(),
    )
    .await
    .expect("rdb round trip");
    assert_eq!(functions(&source), functions(&target));
    assert_eq!(fcall(&target, "hello"), "in rdb");
}

#[tokio::test]
async fn a_user_without_function_rights_exports_a_server_without_libraries_and_is_told_otherwise() {
    let source = RedisServer::builder()
        .acl_user(&[
            "backup",
            "on",
            ">backup-pw",
            "~*",
            "&*",
            "+@all",
            "-function",
        ])
        .start();
    source.cli(&["SET", "a", "1"]);
    let user = json!({"username": "backup", "password": "backup-pw"});
    logical_bytes(&source, user.clone()).await;
    load(&source, &library("mylib", "hello", "x"));
    let mut config = user;
    config["format"] = json!("logical");
    let error = common::export_bytes(&service(&source, config))
        .await
        .expect_err("FUNCTION DUMP is not allowed");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error:?}");
    assert!(
        error.hint().is_some_and(|h| h.contains("function")),
        "{error:?}"
    );
}

/// A version 2 export of `records`, with its end record and checksum.
fn crafted(records: &[u8]) -> Vec<u8> {
    let mut out = b"RDSLOGI\n".to_vec();
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(records);
    out.push(b'E');
    out.extend_from_slice(&0u64.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[tokio::test]
async fn a_functions_record_after_a_database_or_twice_is_refused_untouched() {
    let target = RedisServer::start();
    target.cli(&["-n", "1", "SET", "kept", "1"]);
    let before = target.digest();
    let functions = [b'F', 0, 0, 0, 0, 0, 0, 0, 0];
    let database = [b'D', 0, 0, 0, 1];
    for records in [
        [&database[..], &functions[..]].concat(),
        [&functions[..], &functions[..]].concat(),
    ] {
        let error = import_logical_bytes(&target, crafted(&records), FORCE)
            .await
            .expect_err("out of place functions record");
        assert_eq!(error.kind(), ErrorKind::Integrity, "{error:?}");
        assert!(error.to_string().contains("functions"), "{error}");
        assert_eq!(target.digest(), before);
    }
    // Well placed, the same records are accepted (an empty database 1 replaces db 1).
    import_logical_bytes(&target, crafted(&database), FORCE)
        .await
        .expect("a valid crafted export");
    assert_eq!(target.total_keys(), 0);
}
