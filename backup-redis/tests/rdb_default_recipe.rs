//! The default recipe restores what the default config backs up, and an RDB bundle it
//! cannot restore is refused before anything is created or changed, also in a dry run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::artifact::formats::{REDIS_DUMP_RESTORE, REDIS_RDB};
use backup_core::backup::{create_backup, BackupRequest};
use backup_core::host::NewDeployment;
use backup_core::memory_host::{config_from_json, InMemoryHost};
use backup_core::progress::CollectedProgress;
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::snapshot::WorkspaceRef;
use backup_core::{DataImporter, ErrorKind, RecipeRegistry};
use backup_testkit::redis_server::RedisServer;
use serde_json::json;

fn registry() -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    backup_redis::register(&mut registry).expect("redis recipe");
    registry
}

fn host(slug: &str, server: &RedisServer, extra: serde_json::Value) -> InMemoryHost {
    let mut config = server.config_json();
    if let (Some(base), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    let host = InMemoryHost::new(WorkspaceRef {
        slug: slug.into(),
        name: slug.into(),
    });
    host.insert(NewDeployment {
        name: "cache".into(),
        recipe: backup_redis::RECIPE.into(),
        config: config_from_json(config),
        depends_on: Vec::new(),
    });
    host
}

async fn backup(host: &InMemoryHost, dir: &Path) -> PathBuf {
    let path = dir.join("redis.backup.zip");
    create_backup(
        host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("backup");
    path
}

#[test]
fn the_default_importer_lists_only_the_logical_format_and_one_with_control_adds_rdb() {
    let plain = backup_redis::RedisImporter::new();
    assert_eq!(plain.formats(), vec![REDIS_DUMP_RESTORE.to_string()]);
    let recipe = backup_redis::recipe().expect("recipe");
    let importer = recipe.importer().expect("importer");
    assert!(!importer.formats().iter().any(|f| f == REDIS_RDB));
}

#[tokio::test]
async fn an_rdb_bundle_is_refused_by_the_default_recipe_before_anything_is_touched_also_in_a_dry_run(
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    let bundle = backup(
        &host("source", &source, json!({"format": "rdb"})),
        tmp.path(),
    )
    .await;
    for dry_run in [true, false] {
        let target = InMemoryHost::new(WorkspaceRef {
            slug: "target".into(),
            name: "target".into(),
        });
        let mut options = RestoreOptions::default();
        options.import.dry_run = dry_run;
        let error = restore_backup(
            &bundle,
            &target,
            &registry(),
            &options,
            Arc::new(CollectedProgress::new()),
        )
        .await
        .expect_err("the default recipe cannot restore an RDB");
        assert_eq!(error.kind(), ErrorKind::UnsupportedVersion, "{error:?}");
        assert!(error.to_string().contains(REDIS_RDB), "{error}");
        assert!(
            target.calls().is_empty(),
            "dry run {dry_run}: {:?}",
            target.calls()
        );
        assert!(target.deployments().is_empty());
    }
}

#[tokio::test]
async fn the_default_config_backs_up_in_a_format_the_default_recipe_restores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = RedisServer::start();
    source.cli(&["SET", "a", "1"]);
    source.cli(&["-n", "2", "HSET", "h", "f", "v"]);
    let bundle = backup(&host("source", &source, json!({})), tmp.path()).await;
    let reader = backup_core::bundle::BundleReader::open(&bundle)
        .await
        .expect("open");
    assert!(reader
        .manifest()
        .entries
        .iter()
        .all(|e| e.artifact.format == REDIS_DUMP_RESTORE));

    let target = RedisServer::start();
    let options = RestoreOptions {
        recreate_services: false,
        ..RestoreOptions::default()
    };
    restore_backup(
        &bundle,
        &host("target", &target, json!({})),
        &registry(),
        &options,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("restore with the default recipe");
    assert_eq!(target.digest(), source.digest());
}
