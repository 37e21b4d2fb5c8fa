//! Shared helpers: a repository on each backend, bundles of pseudo-random data.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::{ArtifactData, ArtifactDescriptor};
use backup_repository::{BundleInfo, Repository, S3Options, Storage};
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use bytes::Bytes;
use futures::StreamExt;

/// What keeps a backend alive for the test.
pub(crate) enum Backend {
    Local(tempfile::TempDir),
    S3(S3Server),
    /// A store the host built itself (`Storage::Store`): here a local file system store.
    Store(tempfile::TempDir),
}

/// Which backend.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Local,
    Moto,
    S3sFs,
    Store,
}

pub(crate) fn storage_for(backend: &Backend, bucket: &str) -> Storage {
    match backend {
        Backend::Local(dir) => Storage::Local(dir.path().join("repo")),
        Backend::Store(dir) => Storage::Store {
            store: std::sync::Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(dir.path())
                    .expect("local store"),
            ),
            prefix: "team/repo".into(),
            location: format!("store:{}/team/repo", dir.path().display()),
        },
        Backend::S3(server) => Storage::S3(S3Options {
            bucket: bucket.into(),
            prefix: "team/repo".into(),
            endpoint: Some(server.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            allow_http: true,
        }),
    }
}

pub(crate) fn backend(kind: Kind) -> Backend {
    match kind {
        Kind::Local => Backend::Local(tempfile::tempdir().expect("tempdir")),
        Kind::Store => Backend::Store(tempfile::tempdir().expect("tempdir")),
        Kind::Moto => {
            let server = S3Server::moto();
            server.create_bucket("bkt");
            Backend::S3(server)
        }
        Kind::S3sFs => {
            let server = S3Server::s3s_fs();
            server.create_bucket("bkt");
            Backend::S3(server)
        }
    }
}

/// A fresh repository on `kind`.
pub(crate) async fn fresh(kind: Kind) -> (Backend, Repository) {
    let backend = backend(kind);
    let repo = Repository::init(storage_for(&backend, "bkt"))
        .await
        .expect("init");
    (backend, repo)
}

/// `len` pseudo-random bytes as a stream of 64 KiB chunks.
pub(crate) fn data(len: u64, seed: u64) -> ArtifactData {
    let mut rng = backup_testkit::data::PseudoRandom::new(seed);
    let mut left = len;
    let stream = futures::stream::poll_fn(move |_| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = left.min(64 * 1024) as usize;
        let mut buf = vec![0u8; n];
        rng.fill(&mut buf);
        left -= n as u64;
        std::task::Poll::Ready(Some(Ok(Bytes::from(buf))))
    });
    ArtifactData::from_stream(stream.boxed())
}

/// Writes a bundle with one artifact of `len` random bytes for service `svc`.
pub(crate) async fn write_bundle(
    repo: &Repository,
    label: Option<&str>,
    kind: BundleKind,
    svc: &str,
    len: u64,
    seed: u64,
) -> BundleInfo {
    let mut options = BundleOptions::default().with_kind(kind);
    if let Some(label) = label {
        options = options.with_label(label);
    }
    let mut pending = repo.begin(options).await.expect("begin");
    let artifact = ArtifactDescriptor::new("data.bin", "raw", "application/octet-stream");
    pending
        .writer()
        .expect("writer")
        .write_artifact(
            svc,
            &artifact,
            data(len, seed),
            &backup_core::progress::NoProgress,
        )
        .await
        .expect("write artifact");
    pending.publish().await.expect("publish")
}

pub(crate) fn unzip_test(path: &Path) {
    let out = std::process::Command::new("unzip")
        .arg("-t")
        .arg(path)
        .output()
        .expect("run unzip");
    assert!(
        out.status.success(),
        "unzip -t failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

pub(crate) type Shared = Arc<Repository>;
