//! A writer killed (SIGKILL) in the middle of a 200 MB bundle leaves nothing listed;
//! check reports the partial upload and prune removes it.

mod repo_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use backup_core::bundle::BundleKind;
use backup_repository::{BundleFilter, OrphanKind, PruneOptions, Repository, S3Options, Storage};
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use repo_support::write_bundle;

const CHILD_ENV: &str = "BACKUP_REPO_CRASH_CHILD";
const CHILD_S3_ENV: &str = "BACKUP_REPO_CRASH_S3";
const BUNDLE_BYTES: u64 = 200 * 1024 * 1024;

/// Child mode: writes a 200 MB bundle into the repository named by the env var (until
/// the parent kills it). Does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_writes_a_large_bundle() {
    let storage = if let Ok(endpoint) = std::env::var(CHILD_S3_ENV) {
        Storage::S3(s3_options(endpoint))
    } else if let Ok(dir) = std::env::var(CHILD_ENV) {
        Storage::Local(PathBuf::from(dir))
    } else {
        return;
    };
    let repo = Repository::open(storage).await.expect("open");
    eprintln!("child: writing");
    write_bundle(
        &repo,
        Some("big"),
        BundleKind::Manual,
        "db",
        BUNDLE_BYTES,
        9,
    )
    .await;
}

fn s3_options(endpoint: String) -> S3Options {
    S3Options {
        bucket: "bkt".into(),
        endpoint: Some(endpoint),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..S3Options::default()
    }
}

fn partial_size(bundles: &Path) -> u64 {
    std::fs::read_dir(bundles)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains('#'))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_nothing_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repo");
    let repo = Repository::init(Storage::Local(root.clone()))
        .await
        .expect("init");
    let kept = write_bundle(&repo, Some("kept"), BundleKind::Manual, "db", 100_000, 1).await;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writes_a_large_bundle",
            "--nocapture",
        ])
        .env(CHILD_ENV, &root)
        .spawn()
        .expect("spawn child");
    let deadline = Instant::now() + Duration::from_secs(120);
    while partial_size(&root.join("bundles")) < 30 * 1024 * 1024 {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "the child finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "the child wrote nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");

    let list = repo.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(list.len(), 1, "nothing partial is listed");
    assert_eq!(list[0].id, kept.id);
    repo.verify(&kept.id, &backup_core::progress::NoProgress)
        .await
        .expect("verify");
    let check = repo.check().await.expect("check");
    assert_eq!(check.orphans.len(), 1, "{check:?}");
    assert_eq!(check.orphans[0].kind, OrphanKind::PartialUpload);
    // Within the grace period the orphan stays (a write may still be under way).
    let report = repo.prune(&PruneOptions::default()).await.expect("prune");
    assert_eq!(report.kept_orphans.len(), 1);
    // Past it, prune removes it; the killed child's lock is stale (its pid is gone).
    let report = repo
        .prune(&PruneOptions {
            grace: Duration::ZERO,
            ..PruneOptions::default()
        })
        .await
        .expect("prune");
    assert_eq!(report.removed_orphans.len(), 1);
    assert!(repo.check().await.expect("check").orphans.is_empty());
    assert_eq!(partial_size(&root.join("bundles")), 0);
    assert_eq!(
        repo.list(&BundleFilter::default())
            .await
            .expect("list")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_nothing_listed_on_s3() {
    let server = S3Server::moto();
    server.create_bucket("bkt");
    let repo = Repository::init(Storage::S3(s3_options(server.endpoint())))
        .await
        .expect("init");
    let kept = write_bundle(&repo, Some("kept"), BundleKind::Manual, "db", 100_000, 1).await;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writes_a_large_bundle",
            "--nocapture",
        ])
        .env(CHILD_S3_ENV, server.endpoint())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stderr = child.stderr.take().expect("child stderr");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line)
        .expect("child output");
    assert!(line.contains("writing"), "{line}");
    // A few parts of the 200 MB bundle are uploaded by then.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the child finished before it could be killed"
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let list = repo.list(&BundleFilter::default()).await.expect("list");
    assert_eq!(list.len(), 1, "nothing partial is listed");
    assert_eq!(list[0].id, kept.id);
    repo.verify(&kept.id, &backup_core::progress::NoProgress)
        .await
        .expect("verify");
    // The incomplete multipart upload is no object, but `check` asks the server for it and
    // `prune` aborts it; the killed child's lock is cleared by the next exclusive operation.
    let check = repo.check().await.expect("check");
    assert_eq!(check.orphans.len(), 1, "{check:?}");
    let orphan = &check.orphans[0];
    assert_eq!(orphan.kind, OrphanKind::IncompleteMultipartUpload);
    assert!(orphan.path.starts_with("bundles/"), "{orphan:?}");
    assert!(orphan.upload_id.is_some(), "{orphan:?}");
    let report = repo
        .prune(&PruneOptions {
            grace: Duration::ZERO,
            ..PruneOptions::default()
        })
        .await
        .expect("prune");
    assert_eq!(report.removed_orphans, check.orphans);
    let check = repo.check().await.expect("check");
    assert!(check.orphans.is_empty(), "aborted: {check:?}");
}
