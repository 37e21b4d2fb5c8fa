//! Settings that choose a program to run (recipe host settings such as `binDir`) are the
//! host's: never written to a bundle, never taken from one unless the caller opts in.

mod flow_support;

use std::path::Path;
use std::sync::Arc;

use backup_core::backup::{service_target, write_bundle, ServiceExport};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::directory::DirectoryExporter;
use backup_core::memory_host::InMemoryHost;
use backup_core::progress::NoProgress;
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::workspace::export_workspace;
use flow_support::{backup, registry, restore_options, source_host, workspace};
use serde_json::json;

const PLANTED_BIN: &str = "/tmp/attacker/bin";

#[tokio::test]
async fn host_settings_are_not_written_to_the_bundle() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(
        &tmp.path().join("src"),
        json!({ "binDir": "/opt/tools/bin" }),
    );
    let bundle = backup(&source, tmp.path()).await;
    let reader = BundleReader::open(&bundle).await.expect("open");
    let app = reader
        .snapshot()
        .and_then(|s| s.services.iter().find(|s| s.name == "app"))
        .expect("app in the snapshot");
    assert!(!app.config.contains_key("binDir"), "{:?}", app.config);
    assert!(app.config.contains_key("path"));
}

/// A bundle whose snapshot was tampered with: app's config names a `binDir`.
async fn tampered_bundle(dir: &Path) -> std::path::PathBuf {
    let source = source_host(&dir.join("src"), json!({}));
    let mut snapshot = export_workspace(&source, &registry(), &Default::default())
        .await
        .expect("snapshot");
    for service in &mut snapshot.services {
        if service.name == "app" {
            service.config.insert("binDir".into(), json!(PLANTED_BIN));
        }
    }
    let services: Vec<ServiceExport> = source
        .deployments()
        .iter()
        .map(|d| ServiceExport {
            target: service_target(&source, d, Arc::new(NoProgress)),
            exporter: Arc::new(DirectoryExporter),
        })
        .collect();
    let path = dir.join("tampered.backup.zip");
    write_bundle(
        &path,
        BundleOptions::default(),
        Some(&snapshot),
        &services,
        &NoProgress,
    )
    .await
    .expect("write");
    path
}

async fn restored_app_config(
    bundle: &Path,
    options: &RestoreOptions,
) -> serde_json::Map<String, serde_json::Value> {
    let target = InMemoryHost::new(workspace("t"));
    restore_backup(bundle, &target, &registry(), options, Arc::new(NoProgress))
        .await
        .expect("restore");
    target.get("app").expect("app restored").config
}

#[tokio::test]
async fn a_bin_dir_in_a_bundle_snapshot_is_not_used_on_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tampered_bundle(tmp.path()).await;
    let config = restored_app_config(&bundle, &restore_options(&tmp.path().join("r"))).await;
    assert!(!config.contains_key("binDir"), "the bundle chose binDir");
}

#[tokio::test]
async fn a_bin_dir_comes_from_config_overrides_or_an_explicit_opt_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tampered_bundle(tmp.path()).await;

    let mut overridden = restore_options(&tmp.path().join("r1"));
    overridden
        .import
        .config_overrides
        .get_mut("app")
        .expect("app override")
        .insert("binDir".into(), json!("/usr/local/bin"));
    let config = restored_app_config(&bundle, &overridden).await;
    assert_eq!(config["binDir"], json!("/usr/local/bin"));

    let mut trusting = restore_options(&tmp.path().join("r2"));
    trusting.import.trust_snapshot_host_settings = true;
    let config = restored_app_config(&bundle, &trusting).await;
    assert_eq!(config["binDir"], json!(PLANTED_BIN));
}
