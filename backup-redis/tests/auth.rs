//! Passwords and ACL users: required, refused without leaking, and SYNC-less users
//! pointed to the logical format.

mod common;

use backup_core::{DataExporter, ErrorKind, ImportMode};
use backup_redis::{RedisExporter, RedisImporter};
use backup_testkit::redis_server::RedisServer;
use common::{logical_pipe, pipe, service};
use serde_json::json;

const PASSWORD: &str = "s3cret-Pa55word-xyz";

#[tokio::test]
async fn a_password_protected_server_round_trips_with_the_password() {
    let source = RedisServer::builder().password(PASSWORD).start();
    let target = RedisServer::builder().password(PASSWORD).start();
    source.cli(&["SET", "a", "1"]);
    logical_pipe(&source, &target)
        .await
        .expect("authenticated round trip");
    assert_eq!(source.digest(), target.digest());
    let (_, rdb) = common::export_bytes(&service(&source, json!({"format": "rdb"})))
        .await
        .expect("authenticated rdb export");
    assert!(rdb.starts_with(b"REDIS"));
}

#[tokio::test]
async fn a_missing_password_is_permission_denied_with_a_hint() {
    let server = RedisServer::builder().password(PASSWORD).start();
    let mut svc = service(&server, json!({}));
    svc.config.as_object_mut().map(|c| c.remove("password"));
    let error = RedisExporter
        .artifacts(&svc)
        .await
        .expect_err("no password");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error:?}");
    assert!(error.hint().is_some_and(|h| h.contains("password")));
}

#[tokio::test]
async fn a_wrong_password_is_permission_denied_without_leaking_it() {
    let server = RedisServer::builder().password(PASSWORD).start();
    let wrong = "Wr0ng-secret-value-123";
    let svc = service(&server, json!({"password": wrong}));
    let error = RedisExporter
        .artifacts(&svc)
        .await
        .expect_err("wrong password");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error:?}");
    for text in [error.to_string(), format!("{error:?}"), format!("{svc:?}")] {
        assert!(!text.contains(wrong), "the password leaked: {text}");
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
    let config = backup_redis::RedisConfig::from_service(&svc).expect("config");
    assert!(!format!("{config:?}").contains(wrong));
}

#[tokio::test]
async fn an_acl_user_without_sync_gets_an_rdb_error_suggesting_logical_and_logical_works() {
    let source = RedisServer::builder()
        .acl_user(&[
            "backup",
            "on",
            ">backup-pw",
            "~*",
            "&*",
            "+@all",
            "-sync",
            "-psync",
        ])
        .start();
    let target = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "4", "HSET", "h", "f", "v"]);
    let rdb = service(
        &source,
        json!({"username": "backup", "password": "backup-pw", "format": "rdb"}),
    );
    let exporter = RedisExporter;
    let artifacts = exporter.artifacts(&rdb).await.expect("artifacts");
    let error = exporter
        .export(&rdb, &artifacts[0])
        .await
        .expect_err("SYNC is not allowed");
    assert_eq!(error.kind(), ErrorKind::PermissionDenied, "{error:?}");
    assert!(
        error.hint().is_some_and(|h| h.contains("logical")),
        "{error:?}"
    );
    let logical = service(
        &source,
        json!({"username": "backup", "password": "backup-pw", "format": "logical"}),
    );
    pipe(
        &logical,
        &service(&target, json!({})),
        &RedisImporter::new(),
        ImportMode::default(),
    )
    .await
    .expect("logical export works without SYNC");
    assert_eq!(source.digest(), target.digest());
}
