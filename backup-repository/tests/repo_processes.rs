//! Two real OS processes against one repository: two creates at once, and a create
//! while another process prunes. Both bundles stay intact and listed, nothing orphaned.
//!
//! The test binary re-executes itself as the child processes (like `repo_crash.rs`):
//! `process_child` does nothing in a normal run.

mod repo_support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::{ArtifactData, ArtifactDescriptor, ErrorKind};
use backup_repository::{BundleFilter, PruneOptions, Repository, S3Options, Storage};
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use bytes::Bytes;
use futures::StreamExt;
use repo_support::{data, write_bundle};

/// What the child does: `create:<label>:<seed>`, `slow-create:<label>` or `prune`.
const ROLE_ENV: &str = "BACKUP_REPO_PROC_ROLE";
/// The local repository directory, or
const LOCAL_ENV: &str = "BACKUP_REPO_PROC_LOCAL";
/// the S3 endpoint (bucket `bkt`, prefix `team/repo`).
const S3_ENV: &str = "BACKUP_REPO_PROC_S3";
const BUNDLE_BYTES: u64 = 4 << 20;

fn s3_options(endpoint: String) -> S3Options {
    S3Options {
        bucket: "bkt".into(),
        prefix: "team/repo".into(),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        allow_http: true,
    }
}

/// Where the repository is, for the child's environment.
#[derive(Clone)]
enum Place {
    Local(PathBuf),
    S3(String),
}

impl Place {
    fn storage(&self) -> Storage {
        match self {
            Place::Local(dir) => Storage::Local(dir.clone()),
            Place::S3(endpoint) => Storage::S3(s3_options(endpoint.clone())),
        }
    }

    fn spawn(&self, role: &str) -> Child {
        let (key, value) = match self {
            Place::Local(dir) => (LOCAL_ENV, dir.display().to_string()),
            Place::S3(endpoint) => (S3_ENV, endpoint.clone()),
        };
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "process_child", "--nocapture"])
            .env(ROLE_ENV, role)
            .env(key, value)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn child")
    }
}

/// Waits for the child; asserts it succeeded and returns its stderr.
fn finish(mut child: Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("child stderr")
        .read_to_string(&mut err)
        .expect("child output");
    let status = child.wait().expect("wait");
    assert!(status.success(), "child failed: {err}");
    err
}

/// Reads the child's stderr up to a line containing `marker`.
fn wait_for_line(child: &mut Child, marker: &str) -> std::io::BufReader<std::process::ChildStderr> {
    let mut reader = std::io::BufReader::new(child.stderr.take().expect("child stderr"));
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("child output");
        assert!(n > 0, "the child ended before printing {marker:?}");
        if line.contains(marker) {
            return reader;
        }
    }
}

/// A slow artifact: `chunks` chunks of 64 KiB, one every 20 ms.
fn slow_data(chunks: usize) -> ArtifactData {
    let stream = futures::stream::iter(0..chunks).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Bytes::from(vec![i as u8; 64 * 1024]))
    });
    ArtifactData::from_stream(stream.boxed())
}

/// Retries `begin` while another process's conflicting lock refuses it.
async fn begin(repo: &Repository, label: &str) -> backup_repository::PendingBundle {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match repo.begin(BundleOptions::default().with_label(label)).await {
            Ok(pending) => return pending,
            Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("begin: {e}"),
        }
    }
}

