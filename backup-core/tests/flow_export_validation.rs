//! A backup is validated at export with the import's own rules: `create_backup` never
//! writes a bundle whose snapshot a restore refuses.

mod flow_support;

use std::path::Path;
use std::sync::Arc;

use backup_core::backup::{create_backup, BackupRequest};
use backup_core::memory_host::InMemoryHost;
use backup_core::progress::NoProgress;
use backup_core::restore::restore_backup;
use backup_core::ErrorKind;
use flow_support::{fill, new, registry, restore_options, workspace};
use serde_json::json;

/// A host whose `a`, `b`, `c` directory services depend on each other as given.
fn host_with(root: &Path, deps: [&[&str]; 3]) -> InMemoryHost {
    let host = InMemoryHost::new(workspace("w"));
    for (name, deps) in ["a", "b", "c"].into_iter().zip(deps) {
        fill(&root.join(name), name);
        host.insert(new(
            name,
            "directory",
            json!({ "path": root.join(name) }),
            deps,
        ));
    }
    host
}

async fn refused(host: &InMemoryHost, dir: &Path) -> backup_core::Error {
    let path = dir.join("out").join("b.backup.zip");
    std::fs::create_dir_all(dir.join("out")).expect("mkdir");
    let err = create_backup(
        host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(NoProgress),
    )
    .await
    .expect_err("the export must be refused");
    assert_eq!(
        std::fs::read_dir(dir.join("out")).expect("ls").count(),
        0,
        "a bundle was written"
    );
    assert!(
        host.calls().is_empty(),
        "services were touched: {:?}",
        host.calls()
    );
    err
}

#[tokio::test]
async fn a_dependency_cycle_is_refused_at_backup_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_with(tmp.path(), [&["b"], &["c"], &["a"]]);
    let err = refused(&host, tmp.path()).await;
    assert_eq!(err.kind(), ErrorKind::DependencyCycle, "{err}");
    assert!(err.message().contains("a -> b -> c -> a"), "{err}");
    assert!(err.message().contains("cannot export"), "{err}");
}

#[tokio::test]
async fn a_self_dependency_is_refused_at_backup_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_with(tmp.path(), [&[], &["b"], &[]]);
    let err = refused(&host, tmp.path()).await;
    assert_eq!(err.kind(), ErrorKind::DependencyCycle, "{err}");
    assert!(err.message().contains("`b` depends on itself"), "{err}");
}

#[tokio::test]
async fn an_unknown_dependency_is_refused_at_backup_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_with(tmp.path(), [&[], &[], &["ghost"]]);
    let err = refused(&host, tmp.path()).await;
    assert_eq!(err.kind(), ErrorKind::UnknownDependency, "{err}");
    assert!(err.message().contains("`ghost`"), "{err}");
}

#[tokio::test]
async fn a_bundle_that_backs_up_restores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_with(tmp.path(), [&[], &["a"], &["a", "b"]]);
    let path = tmp.path().join("b.backup.zip");
    create_backup(
        &host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(NoProgress),
    )
    .await
    .expect("valid workspace");
    let mut options = restore_options(&tmp.path().join("restored"));
    options.import.config_overrides.clear();
    for name in ["a", "b", "c"] {
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), json!(tmp.path().join("restored").join(name)));
        options.import.config_overrides.insert(name.into(), fields);
    }
    let report = restore_backup(
        &path,
        &InMemoryHost::new(workspace("t")),
        &registry(),
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("restore");
    assert_eq!(report.plan.stage_names(), [vec!["a"], vec!["b"], vec!["c"]]);
}
