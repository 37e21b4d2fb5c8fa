//! Repository benchmark: listing 10,000 index entries and a retention plan over them
//! (local), and peak memory writing 100 MiB vs `REPO_BENCH_GIB` GiB (default 1) bundles
//! into a local repository and into moto (S3 multipart): memory stays flat when the two
//! peaks match.
//!
//! `cargo bench -p backup-benches --bench repository`. `REPO_BENCH_S3=0` skips moto.

use std::time::{Duration, Instant};

use backup_benches::{peak_rss_kib, reset_peak_rss};
use backup_core::bundle::{BundleOptions, Compression};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ArtifactDescriptor};
use backup_repository::retention::{plan, RetentionItem, RetentionPolicy};
use backup_repository::{BundleFilter, IndexEntry, Repository, S3Options, Storage};
use backup_testkit::data::PseudoRandom;
use backup_testkit::s3_server::{S3Server, ACCESS_KEY, SECRET_KEY};
use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};

const MIB: u64 = 1024 * 1024;

fn data(len: u64) -> ArtifactData {
    let mut rng = PseudoRandom::new(7);
    let mut left = len;
    let stream = futures::stream::poll_fn(move |_| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = left.min(MIB) as usize;
        let mut buf = vec![0u8; n];
        rng.fill(&mut buf);
        left -= n as u64;
        std::task::Poll::Ready(Some(Ok(Bytes::from(buf))))
    });
    ArtifactData::from_stream(stream.boxed())
}

async fn write(repo: &Repository, len: u64) -> Duration {
    let start = Instant::now();
    let options = BundleOptions::default().with_compression(Compression::None);
    let mut pending = repo.begin(options).await.expect("begin");
    let artifact = ArtifactDescriptor::new("data.bin", "raw", "application/octet-stream");
    pending
        .writer()
        .expect("writer")
        .write_artifact("db", &artifact, data(len), &NoProgress)
        .await
        .expect("write");
    pending.publish().await.expect("publish");
    start.elapsed()
}

async fn listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init(Storage::Local(dir.path().join("repo")))
        .await
        .expect("init");
    write(&repo, 1000).await;
    let template: IndexEntry = repo.info("1").await.expect("info");
    let base = jiff::Timestamp::now();
    let store = repo.object_store().clone();
    futures::stream::iter(0..10_000u32)
        .map(|i| {
            let mut entry = template.clone();
            entry.manifest.id = format!("bench-{i:05}");
            entry.name = format!("bench-{i:05}");
            entry.manifest.created_at =
                (base - jiff::SignedDuration::from_hours(i64::from(i))).to_string();
            let path = repo.key(&format!("index/{}.json", entry.manifest.id));
            let store = store.clone();
            async move {
                let json = serde_json::to_vec(&entry).expect("json");
                store
                    .put(&path, PutPayload::from(Bytes::from(json)))
                    .await
                    .expect("put");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let start = Instant::now();
    let list = repo.list(&BundleFilter::default()).await.expect("list");
    let listed = start.elapsed();
    let items: Vec<RetentionItem> = list
        .iter()
        .map(|b| RetentionItem {
            id: b.id.clone(),
            created: b.created,
            label: b.label.clone(),
            kind: b.kind,
            services: b.services.clone(),
            locked: b.locked,
        })
        .collect();
    let policy = RetentionPolicy::from_json(
        r#"{"default": {"keepLast": 10, "keepDaily": 7, "keepWeekly": 5, "keepMonthly": 12}}"#,
    )
    .expect("policy");
    let start = Instant::now();
    let decided = plan(&items, &policy, jiff::Timestamp::now()).expect("plan");
    let planned = start.elapsed();
    println!(
        "list {} index entries (local): {:.1} ms; retention plan: {:.1} ms ({} kept)",
        list.len(),
        listed.as_secs_f64() * 1e3,
        planned.as_secs_f64() * 1e3,
        decided.to_keep().count()
    );
}

async fn memory(name: &str, repo: &Repository, large: u64) {
    for len in [100 * MIB, large] {
        reset_peak_rss();
        let took = write(repo, len).await;
        println!(
            "{name}: wrote {:>5} MiB in {:>6.2} s ({:>6.1} MiB/s), peak RSS {:>7} KiB",
            len / MIB,
            took.as_secs_f64(),
            len as f64 / MIB as f64 / took.as_secs_f64(),
            peak_rss_kib()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    listing().await;
    let gib: u64 = std::env::var("REPO_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let local = Repository::init(Storage::Local(dir.path().join("repo")))
        .await
        .expect("init");
    memory("local", &local, gib * 1024 * MIB).await;
    drop(dir);
    if std::env::var("REPO_BENCH_S3").is_ok_and(|v| v == "0") {
        return;
    }
    let server = S3Server::moto();
    server.create_bucket("bench");
    let s3 = Repository::init(Storage::S3(S3Options {
        bucket: "bench".into(),
        endpoint: Some(server.endpoint()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..S3Options::default()
    }))
    .await
    .expect("init s3");
    memory("moto", &s3, gib * 1024 * MIB).await;
}
