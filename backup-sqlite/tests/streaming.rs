//! The export of a large database streams in bounded chunks with flat memory, and leaves
//! no temporary copy behind (also when the consumer drops the stream early).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use backup_testkit::conformance::MAX_CHUNK_BYTES;
use futures::StreamExt;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn snapshot_dirs(tmp: &std::path::Path) -> Vec<String> {
    common::files_in(tmp)
        .into_iter()
        .filter(|n| n.starts_with("backup-sqlite-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_streams_a_large_database_in_bounded_chunks_with_flat_memory() {
    let root = tempfile::tempdir().unwrap();
    let tmp = common::dir_in(root.path(), "tmp");
    // Private copies go to TMPDIR; this test binary runs only this test.
    std::env::set_var("TMPDIR", &tmp);
    let db = root.path().join("big.db");
    common::create_empty(&db, "wal");
    common::fill_bulk(&db, 96);
    let size = std::fs::metadata(&db).unwrap().len();
    let service = common::service("big", &db);
    let recipe = backup_sqlite::recipe().unwrap();
    let exporter = recipe.exporter().cloned().unwrap();

    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let artifact = exporter.artifacts(&service).await.unwrap().remove(0);
    let data = exporter.export(&service, &artifact).await.unwrap();
    let mut stream = data.stream;
    let (mut chunks, mut total, mut largest) = (0usize, 0u64, 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        total += chunk.len() as u64;
        largest = largest.max(chunk.len());
    }
    let metadata = data.late_metadata.unwrap().await.unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    assert!(largest <= MAX_CHUNK_BYTES, "a chunk of {largest} bytes");
    assert!(chunks >= 64, "{total} bytes came in only {chunks} chunks");
    assert!(
        total >= size * 9 / 10,
        "exported {total} of a {size}-byte database"
    );
    assert_eq!(metadata["sizeBytes"], serde_json::json!(total));
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        growth < 48 * 1024 * 1024,
        "memory grew by {growth} bytes exporting a {size}-byte database"
    );
    assert!(
        snapshot_dirs(&tmp).is_empty(),
        "the temporary copy was left behind"
    );

    // A consumer that stops early: the producer stops and the copy is removed too.
    let data = exporter.export(&service, &artifact).await.unwrap();
    let mut stream = data.stream;
    let _first = stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !snapshot_dirs(&tmp).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        snapshot_dirs(&tmp).is_empty(),
        "a dropped export left its temporary copy behind"
    );
}
