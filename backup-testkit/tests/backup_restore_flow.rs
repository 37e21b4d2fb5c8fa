//! The whole flow through a host: create_backup, restore_backup, progress, secrets,
//! rollback and refusal of corrupt bundles, using the in-memory host and directory data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::artifact::{ArtifactDescriptor, ByteStream};
use backup_core::async_trait;
use backup_core::backup::{create_backup, BackupRequest};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::host::{NewDeployment, WorkspaceHost};
use backup_core::memory_host::{config_from_json, HostCall, InMemoryHost};
use backup_core::progress::{CollectedProgress, ProgressEvent, SharedProgress};
use backup_core::restore::{restore_backup, RestoreOptions};
use backup_core::secrets::SecretGenerator;
use backup_core::snapshot::WorkspaceRef;
use backup_core::{
    directory, DataImporter, Error, ErrorKind, ImportMode, Recipe, RecipeRegistry, ServiceTarget,
};
use backup_testkit::tamper::flip_byte_inside_entry;
use backup_testkit::tree::{tree_digest, write_sample_tree};
use serde_json::json;

const PLANTED_SECRET: &str = "PLANTED-secret-9f8e7d6c5b4a";

fn registry() -> RecipeRegistry {
    registry_with_app_importer(Arc::new(directory::DirectoryImporter))
}

/// A directory importer whose imports fail after its checks pass: a failure that only
/// shows once services are created.
#[derive(Debug)]
struct FailingImport;

#[async_trait]
impl DataImporter for FailingImport {
    fn formats(&self) -> Vec<String> {
        directory::DirectoryImporter.formats()
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> backup_core::Result<()> {
        directory::DirectoryImporter
            .check(service, artifacts, mode)
            .await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        _artifact: &ArtifactDescriptor,
        _data: ByteStream,
        _mode: ImportMode,
    ) -> backup_core::Result<()> {
        Err(Error::new(
            ErrorKind::ToolFailed,
            format!("import into `{}` failed (injected)", service.name),
        ))
    }
}

fn registry_with_app_importer(importer: Arc<dyn DataImporter>) -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    directory::register(&mut registry).expect("directory recipe");
    registry.register(
        Recipe::builder(
            "app",
            json!({
                "type": "object",
                "properties": { "path": { "type": "string" }, "apiKey": { "type": "string" } },
                "required": ["path", "apiKey"]
            }),
        )
        .secret("apiKey", SecretGenerator::password())
        .exporter(Arc::new(directory::DirectoryExporter))
        .importer(importer)
        .build()
        .expect("app recipe"),
    );
    registry
}

fn workspace(slug: &str) -> WorkspaceRef {
    WorkspaceRef {
        slug: slug.into(),
        name: slug.into(),
    }
}

fn new(name: &str, recipe: &str, config: serde_json::Value, deps: &[&str]) -> NewDeployment {
    NewDeployment {
        name: name.into(),
        recipe: recipe.into(),
        config: config_from_json(config),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
    }
}

/// A source workspace: `files` (directory) and `app` (depends on files, has a secret).
fn source_host(root: &Path) -> InMemoryHost {
    write_sample_tree(&root.join("files"));
    std::fs::create_dir_all(root.join("app")).expect("mkdir");
    std::fs::write(root.join("app/state.json"), b"{\"visits\": 3}").expect("write");
    let host = InMemoryHost::new(workspace("source"));
    host.insert(new(
        "files",
        "directory",
        json!({ "path": root.join("files") }),
        &[],
    ));
    host.insert(new(
        "app",
        "app",
        json!({ "path": root.join("app"), "apiKey": PLANTED_SECRET }),
        &["files"],
    ));
    host
}

fn restore_options(target_root: &Path) -> RestoreOptions {
    let mut options = RestoreOptions::default();
    for service in ["files", "app"] {
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), json!(target_root.join(service)));
        options
            .import
            .config_overrides
            .insert(service.into(), fields);
    }
    options
}

