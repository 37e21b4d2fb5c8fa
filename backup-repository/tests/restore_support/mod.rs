//! Shared helpers for safe restore, emergency restore and guard tests: a workspace of
//! real services (PostgreSQL `db`, Redis `cache`, a directory `files` that depends on
//! both) in an in-memory host, a local repository, and importers/exporters that wrap the
//! real adapters and fail at a chosen point.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use backup_core::artifact::{ArtifactData, ArtifactDescriptor, ByteStream};
use backup_core::backup::BackupRequest;
use backup_core::host::NewDeployment;
use backup_core::memory_host::config_from_json;
use backup_core::progress::{ProgressEvent, SharedProgress};
use backup_core::snapshot::WorkspaceRef;
use backup_core::{
    async_trait, directory, DataExporter, DataImporter, Error, ErrorKind, ExportRequirements,
    HeldData, ImportMode, InMemoryHost, Recipe, RecipeRegistry, Result, ServiceTarget,
};
use backup_repository::{BundleInfo, Repository, Storage};
use backup_testkit::postgres_server::PostgresServer;
use backup_testkit::redis_server::RedisServer;
use backup_testkit::tree::{tree_digest, write_sample_tree};

/// Real servers and a directory, a host listing them, a repository.
pub(crate) struct Env {
    pub(crate) pg: PostgresServer,
    pub(crate) redis: RedisServer,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) repo_dir: tempfile::TempDir,
    pub(crate) repo: Repository,
    pub(crate) host: InMemoryHost,
}

/// What the three services hold: a normalised PostgreSQL dump, Redis `DEBUG DIGEST`, the
/// directory tree's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) pg: String,
    pub(crate) redis: String,
    pub(crate) tree: String,
}

impl Env {
    /// Starts PostgreSQL (database `app`, table `items`), Redis (a few keys) and a
    /// sample directory tree; `files` depends on `db` and `cache`.
    pub(crate) async fn start() -> Env {
        let pg = PostgresServer::start();
        pg.create_database("app");
        pg.psql(
            "app",
            "CREATE TABLE items (id int PRIMARY KEY, name text); \
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200) g;",
        );
        let redis = RedisServer::start();
        redis.cli(&["SET", "greeting", "hello"]);
        redis.cli(&["RPUSH", "queue", "a", "b", "c"]);
        let dir = tempfile::tempdir().expect("tempdir");
        write_sample_tree(&dir.path().join("files"));
        let repo_dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init(Storage::Local(repo_dir.path().join("repo")))
            .await
            .expect("init repository");
        let host = InMemoryHost::new(WorkspaceRef {
            slug: "shop".into(),
            name: "Shop".into(),
        });
        host.insert(deployment("db", "postgres", pg.config_json("app"), &[]));
        host.insert(deployment("cache", "redis", redis.config_json(), &[]));
        let files = serde_json::json!({"path": dir.path().join("files")});
        host.insert(deployment("files", "directory", files, &["db", "cache"]));
        Env {
            pg,
            redis,
            dir,
            repo_dir,
            repo,
            host,
        }
    }

    pub(crate) fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub(crate) fn state(&self) -> State {
        State {
            pg: self.pg.normalized_dump("app"),
            redis: self.redis.digest(),
            tree: tree_digest(&self.files()),
        }
    }

    /// Changes every service's data (`round` makes each change different).
    pub(crate) fn change(&self, round: u32) {
        self.pg.psql(
            "app",
            &format!("UPDATE items SET name = 'changed {round}' WHERE id <= 50; DELETE FROM items WHERE id > 190;"),
        );
        self.redis
            .cli(&["SET", "greeting", &format!("changed {round}")]);
        self.redis.cli(&["SET", &format!("new-{round}"), "x"]);
        std::fs::write(self.files().join(format!("new-{round}.txt")), "new").expect("write");
    }

    /// Backs the whole workspace up into the repository (kind manual).
    pub(crate) async fn backup(&self, label: &str) -> BundleInfo {
        let request = BackupRequest {
            bundle: backup_core::bundle::BundleOptions::default().with_label(label),
            ..BackupRequest::default()
        };
        self.repo
            .create_backup(
                &self.host,
                &registry(),
                &request,
                backup_core::progress::no_progress(),
            )
            .await
            .expect("backup")
    }

    /// The bundle file of `info` on the local storage.
    pub(crate) fn bundle_file(&self, info: &BundleInfo) -> PathBuf {
        self.repo_dir.path().join("repo/bundles").join(format!(
            "{}{}",
            info.name,
            backup_repository::BUNDLE_SUFFIX
        ))
    }
}

fn deployment(name: &str, recipe: &str, config: serde_json::Value, deps: &[&str]) -> NewDeployment {
    NewDeployment {
        name: name.into(),
        recipe: recipe.into(),
        config: config_from_json(config),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
    }
}

/// The real recipes: directory, postgres, redis.
pub(crate) fn registry() -> RecipeRegistry {
    let mut registry = RecipeRegistry::new();
    directory::register(&mut registry).expect("directory");
    backup_postgres::register(&mut registry).expect("postgres");
    backup_redis::register(&mut registry).expect("redis");
    registry
}

