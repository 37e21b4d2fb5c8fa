//! Secrets across a backup and restore: a set secret is never in the bundle and comes
//! back new; a secret the source did not have does not come back (no password invented);
//! a seed-000 snapshot (secret keys simply absent) gets new secrets as before.

mod flow_support;

use std::sync::Arc;

use backup_core::bundle::BundleReader;
use backup_core::memory_host::InMemoryHost;
use backup_core::progress::NoProgress;
use backup_core::recipe::UNSET_SECRET;
use backup_core::restore::restore_backup;
use backup_core::snapshot::WorkspaceSnapshot;
use backup_core::workspace::{import_workspace, ImportOptions};
use flow_support::{backup, registry, restore_options, source_host, workspace};
use serde_json::json;

const PLANTED: &str = "PLANTED-api-key-5e4d3c2b1a";

async fn restored_app(
    app_config: serde_json::Value,
) -> (
    serde_json::Map<String, serde_json::Value>,
    WorkspaceSnapshot,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"), app_config);
    let bundle = backup(&source, tmp.path()).await;
    let snapshot = BundleReader::open(&bundle)
        .await
        .expect("open")
        .snapshot()
        .cloned()
        .expect("snapshot");
    let target = InMemoryHost::new(workspace("t"));
    restore_backup(
        &bundle,
        &target,
        &registry(),
        &restore_options(&tmp.path().join("restored")),
        Arc::new(NoProgress),
    )
    .await
    .expect("restore");
    (target.get("app").expect("app").config, snapshot)
}

fn app_of(snapshot: &WorkspaceSnapshot) -> &serde_json::Map<String, serde_json::Value> {
    &snapshot
        .services
        .iter()
        .find(|s| s.name == "app")
        .expect("app")
        .config
}

#[tokio::test]
async fn a_service_without_a_secret_comes_back_without_one() {
    let (config, snapshot) = restored_app(json!({})).await;
    assert_eq!(app_of(&snapshot)["apiKey"], json!(UNSET_SECRET));
    assert!(
        !config.contains_key("apiKey"),
        "a secret was invented for a service that had none"
    );
}

#[tokio::test]
async fn an_empty_secret_counts_as_none_and_comes_back_as_none() {
    let (config, snapshot) = restored_app(json!({ "apiKey": "" })).await;
    assert_eq!(app_of(&snapshot)["apiKey"], json!(UNSET_SECRET));
    assert!(!config.contains_key("apiKey"));
}

#[tokio::test]
async fn a_set_secret_stays_out_of_the_bundle_and_comes_back_new() {
    let (config, snapshot) = restored_app(json!({ "apiKey": PLANTED })).await;
    assert!(!app_of(&snapshot).contains_key("apiKey"));
    let key = config["apiKey"].as_str().expect("a new secret");
    assert_ne!(key, PLANTED);
    assert_eq!(key.len(), 32);
}

#[tokio::test]
async fn a_seed_000_snapshot_without_secret_keys_gets_new_secrets() {
    // As the TypeScript platform writes it: secrets simply left out.
    let snapshot = WorkspaceSnapshot::from_json(
        json!({
            "version": 1,
            "exportedAt": "2026-01-15T10:30:00Z",
            "exportedBy": "system",
            "workspace": { "slug": "prod", "name": "Prod" },
            "services": [
                { "recipe": "app", "name": "app", "config": { "path": "/srv/app" },
                  "dependsOn": [], "status": "running" }
            ]
        })
        .to_string()
        .as_bytes(),
    )
    .expect("seed-000 snapshot");
    let target = InMemoryHost::new(workspace("t"));
    import_workspace(
        &target,
        &registry(),
        &snapshot,
        &ImportOptions::default(),
        &NoProgress,
    )
    .await
    .expect("import");
    let config = target.get("app").expect("app").config;
    assert_eq!(config["apiKey"].as_str().map(str::len), Some(32));
}