async fn backup(host: &InMemoryHost, dir: &Path, progress: SharedProgress) -> PathBuf {
    let path = dir.join("b.backup.zip");
    create_backup(
        host,
        &registry(),
        &BackupRequest {
            bundle: BundleOptions::default().with_label("test"),
            ..BackupRequest::default()
        },
        &path,
        progress,
    )
    .await
    .expect("backup");
    path
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn backup_and_restore_into_a_fresh_workspace_reproduces_the_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    let target = InMemoryHost::new(workspace("target"));
    let restored_root = tmp.path().join("restored");
    let report = restore_backup(
        &bundle,
        &target,
        &registry(),
        &restore_options(&restored_root),
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("restore");
    assert_eq!(report.plan.stage_names(), vec![vec!["files"], vec!["app"]]);
    assert_eq!(report.created, vec!["files", "app"]);
    for service in ["files", "app"] {
        assert_eq!(
            tree_digest(&tmp.path().join("src").join(service)),
            tree_digest(&restored_root.join(service)),
            "{service} differs"
        );
    }
    let app = target.get("app").expect("app restored");
    let key = app.config["apiKey"].as_str().expect("new secret");
    assert_ne!(key, PLANTED_SECRET);
    assert_eq!(key.len(), 32);
}

#[tokio::test]
async fn export_verify_and_restore_report_progress_events() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let exported = CollectedProgress::new();
    let bundle = backup(&source, tmp.path(), Arc::new(exported.clone())).await;
    let events = exported.events();
    assert!(events.iter().any(|e| matches!(e, ProgressEvent::ServiceStarted { service, operation } if service == "files" && operation == "export")));
    assert!(events
        .iter()
        .any(|e| matches!(e, ProgressEvent::BytesTransferred { service, .. } if service == "app")));
    assert!(events
        .iter()
        .any(|e| matches!(e, ProgressEvent::Finished { operation } if operation == "export")));

    let restored = CollectedProgress::new();
    restore_backup(
        &bundle,
        &InMemoryHost::new(workspace("t")),
        &registry(),
        &restore_options(&tmp.path().join("restored")),
        Arc::new(restored.clone()),
    )
    .await
    .expect("restore");
    let events = restored.events();
    let position = |pred: &dyn Fn(&ProgressEvent) -> bool| {
        events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("event missing from {events:?}"))
    };
    let verified = position(&|e| matches!(e, ProgressEvent::Verified { .. }));
    let plan = position(&|e| matches!(e, ProgressEvent::PlanReady { .. }));
    let import_files = position(
        &|e| matches!(e, ProgressEvent::ServiceStarted { service, operation } if service == "files" && operation == "import"),
    );
    let import_app = position(
        &|e| matches!(e, ProgressEvent::ServiceStarted { service, operation } if service == "app" && operation == "import"),
    );
    let finished =
        position(&|e| matches!(e, ProgressEvent::Finished { operation } if operation == "restore"));
    assert!(
        verified < plan
            && plan < import_files
            && import_files < import_app
            && import_app < finished
    );
}

#[tokio::test]
async fn no_secret_reaches_the_bundle_progress_or_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let progress = CollectedProgress::new();
    let bundle = backup(&source, tmp.path(), Arc::new(progress.clone())).await;
    let bytes = std::fs::read(&bundle).expect("read bundle");
    assert!(
        !contains(&bytes, PLANTED_SECRET),
        "the secret is in the bundle"
    );
    // A restore that fails (the target app directory is not empty) must not leak it either.
    let restored_root = tmp.path().join("restored");
    std::fs::create_dir_all(restored_root.join("app")).expect("mkdir");
    std::fs::write(restored_root.join("app/x"), b"x").expect("write");
    let target = InMemoryHost::new(workspace("t"));
    let mut options = restore_options(&restored_root);
    options
        .import
        .config_overrides
        .get_mut("app")
        .expect("override")
        .insert("apiKey".into(), json!(PLANTED_SECRET));
    let err = restore_backup(
        &bundle,
        &target,
        &registry(),
        &options,
        Arc::new(progress.clone()),
    )
    .await
    .expect_err("non-empty target");
    let texts = format!(
        "{err} {err:?} {}",
        serde_json::to_string(&progress.events()).expect("events as JSON")
    );
    assert!(
        !texts.contains(PLANTED_SECRET),
        "the secret leaked: {texts}"
    );
}