/// Where a wrapped adapter fails.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fault {
    /// The first this many `import` calls fail (before touching anything).
    pub(crate) imports: usize,
    /// The first this many smoke tests fail (after the real import).
    pub(crate) smoke_tests: usize,
    /// Every export fails.
    pub(crate) export: bool,
}

/// The real registry with `slug`'s importer and exporter wrapped to fail as `fault` says.
/// Returns the registry and the counter of `import` calls that reached the wrapper.
pub(crate) fn faulty(slug: &str, fault: Fault) -> (RecipeRegistry, Arc<AtomicUsize>) {
    let mut registry = registry();
    let real = registry.get(slug).expect("recipe").clone();
    let imports = Arc::new(AtomicUsize::new(0));
    let importer = Faulty {
        inner: Arc::clone(real.importer().expect("importer")),
        fault,
        imports: Arc::clone(&imports),
        smoke_tests: AtomicUsize::new(0),
    };
    let exporter = FaultyExporter {
        inner: Arc::clone(real.exporter().expect("exporter")),
        fail: fault.export,
    };
    let mut builder = Recipe::builder(slug, real.config_schema().clone())
        .exporter(Arc::new(exporter))
        .importer(Arc::new(importer));
    for setting in real.host_settings() {
        builder = builder.host_setting(setting.clone());
    }
    registry.register(builder.build().expect("recipe"));
    (registry, imports)
}

#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn DataImporter>,
    fault: Fault,
    imports: Arc<AtomicUsize>,
    smoke_tests: AtomicUsize,
}

fn injected(what: &str) -> Error {
    Error::new(ErrorKind::Io, format!("injected fault: {what}"))
}

#[async_trait]
impl DataImporter for Faulty {
    fn formats(&self) -> Vec<String> {
        self.inner.formats()
    }

    async fn check(
        &self,
        service: &ServiceTarget,
        artifacts: &[ArtifactDescriptor],
        mode: ImportMode,
    ) -> Result<()> {
        self.inner.check(service, artifacts, mode).await
    }

    async fn describe_target(&self, service: &ServiceTarget) -> Result<Option<Vec<HeldData>>> {
        self.inner.describe_target(service).await
    }

    async fn import(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
        data: ByteStream,
        mode: ImportMode,
    ) -> Result<()> {
        let call = self.imports.fetch_add(1, Ordering::SeqCst);
        if call < self.fault.imports {
            return Err(injected("import"));
        }
        self.inner.import(service, artifact, data, mode).await
    }

    async fn smoke_test(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<()> {
        let call = self.smoke_tests.fetch_add(1, Ordering::SeqCst);
        if call < self.fault.smoke_tests {
            return Err(injected("smoke test"));
        }
        self.inner.smoke_test(service, artifact).await
    }
}

#[derive(Debug)]
struct FaultyExporter {
    inner: Arc<dyn DataExporter>,
    fail: bool,
}

#[async_trait]
impl DataExporter for FaultyExporter {
    fn requirements(&self) -> ExportRequirements {
        self.inner.requirements()
    }

    async fn artifacts(&self, service: &ServiceTarget) -> Result<Vec<ArtifactDescriptor>> {
        if self.fail {
            return Err(injected("export"));
        }
        self.inner.artifacts(service).await
    }

    async fn export(
        &self,
        service: &ServiceTarget,
        artifact: &ArtifactDescriptor,
    ) -> Result<ArtifactData> {
        self.inner.export(service, artifact).await
    }
}

/// A progress sink that keeps every event.
pub(crate) fn collecting() -> (SharedProgress, Arc<Mutex<Vec<ProgressEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let progress: SharedProgress = Arc::new(move |event: &ProgressEvent| {
        sink.lock().expect("events").push(event.clone());
    });
    (progress, events)
}

/// The `Step` messages of `operation`.
pub(crate) fn steps(events: &Mutex<Vec<ProgressEvent>>, operation: &str) -> Vec<String> {
    events
        .lock()
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::Step {
                operation: op,
                message,
            } if op == operation => Some(message.clone()),
            _ => None,
        })
        .collect()
}

impl Env {
    /// [`backup_repository::safe_restore`] of `selector` into this host.
    pub(crate) async fn restore(
        &self,
        selector: &str,
        registry: &RecipeRegistry,
        options: &backup_repository::SafeRestoreOptions,
    ) -> Result<backup_repository::SafeRestoreReport> {
        let progress = backup_core::progress::no_progress();
        backup_repository::safe_restore(
            &self.repo, selector, &self.host, registry, options, progress,
        )
        .await
    }
}

/// Options restoring only `files`, without the services it depends on.
pub(crate) fn only_files() -> backup_repository::SafeRestoreOptions {
    backup_repository::SafeRestoreOptions {
        services: Some(vec!["files".into()]),
        with_dependencies: false,
        ..backup_repository::SafeRestoreOptions::default()
    }
}

/// The real registry with the directory exporter failing (a backup of `files` fails).
pub(crate) fn failing_export() -> RecipeRegistry {
    faulty(
        "directory",
        Fault {
            export: true,
            ..Fault::default()
        },
    )
    .0
}
