//! Shared pieces of the backup/restore flow tests: directory-backed workspaces on a real
//! file system, an importer whose check and import can be told to fail, event helpers.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backup_core::artifact::{ArtifactDescriptor, ByteStream};
use backup_core::async_trait;
use backup_core::backup::{create_backup, BackupRequest};
use backup_core::directory::{self, DirectoryExporter, DirectoryImporter};
use backup_core::host::NewDeployment;
use backup_core::memory_host::{config_from_json, InMemoryHost};
use backup_core::progress::{NoProgress, ProgressEvent};
use backup_core::restore::RestoreOptions;
use backup_core::snapshot::WorkspaceRef;
use backup_core::{
    DataImporter, Error, ErrorKind, ImportMode, Recipe, RecipeRegistry, Result, ServiceTarget,
};
use serde_json::{json, Value};

/// A directory importer that refuses in `check` when the config says `"refuseCheck":
/// true`, and fails `import` when it says `"failImport": true`.
#[derive(Debug)]
pub struct ConfigurableImporter;

fn flag(service: &ServiceTarget, name: &str) -> bool {
    service.config.get(name).and_then(Value::as_bool) == Some(true)
}

#[async_trait]
impl DataImporter for ConfigurableImporter {
    fn formats(&self) -> Vec<String> {
        DirectoryImporter.formats()
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        if flag(service, "refuseCheck") {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "service `{}` runs a version too old for this data",
                    service.name
                ),
            ));
        }
        DirectoryImporter.check(service, artifacts, mode).await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        if flag(service, "failImport") {
            return Err(Error::new(
                ErrorKind::ToolFailed,
                format!("import into `{}` failed (injected)", service.name),
            ));
        }
        DirectoryImporter
            .import(service, artifact, data, mode)
            .await
    }
}

/// `directory`, plus `app`: directory data through [`ConfigurableImporter`], an optional
/// `apiKey` secret and a `binDir` host setting.
pub fn registry() -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    directory::register(&mut registry).expect("directory recipe");
    registry.register(
        Recipe::builder(
            "app",
            json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string" },
                    "apiKey": { "type": "string" },
                    "binDir": { "type": "string" },
                    "refuseCheck": { "type": "boolean" },
                    "failImport": { "type": "boolean" }
                },
                "required": ["path"]
            }),
        )
        .secret("apiKey", backup_core::secrets::SecretGenerator::password())
        .host_setting("binDir")
        .exporter(Arc::new(DirectoryExporter))
        .importer(Arc::new(ConfigurableImporter))
        .build()
        .expect("app recipe"),
    );
    registry
}

pub fn workspace(slug: &str) -> WorkspaceRef {
    WorkspaceRef {
        slug: slug.into(),
        name: slug.into(),
    }
}

pub fn new(name: &str, recipe: &str, config: Value, deps: &[&str]) -> NewDeployment {
    NewDeployment {
        name: name.into(),
        recipe: recipe.into(),
        config: config_from_json(config),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
    }
}

/// Writes a few files under `dir`.
pub fn fill(dir: &Path, tag: &str) {
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("a.txt"), format!("a of {tag}")).expect("write");
    std::fs::write(dir.join("sub/b.bin"), vec![7u8; 100_000]).expect("write");
}

/// `files` (directory) and `app` (depends on files), each with data under `root`;
/// `app_config` is merged into app's config.
pub fn source_host(root: &Path, app_config: Value) -> InMemoryHost {
    fill(&root.join("files"), "files");
    fill(&root.join("app"), "app");
    let mut config = json!({ "path": root.join("app") });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), app_config) {
        config.extend(extra);
    }
    let host = InMemoryHost::new(workspace("source"));
    host.insert(new(
        "files",
        "directory",
        json!({ "path": root.join("files") }),
        &[],
    ));
    host.insert(new("app", "app", config, &["files"]));
    host
}

/// Backs `host` up into `dir/b.backup.zip`.
pub async fn backup(host: &InMemoryHost, dir: &Path) -> PathBuf {
    let path = dir.join("b.backup.zip");
    create_backup(
        host,
        &registry(),
        &BackupRequest::default(),
        &path,
        Arc::new(NoProgress),
    )
    .await
    .expect("backup");
    path
}

/// Restore options pointing every service at `root/<name>`.
pub fn restore_options(root: &Path) -> RestoreOptions {
    let mut options = RestoreOptions::default();
    for service in ["files", "app"] {
        let mut fields = serde_json::Map::new();
        fields.insert("path".into(), json!(root.join(service)));
        options
            .import
            .config_overrides
            .insert(service.into(), fields);
    }
    options
}

/// How many events match.
pub fn count(events: &[ProgressEvent], pred: impl Fn(&ProgressEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// Position of the first matching event.
pub fn position(events: &[ProgressEvent], pred: impl Fn(&ProgressEvent) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("event missing from {events:?}"))
}

/// No `Failed` with an empty service name, and (for a failed operation) no `Finished`.
pub fn assert_no_anonymous_failure(events: &[ProgressEvent]) {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ProgressEvent::Failed { service, .. } if service.is_empty())),
        "a Failed event names no service: {events:?}"
    );
}
