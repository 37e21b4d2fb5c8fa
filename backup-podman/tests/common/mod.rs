//! Helpers shared by the live podman tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use backup_core::backup::{write_bundle, ServiceExport};
use backup_core::bundle::{BundleOptions, BundleReader};
use backup_core::progress::NoProgress;
use backup_core::restore::restore_service_data;
use backup_core::{
    ByteStream, DataExporter, DataImporter, ErrorKind, ImportMode, Result, ServiceTarget,
};
use backup_podman::{PodmanExporter, PodmanImporter};
use backup_testkit::data::PseudoRandom;
use backup_testkit::podman::PodmanEnv;
use bytes::Bytes;
use futures::StreamExt;

/// Listing and content digest of both volumes of the two-volume deployments, and every
/// quadlet file's bytes: everything a restore may change.
pub type State = (
    Vec<String>,
    String,
    Vec<String>,
    String,
    Vec<(String, Vec<u8>)>,
);

/// The export stream of `volume`'s artifact of `deployment`.
pub async fn volume_stream(deployment: &Deployment, volume: &str) -> ByteStream {
    let name = format!("volume-{volume}.tar");
    let artifacts = PodmanExporter.artifacts(&deployment.service).await.unwrap();
    let artifact = artifacts.iter().find(|a| a.name == name).unwrap();
    PodmanExporter
        .export(&deployment.service, artifact)
        .await
        .unwrap()
        .stream
}

/// Reads the rest of an export stream whose first chunk was `first`; returns the size
/// the archive records for `path`.
pub async fn archived_size(first: Bytes, mut stream: ByteStream, path: &str) -> u64 {
    let mut archive = first.to_vec();
    while let Some(chunk) = stream.next().await {
        archive.extend_from_slice(&chunk.unwrap());
    }
    let mut entries = tar::Archive::new(archive.as_slice());
    entries
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some(path))
        .map(|e| e.header().size().unwrap())
        .unwrap()
}

/// Imports `bundle` over a volume that holds data: refused without `force`
/// (`AlreadyExists`), then done with it.
pub async fn import_refused_then_forced(deployment: &Deployment, bundle: &Path) {
    let refused = deployment
        .import(bundle, "app", ImportMode::default())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::AlreadyExists, "{refused}");
    deployment
        .import(bundle, "app", ImportMode { force: true })
        .await
        .unwrap();
}

/// A podman storage with a quadlet directory and the service over both.
pub struct Deployment {
    pub env: PodmanEnv,
    pub quadlets: PathBuf,
    pub service: ServiceTarget,
}

impl Deployment {
    /// A deployment whose volumes are discovered from its quadlet files.
    pub fn new(name: &str) -> Self {
        Self::with_volumes(name, None)
    }

    pub fn with_volumes(name: &str, volumes: Option<&[&str]>) -> Self {
        Self::on(PodmanEnv::start(), name, volumes)
    }

    /// A deployment on a rootless podman (`rootless: true`); the test must run as a user
    /// that is not root (see `backup_testkit::rootless`).
    pub fn rootless(name: &str, volumes: Option<&[&str]>) -> Self {
        let mut deployment = Self::on(PodmanEnv::start_rootless(), name, volumes);
        deployment.service.config["rootless"] = serde_json::json!(true);
        deployment
    }

    fn on(env: PodmanEnv, name: &str, volumes: Option<&[&str]>) -> Self {
        let quadlets = env.dir().join("quadlets");
        std::fs::create_dir_all(&quadlets).unwrap();
        let mut config = env.service_config(&quadlets, volumes);
        // Test containers run `sh` as PID 1, which ignores SIGTERM.
        config["stopTimeoutSeconds"] = serde_json::json!(1);
        let service = ServiceTarget::local(name, backup_podman::RECIPE, config);
        Deployment {
            env,
            quadlets,
            service,
        }
    }