#[tokio::test]
async fn a_non_empty_target_is_refused_before_any_service_is_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    let restored_root = tmp.path().join("restored");
    std::fs::create_dir_all(restored_root.join("app")).expect("mkdir");
    std::fs::write(restored_root.join("app/keep"), b"mine").expect("write");
    let target = InMemoryHost::new(workspace("t"));
    let err = restore_backup(
        &bundle,
        &target,
        &registry(),
        &restore_options(&restored_root),
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("the app directory is not empty");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(target.calls().is_empty(), "{:?}", target.calls());
    assert_eq!(
        std::fs::read(restored_root.join("app/keep")).expect("kept"),
        b"mine"
    );
}

#[tokio::test]
async fn a_failed_data_import_rolls_back_the_services_it_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    let target = InMemoryHost::new(workspace("t"));
    let progress = CollectedProgress::new();
    let err = restore_backup(
        &bundle,
        &target,
        &registry_with_app_importer(Arc::new(FailingImport)),
        &restore_options(&tmp.path().join("restored")),
        Arc::new(progress.clone()),
    )
    .await
    .expect_err("the app import fails");
    assert_eq!(err.kind(), ErrorKind::ToolFailed, "{err}");
    assert!(
        target.list_deployments().await.expect("list").is_empty(),
        "created services were not removed"
    );
    assert!(target.calls().contains(&HostCall::Removed("files".into())));
    let events = progress.events();
    let failed = events
        .iter()
        .position(|e| matches!(e, ProgressEvent::Failed { service, .. } if service == "app"))
        .expect("Failed naming app");
    let rolling_back = events
        .iter()
        .position(|e| matches!(e, ProgressEvent::RollingBack { .. }))
        .expect("RollingBack");
    assert!(failed < rolling_back, "{events:?}");
}

#[tokio::test]
async fn a_corrupt_bundle_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    let reader = BundleReader::open(&bundle).await.expect("open");
    let entry = reader
        .manifest()
        .entries_of("files")
        .next()
        .cloned()
        .expect("entry of files");
    drop(reader);
    flip_byte_inside_entry(&bundle, &entry);
    let target = InMemoryHost::new(workspace("t"));
    let err = restore_backup(
        &bundle,
        &target,
        &registry(),
        &restore_options(&tmp.path().join("restored")),
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("corrupt");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        target.calls().is_empty(),
        "the host was touched: {:?}",
        target.calls()
    );
    assert!(!tmp.path().join("restored").exists());
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    let target = InMemoryHost::new(workspace("t"));
    let mut options = restore_options(&tmp.path().join("restored"));
    options.import.dry_run = true;
    let report = restore_backup(
        &bundle,
        &target,
        &registry(),
        &options,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("dry run");
    assert!(report.dry_run);
    assert_eq!(report.plan.order(), vec!["files", "app"]);
    assert_eq!(report.artifacts.len(), 2);
    assert!(target.calls().is_empty());
    assert!(!tmp.path().join("restored").exists());
}

#[tokio::test]
async fn data_can_be_restored_into_existing_services_with_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src_root = tmp.path().join("src");
    let source = source_host(&src_root);
    let bundle = backup(&source, tmp.path(), Arc::new(CollectedProgress::new())).await;
    // Change the source data, then restore the bundle over it: data only, services kept.
    std::fs::write(src_root.join("app/state.json"), b"{\"visits\": 999}").expect("write");
    let mut options = RestoreOptions {
        recreate_services: false,
        ..RestoreOptions::default()
    };
    let err = restore_backup(
        &bundle,
        &source,
        &registry(),
        &options,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("existing data without force");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    options.import.force = true;
    let report = restore_backup(
        &bundle,
        &source,
        &registry(),
        &options,
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect("forced data restore");
    assert!(report.created.is_empty());
    assert_eq!(report.replaced.len(), 2);
    assert_eq!(
        std::fs::read(src_root.join("app/state.json")).expect("read"),
        b"{\"visits\": 3}"
    );
}

#[tokio::test]
async fn a_failing_export_leaves_no_bundle_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = source_host(&tmp.path().join("src"));
    std::fs::remove_dir_all(tmp.path().join("src/app")).expect("rm");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let err = create_backup(
        &source,
        &registry(),
        &BackupRequest::default(),
        &out.join("b.backup.zip"),
        Arc::new(CollectedProgress::new()),
    )
    .await
    .expect_err("missing directory");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("app"), "{err}");
    assert_eq!(std::fs::read_dir(&out).expect("list").count(), 0);
}