/// Child mode (see the module docs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_child() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let place = if let Ok(endpoint) = std::env::var(S3_ENV) {
        Place::S3(endpoint)
    } else {
        Place::Local(PathBuf::from(std::env::var(LOCAL_ENV).expect("repository")))
    };
    let repo = Repository::open(place.storage()).await.expect("open");
    let parts: Vec<&str> = role.split(':').collect();
    match parts.as_slice() {
        ["create", label, seed] => {
            let seed: u64 = seed.parse().expect("seed");
            let mut pending = begin(&repo, label).await;
            eprintln!("child: writing");
            let artifact = ArtifactDescriptor::new("data.bin", "raw", "application/octet-stream");
            pending
                .writer()
                .expect("writer")
                .write_artifact(
                    "db",
                    &artifact,
                    data(BUNDLE_BYTES, seed),
                    &backup_core::progress::NoProgress,
                )
                .await
                .expect("write");
            let info = pending.publish().await.expect("publish");
            eprintln!("child: published {}", info.id);
        }
        ["slow-create", label] => {
            let mut pending = begin(&repo, label).await;
            eprintln!("child: writing");
            let artifact = ArtifactDescriptor::new("slow.bin", "raw", "application/octet-stream");
            pending
                .writer()
                .expect("writer")
                .write_artifact(
                    "db",
                    &artifact,
                    slow_data(60),
                    &backup_core::progress::NoProgress,
                )
                .await
                .expect("write");
            let info = pending.publish().await.expect("publish");
            eprintln!("child: published {}", info.id);
        }
        ["prune"] => {
            // Prune with no grace period, over and over until one succeeds: refused
            // (Locked) while the other process's create holds its lock.
            let options = PruneOptions {
                grace: Duration::ZERO,
                ..PruneOptions::default()
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut refused = 0;
            loop {
                match repo.prune(&options).await {
                    Ok(report) => {
                        assert!(report.removed_orphans.is_empty(), "{report:?}");
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Locked && Instant::now() < deadline => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("prune: {e}"),
                }
            }
            eprintln!("child: pruned after {refused} refusals");
        }
        other => panic!("unknown role {other:?}"),
    }
}

async fn assert_intact(repo: &Repository, labels: &[&str]) {
    let list = repo.list(&BundleFilter::default()).await.expect("list");
    let mut got: Vec<String> = list.iter().filter_map(|b| b.label.clone()).collect();
    got.sort();
    let mut want: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{list:?}");
    for b in &list {
        repo.verify(&b.id, &backup_core::progress::NoProgress)
            .await
            .expect("verify");
    }
    let check = repo.check().await.expect("check");
    assert!(check.orphans.is_empty(), "{check:?}");
}

async fn two_processes_create(place: Place) {
    let repo = Repository::init(place.storage()).await.expect("init");
    let a = place.spawn("create:a:1");
    let b = place.spawn("create:b:2");
    let (a, b) = (finish(a), finish(b));
    assert!(a.contains("published"), "{a}");
    assert!(b.contains("published"), "{b}");
    assert_intact(&repo, &["a", "b"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_creating_at_once_are_both_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    two_processes_create(Place::Local(dir.path().join("repo"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_creating_at_once_are_both_intact_on_s3() {
    let server = S3Server::moto();
    server.create_bucket("bkt");
    two_processes_create(Place::S3(server.endpoint())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_in_one_process_during_prune_in_another_leaves_both_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let place = Place::Local(dir.path().join("repo"));
    let repo = Repository::init(place.storage()).await.expect("init");
    write_bundle(&repo, Some("old"), BundleKind::Manual, "db", 1000, 1).await;
    let mut creator = place.spawn("slow-create:slow");
    // The create's upload is under way (its partial object exists) when prune starts.
    let mut rest = wait_for_line(&mut creator, "writing");
    let pruner = place.spawn("prune");
    let pruned = finish(pruner);
    let mut tail = String::new();
    rest.read_to_string(&mut tail).expect("creator output");
    let status = creator.wait().expect("wait");
    assert!(status.success(), "creator failed: {tail}");
    assert!(tail.contains("published"), "{tail}");
    assert!(pruned.contains("pruned"), "{pruned}");
    assert!(
        !pruned.contains("after 0 refusals"),
        "prune ran while the create held its lock: {pruned}"
    );
    assert_intact(&repo, &["old", "slow"]).await;
}
