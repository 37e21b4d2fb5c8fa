//! An entry over 4 GiB (ZIP64) works end to end and stock `unzip -t` accepts the bundle.
//! Takes about a minute: 4 GiB are written, verified, streamed back and tested by unzip.

#[path = "bundle_support.rs"]
mod support;

use backup_core::bundle::{BundleOptions, BundleReader, BundleWriter, Compression};
use backup_core::progress::NoProgress;
use backup_core::{ArtifactData, ByteStream};
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::*;

const CHUNK: usize = 1024 * 1024;
/// 4 GiB + 3 MiB + 5 bytes: past every 32-bit size and offset.
const CHUNKS: usize = 4096 + 3;
const TAIL: usize = 5;
const TOTAL: u64 = (CHUNKS * CHUNK + TAIL) as u64;

/// A cheap repeating pattern, shared by every chunk (no per-chunk allocation).
fn pattern() -> Bytes {
    Bytes::from(pseudo_random(CHUNK, 42))
}

fn large_stream() -> ByteStream {
    let chunk = pattern();
    let tail = chunk.slice(..TAIL);
    Box::pin(
        futures::stream::iter(std::iter::repeat_n(chunk, CHUNKS))
            .chain(futures::stream::iter([tail]))
            .map(Ok),
    )
}

fn expected_sha256() -> String {
    let chunk = pattern();
    let mut hasher = Sha256::new();
    for _ in 0..CHUNKS {
        hasher.update(&chunk);
    }
    hasher.update(&chunk[..TAIL]);
    hex::encode(hasher.finalize())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_entry_over_4_gib_works_and_unzip_accepts_the_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("large.zip");
    let options = BundleOptions::default().with_compression(Compression::None);
    let mut writer = BundleWriter::create(&path, options).await.expect("create");
    writer.write_snapshot(&snapshot()).await.expect("snapshot");
    let big = writer
        .write_artifact(
            "files",
            &descriptor("big.bin"),
            ArtifactData::from_stream(large_stream()),
            &NoProgress,
        )
        .await
        .expect("large artifact");
    // An entry after the large one sits at an offset past 4 GiB.
    writer
        .write_artifact(
            "db",
            &descriptor("after.sql"),
            ArtifactData::from_stream(stream_of(b"SELECT 1;\n", 4)),
            &NoProgress,
        )
        .await
        .expect("small artifact");
    let manifest = writer.finish().await.expect("finish");

    assert_eq!(big.size, TOTAL);
    assert_eq!(big.uncompressed_size, TOTAL);
    assert!(big.size > u64::from(u32::MAX));
    assert_eq!(big.sha256, expected_sha256());

    let (ok, output) = unzip_test(&path);
    assert!(ok, "unzip -t failed: {output}");
    assert!(output.contains("No errors detected"), "{output}");

    let reader = BundleReader::open(&path).await.expect("open");
    assert_eq!(reader.manifest(), &manifest);
    let report = reader.verify(&NoProgress).await.expect("verify");
    assert!(report.total_bytes > TOTAL);

    let after = manifest.entry("data/db/after.sql").expect("entry").clone();
    let read = collect(reader.open_entry(&after).expect("open entry"))
        .await
        .expect("read small entry");
    assert_eq!(read, b"SELECT 1;\n");

    // Stream the large entry back without holding it: count and hash on the fly.
    let mut stream = reader.open_entry(&big).expect("open large entry");
    let mut hasher = Sha256::new();
    let mut count: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("large entry streams without error");
        count += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(count, TOTAL);
    assert_eq!(hex::encode(hasher.finalize()), big.sha256);
}