    pub fn write_quadlet(&self, name: &str, text: &str) {
        let path = self.quadlets.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Exports the service into a bundle at `path`.
    pub async fn export(&self, path: &Path) -> Result<()> {
        let services = [ServiceExport {
            target: self.service.clone(),
            exporter: std::sync::Arc::new(PodmanExporter),
        }];
        write_bundle(path, BundleOptions::default(), None, &services, &NoProgress).await?;
        Ok(())
    }

    /// Imports the bundle's data of `source` into this service (plain importer).
    pub async fn import(&self, path: &Path, source: &str, mode: ImportMode) -> Result<()> {
        let reader = BundleReader::open(path).await?;
        reader.verify(&NoProgress).await?;
        let entries: Vec<_> = reader
            .manifest()
            .entries
            .iter()
            .filter(|e| e.service == source)
            .cloned()
            .collect();
        let artifacts: Vec<_> = entries.iter().map(|e| e.artifact.clone()).collect();
        PodmanImporter
            .check(&self.service, &artifacts, mode)
            .await?;
        restore_service_data(
            &reader,
            &self.service,
            &PodmanImporter,
            &entries,
            mode,
            true,
            &NoProgress,
        )
        .await
    }

    /// Every byte of every file of the quadlet directory, by relative path.
    pub fn quadlet_bytes(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.quadlets.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(&self.quadlets)
                        .unwrap()
                        .display()
                        .to_string();
                    out.push((rel, std::fs::read(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

/// Runs a shell command (as root: chown works).
pub fn sh(script: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success(), "`{script}` failed");
}

/// Writes `len` pseudo-random bytes to `path` in 8 MiB pieces.
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let mut generator = PseudoRandom::new(seed);
    let mut left = len;
    let mut buffer = vec![0u8; 8 << 20];
    while left > 0 {
        let n = left.min(buffer.len());
        generator.fill(&mut buffer[..n]);
        file.write_all(&buffer[..n]).unwrap();
        left -= n;
    }
}

/// `find -printf '%m %U %G %s %y %p'`-style listing of a volume (root line included).
pub fn listing(root: &Path) -> Vec<String> {
    backup_testkit::tree::find_listing(root)
}

/// The tree the issue asks for: nested directories, a symlink, a hard link, an empty
/// directory, a file of uid 1000 with mode 0600, the root 0700 owned by 999, and a file
/// of `big` bytes.
pub fn write_special_tree(root: &Path, big: usize) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("a/b/c/deep.txt"), b"deep").unwrap();
    std::fs::write(root.join("a/private"), b"secret-ish").unwrap();
    std::os::unix::fs::symlink("../a/b/c/deep.txt", root.join("a/b/link")).unwrap();
    std::fs::hard_link(root.join("a/b/c/deep.txt"), root.join("a/hard")).unwrap();
    write_random_file(&root.join("big.bin"), big, 42);
    let r = root.display();
    sh(&format!(
        "chown 1000:1000 {r}/a/private && chmod 0600 {r}/a/private && chown 999:999 {r} && chmod 0700 {r}"
    ));
}

/// A copy of the bundle `good` in `dir` whose checksums are right but whose artifact
/// `damaged` has bytes 100..110 flipped (so its archive is corrupt, not its bundle entry).
pub async fn corrupt_copy(good: &Path, dir: &Path, damaged: &str) -> PathBuf {
    let path = dir.join("corrupt.backup.zip");
    rewritten_copy(good, &path, damaged, |_, mut bytes| {
        for b in bytes.iter_mut().take(110).skip(100) {
            *b ^= 0x5a;
        }
        bytes
    })
    .await;
    path
}

/// Writes to `path` a copy of the bundle `good` (with right checksums) whose artifact
/// `changed` holds what `rewrite` makes of its bytes (and of its descriptor, with the
/// export's metadata).
pub async fn rewritten_copy(
    good: &Path,
    path: &Path,
    changed: &str,
    rewrite: impl Fn(&mut backup_core::ArtifactDescriptor, Vec<u8>) -> Vec<u8>,
) {
    use backup_core::bundle::BundleWriter;
    let reader = BundleReader::open(good).await.unwrap();
    let mut writer = BundleWriter::create(path, BundleOptions::default())
        .await
        .unwrap();
    for entry in reader.manifest().entries.clone() {
        let mut artifact = entry.artifact.clone();
        let stream: backup_core::ByteStream = if entry.artifact.name == changed {
            let mut bytes = vec![0u8; 0];
            let mut s = reader.open_entry(&entry).unwrap();
            while let Some(chunk) = futures::StreamExt::next(&mut s).await {
                bytes.extend_from_slice(&chunk.unwrap());
            }
            let bytes = rewrite(&mut artifact, bytes);
            Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from(bytes))]))
        } else {
            reader.open_entry(&entry).unwrap()
        };
        writer
            .write_artifact(
                &entry.service,
                &artifact,
                backup_core::ArtifactData::from_stream(stream),
                &NoProgress,
            )
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
}

/// What guarded `remove` / `apply` need around a deployment: a host listing it as
/// `app`, a registry with the podman recipe, and a local repository.
pub struct GuardedHost {
    pub host: backup_core::InMemoryHost,
    pub registry: backup_core::RecipeRegistry,
    pub repo_dir: tempfile::TempDir,
    pub repo: backup_repository::Repository,
}

/// A [`GuardedHost`] for the deployment behind `service`.
pub async fn guarded_host(service: &ServiceTarget) -> GuardedHost {
    let host = backup_core::InMemoryHost::new(backup_core::snapshot::WorkspaceRef {
        slug: "w".into(),
        name: "W".into(),
    });
    host.insert(backup_core::host::NewDeployment {
        name: "app".into(),
        recipe: backup_podman::RECIPE.into(),
        config: backup_core::memory_host::config_from_json(service.config.clone()),
        depends_on: Vec::new(),
    });
    let mut registry = backup_core::RecipeRegistry::new();
    backup_podman::register(&mut registry).unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let repo = backup_repository::Repository::init(backup_repository::Storage::Local(
        repo_dir.path().join("repo"),
    ))
    .await
    .unwrap();
    GuardedHost {
        host,
        registry,
        repo_dir,
        repo,
    }
}

impl GuardedHost {
    /// The guarded operations on this host.
    pub fn ops(&self) -> backup_podman::PodmanDeploymentOps<'_> {
        backup_podman::PodmanDeploymentOps::new(&self.repo, &self.host, &self.registry)
    }

    /// The file of a bundle in the repository.
    pub fn bundle_file(&self, info: &backup_repository::BundleInfo) -> PathBuf {
        self.repo_dir.path().join("repo/bundles").join(format!(
            "{}{}",
            info.name,
            backup_repository::BUNDLE_SUFFIX
        ))
    }
}
