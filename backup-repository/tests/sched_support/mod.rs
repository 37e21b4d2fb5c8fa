//! Shared helpers of the run history and scheduler tests: a local repository and a
//! workspace of real directory services on disk.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backup_core::artifact::{ArtifactData, ArtifactDescriptor};
use backup_core::directory::{self, DirectoryExporter};
use backup_core::snapshot::WorkspaceRef;
use backup_core::{
    async_trait, DataExporter, ExportRequirements, InMemoryHost, NewDeployment, Recipe,
    RecipeRegistry, Result, ServiceTarget,
};
use backup_repository::{Repository, Storage};

/// A repository in a temporary directory, and a workspace of directory services.
pub(crate) struct Fixture {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) repo: Repository,
    pub(crate) host: Arc<InMemoryHost>,
    pub(crate) registry: Arc<RecipeRegistry>,
}

impl Fixture {
    /// A fresh local repository and a host with directory services `names`, each with a
    /// small tree.
    pub(crate) async fn new(names: &[&str]) -> Fixture {
        Self::with_slow(names, &[]).await
    }

    /// As [`new`](Self::new), plus services `slow` of recipe `slow-directory`: a
    /// directory whose export first sleeps [`SLOW_EXPORT`] (tokio time).
    pub(crate) async fn with_slow(names: &[&str], slow: &[&str]) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init(Storage::Local(tmp.path().join("repo")))
            .await
            .expect("init");
        let host = InMemoryHost::new(WorkspaceRef {
            slug: "ws".into(),
            name: "ws".into(),
        });
        let all = names.iter().map(|n| (n, "directory"));
        for (name, recipe) in all.chain(slow.iter().map(|n| (n, SLOW_RECIPE))) {
            let dir = tmp.path().join("data").join(name);
            std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
            std::fs::write(dir.join("a.txt"), format!("hello from {name}")).expect("write");
            std::fs::write(dir.join("sub/b.bin"), vec![7u8; 50_000]).expect("write");
            let mut config = serde_json::Map::new();
            config.insert("path".into(), serde_json::json!(dir));
            host.insert(NewDeployment {
                name: (*name).into(),
                recipe: recipe.into(),
                config,
                depends_on: Vec::new(),
            });
        }
        let mut registry = RecipeRegistry::new();
        directory::register(&mut registry).expect("directory recipe");
        let slow = Recipe::builder(SLOW_RECIPE, directory::config_schema())
            .exporter(Arc::new(SlowExporter))
            .build()
            .expect("slow recipe");
        registry.register(slow);
        Fixture {
            tmp,
            repo,
            host: Arc::new(host),
            registry: Arc::new(registry),
        }
    }

    /// The data directory of service `name`.
    pub(crate) fn data(&self, name: &str) -> PathBuf {
        self.tmp.path().join("data").join(name)
    }

    /// Makes the next exports of `name` fail (its directory is moved away) or succeed
    /// again.
    pub(crate) fn break_service(&self, name: &str, broken: bool) {
        let dir = self.data(name);
        let away = self.tmp.path().join(format!("{name}.away"));
        let (from, to) = if broken { (&dir, &away) } else { (&away, &dir) };
        std::fs::rename(from, to).expect("move the service's directory");
    }

    /// Files directly under `bundles/` of the repository (published or not).
    pub(crate) fn bundle_files(&self) -> Vec<String> {
        list_names(&self.tmp.path().join("repo/bundles"))
    }
}

/// Names in a directory, sorted (none when it does not exist).
pub(crate) fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The recipe of directory services whose export is slow.
pub(crate) const SLOW_RECIPE: &str = "slow-directory";
/// How long a slow export sleeps before it reads anything.
pub(crate) const SLOW_EXPORT: Duration = Duration::from_secs(3 * 3600);

/// The directory exporter, sleeping [`SLOW_EXPORT`] first.
#[derive(Debug)]
struct SlowExporter;

#[async_trait]
impl DataExporter for SlowExporter {
    fn requirements(&self) -> ExportRequirements {
        DirectoryExporter.requirements()
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        DirectoryExporter.artifacts(service).await
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        tokio::time::sleep(SLOW_EXPORT).await;
        DirectoryExporter.export(service, artifact).await
    }
}
