//! Repository locks: concurrent creates, create during prune, stale and live locks,
//! locked bundles.

mod repo_support;

use std::time::Duration;

use backup_core::bundle::{BundleKind, BundleOptions};
use backup_core::{ArtifactData, ArtifactDescriptor, ErrorKind};
use backup_repository::retention::RetentionPolicy;
use backup_repository::{BundleFilter, LockKind, LockRecord, PruneOptions, Repository};
use bytes::Bytes;
use futures::StreamExt;
use jiff::Timestamp;
use object_store::{ObjectStoreExt, PutPayload};
use repo_support::{fresh, write_bundle, Kind};

async fn put_lock(repo: &Repository, record: &LockRecord) -> object_store::path::Path {
    let path = repo.key(&format!("locks/{}.json", uuid_like()));
    let json = serde_json::to_vec(record).expect("json");
    repo.object_store()
        .put(&path, PutPayload::from(Bytes::from(json)))
        .await
        .expect("put lock");
    path
}

fn uuid_like() -> String {
    format!("{:x}", Timestamp::now().as_nanosecond())
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn record(kind: LockKind, host: &str, pid: u32, refreshed: Timestamp) -> LockRecord {
    LockRecord {
        kind,
        host: host.into(),
        pid,
        operation: "prune".into(),
        since: refreshed,
        refreshed,
    }
}

async fn verify_all(repo: &Repository) -> usize {
    let list = repo.list(&BundleFilter::default()).await.expect("list");
    for b in &list {
        repo.verify(&b.id, &backup_core::progress::NoProgress)
            .await
            .expect("verify");
    }
    list.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_creates_are_both_intact() {
    for kind in [Kind::Local, Kind::Moto] {
        let (backend, repo) = fresh(kind).await;
        let other = Repository::open(repo_support::storage_for(&backend, "bkt"))
            .await
            .expect("open");
        let (a, b) = tokio::join!(
            write_bundle(&repo, Some("a"), BundleKind::Manual, "db", 6 << 20, 1),
            write_bundle(&other, Some("b"), BundleKind::Manual, "db", 6 << 20, 2),
        );
        assert_ne!(a.id, b.id);
        assert_eq!(verify_all(&repo).await, 2, "{kind:?}");
        assert!(repo.check().await.expect("check").orphans.is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_during_prune_leaves_both_intact() {
    let (_backend, repo) = fresh(Kind::Local).await;
    write_bundle(&repo, Some("old"), BundleKind::Manual, "db", 1000, 1).await;
    let writer_repo = repo.clone();
    let create = tokio::spawn(async move {
        let mut pending = writer_repo
            .begin(BundleOptions::default().with_label("slow"))
            .await
            .expect("begin");
        let artifact = ArtifactDescriptor::new("slow.bin", "raw", "application/octet-stream");
        pending
            .writer()
            .expect("writer")
            .write_artifact(
                "db",
                &artifact,
                slow_data(50),
                &backup_core::progress::NoProgress,
            )
            .await
            .expect("write");
        pending.publish().await.expect("publish")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let prune = PruneOptions {
        grace: Duration::ZERO,
        ..PruneOptions::default()
    };
    let refused = repo
        .prune(&prune)
        .await
        .expect_err("a create holds the lock");
    assert_eq!(refused.kind(), ErrorKind::Locked, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("since"), "{text}");
    assert!(refused.hint().is_some());
    let created = create.await.expect("join");
    let report = repo.prune(&prune).await.expect("prune after the create");
    assert!(report.removed_orphans.is_empty(), "{report:?}");
    assert_eq!(verify_all(&repo).await, 2);
    assert!(repo.info(&created.id).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_lock_of_a_killed_process_is_cleared() {
    let (_backend, repo) = fresh(Kind::Local).await;
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();
    child.kill().expect("kill");
    child.wait().expect("wait");
    let path = put_lock(
        &repo,
        &record(LockKind::Exclusive, &this_host(), pid, Timestamp::now()),
    )
    .await;
    write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 1).await;
    assert!(
        repo.object_store().head(&path).await.is_err(),
        "the dead process's lock was removed"
    );
    // Another host's lock that has not been refreshed for an hour is stale too.
    let old = Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let path = put_lock(&repo, &record(LockKind::Exclusive, "other-host", 1, old)).await;
    write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 2).await;
    assert!(repo.object_store().head(&path).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_lock_is_respected() {
    let (_backend, repo) = fresh(Kind::Moto).await;
    let path = put_lock(
        &repo,
        &record(
            LockKind::Exclusive,
            &this_host(),
            std::process::id(),
            Timestamp::now(),
        ),
    )
    .await;
    let err = repo
        .begin(BundleOptions::default())
        .await
        .expect_err("an exclusive lock is held");
    assert_eq!(err.kind(), ErrorKind::Locked);
    let text = err.to_string();
    assert!(
        text.contains(&this_host()) && text.contains(&std::process::id().to_string()),
        "{text}"
    );
    // A live lock on another host (refreshed just now) is respected as well.
    repo.object_store().delete(&path).await.expect("delete");
    let other = put_lock(
        &repo,
        &record(LockKind::Shared, "other-host", 1, Timestamp::now()),
    )
    .await;
    assert!(repo.prune(&PruneOptions::default()).await.is_err());
    assert!(
        repo.object_store().head(&other).await.is_ok(),
        "never broken"
    );
    // A shared lock does not stop another create.
    write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_bundle_refuses_delete_and_survives_prune() {
    let (_backend, repo) = fresh(Kind::Local).await;
    let old = write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 1).await;
    let mid = write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 2).await;
    let new = write_bundle(&repo, None, BundleKind::Manual, "db", 1000, 3).await;
    let until = Timestamp::now() + jiff::SignedDuration::from_hours(24);
    repo.lock_bundle(&old.id, Some(until)).await.expect("lock");
    let err = repo.delete(&old.id).await.expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("locked until"), "{err}");
    let policy = RetentionPolicy::from_json(r#"{"default": {"keepLast": 1}}"#).expect("policy");
    let dry = repo
        .prune(&PruneOptions {
            dry_run: true,
            policy: Some(policy.clone()),
            ..PruneOptions::default()
        })
        .await
        .expect("dry run");
    assert_eq!(dry.removed_bundles, vec![mid.name.clone()]);
    assert_eq!(verify_all(&repo).await, 3, "a dry run changes nothing");
    let report = repo
        .prune(&PruneOptions {
            policy: Some(policy),
            ..PruneOptions::default()
        })
        .await
        .expect("prune");
    assert_eq!(report.removed_bundles, vec![mid.name.clone()]);
    let plan = report.plan.expect("plan");
    assert!(plan
        .get(&old.id)
        .is_some_and(|d| d.keep && d.reasons.iter().any(|r| r == "locked")));
    let left: Vec<String> = repo
        .list(&BundleFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, vec![new.id, old.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_lock_is_refreshed_and_never_broken() {
    let (_backend, repo) = fresh(Kind::Local).await;
    let timing = backup_repository::LockTiming {
        stale_after: Duration::from_millis(600),
        refresh_every: Duration::from_millis(150),
    };
    let repo = repo.with_lock_timing(timing);
    let writer_repo = repo.clone();
    let create = tokio::spawn(async move {
        let mut pending = writer_repo
            .begin(BundleOptions::default())
            .await
            .expect("begin");
        let artifact = ArtifactDescriptor::new("slow.bin", "raw", "application/octet-stream");
        pending
            .writer()
            .expect("writer")
            .write_artifact(
                "db",
                &artifact,
                slow_data(100),
                &backup_core::progress::NoProgress,
            )
            .await
            .expect("write");
        pending.publish().await.expect("publish")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = lock_records(&repo).await;
    assert_eq!(first.len(), 1);
    // Well past the staleness interval, the writer's lock is still live: refreshed, and
    // prune (which would remove a stale lock) is refused.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = lock_records(&repo).await;
    assert_eq!(later.len(), 1);
    assert!(
        later[0].refreshed > first[0].refreshed,
        "refreshed while held"
    );
    let err = repo
        .prune(&PruneOptions::default())
        .await
        .expect_err("live lock respected");
    assert_eq!(err.kind(), ErrorKind::Locked);
    create.await.expect("join");
    assert!(
        lock_records(&repo).await.is_empty(),
        "released after publish"
    );
    assert_eq!(verify_all(&repo).await, 1);
}

async fn lock_records(repo: &Repository) -> Vec<LockRecord> {
    use futures::TryStreamExt;
    let metas: Vec<_> = repo
        .object_store()
        .list(Some(&repo.key("locks")))
        .try_collect()
        .await
        .expect("list locks");
    let mut out = Vec::new();
    for meta in metas {
        let bytes = repo
            .object_store()
            .get(&meta.location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        out.push(serde_json::from_slice(&bytes).expect("lock json"));
    }
    out
}
