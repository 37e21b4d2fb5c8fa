//! `ConfiguredHost` as a library: PostgreSQL + Redis + a directory that already run,
//! backed up and restored in place with core's two functions and no host glue.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use backup_core::host::{NewDeployment, WorkspaceHost};
use backup_core::progress::NoProgress;
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::ErrorKind;
use backup_testkit::postgres_server::PostgresServer;
use backup_testkit::redis_server::RedisServer;
use backupctl::ConfiguredHost;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_host_backs_up_and_restores_running_postgres_redis_and_a_directory() {
    let pg = PostgresServer::start();
    pg.create_database("shop");
    pg.psql(
        "shop",
        "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100);",
    );
    let redis = RedisServer::builder().password("lib-secret").start();
    redis.cli(&["SET", "k", "v"]);
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("uploads");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a.txt"), "a").unwrap();

    let host = ConfiguredHost::new("shop")
        .unwrap()
        .service("db", "postgres", pg.config_json("shop"))
        .unwrap()
        .service("cache", "redis", redis.config_json())
        .unwrap()
        .service_depending_on("uploads", "directory", json!({"path": files}), &["db"])
        .unwrap();
    let before = (
        pg.table_checksums("shop"),
        redis.digest(),
        backup_testkit::tree::tree_digest(&files),
    );
    let bundle = dir.path().join("shop.backup.zip");
    let progress = Arc::new(NoProgress);
    backup_core::backup::create_backup(
        &host,
        host.registry(),
        &Default::default(),
        &bundle,
        progress.clone(),
    )
    .await
    .unwrap();

    pg.psql("shop", "DELETE FROM t;");
    redis.cli(&["SET", "k", "changed"]);
    std::fs::write(files.join("a.txt"), "changed").unwrap();
    let mut options = RestoreOptions {
        recreate_services: false,
        ..Default::default()
    };
    options.import.force = true;
    restore_backup(&bundle, &host, host.registry(), &options, progress)
        .await
        .unwrap();
    let after = (
        pg.table_checksums("shop"),
        redis.digest(),
        backup_testkit::tree::tree_digest(&files),
    );
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_configured_host_refuses_to_create_or_remove_services_and_checks_configs() {
    let host = ConfiguredHost::new("w")
        .unwrap()
        .service("files", "directory", json!({"path": "/srv/files"}))
        .unwrap();
    let new = NewDeployment {
        name: "x".into(),
        recipe: "directory".into(),
        config: Default::default(),
        depends_on: vec![],
    };
    assert_eq!(
        host.create_deployment(new).await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        host.remove_deployment("files").await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    let bad = ConfiguredHost::new("w")
        .unwrap()
        .service("db", "postgres", json!({"port": "x"}));
    let err = bad.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!err.field_errors().is_empty());
    let unknown = ConfiguredHost::new("w")
        .unwrap()
        .service("m", "mysql", json!({}));
    assert_eq!(unknown.unwrap_err().kind(), ErrorKind::UnknownRecipe);
}
